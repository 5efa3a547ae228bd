"""Read a full-integer (int8) TensorFlow Lite flatbuffer into plain Python objects.

Only the `tflite` flatbuffer reader package is used (imported lazily, so importing
this module stays cheap while SCons reads its build files).  `load()` also checks
that the model is something the code generator can handle and raises
`ModelError` with one clear message otherwise.
"""

import os

import numpy as np

from ..errors import ModelError
from ..lowering.registry import check_batch, check_options, check_scales, kernel_for, lookup, registry, registry16
from . import fold
from .. import tflite_limits as limits

_TFLITE_DTYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string",
    6: "bool", 7: "int16", 8: "complex64", 9: "int8", 10: "float64",
    11: "complex128", 12: "uint64", 15: "uint32", 16: "uint16", 17: "int4",
}

_HOW_TO_CONVERT = (
    "Convert it as a full-integer model: TFLiteConverter with "
    "optimizations=[tf.lite.Optimize.DEFAULT], a representative_dataset, "
    "target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8], "
    "inference_input_type/inference_output_type tf.int8 or tf.uint8, "
    "and a fixed batch size of 1 (keras.Input(shape, batch_size=1))."
)


def check_object_sizes(path, arrays, limit, target="AVR (avr-gcc)"):
    """Raise ModelError naming the first of `arrays` ((C name or tensor name, size in bytes) pairs) that is
    larger than `limit` bytes, the largest single object the target's compiler accepts (a board's
    max_object_bytes: codegen.boards, e.g. avr-gcc's 32,767)."""
    for name, nbytes in arrays:
        if int(nbytes) > limit:
            raise ModelError(
                "%s: array %s is %d bytes; %s allows at most %d bytes in one object, so the generated C "
                "would not compile. Use a smaller model (lower alpha, fewer channels or blocks, e.g. "
                "DEPTH=) for this board." % (path, name, int(nbytes), target, limit))


class Tensor:
    """One tensor of the (single) subgraph."""

    def __init__(self, index, name, shape, shape_signature, dtype, scale, zero_point,
                 quantized_dimension, data):
        self.index = index
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.shape_signature = tuple(int(d) for d in shape_signature)
        self.dtype = dtype
        self.scale = scale            # np.float32 array (empty if not quantized)
        self.zero_point = zero_point  # np.int64 array (empty if not quantized)
        self.quantized_dimension = quantized_dimension
        self.data = data              # np.ndarray for constants, else None

    @property
    def is_const(self):
        return self.data is not None

    @property
    def is_quantized(self):
        return len(self.scale) > 0

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def size_bytes(self):
        return self.size * np.dtype(self.dtype).itemsize

    def __repr__(self):
        return "Tensor(%d %r %s %s)" % (self.index, self.name, self.dtype, self.shape)


class Op:
    """One operator: type name (e.g. "CONV_2D"), tensor indices (-1 = absent), options dict."""

    def __init__(self, index, type, inputs, outputs, options):
        self.index = index
        self.type = type
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.options = options
        self.intermediates = []     # the op's intermediate tensors (an integer LSTM's gate scales), rarely any

    def __repr__(self):
        return "Op(%d %s in=%s out=%s)" % (self.index, self.type, self.inputs, self.outputs)


class Model:
    def __init__(self, path, tensors, ops, input_ids, output_ids, description=""):
        self.path = path
        self.tensors = tensors
        self.ops = ops
        self.input_ids = list(input_ids)
        self.output_ids = list(output_ids)
        self.description = description
        self.notes = []   # things worth saying once in the build log (e.g. a pinned batch dimension)

    @property
    def inputs(self):
        return [self.tensors[i] for i in self.input_ids]

    @property
    def outputs(self):
        return [self.tensors[i] for i in self.output_ids]

    def fail(self, what):
        raise ModelError("%s: %s" % (self.path, what))


def _builtin_names():
    import tflite
    names = {}
    for k, v in vars(tflite.BuiltinOperator).items():
        if not k.startswith("_") and isinstance(v, int):
            names[v] = k
    return names


