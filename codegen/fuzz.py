"""A differential fuzzer of the code generator: random small TFLite models, every tensor compared with tf.lite.

`python -m codegen.fuzz [--seed S] [--count N | --seconds T] [--ops A,B] [--chains F] [--qemu-every K]
[--int16 F] [--microkernels on|off|alternate] [--out DIR]`

Each model is one *spec*, a small JSON-able dict (input shape, in/out types, per-channel or per-tensor weights,
whether the whole graph is retyped to TFLite's uint8 kernels, the representative data's scale and offset, and a
list of layers, each an op name with its parameters; `"int16": true` for TFLite's 16x8 mode, int16 activations and
int8 weights, over the ops with a 16x8 kernel: `--int16` is the share of such models).  `build(spec)` turns a spec into a full-integer .tflite with
tf.function + TFLiteConverter (a random representative set); `check(spec)` lowers it to C, runs it with host gcc
(or in QEMU on the Cortex-M4) and compares EVERY traced tensor with tf.lite's BUILTIN_REF (runners/exactness.py).

The ops come from the registry (lowering/registry.py): each registered op needs a generator in GENERATORS; one
without is listed as `no generator` in every run's summary (never silently skipped).  A model whose converted
graph lacks the op it was made for counts as `not built`.  Outcomes: exact, mismatch, refused (a clean ModelError:
an unsupported configuration), not-int8 (the converter left float ops in), codegen-failed (the lowering broke: a
bug), crash (anything else: a bug), reference-error (the converter or tf.lite itself rejects the model).  Each
mismatch, codegen failure or crash is MINIMIZED (input dims, layer parameters and chain length shrunk while the
same kind of outcome persists; one per kind of finding) and written to the output folder as NAME.json (the spec)
+ NAME.tflite; tests/fuzz_cases.json keeps the ones worth replaying in the test suite.

`refusals()` (`--refusals`) is the other half: configurations the generator must refuse.  For each op option the
registry declares (`accepts=` of @register), the values it does not accept are written into a converted model of
the op, as are int16 activations, and each model must be refused with one ModelError line (naming the op and the
option), never lowered.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

import numpy as np

from .errors import ModelError, PipelineError

ACTS = ("NONE", "RELU", "RELU6")


# ---------------------------------------------------------------------------------------------------------------
# Generators: (random.Random, current shape) -> layer dict, or None when the op does not apply to that shape.

def _k(r, hi=4):
    return r.choice([1, 1, 2, 3, hi])


def _conv_geometry(r, shape, depthwise=False):
    if len(shape) != 4:
        return None
    _, H, W, C = shape
    kh, kw = min(_k(r), H + 2), min(_k(r), W + 2)
    pad = r.choice(["SAME", "VALID"])
    if r.random() < 0.3:        # TF: dilation > 1 only with stride 1
        s, d = [1, 1], [r.choice([1, 2, 3]), r.choice([1, 2])]
    else:
        s, d = [r.choice([1, 1, 2, 3]), r.choice([1, 2, 3])], [1, 1]
        if depthwise:
            s[1] = s[0]           # tf.nn.depthwise_conv2d wants equal strides
    if pad == "VALID" and ((kh - 1) * d[0] + 1 > H or (kw - 1) * d[1] + 1 > W):
        kh, kw, d = 1, 1, [1, 1]
    return {"k": [kh, kw], "s": s, "d": d, "pad": pad, "act": r.choice(ACTS)}


def gen_conv(r, shape):
    g = _conv_geometry(r, shape)
    return g and dict(g, op="CONV_2D", out=r.choice([1, 2, 3, 4, 8, 13]), bias=r.random() < 0.8)


def gen_depthwise(r, shape):
    g = _conv_geometry(r, shape, depthwise=True)
    return g and dict(g, op="DEPTHWISE_CONV_2D", mult=r.choice([1, 1, 1, 2, 3]), bias=r.random() < 0.8)


def _mostly_3x3(layer, shape):
    """A one-op depthwise model's layer made MobileNets' 3x3 at stride 1 or 2 (codegen's tvmgen_mk_dw3 ring
    kernel) in about 3 of 10 models instead of 1 in 100.  The choice comes from the layer and shape themselves,
    not from the run's generator, so every later model of a seeded run stays the one it was."""
    import random
    own = random.Random(repr((shape, sorted(layer.items()))))
    if own.random() >= 0.3:
        return layer
    layer = dict(layer, k=[3, 3], d=[1, 1], s=own.choice([[1, 1], [2, 2]]))
    if shape[1] < 3 or shape[2] < 3:
        layer["pad"] = "SAME"
    return layer


def gen_transpose_conv(r, shape):
    if len(shape) != 4:
        return None
    s = [r.choice([1, 2, 2, 3]), r.choice([1, 2, 3])]
    return {"op": "TRANSPOSE_CONV", "k": [_k(r, 3), _k(r, 3)], "s": s, "pad": r.choice(["SAME", "VALID"]),
            "out": r.choice([1, 2, 3, 4, 8]), "bias": r.random() < 0.8}


def gen_fc(r, shape):
    return {"op": "FULLY_CONNECTED", "out": r.choice([1, 2, 5, 10, 16]), "act": r.choice(ACTS),
            "bias": r.random() < 0.8}


def _gen_pool(op):
    def gen(r, shape):
        if len(shape) != 4:
            return None
        _, H, W, _ = shape
        pad = r.choice(["SAME", "VALID"])
        kh, kw = _k(r), _k(r)
        if pad == "VALID":
            kh, kw = min(kh, H), min(kw, W)
        return {"op": op, "k": [kh, kw], "s": [r.choice([1, 2, 3]), r.choice([1, 2, 3])], "pad": pad,
                "act": r.choice(ACTS)}
    return gen


def _broadcast_shape(r, shape):
    """A shape that broadcasts against `shape`: some dims 1, maybe fewer leading dims."""
    b = [d if r.random() < 0.5 else 1 for d in shape]
    drop = r.choice([0, 0, 1, len(shape) - 1]) if len(shape) > 1 else 0
    return b[drop:] or [1]


def _gen_binary(op):
    def gen(r, shape):
        other = r.choice(["const", "const", "self", "scalar"])
        return {"op": op, "other": other, "bshape": _broadcast_shape(r, shape) if other == "const" else [],
                "swap": r.random() < 0.3, "act": r.choice(ACTS) if op in ("ADD", "SUB", "MUL") else "NONE"}
    return gen


def _gen_unary(op, **extra):
    def gen(r, shape):
        d = {"op": op}
        for k, choices in extra.items():
            d[k] = r.choice(choices)
        return d
    return gen


def gen_mean(r, shape):
    rank = len(shape)
    if rank < 2:
        return None
    axes = sorted(r.sample(range(1, rank), r.randint(1, rank - 1)))
    return {"op": "MEAN", "axes": axes, "keep": r.random() < 0.5}


