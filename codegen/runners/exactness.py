"""Is the generated C bit-identical to TFLite?  Every intermediate tensor, not only the output.

The MLF is compiled with host gcc with the TVMGEN_TRACE hook writing each kernel call's output tensor; the
model runs in tf.lite's reference kernels (BUILTIN_REF) with every tensor preserved; metadata.json's call list
says which TFLite op (and so which tensor) each traced call produced.  Random inputs saturate many classifiers
to a few distinct outputs, so the intermediate tensors are the real check.

Used by the test suite and usable on any model:
`python -m codegen.runners.exactness [--cortex-m4] model.tflite [N]`.
"""
import os
import sys
import tarfile
import tempfile

import numpy as np

from .. import escape
from .. import proc as external
from ..errors import PipelineError
from ..emit import templating
from ..emit.mlf_archive import read_mlf
from ..modelio.quantio import packed_layout

def fnv1a(data):
    h = 2166136261
    for b in bytes(data):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


class HostRun:
    """Outputs (n, output bytes) and, per kernel call index, its output tensor bytes (n, bytes)."""

    def __init__(self, meta, outputs, traced, compiler_output=""):
        self.meta = meta
        self.outputs = outputs
        self.traced = traced
        self.compiler_output = compiler_output    # the compiler's warnings, if any


def _unpack(mlf_tar, folder):
    """(metadata, src dir, include dir, [lib0, lib1, lib2 .c]) of the MLF extracted into `folder`."""
    meta, _ = read_mlf(mlf_tar)
    with tarfile.open(mlf_tar) as tar:
        tar.extractall(folder, filter="data")
    srcdir = os.path.join(folder, "codegen", "host", "src")
    incdir = os.path.join(folder, "codegen", "host", "include")
    return meta, srcdir, incdir, [os.path.join(srcdir, "%s_lib%d.c" % (meta["model_name"], i)) for i in range(3)]


def run_host(mlf_tar, inputs, workdir, cflags=("-O2",)):
    """Compiles the MLF with gcc (with the trace hook) and runs it on each row of `inputs` (model input bytes)."""
    meta, _, incdir, sources = _unpack(mlf_tar, os.path.join(workdir, "mlf"))
    name = escape.require_c_identifier(meta["model_name"], "model_name")     # pasted into C below
    main_c = os.path.join(workdir, "trace_main.c")
    with open(main_c, "w") as f:
        f.write(templating.render("exactness/host_main.c.j2", name=name))
    exe = os.path.join(workdir, "trace_run")
    r = external.run(["gcc", "-std=c99", *cflags, "-include", "stdio.h",
                        "-DTVMGEN_TRACE(i,p,n)=fwrite((p),1,(n),stderr)", "-I", incdir, main_c, *sources,
                        "-o", exe, "-lm"], capture_output=True, text=True)
    if r.returncode != 0:
        raise PipelineError("%s: the generated C does not compile with gcc:\n%s" % (mlf_tar, r.stderr[-3000:]))
    compiler_output = r.stderr
    x = np.ascontiguousarray(inputs).view(np.uint8).reshape(len(inputs), -1)
    r = external.run([exe], input=x.tobytes(), capture_output=True)
    if r.returncode != 0:
        raise PipelineError("%s: the generated C exited with %d" % (mlf_tar, r.returncode))
    n = len(x)
    out_bytes = packed_layout([t["size_bytes"] for t in meta["outputs"]])[1]     # every output, packed
    outputs = np.frombuffer(r.stdout, np.uint8).reshape(n, out_bytes)
    calls = meta["calls"]
    per_input = sum(c["output_bytes"] for c in calls)
    data = np.frombuffer(r.stderr, np.uint8)
    if data.size != per_input * n:
        raise PipelineError("%s: trace has %d bytes, expected %d" % (mlf_tar, data.size, per_input * n))
    data = data.reshape(n, per_input)
    traced, pos = {}, 0
    for c in calls:
        traced[c["index"]] = data[:, pos:pos + c["output_bytes"]]
        pos += c["output_bytes"]
    return HostRun(meta, outputs, traced, compiler_output)


