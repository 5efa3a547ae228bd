"""Lower a full-int8 TFLite model (codegen.frontend.Model) to standalone C with Apache TVM.

Route (TVM 0.27: Relax + TIR, no relay/microTVM):

1. Every TFLite op becomes one TE compute in *integer* arithmetic that follows
   TFLite's reference kernels (int32 accumulation of (x - zp) * w + bias, then
   MultiplyByQuantizedMultiplier with double rounding, + output zero point, clamp
   to the fused activation range).  The computes are emitted into a Relax
   function with ``BlockBuilder.emit_te``; constants (weights, biases and the
   per-channel multiplier/shift tables) are Relax function parameters, so they
   stay int8/int32 arrays and are never folded to float.
2. Each PrimFunc is scheduled with ``tvm.s_tir.Schedule`` so that a kernel needs
   no temporary buffer, and for speed on small cores (Cortex-M4: see bench/mcu.py):
   * the input zero point is hoisted out of the convolution sums
     (sum((x - zp) * w) = sum(x * w) - zp * sum(w), zp * sum(w) folded into the bias
     constant; padded taps read zp so they cancel);
   * register tiles (pointwise: 2 pixels x 2 channels over groups of 4 input channels,
     one ``tvmgen_dot4`` = 2 SMLADs each; first conv: 2 pixels x 4 channels; depthwise:
     8 channels), the tile's reduction/epilogue loops unrolled so the accumulators are a
     few constant-indexed locals the C compiler keeps in registers;
   * a 32-bit requantization epilogue: the double rounding of MultiplyByQuantizedMultiplier
     as one 64-bit multiply-add and shifts, no 64-bit division, per-channel shift tables
     (right shift + rounding term) instead of per-element shift clamping, and a saturating
     clamp (``tvmgen_clamp``).  Everything stays bit-exact with TFLite's reference kernels.
   int8 convolutions, depthwise convolutions and fully connected layers skip the loop nest:
   their PrimFunc is one ``call_extern`` of a microkernel (microkernels.py / .h) with the
   layer's shapes as literals and a scratch buffer as a second output.
3. Relax ``StaticPlanBlockMemory`` plans the intermediate tensors; its storages
   are laid out one after another in a single static workspace.
4. A TIR pass turns buffer parameters into plain pointer parameters, the TIR
   pipeline runs without MakePackedAPI, and the ``c`` target's code generator
   emits plain ``void f(int8_t* ...)`` functions; TVM include lines and
   ``TVM_DLL`` markers are stripped afterwards.

All tvm imports happen inside functions.
"""

import os
import re
import time

import numpy as np

from ..errors import ModelError
from . import memplan, microkernels
from .context import LoweringContext
from .quant import C_TYPES
from .registry import kernel_for


class Lowered:
    """Everything codegen.emit.mlf needs to write the C sources and metadata."""

    def __init__(self):
        self.constants = []      # [(c_name, np.ndarray)]
        self.kernels = []        # [(c_name, [c_param_type, ...])]
        self.kernel_source = ""  # C text of all kernels (lib1)
        self.calls = []          # [(kernel_c_name, [arg], out_nbytes); arg = ("input",)|("output",)|
                                 #  ("const", c_name)|("ws", offset)]
        self.copies = []         # [(dst arg, src arg, nbytes)] extra copies (rare)
        self.workspace_size = 0
        self.constants_size = 0
        self.ops = []            # metadata per TFLite op
        self.call_ops = []       # TFLite op index of each entry in `calls`
        self.call_outputs = []   # which output of that op each entry of `calls` writes (0 but for SPLIT, ...)
        self.relax_text = ""
        self.tir_text = ""
        self.input = None        # the first input and output (every model has one)
        self.output = None
        self.inputs = []         # every input and output, in the model's order
        self.outputs = []
        self.times = {}



def _to_pointer_params(func):
    """Buffer parameters -> pointer parameters bound by DeclBuffer, so that the C
    codegen emits a plain C function instead of a packed-API one."""
    from tvm import tirx
    from tvm.ir import PointerType
    params, decls = [], []
    for p in func.params:
        if isinstance(p.ty, tirx.buffer.BufferType):
            ptr = tirx.Var(p.name, PointerType(p.ty.dtype))
            params.append(ptr)
            decls.append((p, ptr))
        else:
            params.append(p)
    body = func.body
    for p, ptr in reversed(decls):
        body = tirx.DeclBuffer(p, body, data=ptr)
    return tirx.PrimFunc(params, body, func.ret_type, func.attrs)


