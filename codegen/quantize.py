"""Quantize stage: TFLite post-training quantization of the batch-1 Keras model.

int8 (default): full-integer, int8 weights and activations calibrated on a representative set of training
images, uint8 (or int8) input and output as in the tutorial; this is what the MCU code generator consumes.
float16 and dynamic (range) are the other TFLite PTQ modes, for comparison on the host.
"""
from .errors import PipelineError
from .fsutil import atomic_open


def quantize(model_path, npz_path, out_path, *, mode="int8", io_type="uint8", rep_samples=100):
    from .dataset import load_packed
    from .tf_env import import_tf, quiet

    tf, keras = import_tf()
    model = keras.models.load_model(model_path, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        data = load_packed(npz_path)
        # Training images in the pack stage's seeded shuffle order: a stable calibration set that mixes classes.
        pick = [i for i in data["order"] if not data["is_val"][i]][:rep_samples]
        rep = data["x"][pick].astype("float32")

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
