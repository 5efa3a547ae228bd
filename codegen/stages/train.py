"""Train stage: a Keras MobileNet (ARCH: the tutorial's MobileNetV1, or MobileNetV2 / MobileNetV3Small) of width
ALPHA, SIZE x SIZE x CHANNELS, with the microTVM Arduino tutorial's head: global average pooled features,
Reshape, Dropout(0.1), Flatten, Dense softmax; Adam (5e-4 when fine-tuning WEIGHTS= as the tutorial does, 5e-3
from scratch), 80/20 split. The base starts from random weights (weights=None) unless WEIGHTS= gives a Keras
weights file. The saved model has its input fixed to batch 1, which the TFLite converter needs to emit a
static graph (a dynamic batch brings SHAPE/STRIDED_SLICE/PACK ops that MCU code generation rejects).

Every architecture takes 0..255 pixels and rescales them itself, as its Keras application expects: V1 to 0..1
(the tutorial's), V2 to -1..1 (mobilenet_v2.preprocess_input), V3 inside the application
(include_preprocessing=True).
"""
import json

from .. import interrupt
from ..errors import PipelineError
from ..fsutil import atomic_open, atomic_path

ARCHITECTURES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small")
TITLES = {"mobilenet_v1": "MobileNetV1", "mobilenet_v2": "MobileNetV2", "mobilenet_v3_small": "MobileNetV3Small"}

# The tutorial's Adam(5e-4) fine-tunes ImageNet weights. From scratch (no WEIGHTS=) it learns too slowly: on the
# built-in dataset, 25 epochs reach 0.70 validation accuracy at 5e-4 and 0.94 at 5e-3 (measured, alpha 0.25, 64x64).
FINE_TUNE_LEARNING_RATE = 5e-4
FROM_SCRATCH_LEARNING_RATE = 5e-3
# With a few hundred steps, Keras' default BN momentum (0.99) leaves the moving statistics far from the data's,
# so inference-mode accuracy lags training accuracy; 0.9 tracks them within an epoch.
FROM_SCRATCH_BN_MOMENTUM = 0.9


def default_learning_rate(weights):
    return FINE_TUNE_LEARNING_RATE if weights else FROM_SCRATCH_LEARNING_RATE


def _application(keras, arch, size, channels, alpha, include_top):
    shape = (size, size, channels)
    if arch == "mobilenet_v1":
        return keras.applications.MobileNet(input_shape=shape, alpha=alpha, weights=None, include_top=include_top,
                                            **({"classes": 1000} if include_top else {}))
    if arch == "mobilenet_v2":
        return keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, weights=None, include_top=include_top)
    if arch == "mobilenet_v3_small":
        # minimalistic=False: the real V3 (hard-swish, squeeze-excite), which the published weights are for.
        return keras.applications.MobileNetV3Small(input_shape=shape, alpha=alpha, weights=None,
                                                   include_top=include_top, minimalistic=False,
                                                   include_preprocessing=True)
    raise PipelineError(f"ARCH={arch!r} is not supported; use one of: {', '.join(ARCHITECTURES)}")


def _base(keras, size, channels, alpha, arch="mobilenet_v1"):
    # V1: include_top=True keeps the tutorial's layer indexing (layers[-5] is the pooled feature map); the unused
    # classifier layers are cut away below. V2/V3 end at their last feature map without the top.
    return _application(keras, arch, size, channels, alpha, include_top=arch == "mobilenet_v1")


def _load_base_weights(keras, base, weights_path, size, channels, alpha, arch="mobilenet_v1"):
    try:
        base.load_weights(weights_path)
        return
    except Exception as with_top_error:  # noqa: BLE001 - retried as a file of the other layout below
        first = with_top_error
    # A weights file with the classifier top for a base without it (V2/V3), or the reverse (V1): load it into
    # that layout, then copy the layers both share by name.
    other_layout = "no-top" if arch == "mobilenet_v1" else "with-top"
    try:
        other = _application(keras, arch, size, channels, alpha, include_top=arch != "mobilenet_v1")
        other.load_weights(weights_path)
        by_name = {layer.name: layer for layer in base.layers}
        for layer in other.layers:
            if layer.weights and layer.name in by_name:
                by_name[layer.name].set_weights(layer.get_weights())
    except Exception as e:  # noqa: BLE001 - any loader failure means the file does not fit
        title = TITLES[arch]
        example = " (e.g. mobilenet_2_5_128_tf.h5 for alpha 0.25)" if arch == "mobilenet_v1" else ""
        raise PipelineError(f"WEIGHTS={weights_path}: cannot load into {title} alpha={alpha} with "
                            f"{channels} channel(s) ({first}; as a {other_layout} file: {e}); use a Keras {title} "
                            f"weights file of the same alpha{example}") from None


# Keras' MobileNetV1 has 13 depthwise-separable blocks, named conv_dw_<i> / conv_pw_<i> (i = 1..13).
MAX_DEPTH = 13


def _check_depth(depth, arch="mobilenet_v1"):
    if depth is None:
        return None
    if arch != "mobilenet_v1":
        raise PipelineError(f"DEPTH={depth!r} cuts MobileNetV1's blocks; {TITLES.get(arch, arch)} has no DEPTH "
                            "(make it smaller with ALPHA and SIZE)")
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise PipelineError(f"DEPTH={depth!r}: MobileNetV1 has {MAX_DEPTH} depthwise-separable blocks; give a "
                            f"whole number from 1 to {MAX_DEPTH}, or none for the tutorial's full network")
    return depth


