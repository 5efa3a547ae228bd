"""Pack the standalone C generated for a full-int8 .tflite model as a Model Library Format tar.

Layout (modelled on TVM <= 0.18's MLF, but with no TVM runtime dependency):

    metadata.json
    codegen/host/src/<name>_lib0.c    constants (int8 weights, int32 bias/multiplier/shift)
    codegen/host/src/<name>_lib1.c    TVM-generated kernels
    codegen/host/src/<name>_lib2.c    entry: static workspace + kernel calls
    codegen/host/include/tvmgen_<name>.h
    src/relax.txt, src/tir.txt        IR as text
"""

import io
import json
import os
import re
import tarfile
import tempfile
import time

import numpy as np

from .tflite_model import ModelError, load
from .tvm_lower import C_TYPES, lower

MLF_VERSION = 7


def _c_array(ctype, name, arr, per_line=16):
    # INT32_MIN written as an expression: the literal 2147483648 does not fit a 32-bit long
    vals = [str(int(v)) if int(v) != -2 ** 31 else "(-2147483647 - 1)"
            for v in np.asarray(arr).ravel()]
    if not vals:
        vals = ["0"]
    lines = []
    for i in range(0, len(vals), per_line):
        lines.append("  " + ", ".join(vals[i:i + per_line]) + ",")
    return ("TVMGEN_ALIGN16 const %s %s[%d] = {\n%s\n};\n"
            % (ctype, name, len(vals), "\n".join(lines)))


_ALIGN_MACRO = """#if defined(__GNUC__) || defined(__clang__)
#define TVMGEN_ALIGN16 __attribute__((aligned(16)))
#else
#define TVMGEN_ALIGN16
#endif
"""


def _tensor_meta(t):
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": float(t.scale[0]), "zero_point": int(t.zero_point[0]),
            "size_bytes": int(t.size_bytes)}


def _render(lw, name, tflite_path):
    up = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    guard = "TVMGEN_%s_H_" % up
    src_note = "/* Generated from %s by codegen/mlf.py (Apache TVM %s). Do not edit. */\n"
    import tvm
    note = src_note % (os.path.basename(tflite_path), tvm.__version__)

    header = (
        note
        + "#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n" % (guard, guard)
        + "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
        + "#define TVMGEN_%s_INPUT_SIZE %d\n" % (up, lw.input.size_bytes)
        + "#define TVMGEN_%s_OUTPUT_SIZE %d\n" % (up, lw.output.size_bytes)
        + "#define TVMGEN_%s_WORKSPACE_SIZE %d\n\n" % (up, lw.workspace_size)
        + "/* input: %s %s (scale %.9g, zero point %d); output: %s %s (scale %.9g, zero point %d).\n"
          "   Returns 0 on success. Not reentrant (one static workspace). */\n"
        % (lw.input.dtype, list(lw.input.shape), float(lw.input.scale[0]),
           int(lw.input.zero_point[0]), lw.output.dtype, list(lw.output.shape),
           float(lw.output.scale[0]), int(lw.output.zero_point[0]))
        + "int32_t tvmgen_%s_run(const uint8_t* input, uint8_t* output);\n\n" % name
        + "#ifdef __cplusplus\n}  /* extern \"C\" */\n#endif\n\n#endif  /* %s */\n" % guard
    )

    lib0 = [note, "#include <stdint.h>\n\n", _ALIGN_MACRO, "\n"]
    for cname, arr in lw.constants:
        lib0.append(_c_array(C_TYPES[str(arr.dtype)], cname, arr))
        lib0.append("\n")

    lib1 = (note + "#include <stdint.h>\n#include <stdbool.h>\n#include <math.h>\n\n"
            + lw.kernel_source.strip() + "\n")

    ws_name = "tvmgen_%s_workspace" % name
    ws_len = max(lw.workspace_size, 16)
    lib2 = [note, "#include <stdint.h>\n#include \"tvmgen_%s.h\"\n\n" % name, _ALIGN_MACRO,
            "\n/* Define TVMGEN_TRACE(index, const uint8_t* data, nbytes) (e.g. with -D or a\n"
            "   force-included header) to observe each kernel's output tensor. */\n"
            "#ifndef TVMGEN_TRACE\n#define TVMGEN_TRACE(i, p, n) ((void)0)\n#endif\n\n"]
    for cname, arr in lw.constants:
        lib2.append("extern const %s %s[%d];\n" % (C_TYPES[str(arr.dtype)], cname, arr.size))
    lib2.append("\n")
    for k, ts in lw.kernels:
        lib2.append("void %s(%s);\n" % (k, ", ".join(ts)))
    lib2.append("\nstatic TVMGEN_ALIGN16 uint8_t %s[%d];\n\n" % (ws_name, ws_len))
    ktypes = dict(lw.kernels)

    def arg(a, ctype):
        if a[0] == "input":
            return "(%s)input" % ctype
        if a[0] == "output":
            return "(%s)output" % ctype
        if a[0] == "const":
            return "(%s)%s" % (ctype, a[1])
        return "(%s)(%s + %d)" % (ctype, ws_name, a[1])

    lib2.append("int32_t tvmgen_%s_run(const uint8_t* input, uint8_t* output) {\n" % name)
    for i, (k, args, nbytes) in enumerate(lw.calls):
        lib2.append("  %s(%s);\n" % (k, ", ".join(arg(a, t) for a, t in zip(args, ktypes[k]))))
        lib2.append("  TVMGEN_TRACE(%d, %s, %d);\n" % (i, arg(args[-1], "const uint8_t*"), nbytes))
    for dst, srcp, n in lw.copies:
        lib2.append("  { const uint8_t* s = %s; uint8_t* d = %s; int32_t i;\n"
                    "    for (i = 0; i < %d; ++i) d[i] = s[i]; }\n"
                    % (arg(srcp, "const uint8_t*"), arg(dst, "uint8_t*"), n))
    lib2.append("  return 0;\n}\n")
    return header, "".join(lib0), lib1, "".join(lib2)


def build_mlf(tflite_path, out_tar, model_name="default"):
    """Generate standalone C for `tflite_path` and write it as an MLF tar to `out_tar`.

    Returns the metadata dict (also stored as metadata.json). Raises ModelError for
    models that cannot be handled. `out_tar` is replaced atomically."""
    import tvm
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", model_name):
        raise ModelError("%s: model_name %r must be a C identifier." % (tflite_path, model_name))
    t0 = time.time()
    model = load(tflite_path)
    lw = lower(model, model_name)
    header, lib0, lib1, lib2 = _render(lw, model_name, tflite_path)
    meta = {
        "version": MLF_VERSION,
        "model_name": model_name,
        "target": "c",
        "tvm_version": tvm.__version__,
        "workspace_size_bytes": int(lw.workspace_size),
        "constants_size_bytes": int(lw.constants_size),
        "kernels": len(lw.kernels),
        "inputs": [_tensor_meta(lw.input)],
        "outputs": [_tensor_meta(lw.output)],
        "ops": [{"type": o["type"], "output_shape": o["output_shape"], "macs": o["macs"]}
                for o in lw.ops],
        "total_macs": int(sum(o["macs"] for o in lw.ops)),
        "codegen_seconds": round(time.time() - t0, 3),
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
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out_tar)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return meta
