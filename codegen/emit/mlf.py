"""Pack the standalone C generated for a full-int8 .tflite model as a Model Library Format tar.

Layout (modelled on TVM <= 0.18's MLF, but with no TVM runtime dependency):

    metadata.json
    codegen/host/src/<name>_lib0.c    constants (int8 weights, int32 bias/multiplier/shift)
    codegen/host/src/<name>_lib1.c    TVM-generated kernels
    codegen/host/src/<name>_lib2.c    entry: static workspace + kernel calls
    codegen/host/include/tvmgen_<name>.h
    src/relax.txt, src/tir.txt        IR as text

On AVR (``__AVR__``; override with -DTVMGEN_CONSTANTS_IN_FLASH=0/1) the constant arrays are placed in flash
(PROGMEM): avr-gcc would otherwise copy every `const` array into the 2-8 KB of RAM at startup, and AVR cannot
read flash through ordinary pointers. Before each kernel call, the entry function copies that kernel's
constants with memcpy_P into workspace bytes that hold no live tensor during the call (found from the memory
plan; the workspace grows only if no such gap is large enough). Kernels are unchanged, and the very same C
compiles for host gcc and arm-none-eabi-gcc, where the constants stay ordinary `const` arrays.
"""

import io
import json
import os
import re
import tarfile
import tempfile

import numpy as np

from .. import escape
from .. import boards
from ..frontend import ModelError, check_object_sizes, load  # noqa: F401 (re-exported)
from ..lowering import C_TYPES, lower
from ..modelio.quantio import packed_layout
from .mlf_archive import MLF_VERSION
from .templating import code, render
from ..fsutil import file_mode

# avr-gcc's largest single object (boards.json "families"), by its former name: build_mlf(max_object_bytes=...).
AVR_MAX_OBJECT_BYTES = boards.family("avr").max_object_bytes