def _tir_passes():
    """The s_tir default lowering minus GPU-only passes, MakePackedAPI and the slow
    RemoveNoOp/HoistIfThenElse (they change nothing for these kernels)."""
    import tvm
    from tvm import tirx
    from tvm.s_tir import transform as st
    return tvm.transform.Sequential([
        st.CanonicalizeLoop(),
        st.LowerInitBlock(),
        st.PlanAndUpdateBufferAllocationLocation(),
        st.ConvertBlocksToOpaque(),
        st.CompactBufferAllocation(),
        st.LowerMatchBuffer(),
        st.StmtSimplify(),
        st.LowerOpaqueBlock(),
        tirx.transform.FlattenBuffer(),
        tirx.transform.UnrollLoop(),
        tirx.transform.NarrowDataType(32),
        tirx.transform.StorageRewrite(),
        tirx.transform.StmtSimplify(),
        st.RewriteUnsafeSelect(),
        tirx.transform.CommonSubexprElim(),
    ])


# kernel_preamble.h: helpers the kernels call (prepended to the kernel source when used).  tvmgen_dot4acc adds
# the four int8 x int8 products of two 4-byte groups to an int32 accumulator: with the
# Armv7E-M DSP extension that is two SXTB16 pairs and two SMLADs (the SXTB16 of a shared
# operand is computed once by the compiler for a register tile); elsewhere plain C.  Both are
# exact: every partial sum fits int32 like TFLite's own accumulator.  tvmgen_clamp is the
# activation clamp, a single SSAT/USAT for the full int8/uint8 range where available.
KERNEL_PREAMBLE_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_preamble.h")


# recurrent.h: the integer LSTM's time loop (ops/recurrent.py), prepended when a kernel calls it.
RECURRENT_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recurrent.h")


def recurrent_header():
    with open(RECURRENT_HEADER, encoding="utf-8") as f:
        return f.read()


# reduce_prod.h: REDUCE_PROD's sequential loop (ops/reduce.py), prepended when a kernel calls it.
REDUCE_PROD_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reduce_prod.h")


def reduce_prod_header():
    with open(REDUCE_PROD_HEADER, encoding="utf-8") as f:
        return f.read()


def kernel_preamble():
    with open(KERNEL_PREAMBLE_HEADER, encoding="utf-8") as f:
        return f.read()


_DOT4_ACC = re.compile(r"^(\s*)(\w+\[\d+\]) = \(\2 \+ (tvmgen_dot4)\((.*)\)\);$",
                       re.M)


def _fuse_dot4(text):
    """`acc[k] = (acc[k] + tvmgen_dot4(a, b));` -> `acc[k] = tvmgen_dot4acc(acc[k], a, b);`
    (so the accumulation is the SMLAD itself instead of an SMUAD plus an add)."""
    return _DOT4_ACC.sub(r"\1\2 = \3acc(\2, \4);", text)


def _strip_tvm(src):
    """Drop the TVM runtime includes / markers from the C codegen output."""
    out = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith('#include "tvm/') or "__tvm_ffi__library_ctx" in s:
            continue
        # libm prototypes the codegen repeats (math.h declares them; avr-libc defines
        # some of them as macros, which makes these lines fail to compile)
        if re.match(r"^(TVM_DLL )?(float|double) \w+\((float|double)(, (float|double))*\);$", s):
            continue
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"\bTVM_DLL\s+", "", text)
    text = re.sub(r"#ifdef __cplusplus\s*\nextern \"C\"\s*\n#endif\s*\n", "", text)
    return text


def _canonical_offsets(text):
    """The TVMScript of extern kernels names their buffers' elem_offset type variables in an order that varies
    from run to run; number them by first use within each function so that the MLF's tir.txt is
    byte-reproducible."""
    text = re.sub(r"(?m)^\s*elem_offset(?:_\d+)? = TypeVar\(.*\)\n", "", text)
    out = []
    names = {}
    for line in text.splitlines(True):
        if line.lstrip().startswith("def "):
            names = {}
        out.append(re.sub(r"(?<![\w.])(elem_offset(?:_\d+)?)\b(?!\s*=)",
                          lambda m: names.setdefault(m.group(1), "offset_%d" % len(names)), line))
    return "".join(out)


