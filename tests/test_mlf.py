"""End-to-end tests of codegen.emit.mlf.build_mlf: small random-init Keras MobileNets are converted
to full-int8 TFLite, turned into standalone C, compiled with the host gcc and compared
byte for byte with TFLite's reference kernels (BUILTIN_REF)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from codegen.emit import mlf  # noqa: E402

from codegen.frontend import reader  # noqa: E402
from codegen.emit.mlf_archive import MLF_VERSION  # noqa: E402
from tflite_helpers import SHARED_MODELS, check_exact, convert_float, convert_int8, tutorial_mobilenet  # noqa: E402
from codegen.errors import ModelError  # noqa: E402

pytestmark = pytest.mark.heavy      # module fixtures train Keras models and run TVM codegen: minutes; `pytest -m 'not heavy'` skips it

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_IMAGES = 50  # every model is checked on >= 50 images


def _reference(path, X):
    import tensorflow as tf
    it = tf.lite.Interpreter(
        model_path=path,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    res = []
    for x in X:
        it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        it.invoke()
        res.append(it.get_tensor(out["index"]).ravel().copy())
    return np.array(res), inp["dtype"]


def _build_and_run(tar_path, name, X, workdir):
    """The MLF built with host gcc -Wall (no warning allowed) and run on X: (extract dir, sources, include dir,
    output bytes)."""
    from codegen.runners import exactness

    run = exactness.run_host(tar_path, X, workdir, cflags=("-O2", "-Wall"))
    assert "warning" not in run.compiler_output, run.compiler_output
    ext = os.path.join(workdir, "mlf")
    srcdir = os.path.join(ext, "codegen", "host", "src")
    sources = sorted(os.path.join(srcdir, f) for f in os.listdir(srcdir))
    assert [os.path.basename(s) for s in sources] == ["%s_lib%d.c" % (name, i) for i in range(3)]
    return ext, sources, os.path.join(ext, "codegen", "host", "include"), run.outputs.ravel()


def _float_types(c_text):
    """The float/double type names used in C code (comments removed)."""
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", c_text, flags=re.S)
    return re.findall(r"\b(?:float|double)\b", code)


def _check_sources(ext, sources, name, meta):
    text = "".join(open(s).read() for s in sources)
    text += open(os.path.join(ext, "codegen", "host", "include", "tvmgen_%s.h" % name)).read()
    assert '#include "tvm/' not in text and "#include <tvm/" not in text
    assert "TVMFFI" not in text and "TVMBackend" not in text and "TVM_DLL" not in text
    assert "malloc" not in text
    lib2 = open(os.path.join(ext, "codegen", "host", "src", "%s_lib2.c" % name)).read()
    m = re.search(r"static\s+\w*\s*uint8_t\s+tvmgen_%s_workspace\[(\d+)\]" % name, lib2)
    assert m, lib2[:2000]
    assert int(m.group(1)) == meta["workspace_size_bytes"]
    hdr = open(os.path.join(ext, "codegen", "host", "include", "tvmgen_%s.h" % name)).read()
    assert "#define TVMGEN_%s_WORKSPACE_SIZE %d" % (name.upper(), meta["workspace_size_bytes"]) in hdr
    assert 'extern "C"' in hdr
    assert "int32_t tvmgen_%s_run(const uint8_t* input, uint8_t* output);" % name in hdr
    lib0 = open(os.path.join(ext, "codegen", "host", "src", "%s_lib0.c" % name)).read()
    assert not _float_types(lib0)
    lib1 = open(os.path.join(ext, "codegen", "host", "src", "%s_lib1.c" % name)).read()
    assert not _float_types(lib1)  # all-integer kernels (comments may say "doubled")
    # weights as int8 (or as bytes packed for the microkernels), tables as int32
    assert ("const int8_t" in lib0 or "const uint8_t" in lib0) and "const int32_t" in lib0
    for f in ("src/relax.txt", "src/tir.txt"):
        assert os.path.getsize(os.path.join(ext, f)) > 0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    rs = np.random.RandomState(0)
    out = {}
    # RGB, uint8 in/out, 64x64 (the final MEAN averages 2x2)
    X = rs.randint(0, 256, (N_IMAGES, 64, 64, 3)).astype(np.uint8)
    p = str(d / "rgb.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(tutorial_mobilenet((64, 64, 3), 1, X), X, "uint8", "uint8"))
    out["rgb"] = (p, X)
    # grayscale, int8 in/out, 32x32
    Xg = rs.randint(0, 256, (N_IMAGES, 32, 32, 1)).astype(np.uint8)
    p = str(d / "gray.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(tutorial_mobilenet((32, 32, 1), 2, Xg), Xg, "int8", "int8"))
    out["gray"] = (p, (Xg.astype(np.int16) - 128).astype(np.int8))
    # alpha 0.5, 96x96 RGB, int8 in/out (ends in 3x3 -> MEAN; channel counts 16..512)
    X96 = rs.randint(0, 256, (N_IMAGES, 96, 96, 3)).astype(np.uint8)
    p = str(d / "rgb96.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(tutorial_mobilenet((96, 96, 3), 3, X96, alpha=0.5), X96, "int8", "int8"))
    out["rgb96"] = (p, (X96.astype(np.int16) - 128).astype(np.int8))
    return out


@pytest.mark.parametrize("kind,name", [("rgb", "default"), ("gray", "gray_net"),
                                       ("rgb96", "mnet96")])
def test_bit_exact_with_tflite_reference(models, kind, name, tmp_path):
    path, X = models[kind]
    tar_path = str(tmp_path / ("%s.tar" % name))
    meta = mlf.build_mlf(path, tar_path, model_name=name)
    assert [n for n in os.listdir(tmp_path) if n != os.path.basename(tar_path)] == []
    with tarfile.open(tar_path) as tar:
        names = set(tar.getnames())
        stored = json.load(tar.extractfile("metadata.json"))
    assert stored == meta
    assert {"metadata.json", "src/relax.txt", "src/tir.txt",
            "codegen/host/include/tvmgen_%s.h" % name} <= names
    assert meta["version"] == MLF_VERSION and meta["target"] == "c" and meta["model_name"] == name
    # the kernel call list: one call per op with a kernel, in op order, each reading what an earlier call wrote
    calls = meta["calls"]
    assert [c["op_index"] for c in calls] == sorted(c["op_index"] for c in calls)
    assert calls[0]["inputs"][0] == {"kind": "input"} and calls[-1]["output"] == {"kind": "output"}
    assert sum(c["macs"] for c in calls) == meta["total_macs"]
    assert sum(c["bytes"] for c in meta["constants"]) == meta["constants_size_bytes"]
    assert meta["kernels"] > 0 and meta["workspace_size_bytes"] > 0
    assert meta["constants_size_bytes"] > 0
    expected_ops = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"}
    if kind == "rgb":  # 64x64 ends in 2x2 -> MEAN; 32x32 ends in 1x1 (no MEAN)
        expected_ops |= {"MEAN", "QUANTIZE"}
    if kind == "rgb96":  # 96x96 ends in 3x3 -> MEAN; int8 I/O needs no QUANTIZE
        expected_ops |= {"MEAN"}
    assert {o["type"] for o in meta["ops"]} >= expected_ops
    (inp,), (outp,) = meta["inputs"], meta["outputs"]
    assert inp["shape"] == [1] + list(X.shape[1:])
    assert inp["size_bytes"] == int(np.prod(X.shape[1:]))
    assert outp["shape"] == [1, 2] and outp["size_bytes"] == 2

    ext, sources, incdir, got = _build_and_run(tar_path, name, X, str(tmp_path))
    _check_sources(ext, sources, name, meta)
    ref, dt = _reference(path, X)
    assert dt == np.dtype(inp["dtype"])
    got = got.view(dt).reshape(ref.shape)
    assert (got.argmax(1) == ref.argmax(1)).all()
    # Every op is lowered in TFLite's integer arithmetic: outputs are bit-exact.
    np.testing.assert_array_equal(got, ref)

    if shutil.which("arm-none-eabi-gcc"):
        for s in sources:
            r = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", "-Wall", "-mcpu=cortex-m4",
                                "-mthumb", "-I", incdir, "-c", s, "-o", os.devnull],
                               capture_output=True, text=True)
            assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


FW_MAIN_C = r"""
#include <stdio.h>
#include <stdint.h>
#include "tvmgen_%(name)s.h"
#include "images.h"
int main(void) {
  static uint8_t out[TVMGEN_%(NAME)s_OUTPUT_SIZE];
  int i, j;
  for (i = 0; i < N_IMAGES; ++i) {
    if (tvmgen_%(name)s_run(images[i], out) != 0) return 1;
    for (j = 0; j < (int)sizeof out; ++j) printf("%%d ", out[j]);
    printf("\n");
  }
  return 0;
}
"""


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_cortex_m4_bit_exact(models, kind, tmp_path):
    """The same C built for a Cortex-M4F (where the kernels take the Armv7E-M DSP path) and
    run in QEMU gives TFLite's reference outputs byte for byte."""
    from codegen.runners import qemu
    path, X = models[kind]
    name = "m4net"
    tar_path = str(tmp_path / "m4.tar")
    mlf.build_mlf(path, tar_path, model_name=name)
    ext = str(tmp_path / "mlf")
    with tarfile.open(tar_path) as tar:
        tar.extractall(ext)
    srcdir = os.path.join(ext, "codegen", "host", "src")
    incdir = os.path.join(ext, "codegen", "host", "include")
    lib1 = open(os.path.join(srcdir, "%s_lib1.c" % name)).read()
    assert "__ARM_FEATURE_DSP" in lib1  # the pointwise kernels use the DSP path here
    data = np.ascontiguousarray(X).view(np.uint8).reshape(len(X), -1)
    with open(str(tmp_path / "images.h"), "w") as f:
        f.write("#define N_IMAGES %d\nstatic const uint8_t images[%d][%d] = {\n"
                % (len(X), len(X), data.shape[1]))
        for row in data:
            f.write("{" + ",".join(str(int(v)) for v in row) + "},\n")
        f.write("};\n")
    main_c = str(tmp_path / "fw_main.c")
    with open(main_c, "w") as f:
        f.write(FW_MAIN_C % {"name": name, "NAME": name.upper()})
    sources = sorted(os.path.join(srcdir, f) for f in os.listdir(srcdir))
    elf = qemu.build_firmware(sources, [incdir, str(tmp_path)], main_c, str(tmp_path / "fw.elf"))
    res = qemu.run_firmware(elf, timeout_s=120)
    assert res["exit_code"] == 0, res["stdout"][-500:]
    ref, dt = _reference(path, X)
    got = np.array([[int(v) for v in line.split()] for line in res["stdout"].strip().splitlines()],
                   np.uint8).view(dt).reshape(ref.shape)
    np.testing.assert_array_equal(got, ref)