def _c_array(ctype, name, arr, per_line=16):
    """A constant array for templates/mlf/lib0.c.j2: its C type, name, length and initializer rows."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        # C99 hexadecimal literals: every float32 exactly (a decimal with too few digits is another float)
        vals = [float(v).hex() for v in arr.ravel()]
    else:
        # INT32_MIN written as an expression: the literal 2147483648 does not fit a 32-bit long
        vals = [str(int(v)) if int(v) != -2 ** 31 else "(-2147483647 - 1)" for v in arr.ravel()]
    if not vals:
        vals = ["0"]
    rows = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return {"ctype": ctype, "name": name, "count": len(vals), "rows": rows, "size": int(arr.size)}


FLASH_SCRATCH_ALIGN = 4


def _live_ranges(lw):
    """For each kernel call i, the workspace byte ranges [start, end) that must not be touched while it runs:
    its output, and every tensor produced earlier that this or a later call (or the final copy) reads.
    Returns None if a read cannot be matched to the tensor that produced it (then nothing is assumed free)."""
    produced = []                       # (offset, nbytes, producing call index)
    reads = {}                          # producer entry -> last call index that reads it
    n = len(lw.calls)

    def reader(off, at):
        for k in range(len(produced) - 1, -1, -1):
            if produced[k][0] == off:
                reads[k] = max(reads.get(k, -1), at)
                return True
        return False

    for i, (_, args, nbytes) in enumerate(lw.calls):
        for a in args[:-1]:
            if a[0] == "ws" and not reader(a[1], i):
                return None
        out = args[-1]
        if out[0] == "ws":
            produced.append((out[1], nbytes, i))
    for _, srcp, _ in lw.copies:
        if srcp[0] == "ws" and not reader(srcp[1], n):
            return None
    ranges = []
    for i, (_, args, nbytes) in enumerate(lw.calls):
        busy = [(off, off + size) for k, (off, size, p) in enumerate(produced)
                if p < i and reads.get(k, -1) >= i]
        busy += [(a[1], a[1] + a[2]) for a in args if a[0] == "scratch"]
        if args[-1][0] == "ws":
            busy.append((args[-1][1], args[-1][1] + nbytes))
        ranges.append(sorted(busy))
    return ranges


def _place(busy, size, align=FLASH_SCRATCH_ALIGN):
    """Lowest aligned offset where `size` bytes overlap none of the `busy` ranges."""
    off = 0
    for start, end in sorted(busy):
        if off + size <= start:
            break
        off = max(off, (end + align - 1) // align * align)
    return off


def flash_scratch_plan(lw):
    """{call index: [(constant name, workspace offset, nbytes)]} and the workspace size the AVR build needs."""
    sizes = {cname: int(arr.nbytes) for cname, arr in lw.constants}
    ranges = _live_ranges(lw)
    plan, ws = {}, lw.workspace_size
    for i, (_, args, _) in enumerate(lw.calls):
        consts = [a[1] for a in args if a[0] == "const"]
        if not consts:
            continue
        offs, total = [], 0
        for c in consts:
            offs.append(total)
            total = (total + sizes[c] + FLASH_SCRATCH_ALIGN - 1) // FLASH_SCRATCH_ALIGN * FLASH_SCRATCH_ALIGN
        base = _place(ranges[i], total) if ranges is not None else lw.workspace_size
        base = (base + FLASH_SCRATCH_ALIGN - 1) // FLASH_SCRATCH_ALIGN * FLASH_SCRATCH_ALIGN
        plan[i] = [(c, base + o, sizes[c]) for c, o in zip(consts, offs)]
        ws = max(ws, base + total)
    return plan, (ws + 15) // 16 * 16


def _tensor_meta(t):
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": float(t.scale[0]), "zero_point": int(t.zero_point[0]),
            "size_bytes": int(t.size_bytes)}


def _call_list(lw):
    """The entry function's kernel calls as data (metadata.json "calls"), so that memory reports, profilers and
    exactness checks read what each call reads and writes instead of parsing the generated C."""
    ops = {o["index"]: o for o in lw.ops}
    sizes = {cname: int(arr.nbytes) for cname, arr in lw.constants}

    def where(a):
        if a[0] == "const":
            return {"kind": "constant", "name": a[1], "bytes": sizes[a[1]]}
        if a[0] == "ws":
            return {"kind": "workspace", "offset": int(a[1])}
        if a[0] == "scratch":
            return {"kind": "scratch", "offset": int(a[1]), "bytes": int(a[2])}
        if len(a) > 1:                  # input k / output k of a model with several
            return {"kind": a[0], "index": int(a[1])}
        return {"kind": a[0]}

    if len(lw.call_ops) != len(lw.calls):
        raise ModelError("internal error: %d kernel calls planned for %d emitted" % (len(lw.calls),
                                                                                      len(lw.call_ops)))
    calls = []
    for k, (kernel, args, nbytes) in enumerate(lw.calls):
        op = ops[lw.call_ops[k]]
        call = {"index": k, "kernel": kernel, "op_index": op["index"], "op": op["type"],
                "inputs": [where(a) for a in args[:-1]], "output": where(args[-1]),
                "output_bytes": int(nbytes), "macs": int(op["macs"])}
        out = lw.call_outputs[k] if k < len(getattr(lw, "call_outputs", ())) else 0
        if out:                     # a later output of a multi-output op (SPLIT, UNPACK, ...)
            call["output_index"] = int(out)
        calls.append(call)
    return calls


def _io_context(tensors, taken):
    """The model inputs or outputs as the header and entry describe them: the struct member (the tensor name as
    a C identifier, unique), C type, quantization, sizes and offset in the packed one-buffer layout."""
    offsets, _ = packed_layout([t.size_bytes for t in tensors])
    return [{"member": escape.c_identifier(t.name, taken, fallback="tensor"), "name": escape.user_text(t.name),
             "dtype": t.dtype, "ctype": C_TYPES[t.dtype], "shape": list(t.shape), "scale": float(t.scale[0]),
             "zero_point": int(t.zero_point[0]), "size_bytes": int(t.size_bytes), "count": int(t.size),
             "offset": off} for t, off in zip(tensors, offsets)]


def _render(lw, name, tflite_path):
    """The MLF's C from templates/mlf: (header, lib0, lib1, lib2, the AVR build's workspace size)."""
    import tvm

    def tensor(t):
        return {"dtype": t.dtype, "shape": list(t.shape), "scale": float(t.scale[0]),
                "zero_point": int(t.zero_point[0]), "size_bytes": int(t.size_bytes)}

    ws_name = "tvmgen_%s_workspace" % name
    ws_len = max(lw.workspace_size, 16)
    plan, flash_ws = flash_scratch_plan(lw)
    flash_ws = max(flash_ws, ws_len)
    ktypes = dict(lw.kernels)

    multi = len(lw.inputs) > 1 or len(lw.outputs) > 1
    taken = set()
    ins, outs = _io_context(lw.inputs, taken), _io_context(lw.outputs, taken)

    def arg(a, ctype, consts=None):
        if a[0] == "input":
            return "(%s)input" % ctype if len(a) == 1 else "(%s)inputs->%s" % (ctype, ins[a[1]]["member"])
        if a[0] == "output":
            return "(%s)output" % ctype if len(a) == 1 else "(%s)outputs->%s" % (ctype, outs[a[1]]["member"])
        if a[0] == "const":
            return "(%s)TVMGEN_CONST(%s, %d)" % (ctype, a[1], consts[a[1]])
        return "(%s)(%s + %d)" % (ctype, ws_name, a[1])

    calls = []
    for i, (k, args, nbytes) in enumerate(lw.calls):
        loads = [{"name": cname, "offset": off, "nbytes": n} for cname, off, n in plan.get(i, [])]
        consts = {ld["name"]: ld["offset"] for ld in loads}
        calls.append({"index": i, "kernel": k, "loads": loads, "nbytes": nbytes,
                      "args": code(", ".join(arg(a, t, consts) for a, t in zip(args, ktypes[k]))),
                      "output": code(arg(args[-1], "const uint8_t*"))})
    up = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    context = {
        "source": escape.user_text(os.path.basename(tflite_path)),     # MODEL= is user text
        "tvm_version": tvm.__version__, "name": name, "up": up, "guard": "TVMGEN_%s_H_" % up,
        "input": tensor(lw.input), "output": tensor(lw.output), "workspace_size": lw.workspace_size,
        "multi": multi, "inputs": ins, "outputs": outs,
        "input_size": packed_layout([t["size_bytes"] for t in ins])[1],
        "output_size": packed_layout([t["size_bytes"] for t in outs])[1],
        "constants": [_c_array(C_TYPES[str(arr.dtype)], cname, arr) for cname, arr in lw.constants],
        "kernel_source": code(lw.kernel_source.strip()),
        "kernels": [{"name": k, "params": code(", ".join(ts))} for k, ts in lw.kernels],
        "ws_name": ws_name, "ws_len": ws_len, "flash_ws": flash_ws, "calls": calls,
        "copies": [{"src": code(arg(srcp, "const uint8_t*")), "dst": code(arg(dst, "uint8_t*")), "n": n}
                   for dst, srcp, n in lw.copies],
    }
    return tuple(render(t, **context) for t in ("mlf/header.h.j2", "mlf/lib0.c.j2", "mlf/lib1.c.j2",
                                                "mlf/lib2.c.j2")) + (flash_ws,)


def build_mlf(tflite_path, out_tar, model_name="default", max_object_bytes=None):
    """Generate standalone C for `tflite_path` and write it as an MLF tar to `out_tar`.

    Returns the metadata dict (also stored as metadata.json). Raises ModelError for
    models that cannot be handled. `out_tar` is replaced atomically.

    `max_object_bytes`: the largest single array the target compiler accepts (for AVR boards pass
    AVR_MAX_OBJECT_BYTES, avr-gcc's 32,767; a Board's max_object_bytes): a larger constant or workspace raises
    ModelError naming it."""
    import tvm
    try:
        escape.require_c_identifier(model_name, "model_name")
    except ValueError as e:
        raise ModelError(f"{tflite_path}: {e}") from None
    model = load(tflite_path)
    if max_object_bytes is not None:        # fail before the slow lowering when a weight tensor is too big
        check_object_sizes(tflite_path, [("%r (TFLite tensor)" % t.name, t.size_bytes)
                                         for t in model.tensors if t.is_const], max_object_bytes)
    lw = lower(model, model_name)
    header, lib0, lib1, lib2, flash_ws = _render(lw, model_name, tflite_path)
    if max_object_bytes is not None:
        check_object_sizes(tflite_path, [(c, a.nbytes) for c, a in lw.constants]
                           + [("tvmgen_%s_workspace" % model_name, flash_ws)], max_object_bytes)
    meta = {
        "version": MLF_VERSION,
        "model_name": model_name,
        "target": "c",
        "tvm_version": tvm.__version__,
        "workspace_size_bytes": int(lw.workspace_size),
        "constants_size_bytes": int(lw.constants_size),
        # AVR keeps the constants in flash and copies each kernel's into the workspace (see the module doc)
        "flash_constants_workspace_size_bytes": int(flash_ws),
        "kernels": len(lw.kernels),
        "inputs": [_tensor_meta(t) for t in lw.inputs],
        "outputs": [_tensor_meta(t) for t in lw.outputs],
        "ops": [{"type": o["type"], "index": o["index"], "output_shape": o["output_shape"], "macs": o["macs"]}
                for o in lw.ops],
        "calls": _call_list(lw),
        "constants": [{"name": c, "dtype": str(a.dtype), "bytes": int(a.nbytes)} for c, a in lw.constants],
        "notes": list(model.notes),
        "total_macs": int(sum(o["macs"] for o in lw.ops)),
    }
    files = [
        ("metadata.json", json.dumps(meta, indent=2) + "\n"),
        ("codegen/host/include/tvmgen_%s.h" % model_name, header),
        ("codegen/host/src/%s_lib0.c" % model_name, lib0),
        ("codegen/host/src/%s_lib1.c" % model_name, lib1),
        ("codegen/host/src/%s_lib2.c" % model_name, lib2),
        ("src/relax.txt", lw.relax_text + "\n"),
        ("src/tir.txt", lw.tir_text + "\n"),
    ]
    out_tar = os.fspath(out_tar)
    d = os.path.dirname(os.path.abspath(out_tar))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            with tarfile.open(fileobj=f, mode="w") as tar:
                for path, text in files:
                    data = text.encode("utf-8")
                    info = tarfile.TarInfo(path)
                    info.size = len(data)
                    info.mtime = 0
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # mkstemp creates 0600; a shared cache needs the user's umask mode
        os.replace(tmp, out_tar)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return meta