def run_cortex_m4(mlf_tar, inputs, workdir, cflags=("-O2",), timeout_s=600):
    """The MLF built with arm-none-eabi-gcc for the Cortex-M4F (DSP paths on) and run in QEMU: a HostRun whose
    `traced` holds, per call index, the (n,) FNV-1a hashes of the call's output tensor."""
    from . import qemu

    meta, srcdir, incdir, _ = _unpack(mlf_tar, os.path.join(workdir, "mlf_m4"))
    name = escape.require_c_identifier(meta["model_name"], "model_name")     # pasted into C below
    x = np.ascontiguousarray(inputs).view(np.uint8).reshape(len(inputs), -1)
    with open(os.path.join(workdir, "trace_inputs.h"), "w") as f:
        f.write(templating.render("exactness/trace_inputs.h.j2", size=x.shape[1],
                                  rows=[templating.code(",".join(str(int(v)) for v in row)) for row in x]))
    main_c = os.path.join(workdir, "trace_fw_main.c")
    with open(main_c, "w") as f:
        f.write(templating.render("exactness/m4_main.c.j2", name=name))
    sources = [os.path.join(srcdir, "%s_lib%d.c" % (name, i)) for i in range(2)]
    elf = qemu.build_firmware(sources, [incdir, srcdir, workdir], main_c, os.path.join(workdir, "trace_fw.elf"),
                              cflags=cflags)
    res = qemu.run_firmware(elf, timeout_s=timeout_s)
    if res["exit_code"] != 0:
        raise PipelineError("%s: the Cortex-M4 run exited with %s" % (mlf_tar, res["exit_code"]))
    traced = {c["index"]: [] for c in meta["calls"]}
    outputs = []
    for line in res["stdout"].splitlines():
        parts = line.split()
        if parts and parts[0] == "t":
            traced[int(parts[1])].append(int(parts[2], 16))
        elif parts and parts[0] == "o":
            outputs.append([int(v) for v in parts[1:]])
    return HostRun(meta, np.array(outputs, np.uint8), {k: np.array(v, np.uint64) for k, v in traced.items()})


def reference_tensors(tflite_path, inputs, tensor_ids):
    """tf.lite BUILTIN_REF with every tensor preserved: ({tensor: (n, bytes)}, outputs (n, bytes))."""
    from ..modelio.tf_env import reference_interpreter

    it = reference_interpreter(os.fspath(tflite_path), preserve_all_tensors=True)
    ins, outs_d = _in_order(it.get_input_details(), it.get_output_details(), tflite_path)
    res = {t: [] for t in tensor_ids}
    outs = []
    for row in inputs:
        if len(ins) == 1 and len(outs_d) == 1:
            it.set_tensor(ins[0]["index"], np.asarray(row).reshape(ins[0]["shape"]).astype(ins[0]["dtype"]))
        else:                           # several inputs: a row is their packed bytes (packed_layout)
            raw = np.ascontiguousarray(row).view(np.uint8).tobytes()
            offsets, _ = packed_layout([_nbytes(d) for d in ins])
            for d, off in zip(ins, offsets):
                it.set_tensor(d["index"], np.frombuffer(raw[off:off + _nbytes(d)], d["dtype"]).reshape(d["shape"]))
        it.reset_all_variables()      # each row from the reset state (an LSTM's hidden and cell state)
        it.invoke()
        for t in tensor_ids:
            res[t].append(np.ascontiguousarray(it.get_tensor(t)).view(np.uint8).ravel().copy())
        offsets, total = packed_layout([_nbytes(d) for d in outs_d])
        packed = np.zeros(total, np.uint8)
        for d, off in zip(outs_d, offsets):
            packed[off:off + _nbytes(d)] = np.ascontiguousarray(it.get_tensor(d["index"])).view(np.uint8).ravel()
        outs.append(packed)
    return {t: np.array(v) for t, v in res.items()}, np.array(outs)


def _nbytes(detail):
    return int(np.prod(detail["shape"])) * np.dtype(detail["dtype"]).itemsize


def _in_order(ins, outs, tflite_path):
    """The interpreter's input and output details in the model's order (by tensor name)."""
    from ..modelio.quantio import model_io

    io = model_io(tflite_path)
    by_in, by_out = {d["name"]: d for d in ins}, {d["name"]: d for d in outs}
    return ([by_in.get(t["name"], d) for t, d in zip(io["inputs"], ins)],
            [by_out.get(t["name"], d) for t, d in zip(io["outputs"], outs)])


class Mismatch:
    def __init__(self, op_index, op_type, bad_inputs, n, max_diff):
        self.op_index, self.op_type, self.bad_inputs, self.n, self.max_diff = (op_index, op_type, bad_inputs, n,
                                                                               max_diff)

    def __repr__(self):
        return "%s #%s differs on %d of %d inputs (max |diff| %d)" % (self.op_type, self.op_index,
                                                                     self.bad_inputs, self.n, self.max_diff)


class Report:
    def __init__(self, checked_ops, mismatches, outputs_equal, reference_outputs):
        self.checked_ops = checked_ops          # [(op index, op type)] compared tensor by tensor
        self.mismatches = mismatches            # [Mismatch]
        self.outputs_equal = outputs_equal
        self.reference_outputs = reference_outputs

    @property
    def exact(self):
        return self.outputs_equal and not self.mismatches

    def __repr__(self):
        return "Report(exact=%s, %d ops checked, %s)" % (self.exact, len(self.checked_ops), self.mismatches)


