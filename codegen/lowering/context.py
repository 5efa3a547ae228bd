"""The small shared state every op lowering works through: the model, the Relax block builder, the Relax value
of each TFLite tensor, and the constants (weights, tables) that become C arrays."""

import numpy as np

from . import memplan
from .quant import requant_fn
from .registry import lookup


# the element types an elementwise kernel may overwrite in place (memplan.inplace_delta_broadcast)
INPLACE_DTYPES = ("int8", "uint8", "int16")


class LoweringContext:
    def __init__(self, model, model_name, bb):
        from tvm import relax
        self.relax = relax
        self.m = model
        self.name = model_name
        self.bb = bb              # relax.BlockBuilder inside main's dataflow block
        self.params = []          # relax vars for constants (after the input)
        self.param_data = {}      # relax var -> (c_name, np array)
        self.values = {}          # tflite tensor index -> relax expr
        self.scheds = {}          # kernel name -> schedule fn(s_tir.Schedule)
        self.inplace = {}         # kernel name -> [(input arg index, largest safe output - input offset)]
        self.scratch_kernels = set()  # kernels whose first output is a scratch buffer (microkernels.emit_call)
        self.call_ops = []        # the TFLite op of each kernel call, in call order (identical kernels of
                                  # equal layers are one PrimFunc: Relax deduplicates them)
        self.call_outputs = []    # which output of that op each call writes (SPLIT, UNPACK: one call each)

    def tensor(self, ti):
        return self.m.tensors[ti]

    def requant(self, op):
        """The MultiplyByQuantizedMultiplier of `op`'s TFLite reference kernel (its registry rounding)."""
        return requant_fn(lookup(op.type).rounding)

    # constants -------------------------------------------------------------------------------------------------
    def const(self, arr, hint):
        """A constant array (weights, bias, lookup table): a Relax parameter, later a `const` C array."""
        relax = self.relax
        arr = np.ascontiguousarray(arr)
        cname = "tvmgen_%s_c%d_%s" % (self.name, len(self.params), hint)
        v = relax.Var(cname, relax.TensorType(tuple(int(d) for d in arr.shape), str(arr.dtype)))
        self.params.append(v)
        self.param_data[v] = (cname, arr)
        return v

    def tensor_const(self, ti, hint):
        """The constant TFLite tensor `ti` as a Relax value (one C array however many ops read it)."""
        t = self.m.tensors[ti]
        if ti not in self.values:
            self.values[ti] = self.const(t.data, hint)
        return self.values[ti]

    def operand(self, ti, hint="operand"):
        """Input `ti` of an op: the activation computed earlier, or the constant tensor."""
        t = self.m.tensors[ti]
        if ti not in self.values and t.is_const:
            return self.tensor_const(ti, hint)
        return self.values[ti]

    # kernels ---------------------------------------------------------------------------------------------------
    def kname(self, op, output=0):
        return "tvmgen_%s_%s_%d" % (self.name, op.type.lower(), op.index) + ("_%d" % output if output else "")

    def emit(self, op, fn, args, sched=None, output=0):
        """One kernel: `fn(*te_tensors)` -> te.Tensor, called on `args` (Relax values); `sched` schedules it.
        `output`: which of the op's outputs the kernel computes (ops with several outputs emit one kernel each)."""
        name = self.kname(op, output)
        v = self.bb.emit_te(fn, *args, primfunc_name_hint=name)
        self.call_ops.append(op)
        self.call_outputs.append(output)
        if sched is not None:
            self.scheds[name] = sched
        return v

    def emit_extern(self, op, fn, args):
        """One kernel whose `fn(*te_tensors)` returns [scratch, output] (a te.extern): the scratch buffer is
        planned like a tensor that dies right after the call; the op's value is the output."""
        name = self.kname(op)
        t = self.bb.emit_te(fn, *args, primfunc_name_hint=name)
        self.call_ops.append(op)
        self.call_outputs.append(0)
        self.scratch_kernels.add(name)
        return self.bb.emit(self.relax.TupleGetItem(t, 1))

    def elementwise_inplace(self, op, inputs):
        """Declare that the kernel just emitted for `op` (a plain TE loop nest over its output, no schedule: row-major,
        each element's operands read before it is written) may overwrite its dying inputs: `inputs` = [(kernel
        argument index, TFLite tensor index)], activations of 8- or 16-bit integers only."""
        o_t = self.m.tensors[op.outputs[0]]
        if o_t.dtype not in INPLACE_DTYPES:
            return
        decl = []
        for k, ti in inputs:
            t = self.m.tensors[ti]
            if t.dtype in INPLACE_DTYPES and not t.is_const:
                decl.append((k, memplan.inplace_delta_broadcast(t.shape, o_t.shape, np.dtype(t.dtype).itemsize,
                                                                np.dtype(o_t.dtype).itemsize)))
        if decl:
            self.inplace[self.kname(op)] = decl

    def lookup_table(self, op, value):
        """An 8-bit -> 8-bit op as one table load per element: out[i] = lut[x[i] - qmin], lut[k] = value(qmin + k),
        where `value` maps a raw input (Python int) to the raw output TFLite's kernel produces for it."""
        from tvm import te
        from .quant import QRANGE, i32
        x_t, o_t = self.m.tensors[op.inputs[0]], self.m.tensors[op.outputs[0]]
        qmin, qmax = QRANGE[x_t.dtype]
        lo, hi = QRANGE[o_t.dtype]
        table = [value(v) for v in range(qmin, qmax + 1)]
        assert all(lo <= t <= hi for t in table), (op.type, table)
        lut = self.const(np.array(table, dtype=o_t.dtype), "lut")

        def f(x, t):
            return te.compute(x.shape, lambda *i: t[x(*i).astype("int32") - i32(qmin)], name="out")

        self.values[op.outputs[0]] = self.emit(op, f, [self.operand(op.inputs[0]), lut])
        self.elementwise_inplace(op, [(0, op.inputs[0])])

    def reshape(self, value, shape):
        """A Relax reshape: no kernel, the planner aliases the storage."""
        return self.bb.emit(self.relax.op.reshape(value, tuple(int(d) for d in shape)))

    def set_output(self, op, value, k=0):
        self.values[op.outputs[k]] = value
