"""Pooling and elementwise ops (MAX_POOL_2D, AVERAGE_POOL_2D, ADD, RELU, RELU6, DEQUANTIZE) lowered
by codegen/tvm_lower.py: small Keras models trained for one short epoch on random data are
converted to full-int8 TFLite, turned into C with codegen.mlf.build_mlf, compiled with the host
gcc and compared byte for byte with TFLite's reference kernels (BUILTIN_REF) -- the final output
and, through the TVMGEN_TRACE hook, every intermediate tensor."""

import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen import mlf, tflite_model  # noqa: E402
from codegen.tflite_model import ModelError  # noqa: E402
from test_mlf import MAIN_C, _build_and_run, _check_sources, _reference  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_IMAGES = 50


def _train(m, X):
    """One short epoch on random targets so BatchNorm-free layers get non-trivial ranges."""
    import keras
    Xf = X[:16].astype(np.float32)
    y = np.random.RandomState(0).rand(*((16,) + tuple(m.output_shape[1:]))).astype(np.float32)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    m.fit(Xf, y, epochs=1, batch_size=8, verbose=0)
    return m


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


def _convert(model, X, in_type, out_type):
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for i in range(16):
            yield [X[i:i + 1].astype(np.float32)]

    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = getattr(tf, in_type)
    conv.inference_output_type = getattr(tf, out_type)
    return conv.convert()


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
            built[key] = _train(fn(shape), X)
        p = str(d / ("%s.tflite" % name))
        with open(p, "wb") as f:
            f.write(_convert(built[key], X, in_type, out_type))
        if in_type == "int8":
            X = (X.astype(np.int16) - 128).astype(np.int8)
        out[name] = (p, X)
    return out


def _trace_run(tar_path, name, X, workdir):
    """Build with TVMGEN_TRACE writing every kernel's output tensor to stderr; returns
    {op index: (n_images, nbytes) uint8 array} and the op indices in call order."""
    ext = os.path.join(workdir, "trace_mlf")
    with tarfile.open(tar_path) as tar:
        tar.extractall(ext)
    srcdir = os.path.join(ext, "codegen", "host", "src")
    incdir = os.path.join(ext, "codegen", "host", "include")
    sources = sorted(os.path.join(srcdir, f) for f in os.listdir(srcdir))
    main_c = os.path.join(workdir, "trace_main.c")
    with open(main_c, "w") as f:
        f.write(MAIN_C % {"name": name, "NAME": name.upper()})
    exe = os.path.join(workdir, "trace_run")
    r = subprocess.run(["gcc", "-std=c99", "-O2", "-include", "stdio.h",
                        "-DTVMGEN_TRACE(i,p,n)=fwrite((p),1,(n),stderr)", "-I", incdir, main_c]
                       + sources + ["-o", exe, "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib2 = open(os.path.join(srcdir, "%s_lib2.c" % name)).read()
    calls, kernel = [], None  # (op index, output bytes) per kernel call, in call order
    for line in open(os.path.join(srcdir, "%s_lib2.c" % name)):
        k = re.match(r"  tvmgen_%s_\w+?_(\d+)\(" % name, line)
        if k:
            kernel = int(k.group(1))
        t = re.match(r"  TVMGEN_TRACE\(\d+, .*, (\d+)\);$", line)
        if t:
            calls.append((kernel, int(t.group(1))))
    r = subprocess.run([exe], input=np.ascontiguousarray(X).tobytes(), capture_output=True,
                       check=True)
    per_image = sum(n for _, n in calls)
    data = np.frombuffer(r.stderr, np.uint8)
    assert data.size == per_image * len(X)
    data = data.reshape(len(X), per_image)
    out, pos = {}, 0
    for idx, n in calls:
        out[idx] = data[:, pos:pos + n]
        pos += n
    return out, [i for i, _ in calls]


def _reference_all(path, X, model):
    """BUILTIN_REF with every intermediate tensor kept: {tensor index: (n_images, nbytes)}."""
    import tensorflow as tf
    it = tf.lite.Interpreter(
        model_path=path,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    wanted = [op.outputs[0] for op in model.ops]
    res = {t: [] for t in wanted}
    for x in X:
        it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        it.invoke()
        for t in wanted:
            res[t].append(np.ascontiguousarray(it.get_tensor(t)).view(np.uint8).ravel().copy())
    return {t: np.array(v) for t, v in res.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_ops_bit_exact_with_tflite_reference(models, case, tmp_path):
    path, X = models[case]
    expected_ops = CASES[case][4]
    m = tflite_model.load(path)
    types = [op.type for op in m.ops]
    print("%s ops: %s" % (case, types))
    for op in m.ops:
        if op.type in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD"):
            print("  #%d %s %s" % (op.index, op.type, op.options))
    assert set(types) >= expected_ops, types

    name = "ops_" + case
    tar_path = str(tmp_path / "m.tar")
    meta = mlf.build_mlf(path, tar_path, model_name=name)
    assert {o["type"] for o in meta["ops"]} >= expected_ops
    ext, sources, incdir, got = _build_and_run(tar_path, name, X, str(tmp_path))
    if CASES[case][3] != "float32":
        _check_sources(ext, sources, name, meta)  # (asserts all-integer kernels)
    ref, dt = _reference(path, X)
    assert got.size == ref.nbytes
    # every output byte equals the reference interpreter's (float32 outputs: bit patterns)
    np.testing.assert_array_equal(got.reshape(len(X), -1),
                                  np.ascontiguousarray(ref).view(np.uint8).reshape(len(X), -1))
    assert len(np.unique(ref)) > 4  # the outputs are not trivially constant

    # and so does every intermediate tensor (each op on its own)
    traced, order = _trace_run(tar_path, name, X, str(tmp_path))
    refs = _reference_all(path, X, m)
    checked = set()
    for idx in order:
        op = m.ops[idx]
        want = refs[op.outputs[0]]
        have = traced[idx]
        assert have.shape == want.shape, (op, have.shape, want.shape)
        bad = int((have != want).any(axis=1).sum())
        assert bad == 0, "%s #%d differs from BUILTIN_REF on %d of %d images" % (
            op.type, idx, bad, len(X))
        checked.add(op.type)
    print("  bit-exact per op: %s" % sorted(checked))
    assert checked >= expected_ops - {"RESHAPE"}


def test_float_op_after_dequantize_is_rejected(models):
    """A DEQUANTIZE whose float output feeds anything but the model output stays unsupported;
    checked on a copy of a parsed model (the converter does not emit such graphs for int8)."""
    path, _ = models["float_out"]
    m = tflite_model._parse(path, open(path, "rb").read())
    deq = [op for op in m.ops if op.type == "DEQUANTIZE"][0]
    # pretend the float tensor feeds a further (float) op and something else is the output
    m.output_ids = [deq.inputs[0]]
    with pytest.raises(ModelError) as e:
        tflite_model._validate(m)
    assert "DEQUANTIZE" in str(e.value) and "float_out.tflite" in str(e.value)
