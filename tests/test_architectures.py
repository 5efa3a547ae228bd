"""The MCU architectures ARCH= trains (Keras MobileNetV2 and MobileNetV3-Small, untrained weights briefly fitted
so activations have non-trivial ranges) convert to full-int8 TFLite with ADD, MUL, HARD_SWISH, MEAN, ...
and the generated C equals BUILTIN_REF on every tensor, on host gcc and on the emulated Cortex-M4."""
import os
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402

pytestmark = pytest.mark.heavy


def _mobilenet(arch, size):
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), batch_size=1)
    if arch == "mobilenet_v2":
        base = keras.applications.MobileNetV2(input_tensor=inp, alpha=0.35, weights=None, include_top=False)
    else:
        base = keras.applications.MobileNetV3Small(input_tensor=inp, alpha=0.75, weights=None, include_top=False,
                                                   minimalistic=False, include_preprocessing=True)
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("archs")
    X = np.random.RandomState(0).randint(0, 256, (24, 64, 64, 3)).astype(np.uint8)
    out = {}
    for arch in ("mobilenet_v2", "mobilenet_v3_small"):
        m = fit_briefly(_mobilenet(arch, 64), X.astype(np.float32))
        p = str(d / (arch + ".tflite"))
        with open(p, "wb") as f:
            f.write(convert_int8(m, X, "int8", "int8"))
        out[arch] = p
    return out, as_input_dtype(X, "int8")


EXPECTED = {"mobilenet_v2": {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"},
            "mobilenet_v3_small": {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MUL", "ADD", "MEAN",
                                   "FULLY_CONNECTED", "SOFTMAX"}}


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_architecture_bit_exact(models, arch, tmp_path):
    from codegen.frontend import load
    paths, X = models
    types = {op.type for op in load(paths[arch]).ops}
    print(arch, sorted(types))
    assert types >= EXPECTED[arch], sorted(types)
    check_exact(paths[arch], X[:8], tmp_path, EXPECTED[arch], model_name=arch)


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_mobilenet_v2_bit_exact_on_cortex_m4(models, tmp_path):
    from codegen.runners import exactness
    from codegen.emit import mlf
    paths, X = models
    tar = str(tmp_path / "v2.tar")
    mlf.build_mlf(paths["mobilenet_v2"], tar, model_name="v2")
    rep = exactness.compare(paths["mobilenet_v2"], tar, X[:2], str(tmp_path), target="cortex-m4")
    assert not rep.mismatches and rep.outputs_equal, rep
