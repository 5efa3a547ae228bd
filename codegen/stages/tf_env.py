"""Imports TensorFlow/Keras quietly and deterministically; only stage actions call this (never at build-file
read time: importing TensorFlow takes seconds)."""
import contextlib
import os
import sys
import warnings


@contextlib.contextmanager
def quiet():
    """Silences stdout/stderr at the file-descriptor level: TensorFlow's C++ start-up banner (oneDNN, CUDA
    probing) and the converter's SavedModel dump are printed before any log level applies. Exceptions still
    propagate with their messages."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


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
    """TFLite's reference kernels: the yardstick our generated C is compared against."""
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
