"""The convert step of BACKEND=tinymaix: the quantized .tflite -> TinyMaix's model.tmdl (+ the converter's
model.h), made by TinyMaix's own converter from the user's checkout, and layers.json: the converter's per-layer
table (shapes, offsets in its activation buffer, bytes of each layer) and the model's flash and RAM.

What TinyMaix cannot run is refused before the converter starts, in one line naming the model and the ops:
int8 input and output only (TinyMaix's int8 models have no QUANTIZE/DEQUANTIZE), and the ops its converter
packs (read from the checkout's tools/tflite2tmdl.py) plus the PAD it fuses into a VALID convolution.
"""
import json
import os
import re
import shutil
import sys
import tempfile

from ... import proc as external
from ...errors import ModelError, PipelineError
from ...fsutil import atomic_open
from .tree import check_tree

CONVERTER_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "converter_main.py")
CONVERT_TIMEOUT_S = 600
# The reader (tools/tflite_reader.py) fuses a PAD into the VALID convolution after it and skips these.
READER_OPS = ("PAD", "SHAPE", "STRIDED_SLICE", "PACK")
TMDL_HEAD = 64          # MDLBINHEAD_SIZE: magic, type, out_deq, counts, buf_size, sub_size, in/out dims


def supported_ops(root):
    """The TFLite ops the checkout's converter packs (its `layername2type` table) and the ones its reader
    handles itself."""
    path = os.path.join(root, "tools", "tflite2tmdl.py")
    with open(path, errors="replace") as f:
        text = f.read()
    table = re.search(r"layername2type\s*=\s*\{(.*?)\}", text, re.S)
    ops = re.findall(r"\"([A-Z0-9_]+)\"\s*:", table.group(1)) if table else []
    if not ops:
        raise PipelineError(f"{path} has no layername2type table; is TINYMAIX_DIR a TinyMaix checkout?")
    return tuple(ops) + READER_OPS


def model_ops(tflite_path):
    """The model's op names in first-use order (the newer or the deprecated builtin code, whichever is set)."""
    from ...tflite_limits import open_graph

    _, tflite, model, graph = open_graph(tflite_path)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    ops = []
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), f"BUILTIN_{code.BuiltinCode()}")
        if name not in ops:
            ops.append(name)
    return ops


def check_model(tflite_path, root):
    """(input, output) of model_io; ModelError (one line) for what TinyMaix cannot run."""
    from ...modelio.quantio import model_io

    name = os.path.basename(tflite_path)
    io = model_io(tflite_path)
    for role in ("input", "output"):
        if io[role]["dtype"] != "int8":
            raise ModelError(f"{name}: its {role} is {io[role]['dtype']}, TinyMaix runs int8 models with int8 input "
                             "and output only: quantize with IO_TYPE=int8 (or use BACKEND=tvm for this model)")
    ops = model_ops(tflite_path)
    known = supported_ops(root)
    missing = [op for op in ops if op not in known]
    if missing:
        raise ModelError(f"{name}: TinyMaix's converter cannot convert {', '.join(missing)} (it converts "
                         f"{', '.join(o for o in known if o not in READER_OPS[1:])}); use BACKEND=tvm for this model")
    if len(io["input"]["shape"]) < 2 or len(io["input"]["shape"]) > 4 or not 2 <= len(io["output"]["shape"]) <= 4:
        raise ModelError(f"{name}: TinyMaix takes one input of up to 3 dimensions (H,W,C) and one output; this "
                         f"model's are {io['input']['shape']} and {io['output']['shape']}: use BACKEND=tvm")
    return io["input"], io["output"]


def _dims(shape):
    return ",".join(str(d) for d in shape[1:])


