"""The model's side of the TFLM backend: which operators it needs (a MicroMutableOpResolver with exactly those),
the .tflite as an aligned C array, and the C++ sources behind the sketch's TVMInitialize/TVMExecute API.

The resolver's methods are read from the TFLM tree's own micro_mutable_op_resolver.h, not from a list kept
here: a newer TFLM with more ops works unchanged, and an op this TFLM lacks is one error naming it.
"""
import hashlib
import os
import re

from .. import escape
from ..emit.templating import Escaped
from .library import TflmError, check_tree

RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
TEMPLATES_DIR = "tflm"       # under the project's templates/
# Arena bytes TFLM may lose to aligning the arena's start (MicroArenaBufferAlignment() is 16); the arena array
# is declared alignas(16), so this is only slack for a build that places it otherwise.
ARENA_ALIGNMENT_SLACK = 16


def templates_dir():
    from ..resources import sketch_templates_dir

    return os.path.join(os.path.dirname(sketch_templates_dir()), TEMPLATES_DIR)


def _normalise(name):
    return re.sub(r"[^A-Z0-9]", "", name.upper())


def resolver_methods(root):
    """{normalised op name: MicroMutableOpResolver method} for every builtin this TFLM can register."""
    path = os.path.join(root, RESOLVER_HEADER)
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise TflmError(f"cannot read {path} ({e.strerror}); TFLM_DIR must be a complete TFLM source tree") from None
    methods = {}
    for m in re.finditer(r"TfLiteStatus\s+(Add([A-Z][A-Za-z0-9]*))\s*\(", text):
        method, op = m.groups()
        if op not in ("Custom", "Builtin"):
            methods[_normalise(op)] = method
    if not methods:
        raise TflmError(f"{path} declares no Add<Op>() methods; is TFLM_DIR a TensorFlow Lite Micro tree?")
    return methods


def model_ops(tflite_path):
    """The model's operator names (TFLite BuiltinOperator names, custom ops as CUSTOM(name)), in first-use
    order, each once."""
    import tflite

    try:
        with open(tflite_path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise TflmError(f"{tflite_path}: cannot read the model ({e.strerror})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TflmError(f"{tflite_path}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)")
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    model = tflite.Model.GetRootAsModel(buf, 0)
    ops = []
    for s in range(model.SubgraphsLength()):
        g = model.Subgraphs(s)
        for i in range(g.OperatorsLength()):
            code = model.OperatorCodes(g.Operators(i).OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), f"BUILTIN_{code.BuiltinCode()}")
            if name == "CUSTOM":
                name = f"CUSTOM({(code.CustomCode() or b'?').decode(errors='replace')})"
            if name not in ops:
                ops.append(name)
    return ops


def resolver_calls(ops, root, model_path):
    """The resolver method for each op; one TflmError listing every op this TFLM cannot register."""
    methods = resolver_methods(root)
    calls, missing = [], []
    for op in ops:
        method = methods.get(_normalise(op)) if not op.startswith("CUSTOM(") else None
        (calls if method else missing).append(method or op)
    if missing:
        raise TflmError(f"{model_path}: TensorFlow Lite Micro at {root} has no kernel for {', '.join(missing)} "
                        f"(its MicroMutableOpResolver has: {', '.join(sorted(methods.values()))}). Use a TFLM version "
                        "that has it, or change the model to avoid it")
    return calls


def library_ops(tflite_path, root):
    """The resolver method suffixes (e.g. ['Conv2D', 'Softmax']) the TFLM library must hold for this model."""
    return [call[len("Add"):] for call in resolver_calls(model_ops(tflite_path), root, tflite_path)]


def _hex_lines(data, per_line=16):
    return "\n".join("  " + ", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ","
                     for i in range(0, len(data), per_line))


def source_context(tflite_path, tflm_dir, arena):
    """Template variables of the model sources. `arena`: {"used_bytes", "size_bytes", "measured_on",
    "alignment_slack"} (see arena_record)."""
    from ..modelio.quantio import model_io

    root = check_tree(tflm_dir)
    ops = model_ops(tflite_path)
    calls = resolver_calls(ops, root, tflite_path)
    with open(tflite_path, "rb") as f:
        data = f.read()
    io = model_io(tflite_path)
    tensors = {}
    for role in ("input", "output"):
        t = io[role]
        n = 1
        for d in t["shape"]:
            n *= d
        tensors[role] = {"shape": t["shape"], "dtype": t["dtype"], "size_bytes": n * (2 if t["dtype"] == "int16"
                                                                                     else 4 if t["dtype"] == "float32"
                                                                                     else 1)}
    # The file name is the user's, and a custom op's name comes from the file: both are user text.
    return {"model_file": escape.UserText(os.path.basename(tflite_path)), "model_size": len(data),
            "model_sha256": hashlib.sha256(data).hexdigest(), "model_bytes": Escaped(_hex_lines(data)),
            "ops": escape.user_text(ops), "resolver_calls": calls, "arena": arena,
            "input": tensors["input"], "output": tensors["output"]}


def arena_record(used_bytes, measured_on):
    """`used_bytes`: the smallest arena with which the model ran (the probe's bisection)."""
    return {"used_bytes": int(used_bytes), "size_bytes": int(used_bytes) + ARENA_ALIGNMENT_SLACK,
            "measured_on": measured_on, "alignment_slack": ARENA_ALIGNMENT_SLACK}


def jinja_env(directory):
    from ..emit import templating

    return templating.environment(directory)


def render_templates(directory, ctx, only=None):
    """{relative output path: bytes} for every template under directory (x.j2 -> x), or those in `only`."""
    from ..emit.sketch import render_files

    return render_files(directory, ctx, only, error=TflmError)


def model_sources(tflite_path, tflm_dir, arena):
    """{path relative to the sketch folder (src/...): bytes} of the model sources, and the context used."""
    ctx = source_context(tflite_path, tflm_dir, arena)
    return render_templates(templates_dir(), ctx), ctx