def _dense_softmax(classes, scale, seed):
    import keras
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16,), batch_size=1)
    dense = keras.layers.Dense(classes)
    out = keras.layers.Softmax()(dense(inp))
    w, b = dense.get_weights()
    dense.set_weights([w * scale, b])
    return keras.Model(inp, out)


@pytest.mark.parametrize("classes,scale,io", [(10, 3.0, "int8"), (100, 8.0, "int8"),
                                              (3, 1.0, "uint8")])
def test_softmax_head_bit_exact(classes, scale, io, tmp_path):
    """FULLY_CONNECTED (per-channel) + SOFTMAX (gemmlowp fixed point) with many classes."""
    X = np.random.RandomState(classes).randn(64, 16).astype(np.float32)
    p = str(tmp_path / "head.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(_dense_softmax(classes, scale, classes), X, io, io))
    import tensorflow as tf
    d = tf.lite.Interpreter(model_path=p).get_input_details()[0]
    sc, zp = d["quantization"]
    info = np.iinfo(d["dtype"])
    Xq = np.clip(np.round(X * 2 / sc + zp), info.min, info.max).astype(d["dtype"])
    tar_path = str(tmp_path / "head.tar")
    meta = mlf.build_mlf(p, tar_path, model_name="head")
    ext, sources, incdir, got = _build_and_run(tar_path, "head", Xq, str(tmp_path))
    _check_sources(ext, sources, "head", meta)
    ref, dt = _reference(p, Xq)
    got = got.view(dt).reshape(ref.shape)
    np.testing.assert_array_equal(got, ref)
    os.makedirs(tmp_path / "trace")
    check_exact(p, Xq, tmp_path / "trace", {"FULLY_CONNECTED", "SOFTMAX"}, model_name="head")  # every tensor


def test_dynamic_batch_is_pinned_to_one(tmp_path):
    """A Keras model converted with a dynamic batch (shape_signature -1, static batch 1), as the MLPerf Tiny
    models are: accepted, said once, and exact."""
    import keras
    inp = keras.Input((16,))  # no fixed batch size
    m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(inp))
    X = np.random.RandomState(0).randn(8, 16).astype(np.float32)
    p = str(tmp_path / "dyn.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(m, X, "int8", "int8"))
    model = reader.load(p)
    assert -1 in model.inputs[0].shape_signature
    assert model.notes and "batch -1" in model.notes[0]
    meta = mlf.build_mlf(p, str(tmp_path / "m.tar"), model_name="dyn")
    assert meta["notes"] == model.notes


def test_dynamic_inner_dimension_is_rejected(tmp_path):
    import keras
    inp = keras.Input((None, 16), batch_size=1)  # a dynamic sequence length: not a batch
    m = keras.Model(inp, keras.layers.Dense(2)(inp))
    X = np.random.RandomState(0).randn(8, 3, 16).astype(np.float32)
    p = str(tmp_path / "dyn_inner.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(m, X, "int8", "int8"))
    with pytest.raises(ModelError) as e:
        reader.load(p)
    msg = str(e.value)
    assert "dyn_inner.tflite" in msg and "dynamic dimension 1" in msg and "batch_size=1" in msg, msg


def test_float_model_is_rejected(tmp_path):
    import keras
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3)(inp)
    m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
    p = str(tmp_path / "float.tflite")
    with open(p, "wb") as f:
        f.write(convert_float(m))
    out = str(tmp_path / "out.tar")
    with pytest.raises(ModelError) as e:
        mlf.build_mlf(p, out)
    assert "float.tflite" in str(e.value) and "integer" in str(e.value)
    assert not os.path.exists(out) and os.listdir(tmp_path) == ["float.tflite"]


def test_unsupported_op_is_rejected(tmp_path):
    """An op outside the registry (here BATCH_MATMUL; DEPTH_TO_SPACE and RESIZE_BILINEAR were the example until
    they were registered): one error naming the op, its index and every supported op."""
    import keras
    import tensorflow as tf
    from codegen.lowering import supported_ops
    assert "BATCH_MATMUL" not in supported_ops()       # else pick another op for this test
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Reshape((36, 4))(keras.layers.Conv2D(4, 3)(inp))
    x = keras.layers.Lambda(lambda t: tf.matmul(t, t, transpose_b=True))(x)
    m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
    X = np.random.RandomState(0).rand(4, 8, 8, 3).astype(np.float32)
    p = str(tmp_path / "batch_matmul.tflite")
    with open(p, "wb") as f:
        f.write(convert_int8(m, X, "int8", "int8"))
    with pytest.raises(ModelError) as e:
        reader.load(p)
    msg = str(e.value)
    assert "operator BATCH_MATMUL (op #" in msg and "batch_matmul.tflite" in msg, msg
    assert all(name in msg for name in supported_ops())


def test_garbage_file_is_rejected(tmp_path):
    p = tmp_path / "garbage.tflite"
    p.write_bytes(os.urandom(1000))
    out = str(tmp_path / "out.tar")
    with pytest.raises(ModelError) as e:
        mlf.build_mlf(str(p), out)
    assert "garbage.tflite" in str(e.value) and "flatbuffer" in str(e.value)
    assert not os.path.exists(out)


def test_truncated_file_is_rejected(models, tmp_path):
    path, _ = models["gray"]
    data = open(path, "rb").read()
    for n in (len(data) // 2, 4096, 12):
        p = tmp_path / "trunc.tflite"
        p.write_bytes(data[:n])
        with pytest.raises(ModelError) as e:
            mlf.build_mlf(str(p), str(tmp_path / "out.tar"))
        assert "trunc.tflite" in str(e.value)
        assert not os.path.exists(tmp_path / "out.tar")


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(ModelError) as e:
        reader.load(str(tmp_path / "nope.tflite"))
    assert "nope.tflite" in str(e.value)


def test_model_reader(models):
    path, X = models["rgb"]
    m = reader.load(path)
    assert m.inputs[0].shape == (1, 64, 64, 3) and m.inputs[0].dtype == "uint8"
    assert m.outputs[0].shape == (1, 2)
    types = [op.type for op in m.ops]
    assert types[0] == "QUANTIZE" and types[-1] == "QUANTIZE"
    conv = m.ops[1]
    assert conv.type == "CONV_2D" and conv.options["padding"] in ("SAME", "VALID")
    w = m.tensors[conv.inputs[1]]
    assert w.data.dtype == np.int8 and len(w.scale) == w.shape[0]


def test_mlf_tar_is_byte_reproducible(tmp_path):
    """Same model, same generator: the same bytes (no timestamps or timings inside), so a cache or a diff of
    two builds sees no change."""
    import hashlib
    path = os.path.join(SHARED_MODELS, "kws_ref_model.tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent" % path)
    digests = set()
    for k in range(2):
        tar = str(tmp_path / ("m%d.tar" % k))
        mlf.build_mlf(path, tar)
        digests.add(hashlib.sha256(open(tar, "rb").read()).hexdigest())
    assert len(digests) == 1
