"""Real published int8 models (MLPerf Tiny: VWW, ResNet-8, DS-CNN KWS, FC autoencoder in ../shared/models):
generated C equals tf.lite BUILTIN_REF for the output and every intermediate tensor, on host gcc."""
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tflite_helpers import SHARED_MODELS, check_exact  # noqa: E402

MODELS = {
    "vww_96_int8": {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "SOFTMAX"},
    "pretrainedResnet_quant": {"CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"},
    "kws_ref_model": {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"},
    "ad01_int8": {"FULLY_CONNECTED"},
}


@pytest.mark.heavy      # TVM codegen + gcc of each MLPerf model: tens of seconds each
@pytest.mark.parametrize("name", list(MODELS))
def test_shared_model_bit_exact(name, tmp_path):
    from codegen.runners import exactness
    from codegen.frontend import load

    path = os.path.join(SHARED_MODELS, name + ".tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI, not with a user's clone)" % path)
    model = load(path)
    assert model.notes and "batch -1" in model.notes[0]       # their dynamic batch is pinned, and said so
    X = exactness.random_inputs(path, 12, seed=1)
    meta, rep = check_exact(path, X, tmp_path, MODELS[name], model_name=name)
    assert {o["type"] for o in meta["ops"]} >= MODELS[name]
    assert len(rep.checked_ops) == len(meta["calls"])


@pytest.mark.heavy
@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc") or not shutil.which("qemu-system-arm"),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("name", ["vww_96_int8", "kws_ref_model", "ad01_int8"])
def test_shared_model_bit_exact_on_cortex_m4(name, tmp_path):
    """The same C on the emulated Cortex-M4F, where the kernels take their DSP (SMLAD) paths: every tensor's
    hash and the outputs equal BUILTIN_REF's."""
    from codegen.runners import exactness
    from codegen.emit import mlf

    path = os.path.join(SHARED_MODELS, name + ".tflite")
    if not os.path.isfile(path):
        pytest.skip("%s is absent (../shared/models comes with the project's CI, not with a user's clone)" % path)
    X = exactness.random_inputs(path, 3, seed=2)
    tar = str(tmp_path / "m.tar")
    meta = mlf.build_mlf(path, tar, model_name=name)
    rep = exactness.compare(path, tar, X, str(tmp_path), target="cortex-m4")
    assert not rep.mismatches, rep.mismatches
    assert rep.outputs_equal and len(rep.checked_ops) == len(meta["calls"])
