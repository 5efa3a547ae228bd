"""Pooling and elementwise ops (MAX_POOL_2D, AVERAGE_POOL_2D, ADD, RELU, RELU6, DEQUANTIZE) lowered
by codegen/lowering/: small Keras models trained for one short epoch on random data are
converted to full-int8 TFLite, turned into C with codegen.emit.mlf.build_mlf, compiled with the host
gcc and compared byte for byte with TFLite's reference kernels (BUILTIN_REF) -- the final output
and, through the TVMGEN_TRACE hook, every intermediate tensor."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen.frontend import reader  # noqa: E402
from codegen.errors import ModelError  # noqa: E402
from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402

pytestmark = pytest.mark.heavy      # every case trains, converts and compiles a model (TVM + gcc): minutes; `pytest -m 'not heavy'` skips it

N_IMAGES = 50


def _pools(shape):
    """MaxPool / AveragePool with SAME and VALID padding, strides 1 and 2, and an ADD."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(1)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(8, 3, padding="same")(x)
    a = L.MaxPooling2D(2)(x)                                     # VALID, stride 2
    a = L.AveragePooling2D(3, strides=1, padding="same")(a)      # SAME, stride 1
    a = L.ReLU()(a)
    b = L.AveragePooling2D(3, strides=2, padding="same")(x)      # SAME, stride 2
    b = L.MaxPooling2D(3, strides=1, padding="same")(b)          # SAME, stride 1
    b = L.ReLU(6.0)(b)
    y = L.Add()([a, b])
    y = L.AveragePooling2D(3, strides=1, padding="valid")(y)     # VALID, stride 1
    y = L.AveragePooling2D(2, strides=2, padding="valid")(y)     # VALID, stride 2
    y = L.MaxPooling2D(3, strides=2, padding="same")(y)          # SAME, stride 2
    return keras.Model(inp, L.Conv2D(4, 1)(y))


def _residual(shape):
    """Residual ADDs of two conv branches, and a broadcast ADD (1,H,W,C) + (C,)."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(2)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    y = L.Add()([L.Conv2D(8, 3, padding="same")(x), L.Conv2D(8, 1)(x)])
    y = L.ReLU()(y)                                              # fused into the ADD
    y = L.Add()([y, L.Conv2D(8, 1)(y)])
    y = L.Add()([y, L.GlobalAveragePooling2D(keepdims=True)(y)])  # broadcast
    y = L.GlobalAveragePooling2D()(y)
    return keras.Model(inp, L.Dense(3)(y))


def _relus(shape):
    """Standalone RELU / RELU6: their inputs have two consumers, so they cannot fuse."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(8, 3, padding="same")(x)
    s = L.Add()([x, L.Conv2D(8, 1)(x)])
    s2 = L.Add()([L.ReLU()(s), s])
    p = L.MaxPooling2D(2)(s2)
    q = L.Add()([L.ReLU(6.0)(p), p])
    return keras.Model(inp, L.Conv2D(4, 1)(L.ReLU(6.0)(q)))


def _float_tail(shape):
    """int8 body whose float32 output comes from a final DEQUANTIZE."""
    import keras
    L = keras.layers
    keras.utils.set_random_seed(4)
    inp = keras.Input(shape, batch_size=1)
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(8, 3, strides=2, padding="same")(x)
    x = L.AveragePooling2D(2)(x)
    return keras.Model(inp, L.Add()([L.Conv2D(4, 1)(x), L.Conv2D(4, 1)(x)]))


# name: (builder, input shape, input type, output type, ops that must occur)
CASES = {
    "pools_i8": (_pools, (16, 16, 3), "int8", "int8", {"MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD"}),
    "pools_u8": (_pools, (16, 16, 3), "uint8", "uint8", {"MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD"}),
    "residual_u8": (_residual, (24, 24, 4), "uint8", "uint8", {"ADD", "MEAN"}),
    "relus_i8": (_relus, (16, 16, 3), "int8", "int8", {"RELU", "RELU6", "ADD", "MAX_POOL_2D"}),
    "relus_u8": (_relus, (24, 24, 4), "uint8", "uint8", {"RELU", "RELU6", "ADD"}),
    "float_out": (_float_tail, (16, 16, 3), "int8", "float32",
                  {"DEQUANTIZE", "AVERAGE_POOL_2D", "ADD"}),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("op_models")
    rs = np.random.RandomState(0)
    out = {}
    built = {}
    for name, (fn, shape, in_type, out_type, _) in CASES.items():
        X = rs.randint(0, 256, (N_IMAGES,) + shape).astype(np.uint8)
        key = (fn, shape)
        if key not in built:  # the int8 and uint8 variants share one trained Keras model
            built[key] = fit_briefly(fn(shape), X)
        p = str(d / ("%s.tflite" % name))
        with open(p, "wb") as f:
            f.write(convert_int8(built[key], X, in_type, out_type))
        out[name] = (p, as_input_dtype(X, in_type))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_ops_bit_exact_with_tflite_reference(models, case, tmp_path):
    path, X = models[case]
    expected_ops = CASES[case][4]
    m = reader.load(path)
    types = [op.type for op in m.ops]
    print("%s ops: %s" % (case, types))
    for op in m.ops:
        if op.type in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD"):
            print("  #%d %s %s" % (op.index, op.type, op.options))
    assert set(types) >= expected_ops, types

    meta, rep = check_exact(path, X, tmp_path, expected_ops, model_name="ops_" + case)
    assert {o["type"] for o in meta["ops"]} >= expected_ops
    assert len(np.unique(rep.reference_outputs)) > 4  # the outputs are not trivially constant
    print("  bit-exact per op: %s" % sorted({t for _, t in rep.checked_ops}))


def test_float_op_after_dequantize_is_rejected(models):
    """A DEQUANTIZE whose float output feeds anything but the model output stays unsupported;
    checked on a copy of a parsed model (the converter does not emit such graphs for int8)."""
    path, _ = models["float_out"]
    m = reader._parse(path, open(path, "rb").read())
    deq = [op for op in m.ops if op.type == "DEQUANTIZE"][0]
    # pretend the float tensor feeds a further (float) op and something else is the output
    m.output_ids = [deq.inputs[0]]
    with pytest.raises(ModelError) as e:
        reader._validate(m)
    assert "DEQUANTIZE" in str(e.value) and "float_out.tflite" in str(e.value)
