"""Imports TensorFlow/Keras quietly and deterministically; only stage actions call this (never at build-file
read time: importing TensorFlow takes seconds)."""
import os
import re
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


_MISSING_VERSION = re.compile(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'")


def _capped(buf, op_name, version):
    """The .tflite bytes with every operator code `op_name` of a higher version set to `version`."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    code = getattr(fb.BuiltinOperator, op_name)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(buf))
    for c in model.operatorCodes:
        if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
            c.version = min(c.version, version)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def reference_interpreter(tflite_path, preserve_all_tensors=False):
    """TFLite's reference kernels: the yardstick our generated C is compared against. The file passes
    codegen.tflite_limits first: TFLite would allocate whatever tensors a damaged or hostile model declares.

    tf.lite's reference resolver (BUILTIN_REF) registers some ops up to a lower version than its builtin one
    (TILE and DEPTH_TO_SPACE of int8, written as versions 3 and 2 by the converter, stop at 2 and 1 there), although
    its kernels choose their code by tensor type, not by version. Such a model runs with that op's version capped
    to the highest one the resolver has, said once in the log; a kernel that cannot take the tensors still refuses
    them when the tensors are prepared."""
    from .. import tflite_limits as limits

    limits.open_graph(tflite_path)
    tf, _ = import_tf()
    with open(tflite_path, "rb") as f:
        buf = f.read()
    capped = {}
    while True:
        try:
            with quiet():
                interp = tf.lite.Interpreter(
                    model_content=buf, experimental_preserve_all_tensors=preserve_all_tensors,
                    experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
            break
        except ValueError as e:
            missing = _MISSING_VERSION.search(str(e))
            if not missing or int(missing.group(2)) <= 1 or not hasattr(_schema(), missing.group(1)):
                raise
            op, version = missing.group(1), int(missing.group(2)) - 1
            capped.setdefault(op, int(missing.group(2)))
            buf = _capped(buf, op, version)
    if capped:
        print("  note: tf.lite's reference kernels register %s only up to a lower version; ran as that version "
              "(the kernel is the same)" % ", ".join("%s (v%d)" % kv for kv in sorted(capped.items())), flush=True)
    with quiet():
        interp.allocate_tensors()
    interp._tinyml_model = buf              # model_content must outlive the interpreter
    return interp


def _schema():
    from tensorflow.lite.python import schema_py_generated as fb

    return fb.BuiltinOperator


def run_interpreter(interp, x):
    """Runs a batch-1 model on each row of x (already in the input's dtype); returns outputs stacked."""
    import numpy as np

    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    results = []
    for row in x:
        interp.set_tensor(inp["index"], row.reshape(inp["shape"]).astype(inp["dtype"]))
        # variable tensors (an LSTM's hidden and cell state) would carry over from the previous row: each row is
        # one invocation from the reset state, as the generated C runs it (no-op for models without variables)
        interp.reset_all_variables()
        interp.invoke()
        results.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(results)