def gen_reshape(r, shape):
    n = int(np.prod(shape))
    divs = [d for d in range(1, n + 1) if n % d == 0]
    a = r.choice(divs)
    return {"op": "RESHAPE", "to": r.choice([[1, n], [1, a, n // a], [1, a, 1, n // a]])}


def gen_squeeze(r, shape):
    ones = [i for i, d in enumerate(shape) if d == 1 and i > 0]
    if not ones or len(shape) < 3:
        return None
    return {"op": "SQUEEZE", "axes": sorted(r.sample(ones, r.randint(1, len(ones))))}


def gen_pad(op):
    def gen(r, shape):
        p = [[0, 0]] + [[r.choice([0, 0, 1, 2]), r.choice([0, 1, 3])] for _ in shape[1:]]
        if not any(a or b for a, b in p):
            p[-1][1] = 1
        return {"op": op, "pads": p, "value": r.choice([-1.0, 0.5, 2.0]) if op == "PADV2" else 0.0}
    return gen


def gen_concat(r, shape):
    return {"op": "CONCATENATION", "axis": r.randint(1, len(shape) - 1) if len(shape) > 1 else 0,
            "other": r.choice(["const", "relu", "self"]), "n": r.choice([1, 2, 3])}


def gen_slice(r, shape):
    b, e, s = [0], [shape[0]], [1]
    for d in shape[1:]:
        st = r.choice([1, 1, 2, 3])
        lo = r.randint(0, max(0, d - 1))
        hi = r.randint(lo + 1, d)
        b.append(lo), e.append(hi), s.append(st)
    return {"op": "STRIDED_SLICE", "begin": b, "end": e, "strides": s}


def gen_resize(r, shape):
    if len(shape) != 4:
        return None
    _, H, W, _ = shape
    mode = r.choice(["plain", "align", "half"])
    return {"op": "RESIZE_NEAREST_NEIGHBOR", "size": [r.choice([1, H, 2 * H, H + 3, max(1, H // 2)]),
                                                     r.choice([1, W, 2 * W, W + 1, max(1, W // 2)])], "mode": mode}


def gen_transpose(r, shape):
    if len(shape) < 2:
        return None
    big = [k for k, d in enumerate(shape) if d > 1]
    rest = list(range(1, len(shape)))
    for _ in range(10):     # one that reorders dimensions > 1 (else the converter writes a RESHAPE)
        r.shuffle(rest)
        if [k for k in rest if k in big] != [k for k in sorted(rest) if k in big]:
            break
    return {"op": "TRANSPOSE", "perm": [0] + rest}


def gen_quantize(r, shape):
    # the converter writes QUANTIZE where the model's uint8 input becomes the int8 graph (and back at the output);
    # the layer itself is a ReLU so that there is a graph between the two
    return {"op": "QUANTIZE", "model": {"in_type": "uint8", "out_type": r.choice(["uint8", "int8"])}}


def gen_dequantize(r, shape):
    return {"op": "DEQUANTIZE", "model": {"out_type": "float32"}}


def _gen_reduce(op):
    def gen(r, shape):
        g = gen_mean(r, shape)
        return g and dict(g, op=op)
    return gen


def gen_reduce_prod(r, shape):
    """REDUCE_PROD over random axes of at most 8 elements in all: a long product of the calibration's floats
    overflows to inf, and the converter then crashes (a segfault in TF, not an error)."""
    for _ in range(10):
        g = gen_mean(r, shape)
        if g is None:
            return None
        if int(np.prod([shape[a] for a in g["axes"]])) <= 8:
            return dict(g, op="REDUCE_PROD")
    return None


def _some_axis(r, shape, most=8):
    """A non-batch axis of `shape` whose size is at most `most` (None if there is none)."""
    axes = [k for k in range(1, len(shape)) if shape[k] <= most]
    return r.choice(axes) if axes else None


def gen_pack(r, shape):
    return {"op": "PACK", "axis": r.randint(0, len(shape)), "n": r.choice([1, 2, 3])}


def gen_unpack(r, shape):
    axis = _some_axis(r, shape)
    return None if axis is None else {"op": "UNPACK", "axis": axis}


def gen_split(r, shape):
    axis = _some_axis(r, shape, 32)
    if axis is None:
        return None
    d = shape[axis]
    return {"op": "SPLIT", "axis": axis - len(shape) * (r.random() < 0.3),
            "n": r.choice([k for k in range(1, min(d, 6) + 1) if d % k == 0])}


def gen_split_v(r, shape):
    axis = _some_axis(r, shape, 32)
    if axis is None or shape[axis] < 2:
        return None
    d = shape[axis]
    cuts = sorted(r.sample(range(1, d), r.randint(1, min(3, d - 1))))
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [d])]
    if r.random() < 0.3:
        sizes[r.randrange(len(sizes))] = -1
    return {"op": "SPLIT_V", "axis": axis, "sizes": sizes}


def gen_tile(r, shape):
    return {"op": "TILE", "mult": [1] + [r.choice([1, 1, 2, 3]) for _ in shape[1:]]}


def gen_gather(r, shape):
    axis = r.randint(1, len(shape) - 1) if len(shape) > 1 else 0
    d = shape[axis]
    kind = r.choice(["vector", "vector", "matrix", "scalar"])
    n = {"vector": [r.randint(1, 6)], "matrix": [2, r.randint(1, 3)], "scalar": []}[kind]
    idx = np.array([r.randrange(d) for _ in range(int(np.prod(n)))]).reshape(n).tolist()
    return {"op": "GATHER", "axis": axis, "indices": idx}


def gen_resize_bilinear(r, shape):
    if len(shape) != 4:
        return None
    _, H, W, _ = shape
    return {"op": "RESIZE_BILINEAR", "size": [r.choice([1, H, 2 * H, H + 3, max(1, H // 2)]),
                                              r.choice([1, W, 2 * W, W + 1, max(1, W // 2)])],
            "mode": r.choice(["plain", "align", "half"])}


def gen_expand_dims(r, shape):
    if len(shape) > 4:
        return None
    return {"op": "EXPAND_DIMS", "axis": r.randint(-len(shape) - 1, len(shape))}


def gen_depth_to_space(r, shape):
    if len(shape) != 4:
        return None
    fits = [b for b in (2, 3, 4) if shape[3] % (b * b) == 0]
    return {"op": "DEPTH_TO_SPACE", "block": r.choice(fits)} if fits else None


def gen_space_to_depth(r, shape):
    if len(shape) != 4:
        return None
    fits = [b for b in (2, 3, 4) if shape[1] % b == 0 and shape[2] % b == 0]
    return {"op": "SPACE_TO_DEPTH", "block": r.choice(fits)} if fits else None


def gen_mirror_pad(r, shape):
    mode = r.choice(["REFLECT", "SYMMETRIC"])
    most = [d - 1 if mode == "REFLECT" else d for d in shape]
    p = [[0, 0]] + [[r.randint(0, min(m, 3)), r.randint(0, min(m, 3))] for m in most[1:]]
    if not any(a or b for a, b in p):
        return None
    return {"op": "MIRROR_PAD", "mode": mode, "pads": p}


def _block_and_pads(r, shape, crop=False):
    if len(shape) not in (3, 4):
        return None
    sp = len(shape) - 2
    block = [r.choice([1, 2, 2, 3]) for _ in range(sp)]
    pads = []
    for d, b in zip(shape[1:1 + sp], block):
        a = r.choice([0, 0, 1, 2])
        total = -(-(d + a) // b) * b        # padded to a multiple of the block
        pads.append([a, total - d - a])
    return block, pads


def gen_space_to_batch(r, shape):
    bp = _block_and_pads(r, shape)
    return bp and {"op": "SPACE_TO_BATCH_ND", "block": bp[0], "pads": bp[1]}


def gen_batch_to_space(r, shape):
    bp = _block_and_pads(r, shape)
    if not bp:
        return None
    block, pads = bp
    crops = [[r.randint(0, min(a + e, b - 1)), 0] for (a, e), b in zip(pads, block)]
    return {"op": "BATCH_TO_SPACE_ND", "block": block, "pads": pads, "crops": crops}


def _gen_arg(op):
    def gen(r, shape):
        if len(shape) < 2:
            return None
        axis = r.randint(1, len(shape) - 1)
        if (int(np.prod(shape)) // shape[axis]) ** 2 > 20000:
            return None             # the gather's output (the rest of the shape, twice): draw a smaller input
        return {"op": op, "axis": axis - len(shape) * (r.random() < 0.3), "out": r.choice(["int32", "int64"])}
    return gen


def gen_lstm(r, shape):
    """An integer LSTM layer.  Keras 3's LSTM no longer converts to the fused op (TF 2.21 writes a WHILE loop, whose
    int8 calibration crashes), so the model is written as the converter writes a Keras 2 LSTM (lstm_model): the
    input shape is the LSTM's own; CIFG, peephole, projection, time-major and clipping are drawn too."""
    batch = r.choice([1, 1, 1, 2, 3])
    steps, feats = r.choice([1, 2, 3, 5, 8, 13, 28]), r.choice([1, 2, 3, 4, 7, 16, 28])
    time_major = r.random() < 0.25
    layer = {"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "units": r.choice([1, 2, 3, 4, 5, 8, 16, 20, 33]),
             "cifg": r.random() < 0.25, "proj": r.choice([0, 0, 0, 1, 3, 8]), "time_major": time_major,
             "cell_clip": r.choice([0.0, 0.0, 10.0, 3.0, 0.5]), "proj_clip": r.choice([0.0, 0.0, 0.5]),
             "cell_log2": r.choice([-12, -12, -11, -15, -13, -9]), "x_zp": r.randrange(-128, 128),
             "h_zp": r.choice([0, 0, r.randrange(-128, 128)]), "hidden_zp": r.choice([0, 0, r.randrange(-20, 20)]),
             "gain": round(10 ** r.uniform(-1, 1), 3), "peephole": r.random() < 0.3}
    if layer["proj"] and layer["proj"] != layer["units"]:
        layer["peephole"] = False       # TFLite's kernel would apply them to the first n_output cells only
    layer["model"] = {"input": [steps, batch, feats] if time_major else [batch, steps, feats],
                      "in_type": "int8", "out_type": "int8", "uint8_kernels": False}
    return layer


GENERATORS = {
    "QUANTIZE": gen_quantize, "DEQUANTIZE": gen_dequantize,
    "CONV_2D": gen_conv, "DEPTHWISE_CONV_2D": gen_depthwise, "FULLY_CONNECTED": gen_fc,
    "TRANSPOSE_CONV": gen_transpose_conv,
    "MAX_POOL_2D": _gen_pool("MAX_POOL_2D"), "AVERAGE_POOL_2D": _gen_pool("AVERAGE_POOL_2D"),
    "ADD": _gen_binary("ADD"), "SUB": _gen_binary("SUB"), "MUL": _gen_binary("MUL"),
    "MAXIMUM": _gen_binary("MAXIMUM"), "MINIMUM": _gen_binary("MINIMUM"),
    "RELU": _gen_unary("RELU"), "RELU6": _gen_unary("RELU6"), "LOGISTIC": _gen_unary("LOGISTIC"),
    "TANH": _gen_unary("TANH"), "HARD_SWISH": _gen_unary("HARD_SWISH"),
    "LEAKY_RELU": _gen_unary("LEAKY_RELU", alpha=[0.01, 0.1, 0.3, 0.7]),
    "MEAN": gen_mean, "SOFTMAX": _gen_unary("SOFTMAX", beta=[1.0, 1.0, 0.5, 2.0]),
    "RESHAPE": gen_reshape, "SQUEEZE": gen_squeeze, "PAD": gen_pad("PAD"), "PADV2": gen_pad("PADV2"),
    "CONCATENATION": gen_concat, "STRIDED_SLICE": gen_slice, "RESIZE_NEAREST_NEIGHBOR": gen_resize,
    "TRANSPOSE": gen_transpose,
    "SUM": _gen_reduce("SUM"), "REDUCE_MAX": _gen_reduce("REDUCE_MAX"), "REDUCE_MIN": _gen_reduce("REDUCE_MIN"),
    "REDUCE_PROD": gen_reduce_prod,
    "PACK": gen_pack, "UNPACK": gen_unpack, "SPLIT": gen_split, "SPLIT_V": gen_split_v, "TILE": gen_tile,
    "GATHER": gen_gather, "RESIZE_BILINEAR": gen_resize_bilinear,
    "EXPAND_DIMS": gen_expand_dims, "DEPTH_TO_SPACE": gen_depth_to_space, "SPACE_TO_DEPTH": gen_space_to_depth,
    "MIRROR_PAD": gen_mirror_pad, "SPACE_TO_BATCH_ND": gen_space_to_batch, "BATCH_TO_SPACE_ND": gen_batch_to_space,
    "ARG_MAX": _gen_arg("ARG_MAX"), "ARG_MIN": _gen_arg("ARG_MIN"), "ABS": _gen_unary("ABS"),
    "SQUARED_DIFFERENCE": _gen_binary("SQUARED_DIFFERENCE"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": gen_lstm,
}

# Ops that only make sense once in a chain, or at its end (they fix the model's types / output scale).
_MODEL_LEVEL = ("QUANTIZE", "DEQUANTIZE", "UNIDIRECTIONAL_SEQUENCE_LSTM")
_CHAIN_END = ("SOFTMAX",)


def registered_ops():
    from .lowering.registry import registry
    return list(registry())


def coverage():
    """(ops with a generator, registered ops without one)."""
    ops = registered_ops()
    return [o for o in ops if o in GENERATORS], [o for o in ops if o not in GENERATORS]


# ---------------------------------------------------------------------------------------------------------------
# Specs

def _random_shape(r, rank=4):
    dims = [r.choice([1, 2, 3, 4, 5, 7, 8, 9, 13, 16]) for _ in range(rank - 1)]
    if rank == 4:
        dims[2] = r.choice([1, 2, 3, 4, 8, 13, 16, 24])
    return [1] + dims


def ops16():
    """The ops with a 16x8 kernel (int16 activations, int8 weights) and a generator, but the model-level ones."""
    from .lowering.registry import registry16
    ok, _ = coverage()
    return [o for o in ok if o in registry16() and o not in _MODEL_LEVEL]


# Share of chains that open with SPACE_TO_BATCH_ND: the only way a batch above 1 arises inside a TFLite model, and
# kernels written for one image computed its first only (found by a 600 s run; now refused by the registry's
# batch_one): every op after it must be exact or refused.
BATCH_OPENER = 0.15


def random_spec(r, op=None, chain=1, int16=False):
    """A random model spec: one layer of `op`, or a chain of `chain` random layers.  `int16`: TFLite's 16x8 mode
    (int16 activations and I/O, int8 weights; the chain drawn from ops16())."""
    ok, _ = coverage()
    if int16:
        ok = ops16()
    rank = 4 if op is None or r.random() < 0.75 else r.choice([2, 3, 4])
    spec = {"input": _random_shape(r, rank), "in_type": r.choice(["int8", "int8", "uint8"]),
            "out_type": r.choice(["int8", "int8", "uint8"]), "per_channel": r.random() < 0.7,
            "uint8_kernels": r.random() < 0.15, "scale": round(10 ** r.uniform(-1.5, 1.5), 4),
            "offset": round(r.uniform(-1.5, 1.5), 3), "seed": r.randrange(1 << 20), "layers": []}
    if spec["uint8_kernels"]:
        spec["in_type"] = spec["out_type"] = "uint8"
        spec["per_channel"] = False
    if int16:
        spec.update(int16=True, in_type="int16", out_type="int16", uint8_kernels=False)
        if r.random() < 0.2:            # the converter's int32 bias option: TFLite's int32-accumulator kernels
            spec["bias32"] = True
    shape = list(spec["input"])
    want = [op] if op else [None] * chain
    if not op and chain > 1 and not int16 and "SPACE_TO_BATCH_ND" in ok and r.random() < BATCH_OPENER:
        want[0] = "SPACE_TO_BATCH_ND"   # the rest of the chain sees a batch above 1 (every op: exact or refused)
    for i, name in enumerate(want):
        for _ in range(20):
            pick = name or r.choice([o for o in ok if o not in _MODEL_LEVEL
                                     and (o not in _CHAIN_END or i == len(want) - 1)])
            layer = GENERATORS[pick](r, shape)
            if layer is None:
                if name:                    # the op needs another input shape: draw one
                    shape = spec["input"] = _random_shape(r, r.choice([2, 3, 4]))
                continue
            if name == "DEPTHWISE_CONV_2D":
                biased = _mostly_3x3(layer, shape)
                try:                        # kept only when valid, so that no extra draw follows
                    if 0 < int(np.prod(layer_shape(spec, biased, shape))) <= 20000:
                        layer = biased
                except Exception:  # noqa: BLE001 (the generator's own layer stays)
                    pass
            try:
                nshape = layer_shape(spec, layer, shape)
            except Exception:  # noqa: BLE001 (an invalid combination: draw again)
                continue
            if int(np.prod(nshape)) == 0 or int(np.prod(nshape)) > 20000:
                continue
            spec["layers"].append(layer)
            if not int16:
                spec.update(layer.get("model", {}))
            shape = nshape
            break
    if spec.get("out_type") == "float32":
        spec["uint8_kernels"] = False
    if int16 and any(la["op"] == "DEPTHWISE_CONV_2D" for la in spec["layers"]):
        spec["per_channel"] = True      # the 16x8 converter fails on per-tensor depthwise weights
        spec.pop("bias32", None)        # tf.lite's 16x8 depthwise refuses an int32 bias (a refusal test has it)
    return spec


def _consts(spec, i):
    return np.random.RandomState((spec["seed"] * 7919 + i) % (2 ** 31))


def apply_layer(tf, spec, i, layer, x):
    """The float TF computation of one layer on `x` (its constants drawn from the spec's seed)."""
    rs = _consts(spec, i)
    op = layer["op"]
    shape = [int(d) for d in x.shape]

    def act(y):
        a = layer.get("act", "NONE")
        return tf.nn.relu(y) if a == "RELU" else tf.nn.relu6(y) if a == "RELU6" else y

    def w(*s):
        return tf.constant((rs.randn(*s) / np.sqrt(max(1, int(np.prod(s[:-1]))))).astype(np.float32))

    if op == "CONV_2D":
        kh, kw = layer["k"]
        y = tf.nn.conv2d(x, w(kh, kw, shape[3], layer["out"]), [1] + layer["s"] + [1], layer["pad"],
                         dilations=[1] + layer["d"] + [1])
        if layer["bias"]:
            y = y + w(layer["out"])
        return act(y)
    if op == "DEPTHWISE_CONV_2D":
        kh, kw = layer["k"]
        y = tf.nn.depthwise_conv2d(x, w(kh, kw, shape[3], layer["mult"]), [1] + layer["s"] + [1], layer["pad"],
                                   dilations=layer["d"])
        if layer["bias"]:
            y = y + w(shape[3] * layer["mult"])
        return act(y)
    if op == "TRANSPOSE_CONV":
        (kh, kw), (sh, sw) = layer["k"], layer["s"]
        size = [d * st if layer["pad"] == "SAME" else (d - 1) * st + max(k, st)
                for d, st, k in zip(shape[1:3], (sh, sw), (kh, kw))]
        y = tf.nn.conv2d_transpose(x, w(kh, kw, layer["out"], shape[3]), [1] + size + [layer["out"]],
                                   [1, sh, sw, 1], layer["pad"])
        if layer["bias"]:
            y = y + w(layer["out"])
        return y
    if op == "FULLY_CONNECTED":
        n = int(np.prod(shape[1:]))
        y = tf.matmul(tf.reshape(x, [1, n]), w(n, layer["out"]))
        if layer["bias"]:
            y = y + w(layer["out"])
        return act(y)
    if op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        f = tf.nn.max_pool2d if op == "MAX_POOL_2D" else tf.nn.avg_pool2d
        return act(f(x, layer["k"], layer["s"], layer["pad"]))
    if op in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"):
        if layer["other"] == "const":
            b = tf.constant(rs.randn(*layer["bshape"]).astype(np.float32) * float(spec["scale"]))
        elif layer["other"] == "scalar":
            b = tf.constant(np.float32(rs.randn() * spec["scale"]))
        else:
            b = tf.nn.relu(x) if op != "ADD" else x * 0.5 + 0.1
        a, b = (b, x) if layer["swap"] else (x, b)
        f = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply, "MAXIMUM": tf.maximum,
             "MINIMUM": tf.minimum, "SQUARED_DIFFERENCE": tf.math.squared_difference}[op]
        return act(f(a, b))
    if op == "RELU":
        return tf.nn.relu(x)
    if op == "RELU6":
        return tf.nn.relu6(x)
    if op == "LOGISTIC":
        return tf.sigmoid(x)
    if op == "TANH":
        return tf.tanh(x)
    if op == "HARD_SWISH":
        return x * tf.nn.relu6(x + 3.0) / 6.0
    if op == "LEAKY_RELU":
        return tf.nn.leaky_relu(x, layer["alpha"])
    if op == "SOFTMAX":
        return tf.nn.softmax(x * layer["beta"]) if layer["beta"] != 1.0 else tf.nn.softmax(x)
    if op == "MEAN":
        return tf.reduce_mean(x, axis=layer["axes"], keepdims=layer["keep"])
    if op == "RESHAPE":
        return tf.reshape(x, layer["to"])
    if op == "SQUEEZE":
        return tf.squeeze(x, layer["axes"])
    if op == "PAD":
        return tf.pad(x, layer["pads"])
    if op == "PADV2":
        return tf.pad(x, layer["pads"], constant_values=layer["value"])
    if op == "CONCATENATION":
        if layer["other"] == "const":
            cs = list(shape)
            cs[layer["axis"]] = layer["n"]
            o = tf.constant(rs.randn(*cs).astype(np.float32) * float(spec["scale"]))
        elif layer["other"] == "relu":
            o = tf.nn.relu(x)
        else:
            o = x
        return tf.concat([x, o], layer["axis"])
    if op == "STRIDED_SLICE":
        return tf.strided_slice(x, layer["begin"], layer["end"], layer["strides"])
    if op == "RESIZE_NEAREST_NEIGHBOR":
        return tf.compat.v1.image.resize_nearest_neighbor(x, layer["size"], align_corners=layer["mode"] == "align",
                                                          half_pixel_centers=layer["mode"] == "half")
    if op == "TRANSPOSE":
        return tf.transpose(x, layer["perm"])
    if op in ("SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        f = {"SUM": tf.reduce_sum, "REDUCE_MAX": tf.reduce_max, "REDUCE_MIN": tf.reduce_min,
             "REDUCE_PROD": tf.reduce_prod}[op]
        return f(x, axis=layer["axes"], keepdims=layer["keep"])
    if op == "PACK":
        return tf.stack([x] * layer["n"], axis=layer["axis"])
    if op == "UNPACK":          # the outputs stacked back in reverse order (PACK): every output is used
        return tf.stack(tf.unstack(x, axis=layer["axis"])[::-1], axis=layer["axis"])
    if op in ("SPLIT", "SPLIT_V"):  # the parts concatenated in reverse order: every output is used
        parts = tf.split(x, layer["n"] if op == "SPLIT" else layer["sizes"], axis=layer["axis"])
        return tf.concat(parts[::-1], axis=layer["axis"]) if len(parts) > 1 else parts[0]
    if op == "TILE":
        return tf.tile(x, layer["mult"])
    if op == "GATHER":
        return tf.gather(x, tf.constant(layer["indices"], tf.int32), axis=layer["axis"])
    if op == "RESIZE_BILINEAR":
        return tf.compat.v1.image.resize_bilinear(x, layer["size"], align_corners=layer["mode"] == "align",
                                                  half_pixel_centers=layer["mode"] == "half")
    if op == "EXPAND_DIMS":
        return tf.expand_dims(x, layer["axis"])
    if op == "DEPTH_TO_SPACE":
        return tf.nn.depth_to_space(x, layer["block"])
    if op == "SPACE_TO_DEPTH":
        return tf.nn.space_to_depth(x, layer["block"])
    if op == "MIRROR_PAD":
        return tf.pad(x, layer["pads"], mode=layer["mode"])
    if op == "SPACE_TO_BATCH_ND":
        return tf.space_to_batch_nd(x, layer["block"], layer["pads"])
    if op == "BATCH_TO_SPACE_ND":       # a SPACE_TO_BATCH_ND first: the batch it splits
        y = tf.space_to_batch_nd(x, layer["block"], layer["pads"])
        return tf.batch_to_space(y, layer["block"], layer["crops"])
    if op == "ABS":
        return tf.abs(x)
    if op in ("ARG_MAX", "ARG_MIN"):     # the index gathers along the same axis: GATHER with run-time indices
        f = tf.argmax if op == "ARG_MAX" else tf.argmin
        idx = f(x, axis=layer["axis"], output_type=getattr(tf, layer["out"]))
        return tf.gather(x, idx, axis=layer["axis"])
    if op in ("QUANTIZE", "DEQUANTIZE"):
        return tf.nn.relu(x) * 0.75 + 0.1 if op == "QUANTIZE" else x * 1.5
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":     # written by lstm_model, not traced: only its output shape
        return tf.zeros(shape[:2] + [layer["proj"] or layer["units"]])
    raise ValueError("no builder for %s" % op)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .modelio.tf_env import import_tf
    tf, _ = import_tf()
    return tf


def layer_shape(spec, layer, shape):
    tf = _tf()
    i = len(spec["layers"])
    return [int(d) for d in apply_layer(tf, spec, i, layer, tf.zeros(shape)).shape]


def edit_flatbuffer(buf, fn):
    """The .tflite bytes `buf` after `fn` edited its object tree (TFLite's own flatbuffer_utils)."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(buf))
    fn(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def as_uint8_kernels(buf):
    """Every int8 tensor as uint8 with zero point + 128 (constants shifted alike): the same real-valued model, run
    by TFLite's uint8 kernels (the converter itself only writes int8 graphs)."""
    from tensorflow.lite.python import schema_py_generated as fb

    def fn(model):
        shifted = set()
        for t in model.subgraphs[0].tensors:
            if t.type != fb.TensorType.INT8:
                continue
            t.type = fb.TensorType.UINT8
            t.quantization.zeroPoint = [int(z) + 128 for z in t.quantization.zeroPoint]
            b = model.buffers[t.buffer]
            if b.data is not None and len(b.data) and t.buffer not in shifted:
                b.data = (np.asarray(b.data, np.uint8).view(np.int8).astype(np.int16) + 128).astype(np.uint8)
                shifted.add(t.buffer)
    return edit_flatbuffer(buf, fn)


def _opcode_index(model, builtin):
    """The index of `builtin`'s operator code in the model (object tree), appended as version 1 if it has none."""
    from tensorflow.lite.python import schema_py_generated as fb

    codes = model.operatorCodes
    for k, c in enumerate(codes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
            return k
    c = fb.OperatorCodeT()
    c.builtinCode = c.deprecatedBuiltinCode = builtin
    c.version = 1
    codes.append(c)
    return len(codes) - 1


def reshapes_as_squeeze(buf, axes_list):
    """The converter writes tf.squeeze as RESHAPE: each RESHAPE that drops exactly the size-1 dimensions `axes` of
    one SQUEEZE layer (in order) becomes that SQUEEZE (squeeze_dims = axes, the shape input removed), which
    tf.lite runs with its own SQUEEZE kernel."""
    from tensorflow.lite.python import schema_py_generated as fb

    def fn(model):
        codes = model.operatorCodes
        sq = _opcode_index(model, fb.BuiltinOperator.SQUEEZE)
        g = model.subgraphs[0]
        todo = list(axes_list)
        for op in g.operators:
            c = codes[op.opcodeIndex]
            if not todo or max(c.builtinCode, c.deprecatedBuiltinCode) != fb.BuiltinOperator.RESHAPE:
                continue
            shape_in = list(g.tensors[op.inputs[0]].shape)
            shape_out = list(g.tensors[op.outputs[0]].shape)
            axes = todo[0]
            if [d for k, d in enumerate(shape_in) if k not in axes] == shape_out and all(
                    shape_in[a] == 1 for a in axes):
                op.opcodeIndex = sq
                op.inputs = [op.inputs[0]]
                op.builtinOptionsType = fb.BuiltinOptions.SqueezeOptions
                op.builtinOptions = fb.SqueezeOptionsT()
                op.builtinOptions.squeezeDims = list(axes)
                todo.pop(0)
    return edit_flatbuffer(buf, fn)


def reshapes_as_expand_dims(buf, axes):
    """The converter writes tf.expand_dims as RESHAPE: each RESHAPE that inserts one size-1 dimension at the axis
    of an EXPAND_DIMS layer (in order) becomes that EXPAND_DIMS, its shape input replaced by a new int32 axis
    constant (the layer's axis as given, negative ones included), which tf.lite runs with its own kernel."""
    from tensorflow.lite.python import schema_py_generated as fb

    def fn(model):
        codes = model.operatorCodes
        ed = _opcode_index(model, fb.BuiltinOperator.EXPAND_DIMS)
        g = model.subgraphs[0]
        todo = list(axes)
        for op in g.operators:
            c = codes[op.opcodeIndex]
            if not todo or max(c.builtinCode, c.deprecatedBuiltinCode) != fb.BuiltinOperator.RESHAPE:
                continue
            shape_in = list(g.tensors[op.inputs[0]].shape)
            shape_out = list(g.tensors[op.outputs[0]].shape)
            axis = todo[0]
            k = axis % (len(shape_in) + 1)
            if shape_in[:k] + [1] + shape_in[k:] != shape_out:
                continue
            b = fb.BufferT()
            b.data = np.asarray([axis], np.int32).view(np.uint8)
            model.buffers.append(b)
            t = fb.TensorT()
            t.name, t.type, t.shape, t.buffer = "expand_dims_axis_%d" % len(g.tensors), fb.TensorType.INT32, [1], \
                len(model.buffers) - 1
            g.tensors.append(t)
            op.opcodeIndex = ed
            op.inputs = [op.inputs[0], len(g.tensors) - 1]
            op.builtinOptionsType = fb.BuiltinOptions.ExpandDimsOptions
            op.builtinOptions = fb.ExpandDimsOptionsT()
            todo.pop(0)
    return edit_flatbuffer(buf, fn)


def lstm_model(spec):
    """A one-op model of the spec's UNIDIRECTIONAL_SEQUENCE_LSTM layer as TFLite's converter writes a full-int8
    Keras LSTM: int8 input, weights (symmetric, one scale each) and hidden state, int32 biases, an int16 cell state
    with a power-of-two scale, the state tensors variables, five intermediates (four empty float placeholders and
    the quantized hidden scale).  Weights and biases are random (the spec's seed), scaled by the layer's gain."""
    from tensorflow.lite.python import schema_py_generated as fb
    layer = spec["layers"][0]
    rs = _consts(spec, 0)
    shape = list(spec["input"])
    steps, batch, feats = shape if layer["time_major"] else (shape[1], shape[0], shape[2])
    units, proj = layer["units"], layer["proj"]
    n_out = proj or units
    model = fb.ModelT()
    model.version = 3
    model.buffers = [fb.BufferT()]
    g = fb.SubGraphT()
    g.tensors = []

    def tensor(name, shp, ttype, scale=None, zp=0, data=None, variable=False):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.isVariable = name.encode(), list(shp), ttype, variable
        t.buffer = 0
        if data is not None:
            b = fb.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
        if scale is not None:
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [float(scale)], [int(zp)]
        g.tensors.append(t)
        return len(g.tensors) - 1

    gain = float(layer["gain"])
    x_scale, h_scale = 0.02 * gain, 1.0 / 128
    inputs = [-1] * 24
    inputs[0] = tensor("input", shape, fb.TensorType.INT8, x_scale, layer["x_zp"])
    for gate in range(4):
        if gate == 0 and layer["cifg"]:
            continue
        for k, cols in ((1, feats), (5, n_out)):
            ws = float(rs.uniform(0.002, 0.02))
            inputs[k + gate] = tensor("w%d_%d" % (k, gate), (units, cols), fb.TensorType.INT8, ws, 0,
                                      rs.randint(-127, 128, (units, cols)).astype(np.int8))
        inputs[12 + gate] = tensor("b%d" % gate, (units,), fb.TensorType.INT32, ws * x_scale, 0,
                                   (rs.randn(units) * 4000 * gain).astype(np.int32))
    if proj:
        inputs[16] = tensor("proj_w", (proj, units), fb.TensorType.INT8, float(rs.uniform(0.002, 0.02)), 0,
                            rs.randint(-127, 128, (proj, units)).astype(np.int8))
        inputs[17] = tensor("proj_b", (proj,), fb.TensorType.INT32, 1e-5, 0,
                            (rs.randn(proj) * 300).astype(np.int32))
    for k in (9, 10, 11) if layer.get("peephole") else ():
        if k == 9 and layer["cifg"]:
            continue
        inputs[k] = tensor("peephole%d" % k, (units,), fb.TensorType.INT16, float(rs.uniform(0.00005, 0.002)), 0,
                           rs.randint(-32767, 32768, units).astype(np.int16))
    inputs[18] = tensor("output_state", (batch, n_out), fb.TensorType.INT8, h_scale, layer["h_zp"], variable=True)
    inputs[19] = tensor("cell_state", (batch, units), fb.TensorType.INT16, 2.0 ** layer["cell_log2"], 0,
                        variable=True)
    inter = [tensor(n + "_intermediate", (0,), fb.TensorType.FLOAT32)
             for n in ("input_to_input", "input_to_forget", "input_to_cell", "input_to_output")]
    inter.append(tensor("effective_hidden_scale_intermediate", (0,), fb.TensorType.INT8,
                        float(rs.uniform(0.004, 0.02)), layer["hidden_zp"]))
    out = tensor("output", shape[:2] + [n_out], fb.TensorType.INT8, h_scale, layer["h_zp"])
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs, op.intermediates = 0, inputs, [out], inter
    op.builtinOptionsType = fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions
    o = fb.UnidirectionalSequenceLSTMOptionsT()
    o.fusedActivationFunction, o.cellClip, o.projClip = fb.ActivationFunctionType.TANH, layer["cell_clip"], \
        layer["proj_clip"]
    o.timeMajor = layer["time_major"]
    op.builtinOptions = o
    g.operators, g.inputs, g.outputs = [op], [inputs[0]], [out]
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    code.version = 1
    model.operatorCodes, model.subgraphs = [code], [g]
    from tensorflow.lite.tools import flatbuffer_utils
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def build(spec):
    """The spec as a full-integer TFLite flatbuffer (bytes)."""
    if any(layer["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM" for layer in spec["layers"]):
        return lstm_model(spec)
    tf = _tf()
    from .modelio.tf_env import quiet

    layers = spec["layers"]

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(spec["input"], tf.float32)])
        def f(self, x):
            for i, layer in enumerate(layers):
                x = apply_layer(tf, spec, i, layer, x)
            return x

    m = M()
    rs = np.random.RandomState(spec["seed"])
    rep = [(rs.randn(*spec["input"]) * spec["scale"] + spec["offset"] * spec["scale"]).astype(np.float32)
           for _ in range(8)]
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.f.get_concrete_function()], m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
                                      if spec.get("int16") else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = getattr(tf, spec["in_type"])
    conv.inference_output_type = getattr(tf, spec["out_type"])
    if spec.get("bias32"):
        conv._experimental_full_integer_quantization_bias_type = tf.int32
    if not spec.get("per_channel", True):
        conv._experimental_disable_per_channel = True
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    with quiet():
        buf = conv.convert()
    expands = [layer["axis"] for layer in layers if layer["op"] == "EXPAND_DIMS"]
    if expands:
        buf = reshapes_as_expand_dims(buf, expands)
    squeezes = [layer["axes"] for layer in layers if layer["op"] == "SQUEEZE"]
    if squeezes:
        buf = reshapes_as_squeeze(buf, squeezes)
    if spec.get("uint8_kernels"):
        buf = as_uint8_kernels(buf)
    return buf


# ---------------------------------------------------------------------------------------------------------------
# Checking one spec

def _reference_worker(conn):
    from .runners.exactness import reference_tensors
    while True:
        try:
            args = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", reference_tensors(*args)))
        except Exception as e:  # noqa: BLE001 (sent back and reported as the model's outcome)
            conn.send(("error", "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[-1:] or "")))


class ReferenceAborted(RuntimeError):
    pass


class _Reference:
    """tf.lite BUILTIN_REF in a child process: some of its kernels abort the whole process on models they reject
    (a TFLITE_CHECK, e.g. in its softmax), which must be one model's outcome, not the end of the run."""

    def __init__(self):
        self.proc = self.conn = None

    def __call__(self, path, inputs, tensor_ids):
        import multiprocessing
        if self.proc is None or not self.proc.is_alive():
            ctx = multiprocessing.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(target=_reference_worker, args=(child,), daemon=True)
            self.proc.start()
            child.close()
        self.conn.send((os.fspath(path), inputs, tensor_ids))
        try:
            kind, value = self.conn.recv()
        except (EOFError, ConnectionError):
            self.proc.join(5)
            code = self.proc.exitcode
            self.proc = None
            raise ReferenceAborted("tf.lite's reference interpreter aborted (exit code %s)" % code) from None
        if kind == "error":
            raise RuntimeError(value)
        return value


REFERENCE = _Reference()


class Outcome:
    def __init__(self, kind, detail="", ops=(), built=True):
        self.kind = kind            # exact | mismatch | refused | not-int8 | codegen-failed | crash | reference-error
        self.detail = detail
        self.ops = list(ops)        # the op types of the converted graph
        self.built = built          # the graph has the op the spec was made for

    @property
    def bad(self):
        return self.kind in ("mismatch", "codegen-failed", "crash")

    def __repr__(self):
        return "%s%s" % (self.kind, ": " + self.detail if self.detail else "")


def check(spec, workdir, target="host", n_inputs=4, keep=None):
    """Builds, lowers and runs `spec`; an Outcome.  `keep`: a path for the .tflite."""
    from .emit import mlf
    from .frontend import reader
    from .runners import exactness

    os.makedirs(workdir, exist_ok=True)
    if "microkernels" in spec:
        os.environ["TINYML_MICROKERNELS"] = "1" if spec["microkernels"] else "0"
    try:
        buf = build(spec)
    except Exception as e:  # noqa: BLE001 (TF rejected the combination: not the code generator's business)
        return Outcome("reference-error", "converter: %s" % str(e).strip().splitlines()[-1:], built=False)
    path = keep or os.path.join(workdir, "model.tflite")
    with open(path, "wb") as f:
        f.write(buf)
    try:
        ops = [op.type for op in reader._parse(path, buf).ops]
    except ModelError as e:         # e.g. a chain that reached more dimensions than TFLite allows: a clean refusal
        return Outcome("refused", str(e).replace(path, "model.tflite"), [], False)
    want = {layer["op"] for layer in spec["layers"]}
    built = want <= set(ops)
    tar = os.path.join(workdir, "model.tar")
    try:
        mlf.build_mlf(path, tar, model_name="fz")
    except ModelError as e:
        msg = str(e)
        kind = "codegen-failed" if "code generation failed" in msg or "internal error" in msg else "refused"
        if "not fully integer-quantized" in msg:
            kind = "not-int8"       # the converter left float ops in: nothing the code generator could do
        return Outcome(kind, msg.replace(path, "model.tflite"), ops, built)
    except Exception as e:  # noqa: BLE001 (a traceback in the pipeline: a bug)
        return Outcome("crash", "%s: %s" % (type(e).__name__, e), ops, built)
    try:
        inputs = exactness.random_inputs(path, n_inputs, seed=spec["seed"])
        rep = exactness.compare(path, tar, inputs, workdir, target=target, reference=REFERENCE)
    except ReferenceAborted as e:
        return Outcome("reference-error", str(e), ops, built)
    except PipelineError as e:
        return Outcome("crash", str(e)[:500], ops, built)
    except (RuntimeError, ValueError) as e:   # the interpreter refuses the model
        return Outcome("reference-error", str(e).strip().splitlines()[-1] if str(e).strip() else "", ops, built)
    if rep.exact:
        return Outcome("exact", "", ops, built)
    return Outcome("mismatch", "; ".join(map(repr, rep.mismatches)) or "outputs differ", ops, built)


# ---------------------------------------------------------------------------------------------------------------
# Minimizing

def _smaller(v):
    out = []
    for c in (1, v // 2, v - 1):
        if 1 <= c < v and c not in out:
            out.append(c)
    return out


def _candidates(spec):
    """Specs one step smaller than `spec`: a layer dropped, an input dim or a layer parameter reduced."""
    import copy
    if len(spec["layers"]) > 1:
        for i in range(len(spec["layers"])):
            s = copy.deepcopy(spec)
            del s["layers"][i]
            yield s
    for i, v in enumerate(spec["input"]):
        for c in _smaller(v):
            s = copy.deepcopy(spec)
            s["input"][i] = c
            yield s
    for li, layer in enumerate(spec["layers"]):
        for key, v in layer.items():
            if isinstance(v, bool) or key in ("axes", "perm", "begin", "end", "to", "sizes", "indices",
                                              "mult"):
                continue
            if isinstance(v, int):
                for c in _smaller(v):
                    s = copy.deepcopy(spec)
                    s["layers"][li][key] = c
                    yield s
            elif isinstance(v, list) and all(isinstance(e, int) for e in v):
                for j, e in enumerate(v):
                    for c in _smaller(e):
                        s = copy.deepcopy(spec)
                        s["layers"][li][key][j] = c
                        yield s
    for key, simpler in (("uint8_kernels", False), ("per_channel", True), ("in_type", "int8"),
                         ("out_type", "int8")):
        if spec.get(key) != simpler and not (key.endswith("_type") and any(
                layer["op"] in _MODEL_LEVEL for layer in spec["layers"])):
            s = copy.deepcopy(spec)
            s[key] = simpler
            yield s


def size(spec):
    return (len(spec["layers"]), int(np.prod(spec["input"])),
            sum(sum(v) if isinstance(v, list) and all(isinstance(e, int) for e in v) else
                (v if isinstance(v, int) and not isinstance(v, bool) else 0)
                for layer in spec["layers"] for v in layer.values()))


def signature(outcome):
    """What kind of finding an outcome is: its kind and the op types that differ (or the failure text's head)."""
    if outcome.kind == "mismatch":
        return "mismatch " + ",".join(sorted({part.split(" #")[0].strip() for part in outcome.detail.split(";")}))
    return outcome.kind + " " + outcome.detail.split("(")[-1][:60]


def minimize(spec, outcome, workdir, target="host", budget=80, log=None, deadline=None):
    """The smallest spec (greedy, at most `budget` checks, until `deadline`) that still gives an outcome of the
    same kind."""
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for cand in _candidates(spec):
            if tries >= budget or (deadline is not None and time.time() > deadline):
                break
            tries += 1
            o = check(cand, workdir, target)
            if o.kind == outcome.kind and o.built and size(cand) < size(spec):
                spec, outcome, improved = cand, o, True
                if log:
                    log("    smaller: input %s, %s -> %s" % (cand["input"], [la["op"] for la in cand["layers"]], o))
                break
    return spec, outcome


# ---------------------------------------------------------------------------------------------------------------
# Refusals: op options outside what the registry declares

def option_edits():
    """[(op, option, getter, bad raw value, what is accepted)] for every registered op's declared options."""
    from .lowering.registry import registry
    out = []
    for name, d in registry().items():
        for key, acc in (d.accepts or {}).items():
            getter = d.options.fields[key]
            getter = getter[0] if isinstance(getter, tuple) else getter
            for bad in acc.bad:
                out.append((name, key, getter, bad, acc.text))
    return out


def with_option(buf, op_type, getter, value):
    """`buf` with builtin option `getter` (e.g. StrideH) of every `op_type` op set to the raw `value`."""
    from tensorflow.lite.python import schema_py_generated as fb
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    attr = getter[0].lower() + getter[1:]

    def fn(model):
        for op in model.subgraphs[0].operators:
            oc = model.operatorCodes[op.opcodeIndex]
            if names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode)) == op_type:
                setattr(op.builtinOptions, attr, value)
    return edit_flatbuffer(buf, fn)


def as_int16_activations(buf, zero_point=0):
    """Every int8/uint8 activation (non-constant tensor) retyped to int16 with `zero_point`: a type the generator
    takes only for ops with a 16x8 kernel, and then only with zero point 0 (TFLite's symmetric int16)."""
    from tensorflow.lite.python import schema_py_generated as fb

    def fn(model):
        for t in model.subgraphs[0].tensors:
            if t.type in (fb.TensorType.INT8, fb.TensorType.UINT8) and not (
                    model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)):
                t.type = fb.TensorType.INT16
                if t.quantization is not None and t.quantization.zeroPoint is not None:
                    t.quantization.zeroPoint = [zero_point for _ in t.quantization.zeroPoint]
    return edit_flatbuffer(buf, fn)


def check_refused(buf, workdir, names=()):
    """None if lowering the model (build_mlf, what the mlf stage runs) refuses it with one ModelError line that
    names each of `names`, and writes no MLF; else what happened instead."""
    from .emit import mlf
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "refuse.tflite")
    tar = os.path.join(workdir, "refuse.tar")
    with open(path, "wb") as f:
        f.write(buf)
    if os.path.exists(tar):
        os.remove(tar)
    try:
        mlf.build_mlf(path, tar, model_name="fz")
    except ModelError as e:
        msg = str(e)
        if "\n" in msg or not all(n in msg for n in names):
            return "refused, but not in one line naming %s: %s" % (" and ".join(names), msg)
        if "code generation failed" in msg or "internal error" in msg:
            return "refused only by a failure inside the lowering: %s" % msg
        if os.path.exists(tar):
            return "refused, but the MLF was written"
        return None
    except Exception as e:  # noqa: BLE001
        return "a traceback instead of one error line: %s: %s" % (type(e).__name__, e)
    return "accepted and lowered to C"


def refusals(seed=0, ops=None, workdir=None, log=None):
    """Every declared option's values outside what it accepts (option_edits), and int16 activations (for an op with
    a 16x8 kernel: int16 activations with a non-zero zero point), written into a converted model of the op: each
    must be refused with one error line.  Returns (checks, [failure text])."""
    from .lowering.registry import registry16
    r = random.Random(seed)
    work = workdir or tempfile.mkdtemp(prefix="tinyml-refuse-")
    edits = {}
    for op, key, getter, bad, text in option_edits():
        edits.setdefault(op, []).append((key, getter, bad))
    covered, _ = coverage()
    checks, failures = 0, []
    for op in ops or covered:
        if op in _MODEL_LEVEL:
            continue
        for _ in range(10):             # a spec whose converted graph has the op and that lowers
            spec = random_spec(r, op)
            if any(la["op"] == op for la in spec["layers"]):
                try:
                    buf = build(spec)
                except Exception:  # noqa: BLE001
                    continue
                if _has_op(buf, op):
                    break
        else:
            if edits.get(op):
                failures.append("%s: no model of it could be built to edit" % op)
            elif log:
                log("  refuse %-24s (skipped: the converter wrote no model with it in 10 tries)" % op)
            continue
        if op in registry16():
            cases = [("int16 zero point 1", as_int16_activations(buf, 1), ("zero point",))]
        else:
            cases = [("int16 activations", as_int16_activations(buf), ())]
        for key, getter, bad in edits.get(op, []):
            cases.append(("%s = %r" % (key, bad), with_option(buf, op, getter, bad), (op, key)))
        for what, edited, names in cases:
            checks += 1
            err = check_refused(edited, work, names)
            if log:
                log("  refuse %-24s %-22s %s" % (op, what, err or "refused with one error line"))
            if err:
                failures.append("%s with %s: %s" % (op, what, err))
    return checks, failures


def _has_op(buf, op_type):
    import tflite
    from .frontend.reader import _builtin_names
    m = tflite.Model.GetRootAsModel(buf, 0)
    names = _builtin_names()
    g = m.Subgraphs(0)
    for i in range(g.OperatorsLength()):
        oc = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        if names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())) == op_type:
            return True
    return False


# ---------------------------------------------------------------------------------------------------------------
# The run

def run(seed=0, count=None, seconds=None, ops=None, chains=0.3, qemu_every=0, microkernels="alternate",
        out=None, minimize_budget=80, log=print, workdir=None, record_specs=False, int16=0.0):
    """Fuzzes; returns a summary dict (counts per op and outcome, the minimized findings; with `record_specs` the
    spec of every model run, under "specs").  `int16`: the share of models in TFLite's 16x8 mode (their ops
    counted as "OP/16x8" in per_op)."""
    r = random.Random(seed)
    covered, missing = coverage()
    if ops:
        unknown = [o for o in ops if o not in covered]
        if unknown:
            raise PipelineError("--ops: %s %s (ops with a generator: %s)"
                                % (", ".join(unknown), "have no generator" if set(unknown) <= set(missing) else
                                   "are not registered ops", ", ".join(covered)))
    pool = list(ops or covered)
    if count is None and seconds is None:
        count = 20
    work = workdir or tempfile.mkdtemp(prefix="tinyml-fuzz-")
    summary = {"seed": seed, "models": 0, "no_generator": missing, "outcomes": {}, "per_op": {},
               "not_built": {}, "qemu": 0, "findings": [], "seconds": 0.0}
    t0 = time.time()
    pool16 = [o for o in pool if o in ops16()]
    k = n_single = n16 = 0
    while True:
        if count is not None and k >= count:
            break
        if seconds is not None and time.time() - t0 >= seconds:
            break
        sixteen = bool(int16 and pool16 and r.random() < int16)
        chain = r.random() < chains and not ops
        if sixteen:
            spec = random_spec(r, None if chain else pool16[n16 % len(pool16)], chain=r.randint(2, 4) if chain
                               else 1, int16=True)
            n16 += not chain
        else:
            spec = random_spec(r, None if chain else pool[n_single % len(pool)],
                               chain=r.randint(2, 4) if chain else 1)
            n_single += not chain               # the single-op models take the ops in turn
        if not spec["layers"]:
            k += 1
            continue
        mk = {"on": "1", "off": "0"}.get(microkernels, "0" if r.random() < 0.5 else "1")
        spec["microkernels"] = mk == "1"
        os.environ["TINYML_MICROKERNELS"] = mk
        target = "cortex-m4" if qemu_every and k % qemu_every == qemu_every - 1 else "host"
        o = check(spec, os.path.join(work, "m"), target)
        k += 1
        summary["models"] += 1
        if record_specs:
            summary.setdefault("specs", []).append(spec)
        summary["qemu"] += target == "cortex-m4"
        summary["outcomes"][o.kind] = summary["outcomes"].get(o.kind, 0) + 1
        for name in {layer["op"] for layer in spec["layers"]}:
            per = summary["per_op"].setdefault(name + ("/16x8" if sixteen else ""), {})
            per[o.kind] = per.get(o.kind, 0) + 1
            if not o.built and name not in o.ops:
                summary["not_built"][name] = summary["not_built"].get(name, 0) + 1
        tag = "%4d %-9s %-5s %s%s" % (k, target, "mk" if spec["microkernels"] else "te",
                                      "16x8 " if sixteen else "", " > ".join(layer["op"] for layer in spec["layers"]))
        log("%s: %s" % (tag, o if o.kind != "refused" else "refused (%s)" % o.detail.split(": ", 1)[-1][:100]))
        if o.bad:
            sig = signature(o)
            seen = [f for f in summary["findings"] if f["signature"] == sig]
            if seen:                    # one minimized case per kind of finding; the others are counted
                seen[0]["count"] += 1
                continue
            small, so = minimize(spec, o, os.path.join(work, "min"), target, minimize_budget, log,
                                 None if seconds is None else t0 + seconds)
            finding = {"signature": sig, "count": 1, "spec": small, "outcome": repr(so), "original": spec}
            summary["findings"].append(finding)
            log("  minimized: %s" % json.dumps(small))
            if out:
                os.makedirs(out, exist_ok=True)
                name = "case_%d_%d" % (seed, k)
                with open(os.path.join(out, name + ".json"), "w") as f:
                    json.dump(finding, f, indent=1)
                with open(os.path.join(out, name + ".tflite"), "wb") as f:
                    f.write(build(small))
    summary["seconds"] = round(time.time() - t0, 1)
    os.environ.pop("TINYML_MICROKERNELS", None)
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m codegen.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, help="models to run (default 20 unless --seconds)")
    p.add_argument("--seconds", type=float, help="run until this many seconds have passed")
    p.add_argument("--ops", help="comma-separated registered ops (default: every op with a generator)")
    p.add_argument("--chains", type=float, default=0.3, help="share of models that are random chains of 2-4 ops")
    p.add_argument("--qemu-every", type=int, default=0, help="every K-th model runs on the Cortex-M4 in QEMU")
    p.add_argument("--int16", type=float, default=0.25,
                   help="share of models in TFLite's 16x8 mode (int16 activations, int8 weights)")
    p.add_argument("--microkernels", choices=("on", "off", "alternate"), default="alternate",
                   help="TINYML_MICROKERNELS for the lowering (alternate: every other model)")
    p.add_argument("--out", default="fuzz-findings", help="folder for minimized findings (.json + .tflite)")
    p.add_argument("--list", action="store_true", help="list the registered ops and whether each has a generator")
    p.add_argument("--refusals", action="store_true",
                   help="instead: check that every option value the registry does not accept, and int16 activations, "
                        "are refused with one error line")
    a = p.parse_args(argv)
    if a.list:
        covered, missing = coverage()
        for o in registered_ops():
            print("%-26s %s" % (o, "generator" if o in covered else "NO GENERATOR (not fuzzed)"))
        return 0
    if a.refusals:
        n, failures = refusals(a.seed, a.ops.split(",") if a.ops else None, log=print)
        print("%d refusal checks, %d failed%s" % (n, len(failures), "".join("\n  " + f for f in failures)))
        return 1 if failures else 0
    try:
        s = run(a.seed, a.count, a.seconds, a.ops.split(",") if a.ops else None, a.chains, a.qemu_every,
                a.microkernels, a.out, int16=a.int16)
    except PipelineError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in s.items() if k != "findings"}, indent=1))
    for f in s["findings"]:
        print("finding (%d model(s)): %s\n  minimized: %s" % (f["count"], f["outcome"], json.dumps(f["spec"])))
    print("%d model(s), %d kind(s) of finding%s" % (s["models"], len(s["findings"]),
                                                  " written to %s/" % a.out if s["findings"] else ""))
    return 1 if s["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
