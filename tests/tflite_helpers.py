"""Helpers the op and model tests share (not a test module): small Keras models converted to full-int8 TFLite,
and the bit-exactness check through codegen.runners.exactness (every intermediate tensor against BUILTIN_REF)."""
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "shared", "models")
# TensorFlow Lite Micro trees (../shared/TFLM-TREES.md): reference kernels (host) and CMSIS-NN (Cortex-M4).
SHARED_TFLM_REF = os.path.join(os.path.dirname(SHARED_MODELS), "tflm-tree-ref")
SHARED_TFLM_CMSIS = os.path.join(os.path.dirname(SHARED_MODELS), "tflm-tree")


# Every op type seen in a model that check_exact() found bit-exact in this test session: appended to the run's
# record (conftest.py checks at the end of a full run that it covers the whole op registry).
def _record_exact_ops(op_types):
    path = os.environ.get("TINYML_EXACT_OPS_FILE")
    if path:
        with open(path, "a") as f:          # one short append per call: whole lines, from any xdist worker
            f.write("".join(f"{t}\n" for t in sorted(op_types)))


def fit_briefly(model, X, seed=0):
    """One short epoch on random targets so layers get non-trivial ranges."""
    import keras
    Xf = X[:16].astype(np.float32)
    y = np.random.RandomState(seed).rand(*((16,) + tuple(model.output_shape[1:]))).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(Xf, y, epochs=1, batch_size=8, verbose=0)
    return model


def tutorial_mobilenet(shape, seed, X, alpha=0.25):
    """The training script's architecture (MobileNetV1 body cut at layers[-5], Rescaling in front, Dense softmax
    head), random init and one short epoch (without it the untrained BatchNorm statistics make the late
    activations vanish, and TFLite's reference softmax aborts on the resulting ~1e-8 input scale)."""
    import keras
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNet(input_shape=shape, alpha=alpha, weights=None, include_top=True, classes=1000)
    inp = keras.Input(shape=shape, batch_size=1)
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.Model(base.inputs, base.layers[-5].output)(x)
    x = keras.layers.Reshape((-1,))(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Flatten()(x)
    m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    Xf = X[:16].astype(np.float32)  # a few images are enough (time budget)
    y = (Xf.mean(axis=tuple(range(1, Xf.ndim))) > 127).astype(np.int64)
    m.compile(optimizer=keras.optimizers.Adam(5e-4), loss="sparse_categorical_crossentropy")
    m.fit(Xf, y, epochs=1, batch_size=8, verbose=0)
    return m


def convert_float(model):
    """A float32 TFLite flatbuffer (no quantization) of a Keras model."""
    import tensorflow as tf
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def convert_int8(model, X, in_type="int8", out_type="int8", rep=16, per_channel=True):
    """Full-integer TFLite flatbuffer of a Keras model, calibrated on X[:rep] (float inputs); per_channel=False
    gives per-tensor weight scales (the converter's per-channel quantization switched off)."""
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for i in range(min(rep, len(X))):
            yield [X[i:i + 1].astype(np.float32)]

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = getattr(tf, in_type)
    conv.inference_output_type = getattr(tf, out_type)
    if not per_channel:
        conv._experimental_disable_per_channel = True
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv.convert()


def check_exact(tflite_path, inputs, workdir, expected_ops=(), model_name="m"):
    """Generates C for the model, runs it on `inputs` (model-input dtype rows) with host gcc and asserts that the
    output and every traced intermediate tensor equal tf.lite BUILTIN_REF; returns (metadata, report)."""
    from codegen.runners import exactness
    from codegen.emit import mlf

    tar = os.path.join(str(workdir), "%s.tar" % model_name)
    meta = mlf.build_mlf(tflite_path, tar, model_name=model_name)
    rep = exactness.compare(tflite_path, tar, inputs, str(workdir))
    checked = {t for _, t in rep.checked_ops}
    assert set(expected_ops) - {"RESHAPE", "SQUEEZE"} <= checked, (sorted(expected_ops), sorted(checked))
    assert not rep.mismatches, rep.mismatches
    assert rep.outputs_equal
    _record_exact_ops({o["type"] for o in meta["ops"]})
    return meta, rep


def as_input_dtype(X, dtype):
    """uint8 pixel-like data (0..255) as the model's int8/uint8 input."""
    if dtype == "int8":
        return (X.astype(np.int16) - 128).astype(np.int8)
    return X.astype(np.uint8)