def _features(keras, base, depth, arch="mobilenet_v1"):
    """The feature extractor ending in keepdims global average pooling: MobileNetV1 cut at the tutorial's
    layers[-5], or with `depth` after its first `depth` depthwise-separable blocks; V2/V3 after their last
    feature map."""
    if arch != "mobilenet_v1":
        out = keras.layers.GlobalAveragePooling2D(keepdims=True, name="global_pool")(base.output)
    elif depth is None:
        out = base.layers[-5].output
    else:
        x = base.get_layer(f"conv_pw_{depth}_relu").output
        out = keras.layers.GlobalAveragePooling2D(keepdims=True, name="global_pool")(x)
    return keras.Model(inputs=base.inputs, outputs=out, name="mobilenet_features")


def _rescale(keras, arch):
    """0..255 pixels to the range the architecture was designed (and its weights published) for."""
    if arch == "mobilenet_v1":
        return keras.layers.Rescaling(1.0 / 255, name="rescale")
    if arch == "mobilenet_v2":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")
    return None     # MobileNetV3 rescales inside the application (include_preprocessing=True)


def build_model(size, channels, alpha, num_classes, batch_size=None, weights_path=None, depth=None,
                arch="mobilenet_v1"):
    """`depth`: None for the tutorial's network, or 1..13 to keep only the first `depth` depthwise-separable
    blocks of MobileNetV1 (a model small enough for an 8-bit MCU); the head is the same either way."""
    from ..modelio.tf_env import import_tf

    depth = _check_depth(depth, arch)
    _, keras = import_tf()
    base = _base(keras, size, channels, alpha, arch)
    if weights_path:
        _load_base_weights(keras, base, weights_path, size, channels, alpha, arch)
    features = _features(keras, base, depth, arch)
    inputs = keras.Input(shape=(size, size, channels), batch_size=batch_size, name="image")
    rescale = _rescale(keras, arch)
    x = rescale(inputs) if rescale is not None else inputs
    x = features(x)
    x = keras.layers.Reshape((-1,), name="reshape")(x)
    x = keras.layers.Dropout(0.1, name="dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=f"{arch}_classifier")


def train(npz_path, model_out, history_out, *, alpha, epochs, seed, batch, weights_path=None, lr=None,
          verbose=None, depth=None, arch="mobilenet_v1"):
    """`verbose`: model.fit's; None: Keras' progress bar on a terminal, one line per epoch otherwise."""
    from ..progress import keras_verbosity
    from .dataset import load_packed
    from ..modelio.tf_env import import_tf

    depth = _check_depth(depth, arch)
    # Importing TensorFlow and building the graph take most of the wait before the first epoch line.
    print("  loading TensorFlow and building the model ...", flush=True)
    tf, keras = import_tf(seed)
    verbose = keras_verbosity() if verbose is None else verbose
    data = load_packed(npz_path)
    x, y, is_val = data["x"], data["y"], data["is_val"]
    size, channels = x.shape[1], x.shape[3]
    num_classes = len(data["class_names"])
    model = build_model(size, channels, alpha, num_classes, weights_path=weights_path, depth=depth, arch=arch)
    if not weights_path:
        for layer in model.get_layer("mobilenet_features").layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = FROM_SCRATCH_BN_MOMENTUM
    lr = lr or default_learning_rate(weights_path)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    xf = x.astype("float32")
    print(f"  training on {int((~is_val).sum()):,} images, validating on {int(is_val.sum()):,}, {epochs} epoch(s)",
          flush=True)
    hist = model.fit(xf[~is_val], y[~is_val], validation_data=(xf[is_val], y[is_val]), epochs=epochs,
                     batch_size=batch, shuffle=True, verbose=verbose, callbacks=[interrupt.keras_callback()])
    if any(v != v for v in hist.history["loss"]):  # NaN
        raise PipelineError("training diverged (loss became NaN); try another SEED or fewer EPOCHS")

    # Re-instantiate with batch 1 for conversion, carrying the trained weights over.
    fixed = build_model(size, channels, alpha, num_classes, batch_size=1, depth=depth, arch=arch)
    fixed.set_weights(model.get_weights())
    with atomic_path(model_out, suffix=".keras") as tmp:
        fixed.save(tmp)
    val_pred = model.predict(xf[is_val], batch_size=batch, verbose=0).argmax(axis=1)
    float_acc = float((val_pred == y[is_val]).mean())
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    with atomic_open(history_out) as f:
        # The predicted classes let the report draw the float model's confusion matrix from the very
        # predictions float_val_accuracy counts, without loading Keras again.
        json.dump({"history": history, "float_val_accuracy": float_acc,
                   "float_val_predictions": [int(p) for p in val_pred], "epochs": epochs, "arch": arch,
                   "alpha": alpha, "lr": lr,
                   "input_shape": [1, int(size), int(size), int(channels)],
                   "classes": [str(c) for c in data["class_names"]]}, f, indent=1)
    return float_acc
