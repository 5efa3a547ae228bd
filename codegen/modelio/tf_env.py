"""Imports TensorFlow/Keras quietly and deterministically; only stage actions call this (never at build-file
read time: importing TensorFlow takes seconds)."""
import os
import warnings

from ..quiet import quiet  # noqa: F401 (stages and runners import it from here)


def import_tf(seed=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")       # C++ info/warning chatter drowns the build log
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with quiet():
        import tensorflow as tf
        import keras

    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=r"(?s).*tf.lite.Interpreter is deprecated")
    warnings.filterwarnings("ignore", message=r"Statistics for quantized inputs were expected")
    if seed is not None:
        keras.utils.set_random_seed(seed)
        # Same seed, same data -> same weights on CPU: makes retraining reproducible and the cache key honest.
        tf.config.experimental.enable_op_determinism()
    return tf, keras


def reference_interpreter(tflite_path):
    """TFLite's reference kernels: the yardstick our generated C is compared against. The file passes
    codegen.tflite_limits first: TFLite would allocate whatever tensors a damaged or hostile model declares."""
    from .. import tflite_limits as limits

    limits.open_graph(tflite_path)
    tf, _ = import_tf()
    with quiet():
        interp = tf.lite.Interpreter(
            model_path=tflite_path,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        interp.allocate_tensors()
    return interp


def run_interpreter(interp, x):
    """Runs a batch-1 model on each row of x (already in the input's dtype); returns outputs stacked."""
    import numpy as np

    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    results = []
    for row in x:
        interp.set_tensor(inp["index"], row.reshape(inp["shape"]).astype(inp["dtype"]))
        interp.invoke()
        results.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(results)