def _parse(path, buf):
    # Every index, shape and buffer bound is checked first (limits.check_graph): below, no tensor can be
    # larger than limits.MAX_TENSOR_BYTES and no index can point outside its table.
    _, model, g = limits.check_graph(path, buf)
    names = _builtin_names()

    buffers = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.Offset() > 1:  # large models keep buffers after the flatbuffer
            start, size = b.Offset(), b.Size()
            if start + size > len(buf):
                raise ModelError("%s: buffer %d lies beyond the end of the file "
                                 "(truncated file?)." % (path, i))
            buffers.append(bytes(buf[start:start + size]))
        elif b.DataLength():
            buffers.append(b.DataAsNumpy().tobytes())
        else:
            buffers.append(b"")

    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        dtype = _TFLITE_DTYPES.get(t.Type(), "type%d" % t.Type())
        shape = [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []
        sig = ([int(v) for v in t.ShapeSignatureAsNumpy()] if t.ShapeSignatureLength()
               else list(shape))
        q = t.Quantization()
        scale = np.zeros((0,), np.float32)
        zp = np.zeros((0,), np.int64)
        qdim = 0
        if q is not None and q.ScaleLength():
            scale = q.ScaleAsNumpy().astype(np.float32)
            zp = (q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength()
                  else np.zeros(scale.shape, np.int64))
            qdim = q.QuantizedDimension()
        data = None
        raw = buffers[t.Buffer()] if 0 <= t.Buffer() < len(buffers) else b""
        if raw:
            npdt = np.dtype(dtype) if not dtype.startswith("type") else None
            n = 1
            for d in shape:
                n *= d
            if npdt is None or len(raw) != n * npdt.itemsize:
                raise ModelError("%s: constant tensor %r has %d bytes, expected %d for %s %s "
                                 "(corrupt or truncated file?)."
                                 % (path, limits.tensor_name(t, i), len(raw),
                                    n * (npdt.itemsize if npdt else 0), dtype, shape))
            data = np.frombuffer(raw, dtype=npdt).reshape(shape).copy()
        tensors.append(Tensor(i, limits.tensor_name(t, i), shape, sig, dtype,
                              scale, zp, qdim, data))

    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        op_type = names.get(code, "BUILTIN_%d" % code)
        if op_type == "CUSTOM":
            cc = oc.CustomCode()
            op_type = "CUSTOM(%s)" % (cc.decode(errors="replace") if cc else "?")
        ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
        opdef = lookup(op_type)
        opts = opdef.options(op) if opdef is not None and opdef.options is not None else {}
        ops.append(Op(i, op_type, ins, outs, opts))
        if op.IntermediatesLength():
            ops[-1].intermediates = [int(v) for v in op.IntermediatesAsNumpy()]

    ins = [int(v) for v in g.InputsAsNumpy()] if g.InputsLength() else []
    outs = [int(v) for v in g.OutputsAsNumpy()] if g.OutputsLength() else []
    desc = model.Description().decode(errors="replace") if model.Description() else ""
    return Model(path, tensors, ops, ins, outs, desc)


def _float_output_ops(m):
    """The DEQUANTIZE ops that turn an int8/uint8/int16 activation into a float32 model output (one per such
    output).  Only this float tail is supported; a float op after it is not."""
    found = []
    for op in m.ops:
        if op.type == "DEQUANTIZE" and len(op.outputs) == 1 and op.outputs[0] in m.output_ids \
                and len(op.inputs) == 1:
            x, y = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
            if (y.dtype == "float32" and x.dtype in ("int8", "uint8", "int16") and x.is_quantized
                    and len(x.scale) == 1 and x.shape == y.shape
                    and not any(op.outputs[0] in o.inputs for o in m.ops)):
                found.append(op)
    return found



def _float_input_ops(m):
    """The QUANTIZE ops that take a float32 model input to an integer tensor (inference_input_type=tf.float32: the
    model quantizes its own input), or [] when some float32 input is read by anything else (or is an output)."""
    ops = []
    for ti in m.input_ids:
        if m.tensors[ti].dtype != "float32":
            continue
        readers = [op for op in m.ops if ti in op.inputs]
        if not readers or ti in m.output_ids:
            return []
        for op in readers:
            y = m.tensors[op.outputs[0]] if len(op.outputs) == 1 else None
            if (op.type != "QUANTIZE" or op.inputs != [ti] or y is None or y.dtype not in ("int8", "uint8", "int16")
                    or not y.is_quantized or len(y.scale) != 1 or y.shape != m.tensors[ti].shape):
                return []
            ops.append(op)
    return ops


def _check_static_shapes(m):
    """Models converted from Keras with a dynamic batch say -1 for the batch in `shape_signature` while every
    tensor's shape has batch 1; tf.lite and TFLite Micro run them with batch 1, and so does the generated C
    (noted once).  Any other -1 would need shapes at run time: an error naming the tensor.  With every shape
    static, SHAPE ops and the shape computations after them are folded into constants (fold.py)."""
    pinned = 0
    for t in m.tensors:
        sig = t.shape_signature
        if -1 not in sig:
            continue
        dyn = [k for k, d in enumerate(sig) if d == -1]
        if dyn == [0] and len(t.shape) == len(sig) and t.shape and t.shape[0] == 1:
            pinned += 1
            continue
        k = next(k for k in dyn if k != 0 or not t.shape or t.shape[0] != 1)
        m.fail("tensor %r has a dynamic dimension %d (shape_signature %s, shape %s); only a dynamic batch "
               "(dimension 0) of size 1 can be pinned. Give that dimension a fixed size when converting "
               "(keras.Input(shape, batch_size=1) with every other dimension set, or "
               "converter from a concrete function with a fixed input signature)."
               % (t.name, k, list(sig), list(t.shape)))
    # every shape is static now: SHAPE and the shape arithmetic after it become constants (Keras' Flatten /
    # Reshape chains); what is left computing shape data at run time is one error naming the op
    fold.fold(m)
    fold.unfolded(m)
    if pinned:
        m.notes.append("batch -1 in the shape signature of %d tensor(s) pinned to the static batch of 1"
                       % pinned)


class _Ops:
    """`op is float_out` for a set of ops (the final DEQUANTIZEs): `op in float_out` by identity."""

    def __init__(self, ops):
        self.ops = list(ops)
        self.outputs = {t for op in self.ops for t in op.outputs}

    def __contains__(self, op):
        return any(op is o for o in self.ops)


def _validate(m):
    if not m.input_ids or not m.output_ids:
        m.fail("the model has %d inputs and %d outputs; it needs at least one of each."
               % (len(m.input_ids), len(m.output_ids)))
    if len(set(m.input_ids)) != len(m.input_ids) or len(set(m.output_ids)) != len(m.output_ids) \
            or set(m.input_ids) & set(m.output_ids):
        m.fail("the model lists a tensor twice among its inputs and outputs (inputs %s, outputs %s); re-export it"
               % (m.input_ids, m.output_ids))
    _check_static_shapes(m)
    # The float tensors allowed: model outputs made by a final DEQUANTIZE of an integer activation
    # (inference_output_type=tf.float32), and model inputs only QUANTIZE reads.  Anything else float is not
    # full-integer.
    float_out = _Ops(_float_output_ops(m))
    # A float tensor no op reads or writes (e.g. the empty float32 `input_to_input_intermediate` placeholders an
    # integer UNIDIRECTIONAL_SEQUENCE_LSTM lists as intermediates) is not float arithmetic: the op is the real
    # cause, named below.
    used = set(m.input_ids) | set(m.output_ids)
    for op in m.ops:
        used.update(op.inputs)
        used.update(op.outputs)
    # The float model inputs each QUANTIZE reads (inference_input_type=tf.float32) are allowed too.
    float_in = {op.inputs[0] for op in _float_input_ops(m)}
    float_tensors = [t for t in m.tensors if t.dtype in ("float32", "float16", "float64") and t.index in used
                     and t.index not in float_out.outputs and t.index not in float_in]
    deq = [op for op in m.ops if op.type == "DEQUANTIZE" and op not in float_out]
    if float_tensors or deq:
        what = float_tensors[0].name if float_tensors else "DEQUANTIZE op #%d" % deq[0].index
        note = ""
        if deq:
            note = (" DEQUANTIZE op #%d makes a float tensor that is not the model output; only a "
                    "final DEQUANTIZE producing the model output is supported (no float ops after "
                    "it)." % deq[0].index)
        m.fail("the model is not fully integer-quantized (float tensor %r).%s %s"
               % (what, note, _HOW_TO_CONVERT))
    ops = registry()
    for op in m.ops:
        if op.type not in ops and op not in float_out:
            m.fail("operator %s (op #%d) is not supported by the code generator "
                   "(supported: %s). Change the model to avoid it."
                   % (op.type, op.index, ", ".join(ops)))
    for op in m.ops:
        if op not in float_out and kernel_for(m, op) is None:
            m.fail("%s (op #%d) has int16 activations; TFLite's 16x8 mode (int16 activations, int8 weights) is "
                   "supported for %s only. Quantize this model to int8 (TFLITE_BUILTINS_INT8)."
                   % (op.type, op.index, ", ".join(registry16())))
    for op in m.ops:
        if op not in float_out:
            check_options(m, op)
            check_scales(m, op)
            check_batch(m, op)
    for op in m.ops:
        if op not in float_out and kernel_for(m, op).validate is not None:
            try:
                with np.errstate(over="ignore"):    # an overflow is refused below, not printed as a warning too
                    kernel_for(m, op).validate(m, op)
            except ModelError:
                raise
            except OverflowError as e:
                # A ratio of scales beyond float32 (an output scale ~1e-43: calibration left the range empty) makes
                # an infinite multiplier or clamp bound; TFLite's QuantizeMultiplier and casts of it are undefined.
                scales = ["%g" % float(m.tensors[i].scale[0]) for i in list(op.inputs) + list(op.outputs)
                          if i >= 0 and m.tensors[i].is_quantized and m.tensors[i].data is None]
                m.fail("%s (op #%d): a requantization constant from its scales (%s) overflows (%s; undefined in "
                       "TFLite). The calibration data left a range empty: recalibrate with data that reaches it."
                       % (op.type, op.index, ", ".join(scales), e))
            except (IndexError, KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
                # A damaged file can give an op fewer inputs than it has, or tensors of the wrong rank: the op's
                # checks index them as TFLite's kernels do. Say so instead of a traceback (the registry has no
                # per-op arity to check first).
                m.fail("op %s (#%d) with input tensors %s and output tensors %s does not have the structure "
                       "TFLite's kernel expects (%s: %s; damaged file?). Re-export the model"
                       % (op.type, op.index, op.inputs, op.outputs, type(e).__name__, e))
    for t in m.inputs + m.outputs:
        if t.index in float_out.outputs or t.index in float_in:
            continue
        head = next((op for op in m.ops if t.index in op.outputs and ops[op.type].index_outputs), None)
        if head is not None:
            m.fail("the model output %r is the %s index %s writes (op #%d); an index output is not supported: "
                   "end the model before the %s (the sketch and the check print the top class of the scores "
                   "themselves)." % (t.name, t.dtype, head.type, head.index, head.type))
        if t.dtype not in ("int8", "uint8", "int16") or not t.is_quantized:
            m.fail("the model %s %r is %s; it must be quantized int8 or uint8. %s"
                   % ("input" if t.index in m.input_ids else "output", t.name, t.dtype,
                      _HOW_TO_CONVERT))
    for op in m.ops:
        if op in float_out:
            continue
        for ti in op.outputs:
            t = m.tensors[ti]
            if t.dtype in ("int32", "int64") and ops[op.type].index_outputs:
                continue
            if t.dtype not in ("int8", "uint8", "int16"):
                m.fail("op %s (#%d) produces a %s tensor %r; only int8/uint8 activations "
                       "are supported. %s" % (op.type, op.index, t.dtype, t.name,
                                              _HOW_TO_CONVERT))
    for t in m.tensors:
        # (an op's intermediates, e.g. an integer LSTM's empty placeholders, carry scales, never values)
        if any(d <= 0 for d in t.shape) and not t.is_const and t.index in used:
            m.fail("tensor %r has an empty or unknown shape %s." % (t.name, t.shape))


def load(path):
    """Parse and check a full-int8 .tflite file. Raises ModelError on any problem."""
    path = os.fspath(path)
    buf = limits.read_model(path)       # a regular file, bounded in size, with the TFL3 identifier
    try:
        m = _parse(path, buf)
    except ModelError:
        raise
    except Exception as e:  # flatbuffers raise struct/index errors on damaged files
        raise ModelError("%s: the flatbuffer is damaged or truncated (%s: %s). "
                         "Re-export the model." % (path, type(e).__name__, e)) from None
    _validate(m)
    return m


def unsupported_ops(path):
    """[(op type, first op index)] of the ops in the .tflite at `path` that the code generator's registry lacks
    (or that have int16 activations where it has no 16x8 kernel: "OP with int16 activations"), every one at once
    (BACKEND=auto names them all); load() stops at the first. ModelError for a damaged file."""
    path = os.fspath(path)
    buf = limits.read_model(path)
    try:
        m = _parse(path, buf)
    except ModelError:
        raise
    except Exception as e:  # flatbuffers raise struct/index errors on damaged files
        raise ModelError("%s: the flatbuffer is damaged or truncated (%s: %s). "
                         "Re-export the model." % (path, type(e).__name__, e)) from None
    try:
        _check_static_shapes(m)     # static shape chains (SHAPE -> ... -> RESHAPE) folded, as load() does
    except ModelError:
        pass                        # shapes computed at run time: their SHAPE ops stay, and are named
    ops, float_out, first = registry(), _Ops(_float_output_ops(m)), {}
    for op in m.ops:
        if op.type not in ops and op not in float_out:
            first.setdefault(op.type, op.index)
        elif op is not float_out and kernel_for(m, op) is None:     # int16 activations, no 16x8 kernel
            first.setdefault("%s with int16 activations" % op.type, op.index)
    return list(first.items())