def _signed_diff(a, b, dtype):
    if dtype in ("int8", "uint8", "int16"):
        return int(np.abs(a.view(dtype).astype(np.int32) - b.view(dtype).astype(np.int32)).max())
    return -1


def compare(tflite_path, mlf_tar, inputs, workdir, target="host", reference=None):
    """Runs both on `inputs` (rows of the model input, in its dtype); a Report of every traced tensor.
    target: "host" (gcc, bytes compared) or "cortex-m4" (QEMU, tensor hashes compared); `reference`: a stand-in
    for reference_tensors (the fuzzer runs tf.lite in a child process, as its kernels abort on some models)."""
    from ..frontend import load

    model = load(tflite_path)
    host = run_host(mlf_tar, inputs, workdir) if target == "host" else run_cortex_m4(mlf_tar, inputs, workdir)
    ops = {op.index: op for op in model.ops}
    wanted = {c["index"]: ops[c["op_index"]].outputs[c.get("output_index", 0)] for c in host.meta["calls"]}
    refs, ref_out = (reference or reference_tensors)(tflite_path, inputs, sorted(set(wanted.values())))
    mismatches, checked = [], []
    for c in host.meta["calls"]:
        t = model.tensors[wanted[c["index"]]]
        have, want = host.traced[c["index"]], refs[wanted[c["index"]]]
        checked.append((c["op_index"], c["op"]))
        if target != "host":
            want = np.array([fnv1a(row) for row in want], np.uint64)
            bad = have != want if have.shape == want.shape else np.ones(len(inputs), bool)
            if bad.any():
                mismatches.append(Mismatch(c["op_index"], c["op"], int(bad.sum()), len(inputs), -1))
            continue
        if have.shape != want.shape:
            mismatches.append(Mismatch(c["op_index"], c["op"], len(inputs), len(inputs), -1))
            continue
        bad = (have != want).any(axis=1)
        if bad.any():
            mismatches.append(Mismatch(c["op_index"], c["op"], int(bad.sum()), len(inputs),
                                       _signed_diff(have, want, t.dtype)))
    outputs_equal = host.outputs.shape == ref_out.shape and bool((host.outputs == ref_out).all())
    return Report(checked, mismatches, outputs_equal, ref_out)


def random_inputs(tflite_path, n, seed=0):
    """n random rows of the model input in its dtype (uniform over the whole integer range; a float input uniform
    over what its QUANTIZE represents); with several inputs, rows of their packed bytes (packed_layout)."""
    from ..emit.bin2c import generated_inputs
    from ..frontend import load
    from ..modelio.quantio import model_io

    model = load(tflite_path)
    t = model.inputs[0]
    if len(model.inputs) == 1 and t.dtype != "float32":
        rs = np.random.RandomState(seed)
        info = np.iinfo(t.dtype)
        return rs.randint(info.min, info.max + 1, (n,) + tuple(t.shape)).astype(t.dtype)
    io = model_io(tflite_path)
    if len(model.inputs) == 1:
        return np.stack([np.frombuffer(raw, np.float32).reshape(t.shape)
                         for _, raw in generated_inputs(io["input"], n, seed)])
    offsets, total = packed_layout([int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in model.inputs])
    rows = np.zeros((n, total), np.uint8)
    for k, (inp, off) in enumerate(zip(io["inputs"], offsets)):
        for i, (_, raw) in enumerate(generated_inputs(inp, n, seed + 1000 * k)):
            rows[i, off:off + len(raw)] = np.frombuffer(raw, np.uint8)
    return rows


def main(argv):
    from ..emit import mlf

    target = "host"
    if argv[:1] == ["--cortex-m4"]:
        target, argv = "cortex-m4", argv[1:]
    if not argv:
        print("usage: python -m codegen.runners.exactness [--cortex-m4] MODEL.tflite [N_INPUTS]",
              file=sys.stderr)
        return 2
    path, n = argv[0], int(argv[1]) if len(argv) > 1 else 20
    with tempfile.TemporaryDirectory() as d:
        tar = os.path.join(d, "m.tar")
        mlf.build_mlf(path, tar)
        rep = compare(path, tar, random_inputs(path, n), d, target=target)
    bad = {m.op_index: m for m in rep.mismatches}
    for idx, typ in rep.checked_ops:
        print("  op #%-3d %-20s %s" % (idx, typ, bad.get(idx, "bit-exact")))
    print("%s: %s on %s (%d tensors compared on %d inputs)" % (path, "bit-exact" if rep.exact else "DIFFERS", target,
                                                         len(rep.checked_ops), n))
    return 0 if rep.exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