def lower(model, model_name="default"):
    """Lower `model` to C. Returns a `Lowered`. Raises ModelError on failure."""
    try:
        return _lower(model, model_name)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError("%s: code generation failed (%s: %s). The model probably uses an "
                         "op configuration this generator does not handle."
                         % (model.path, type(e).__name__, str(e).strip().splitlines()[-1]
                            if str(e).strip() else "")) from e


def _float_output_view(t):
    """A float32 model input (before QUANTIZE) or output (after DEQUANTIZE) carries no quantization parameters; the
    metadata and header describe it as scale 1, zero point 0 (value = 1 * (x - 0))."""
    if t.is_quantized:
        return t
    from ..frontend import Tensor
    return Tensor(t.index, t.name, t.shape, t.shape_signature, t.dtype,
                  np.ones((1,), np.float32), np.zeros((1,), np.int64), 0, t.data)


def _lower(model, model_name):
    import tvm
    from tvm import relax, tirx
    import tvm.s_tir as s_tir
    from tvm.target import Target

    lw = Lowered()
    t0 = time.time()
    m = model
    lw.inputs = [_float_output_view(t) for t in m.inputs]
    lw.outputs = [_float_output_view(t) for t in m.outputs]
    lw.input, lw.output = lw.inputs[0], lw.outputs[0]
    # one input is the Relax parameter `input` (as it always was); several are input0, input1, ...
    xs = [relax.Var("input" if len(m.inputs) == 1 else "input%d" % k, relax.TensorType(tuple(t.shape), t.dtype))
          for k, t in enumerate(m.inputs)]
    bb = relax.BlockBuilder()
    b = LoweringContext(model, model_name, bb)
    for t, x in zip(m.inputs, xs):
        b.values[t.index] = x
    # Constants become parameters; their list is only complete after the ops are emitted,
    # so the parameter list is given at emit_func_output.
    with bb.function("main"):
        with bb.dataflow():
            for op in m.ops:
                macs = kernel_for(m, op).lower(b, op)
                lw.ops.append({"type": op.type, "index": op.index,
                               "output_shape": list(m.tensors[op.outputs[0]].shape),
                               "macs": int(macs or 0)})
            if len(m.outputs) == 1:
                res = bb.emit_output(b.values[m.outputs[0].index])
            else:
                res = bb.emit_output(relax.Tuple([b.values[t.index] for t in m.outputs]))
        bb.emit_func_output(res, params=xs + b.params)
    mod = bb.get()
    kept = _calls_left_by_reshape_rewrite(mod)
    if len(kept) != len(b.call_ops):
        raise ModelError("internal error: %d kernels emitted for %d TFLite ops" % (len(kept), len(b.call_ops)))
    lw.call_ops = [op.index for op, k in zip(b.call_ops, kept) if k]
    lw.call_outputs = [out for out, k in zip(b.call_outputs, kept) if k]
    lw.times["relax"] = time.time() - t0

    # --- schedule kernels -------------------------------------------------------------
    t1 = time.time()
    new_funcs = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc):
            sched = b.scheds.get(gv.name_hint)
            if sched is not None:
                sch = s_tir.Schedule(func)
                sched(sch)
                func = sch.mod["main"]
            new_funcs[gv] = func
    for gv, func in new_funcs.items():
        mod[gv] = func
    lw.relax_text = mod["main"].script(show_meta=False)
    tir_mod = tvm.IRModule({gv: f for gv, f in new_funcs.items()})
    lw.tir_text = _canonical_offsets(tir_mod.script(show_meta=False))

    # --- memory planning (Relax) ------------------------------------------------------
    planned = tvm.transform.Sequential([
        relax.transform.RewriteDataflowReshape(),
        relax.transform.ToNonDataflow(),
        relax.transform.RemovePurityChecking(),
        relax.transform.CallTIRRewrite(),
        relax.transform.StaticPlanBlockMemory(),
    ])(mod)
    main = planned["main"]
    lw.relax_text += "\n\n# ---- after StaticPlanBlockMemory ----\n" + main.script(show_meta=False)
    _plan(lw, main, b, xs)
    replanned = memplan.replan(lw.calls, lw.copies, b.inplace, lw.workspace_size)
    if replanned is not None:
        try:
            memplan.check(lw.calls, replanned[0], lw.copies, replanned[1], b.inplace)
        except memplan.PlanError as e:
            raise ModelError("%s: internal error: the workspace placement is unsound (%s)" % (m.path, e)) from e
        lw.calls, lw.copies, lw.workspace_size = replanned
    lw.times["plan"] = time.time() - t1

    # --- TIR -> C ---------------------------------------------------------------------
    t2 = time.time()
    used = {c[0] for c in lw.calls}
    ptr_funcs = {gv: _to_pointer_params(f) for gv, f in new_funcs.items() if gv.name_hint in used}
    for gv, f in ptr_funcs.items():
        lw.kernels.append((gv.name_hint, [C_TYPES[str(p.ty.element_type.dtype)] + "*"
                                          if hasattr(p.ty, "element_type") else "void*"
                                          for p in f.params]))
    target = Target("c")
    cmod = tirx.transform.BindTarget(target.with_host(target))(tvm.IRModule(ptr_funcs))
    pipe = _tir_passes()
    ctx = tvm.transform.PassContext.current()
    with tvm.transform.PassContext(config={"tirx.disable_vectorize": True},
                                   instruments=list(ctx.instruments)):
        cmod = pipe(cmod)
        cmod = tirx.transform.LowerIntrin()(cmod)
    from tvm.tirx.build import codegen_build
    src = codegen_build(cmod, target).inspect_source()
    text = _strip_tvm(src)
    if re.search(r"\btvmgen_mk_\w+\(", text):
        text = re.sub(r"^int32_t tvmgen_mk_\w+\([^)]*\);\n", "", text, flags=re.M)
        text = microkernels.header_source() + "\n" + text
    if re.search(r"\btvmgen_rnn_\w+\(", text):
        text = re.sub(r"^int32_t tvmgen_rnn_\w+\([^)]*\);\n", "", text, flags=re.M)
        text = recurrent_header() + "\n" + text
    if re.search(r"\btvmgen_prod_\w+\(", text):
        text = re.sub(r"^int32_t tvmgen_prod_\w+\([^)]*\);\n", "", text, flags=re.M)
        text = reduce_prod_header() + "\n" + text
    if re.search(r"\btvmgen_(dot4|ld4|clamp)\(", text):
        text = re.sub(r"^int32_t tvmgen_(dot4|ld4|clamp)\([^)]*\);\n", "", text, flags=re.M)
        text = kernel_preamble() + "\n" + _fuse_dot4(text)
    lw.kernel_source = text
    if "TVMFFI" in lw.kernel_source or "TVMBackend" in lw.kernel_source:
        raise ModelError("%s: internal error: generated kernels still use the TVM runtime."
                         % m.path)
    lw.times["c"] = time.time() - t2
    lw.constants_size = sum(a.nbytes for _, a in lw.constants)
    return lw