def _failure(stderr, stdout):
    """The converter's own last word: its exception line, else the last lines it printed."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in reversed(lines):
        m = re.match(r"^(?:[\w.]+(?:Error|Exception)|AssertionError): ?(.*)$", line)
        if m:
            return line
    tail = lines[-1:] or [line.strip() for line in (stdout or "").splitlines() if line.strip()][-1:]
    return tail[0] if tail else "no output"


def parse_log(text):
    """The converter's printout -> {"layers": [...], "model_bytes", "buffer_bytes", "keep_bytes", "ram_bytes",
    "single_layer_buffer_bytes"}."""
    def num(pattern):
        m = re.search(pattern, text, re.M)
        return int(m.group(1)) if m else None

    layers = []
    body = text.split("pack layers", 1)[-1]
    head = re.compile(r"^([A-Z0-9_]+)\s*(KEEP)?\s*$")
    current = None
    for raw in body.splitlines():
        line = raw.rstrip()
        m = head.match(line)
        if m and not line.startswith(" "):
            current = {"index": len(layers), "op": m.group(1), "keep": bool(m.group(2))}
            layers.append(current)
            continue
        if current is None:
            continue
        dims = re.match(r"^\s+(\[[\d, ]+\]) (\[[\d, ]+\])$", line)
        if dims:
            current["in_dims"], current["out_dims"] = json.loads(dims.group(1)), json.loads(dims.group(2))
        off = re.match(r"^\s+in_oft:(\d+), size:(\d+);\s+out_oft:(\d+), size:(\d+)", line)
        if off:
            current.update(in_offset=int(off.group(1)), in_bytes=int(off.group(2)),
                           out_offset=int(off.group(3)), out_bytes=int(off.group(4)))
        size = re.match(r"^\s+layer_size=(\d+)", line)
        if size:
            current["layer_bytes"] = int(size.group(1))
        if line.strip() == "OUTPUT!":
            current["output"] = True
    total = re.search(r"^buf_size\s*=(\d+), keep_size=(\d+), Total=(\d+)", text, re.M)
    return {"layers": layers, "model_bytes": num(r"model\s+size .*\((\d+) B\) FLASH"),
            "buffer_bytes": int(total.group(1)) if total else num(r"buffer size .*\((\d+) B\) RAM"),
            "keep_bytes": int(total.group(2)) if total else 0,
            "ram_bytes": int(total.group(3)) if total else None,
            "single_layer_buffer_bytes": num(r"single layer mode subbuff size .*=(\d+) B\) RAM")}


def read_tmdl_head(path):
    """The .tmdl's header fields (tinymaix.h's tm_mdlbin_t)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(TMDL_HEAD)
    if len(head) < 40 or head[:4] != b"MAIX":
        raise PipelineError(f"{path} is not a TinyMaix model (no MAIX magic): delete it and rebuild")
    mdl_type, out_deq, n_in, n_out, n_layers, buf_size, sub_size = struct.unpack_from("<BBHHHII", head, 4)
    in_dims = list(struct.unpack_from("<4H", head, 20))
    out_dims = list(struct.unpack_from("<4H", head, 28))
    return {"mdl_type": mdl_type, "out_deq": out_deq, "inputs": n_in, "outputs": n_out, "layers": n_layers,
            "buf_size": buf_size, "sub_size": sub_size, "in_dims": in_dims, "out_dims": out_dims}


def convert(tflite_path, tinymaix_dir, out_tmdl, out_h, out_layers, *, timeout_s=CONVERT_TIMEOUT_S):
    """Runs the converter into a scratch folder, then moves model.tmdl / model.h in place and writes
    layers.json. Returns the layers.json dict."""
    root = check_tree(tinymaix_dir)
    tflite_path = os.path.abspath(tflite_path)
    inp, out = check_model(tflite_path, root)
    if os.path.splitext(out_tmdl)[0] != os.path.splitext(out_h)[0]:
        raise ValueError("the converter writes the .h beside the .tmdl: give both the same stem")
    name = os.path.basename(tflite_path)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="2")
    os.makedirs(os.path.dirname(os.path.abspath(out_tmdl)), exist_ok=True)
    work = tempfile.mkdtemp(prefix="tinymaix-convert-", dir=os.path.dirname(os.path.abspath(out_tmdl)))
    try:
        tmp_tmdl = os.path.join(work, "model.tmdl")
        cmd = [sys.executable, CONVERTER_MAIN, root, tflite_path, tmp_tmdl, "int8", "0", _dims(inp["shape"]),
               _dims(out["shape"])]
        try:
            proc = external.run(cmd, capture_output=True, text=True, cwd=root, env=env, timeout=timeout_s)
        except external.TimeoutExpired:
            raise PipelineError(f"{name}: TinyMaix's converter did not finish in {timeout_s} s") from None
        if proc.returncode != 0 or not os.path.isfile(tmp_tmdl):
            raise ModelError(f"{name}: TinyMaix's converter (tools/tflite2tmdl.py in {root}) failed: "
                             f"{_failure(proc.stderr, proc.stdout)}; use BACKEND=tvm for this model")
        table = parse_log(proc.stdout)
        head = read_tmdl_head(tmp_tmdl)
        with open(tmp_tmdl, "rb") as f:
            tmdl_bytes = len(f.read())
        # The buffer is the header's: ping-pong plus the part kept for ADD (the printout's "buffer size" is the
        # ping-pong alone; a buffer of that size overflows on a residual model).
        result = {"model": name, "tinymaix_dir": root, "input": inp, "output": out, "ops": model_ops(tflite_path),
                  "tmdl_bytes": tmdl_bytes, **table, "pingpong_bytes": table["buffer_bytes"],
                  "buffer_bytes": head["buf_size"], "head": head, "converter_output": proc.stdout}
        if result["ram_bytes"] is None:
            result["ram_bytes"] = head["buf_size"]
        os.replace(os.path.join(work, "model.h"), os.path.abspath(out_h))
        os.replace(tmp_tmdl, os.path.abspath(out_tmdl))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with atomic_open(out_layers) as f:
        json.dump(result, f, indent=1)
    return result
