"""Static-shape folding at codegen time: ops whose result is known when the model is read become constants.

Keras' Flatten / Reshape layers often convert to SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE although every shape is
static: SHAPE of a tensor with a static shape is a constant, and an op whose inputs are all constant (after this
folding) is a constant too.  Folding runs before the model's checks: the folded ops leave the op list (their outputs
keep their tensor index and get `data`), so the lowering sees RESHAPE with a constant shape, a TILE of constant
multiples, ...  Only exact data movement and int32 shape arithmetic fold; nothing here rescales a quantized value.
A shape that is really computed at run time (an op of this table left with a non-constant integer input) is one
error naming the op (`unfolded`).
"""

import numpy as np


def _i(v):
    return [int(x) for x in np.ravel(v)]


def _strided_slice(m, op, x, b, e, s):
    from ..lowering.ops.shape import strided_slice_plan
    plan = strided_slice_plan(x.shape, _i(b), _i(e), _i(s), op.options)
    idx, squeeze = [], []
    for src, start, stride, count, shrink in plan:
        if src is None:
            idx.append(np.newaxis)
            continue
        idx.append(start + stride * np.arange(count) if not shrink else start)
    # numpy's fancy indexing per dimension: take one axis at a time (no broadcasting between index arrays)
    out = x
    dim = 0
    for ix in idx:
        if ix is np.newaxis:
            out = np.expand_dims(out, dim)
            dim += 1
        elif np.isscalar(ix) or np.ndim(ix) == 0:
            out = np.take(out, int(ix), axis=dim)
        else:
            out = np.take(out, ix, axis=dim)
            dim += 1
    return out


def _pack(m, op, *xs):
    axis = int(op.options.get("axis", 0))
    return np.stack(xs, axis=axis + (xs[0].ndim + 1 if axis < 0 else 0))


def _concat(m, op, *xs):
    axis = int(op.options.get("axis", 0))
    return np.concatenate(xs, axis=axis + (xs[0].ndim if axis < 0 else 0))


def _gather(m, op, x, idx):
    axis = int(op.options.get("axis", 0))
    return np.take(x, idx, axis=axis + (x.ndim if axis < 0 else 0))


def _shaped(m, op, x, *rest):
    return np.reshape(x, m.tensors[op.outputs[0]].shape)


# op -> fn(model, op, *constant inputs) -> the output array (cast to the output tensor's type)
FOLD = {
    "STRIDED_SLICE": _strided_slice,
    "PACK": _pack,
    "CONCATENATION": _concat,
    "GATHER": _gather,
    "RESHAPE": _shaped,
    "SQUEEZE": _shaped,
    "EXPAND_DIMS": _shaped,
    "TILE": lambda m, op, x, mult: np.tile(x, _i(mult)),
    "ADD": lambda m, op, a, b: a + b,
    "SUB": lambda m, op, a, b: a - b,
    "MUL": lambda m, op, a, b: a * b,
    "FLOOR_DIV": lambda m, op, a, b: np.floor_divide(a, b),
}
ARITHMETIC = ("ADD", "SUB", "MUL", "FLOOR_DIV")


def _same_quantization(ts):
    q = {(tuple(np.asarray(t.scale, np.float32).tolist()), tuple(np.asarray(t.zero_point).tolist())) for t in ts}
    return len(q) == 1


def _foldable(m, op):
    if op.type == "SHAPE":
        return len(op.inputs) == 1 and len(op.outputs) == 1
    if op.type not in FOLD or len(op.outputs) != 1:
        return False
    ins = [m.tensors[i] for i in op.inputs if i >= 0]
    out = m.tensors[op.outputs[0]]
    if not ins or not all(t.is_const for t in ins):
        return False
    if op.type in ARITHMETIC:       # shape arithmetic only: plain integers, no quantization
        return all(t.dtype in ("int32", "int64") and not t.is_quantized for t in ins + [out])
    if out.is_quantized:            # data movement of quantized values: only without any rescale
        data = [m.tensors[op.inputs[0]]] if op.type in ("GATHER", "TILE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS",
                                                         "STRIDED_SLICE") else ins
        return all(t.dtype == out.dtype and t.is_quantized for t in data) and _same_quantization(data + [out])
    return out.dtype in ("int32", "int64", "int8", "uint8", "int16", "bool")


def fold(m):
    """Folds every foldable op of `m` in graph order (in place); returns the number folded."""
    n = 0
    kept = []
    for op in m.ops:
        if not _foldable(m, op):
            kept.append(op)
            continue
        out = m.tensors[op.outputs[0]]
        try:
            if op.type == "SHAPE":
                value = np.asarray(m.tensors[op.inputs[0]].shape, np.int64)
            else:
                value = FOLD[op.type](m, op, *[np.asarray(m.tensors[i].data) for i in op.inputs if i >= 0])
            value = np.asarray(value).astype(out.dtype)
        except (ValueError, IndexError, TypeError) as e:
            m.fail("%s (op #%d) has constant inputs but they do not compute its output tensor %r (%s); the file is "
                   "damaged or was not written by the TFLite converter." % (op.type, op.index, out.name, e))
        if tuple(value.shape) != tuple(out.shape):
            m.fail("%s (op #%d) computes shape %s from its constant inputs, but its output tensor %r is %s."
                   % (op.type, op.index, list(value.shape), out.name, list(out.shape)))
        out.data = value
        n += 1
    m.ops = kept
    return n


def unfolded(m):
    """After `fold`: an op that computes integer shape data from a tensor known only at run time (e.g. SHAPE's
    result sliced from a computed index): one error naming it."""
    for op in m.ops:
        if op.type == "SHAPE" or (op.type in FOLD and op.outputs and m.tensors[op.outputs[0]].dtype
                                  in ("int32", "int64") and not m.tensors[op.outputs[0]].is_quantized):
            dyn = [m.tensors[i].name for i in op.inputs if i >= 0 and not m.tensors[i].is_const]
            m.fail("%s (op #%d) computes the shape data %r at run time from %s (dynamic shapes are not supported; "
                   "only shape computations whose inputs are known when the model is read are folded)."
                   % (op.type, op.index, m.tensors[op.outputs[0]].name, ", ".join(repr(d) for d in dyn) or "?"))