def _calls_left_by_reshape_rewrite(mod):
    """For each kernel call of main, in order: does it stay a call after RewriteDataflowReshape?  A kernel that only
    copies its input in order (RESIZE_NEAREST_NEIGHBOR to the same size, a TRANSPOSE that moves only unit
    dimensions, a STRIDED_SLICE of everything) becomes a reshape, i.e. no call; the call list must not count it."""
    from tvm import relax

    def calls(func):
        out = []
        for block in func.body.blocks:
            for bind in block.bindings:
                v = bind.value
                if isinstance(v, relax.Call) and getattr(v.op, "name", "") == "relax.call_tir":
                    out.append(bind.var.name)
        return out
    before = calls(mod["main"])
    after = set(calls(relax.transform.RewriteDataflowReshape()(mod)["main"]))
    return [name in after for name in before]


def _plan(lw, main, b, input_vars):
    """Walk the planned Relax main: storages -> workspace offsets, calls -> kernel calls.

    StaticPlanBlockMemory has already reused storages between tensors whose lifetimes do not
    overlap; its storages are laid out back to back (16-byte aligned) in one workspace.
    A model with one input and one output reads ("input",) and writes ("output",); with several, input k is
    ("input", k) and output k ("output", k)."""
    import tvm
    from tvm import relax
    align = 16
    storage_off = {}
    multi = len(lw.inputs) > 1 or len(lw.outputs) > 1
    where = {v: ("input", k) if multi else ("input",) for k, v in enumerate(input_vars)}
    for v, (cname, arr) in b.param_data.items():
        where[v] = ("const", cname)
    const_seen = set()
    ws = 0
    ret = main.body.body
    builtin_out = []
    for block in main.body.blocks:
        for bind in block.bindings:
            var, val = bind.var, bind.value
            if isinstance(val, relax.Call):
                op = val.op
                if isinstance(op, tvm.ir.Op):
                    name = op.name
                    if name == "relax.memory.alloc_storage":
                        size = int(val.args[0].values[0])
                        ws = (ws + align - 1) // align * align
                        storage_off[var] = ws
                        ws += size
                    elif name == "relax.memory.alloc_tensor":
                        off = storage_off[val.args[0]] + int(val.args[1].value)
                        where[var] = ("ws", off)
                    elif name == "relax.builtin.alloc_tensor":
                        where[var] = ("output",) if not multi else ("outbuf", len(builtin_out))
                        builtin_out.append(var)
                    elif name in ("relax.reshape", "relax.memory.view"):
                        where[var] = where[val.args[0]]
                    elif name == "relax.memory.kill_storage" or name == "relax.memory.kill_tensor":
                        pass
                    else:
                        raise ModelError("internal error: unexpected Relax op %s after "
                                         "memory planning" % name)
                else:  # GlobalVar: a TIR kernel call
                    args = [where[a] for a in val.args]
                    if op.name_hint in b.scratch_kernels:   # [..., scratch, output]
                        s_ty = val.args[-2].ty
                        s_bytes = int(np.prod([int(d) for d in s_ty.shape.values])) * \
                            np.dtype(str(s_ty.dtype)).itemsize
                        args[-2] = ("scratch", args[-2][1], s_bytes)
                    out_ty = val.args[-1].ty
                    nbytes = int(np.prod([int(d) for d in out_ty.shape.values])) * \
                        np.dtype(str(out_ty.dtype)).itemsize
                    lw.calls.append((op.name_hint, args, nbytes))
            elif isinstance(val, relax.Var):
                where[var] = where[val]
            elif isinstance(val, relax.Tuple):      # the outputs of a kernel with a scratch buffer
                where[var] = tuple(where[f] for f in val.fields)
            elif isinstance(val, relax.TupleGetItem):
                where[var] = where[val.tuple_value][val.index]
            else:
                raise ModelError("internal error: unexpected binding %s" % type(val).__name__)
    r = where[ret]
    if not multi:
        if r != ("output",):
            # the result lives elsewhere (e.g. model ends in RESHAPE of a workspace tensor)
            lw.copies.append((("output",), r, lw.output.size_bytes))
        if len(builtin_out) > 1:
            raise ModelError("internal error: more than one output allocation")
    else:
        # each output allocation the function returns becomes that output's buffer; an output that lives
        # elsewhere (a view of a workspace tensor, an allocation another output claimed) is copied there
        rename = {}
        locs = r if len(lw.outputs) > 1 else (r,)
        for k, loc in enumerate(locs):
            if loc[0] == "outbuf" and loc not in rename:
                rename[loc] = ("output", k)
            else:
                lw.copies.append((("output", k), rename.get(loc, loc), lw.outputs[k].size_bytes))
        if len(rename) != len(builtin_out):
            raise ModelError("internal error: an output allocation the function does not return")
        lw.calls = [(kname, [rename.get(a, a) for a in args], nbytes) for kname, args, nbytes in lw.calls]
        lw.copies = [(dst, rename.get(src, src), n) for dst, src, n in lw.copies]
    lw.workspace_size = (ws + align - 1) // align * align
    for v in b.params:
        cname, arr = b.param_data[v]
        if cname not in const_seen:
            const_seen.add(cname)
            lw.constants.append((cname, arr))
