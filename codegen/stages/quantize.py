"""Quantize stage: TFLite post-training quantization of a Keras model (the trained one, or MODEL=x.keras).

int8 (default): full-integer, int8 weights and activations calibrated on a representative set, uint8 (or int8)
input and output as in the tutorial; this is what the MCU code generator consumes. The set is the dataset's
training images (their 0..255 pixel values: the models rescale them themselves), or REP_DATA=, an .npy of
float model inputs. float16 and dynamic (range) are the other TFLite PTQ modes, for comparison on the host.
"""
import os

from ..errors import PipelineError
from ..fsutil import atomic_open

# REP_DATA= is read whole: a bound on what a wrong or hostile .npy may make the quantize stage allocate.
REP_DATA_MAX_BYTES = 2 * 2**30


def representative_set(calibration_path, input_shape, rep_samples):
    """float32 rows of the model's input shape (without batch): from a dataset .npz (training images in the pack
    stage's seeded shuffle order: a stable set that mixes classes) or a REP_DATA .npy."""
    import numpy as np

    if calibration_path.lower().endswith(".npy"):
        from ..inputfiles import load_npy

        x = load_npy(calibration_path, REP_DATA_MAX_BYTES, f"REP_DATA={calibration_path}")
        shape = [int(d) for d in input_shape[1:]]
        count = int(np.prod(shape))
        if x.dtype.kind not in "fiu" or x.ndim < 2 or len(x) == 0 or int(np.prod(x.shape[1:])) != count \
                or (x.ndim > 2 and list(x.shape[1:]) != shape):
            raise PipelineError(f"REP_DATA={calibration_path}: {x.dtype.name} array of shape {list(x.shape)} does "
                                f"not fit the model input {list(input_shape)}; give float values of shape "
                                f"(N, {', '.join(map(str, shape))}) or (N, {count})")
        if not np.isfinite(x).all():
            raise PipelineError(f"REP_DATA={calibration_path}: holds NaN or infinite values")
        return x[:rep_samples].reshape([-1] + shape).astype("float32")
    from .dataset import load_packed

    data = load_packed(calibration_path)
    pick = [i for i in data["order"] if not data["is_val"][i]][:rep_samples]
    rep = data["x"][pick].astype("float32")
    if list(rep.shape[1:]) != [int(d) for d in input_shape[1:]]:
        raise PipelineError(f"{calibration_path}: dataset images {list(rep.shape[1:])} do not fit the model input "
                            f"{list(input_shape)}")
    return rep


def _load_keras(keras, model_path):
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for files it cannot rebuild
        raise PipelineError(f"{model_path}: Keras cannot load this model ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); save it with "
                            "model.save('model.keras') from the same Keras, without custom layers") from None


def _converter(tf, keras, model):
    """The TFLite converter for a batch-1 graph, and the input shape: a model with a dynamic batch is rebuilt
    on a batch-1 input with the same weights (otherwise its reshapes can become SHAPE/STRIDED_SLICE/PACK ops
    computed at run time, which MCU code generation rejects)."""
    if len(model.inputs) != 1:
        raise PipelineError(f"the model has {len(model.inputs)} inputs; the pipeline runs models with one input")
    shape = tuple(model.inputs[0].shape)
    if shape[0] != 1:
        fixed = (1,) + tuple(shape[1:])
        try:
            clone = keras.models.clone_model(model, input_tensors=keras.Input(batch_shape=fixed))
            clone.set_weights(model.get_weights())
            model, shape = clone, fixed
        except Exception:  # noqa: BLE001 - e.g. a subclassed model: converted as it is (batch -1, pinned later)
            pass
    return tf.lite.TFLiteConverter.from_keras_model(model), shape


def quantize(model_path, npz_path, out_path, *, mode="int8", io_type="uint8", rep_samples=100):
    """`npz_path`: the dataset .npz, or a REP_DATA .npy of float inputs, to calibrate int8 on."""
    from ..modelio.tf_env import import_tf, quiet

    tf, keras = import_tf()
    model = _load_keras(keras, model_path)
    converter, input_shape = _converter(tf, keras, model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        rep = representative_set(os.fspath(npz_path), input_shape, rep_samples)

        def representative():
            for row in rep:
                yield [row[None]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_type)
        converter.inference_output_type = getattr(tf, io_type)
    elif mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode != "dynamic":
        raise PipelineError(f"QUANT={mode!r} is not supported; use int8, float16 or dynamic")
    try:
        with quiet():
            flatbuffer = converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises many types; all mean the same to a user
        raise PipelineError(f"{model_path}: TFLite conversion failed: {e}") from None
    with atomic_open(out_path, "wb") as f:
        f.write(flatbuffer)
    return len(flatbuffer)
