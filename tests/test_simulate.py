"""codegen.runners.simulate: a tiny MobileNet's generated C runs on the emulated Cortex-M4F (QEMU mps2-an386), prints
exactly TFLite's reference scores, and the instruction count per inference is positive and deterministic; a wrong
expected score is an error naming the image."""
import json
import os
import shutil

import numpy as np
import pytest

from codegen.runners import qemu
from codegen.errors import PipelineError

pytestmark = pytest.mark.skipif(
    not (qemu.toolchain_available() and shutil.which("gcc")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and host gcc (Debian: gcc-arm-none-eabi "
           "libnewlib-arm-none-eabi qemu-system-arm gcc)")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHAPE = (32, 32, 3)
LABELS = ("target", "random", "stripes")


from tflite_helpers import convert_int8, tutorial_mobilenet  # noqa: E402


def build_tiny_pipeline(d):
    """tiny model -> int8 .tflite -> MLF tar -> 3 embedded images -> expected scores; returns the paths."""
    from PIL import Image

    from codegen.emit import bin2c, mlf
    from codegen.stages import expected

    rs = np.random.RandomState(7)
    X = rs.randint(0, 256, (16,) + SHAPE).astype(np.uint8)
    tflite = os.path.join(d, "model.tflite")
    with open(tflite, "wb") as f:
        f.write(convert_int8(tutorial_mobilenet(SHAPE, 3, X), X, "uint8", "uint8"))
    tar = os.path.join(d, "model_mlf.tar")
    mlf.build_mlf(tflite, tar)
    paths = []
    for i, label in enumerate(LABELS):
        img = X[i].copy()
        if label == "stripes":
            img[::4] = 255
        p = os.path.join(d, f"{label}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
    files = {k: os.path.join(d, k) for k in ("images.c", "images.h", "images.json", "expected.json")}
    bin2c.embed(paths, tflite, files["images.c"], files["images.h"], files["images.json"], labels=list(LABELS))
    expected.reference_scores(tflite, files["images.json"], files["expected.json"])
    return {"tflite": tflite, "mlf": tar, **files}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return build_tiny_pipeline(str(tmp_path_factory.mktemp("sim_model")))


def _simulate(p, tmp_path, expected_json=None, tag="run"):
    from codegen.runners.simulate import simulate_cortex_m4
    out = tmp_path / f"{tag}.json"
    res = simulate_cortex_m4(p["mlf"], p["images.c"], p["images.h"], p["images.json"],
                             expected_json or p["expected.json"], str(out), work_dir=str(tmp_path / tag),
                             timeout_s=60)
    return res, out


def test_scores_exact_and_instructions_deterministic(pipeline, tmp_path):
    res, out = _simulate(pipeline, tmp_path, tag="a")
    with open(pipeline["expected.json"]) as f:
        exp = json.load(f)
    assert [i["scores"] for i in res["images"]] == [e["scores"] for e in exp["images"]]
    assert [i["name"] for i in res["images"]] == [e["name"] for e in exp["images"]]
    assert len(res["images"]) == 3 and res["exact"] and res["exit_code"] == 0
    assert res["inferences"] == 3
    assert res["instructions_per_inference"] > 0
    assert res["total_macs"] > 0
    assert res["instructions_per_mac"] == pytest.approx(res["instructions_per_inference"] / res["total_macs"],
                                                         rel=1e-3)
    with open(out) as f:
        assert json.load(f) == res
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []

    again, _ = _simulate(pipeline, tmp_path, tag="b")
    assert again["instructions_per_inference"] == res["instructions_per_inference"]
    assert again["instructions_min"] == res["instructions_min"]
    assert again["instructions_max"] == res["instructions_max"]
    # the cycle estimate is deterministic too, at least one cycle per instruction, and gives the ms at the clock
    assert again["cycles_per_inference_estimate"] == res["cycles_per_inference_estimate"]
    assert res["cycles_min_estimate"] <= res["cycles_per_inference_estimate"] <= res["cycles_max_estimate"]
    assert res["cycles_per_inference_estimate"] > res["instructions_per_inference"]
    assert "clock_hz" not in res and "estimate" in res["cycle_model"] and res["flash_wait_states"] == 0


def test_board_clock_and_flash_wait_states(pipeline, tmp_path):
    from codegen import boards
    from codegen.runners.simulate import simulate_cortex_m4
    base, _ = _simulate(pipeline, tmp_path, tag="plain")
    board = dict(boards.get("nano33ble"), flash_wait_states=2)
    res = simulate_cortex_m4(pipeline["mlf"], pipeline["images.c"], pipeline["images.h"], pipeline["images.json"],
                             pipeline["expected.json"], str(tmp_path / "ws.json"), work_dir=str(tmp_path / "ws"),
                             timeout_s=60, board=board)
    assert res["instructions_per_inference"] == base["instructions_per_inference"]
    assert res["cycles_per_inference_estimate"] > base["cycles_per_inference_estimate"]
    assert res["flash_wait_states"] == 2 and res["clock_hz"] == 64000000
    assert res["ms_per_inference_estimate"] == pytest.approx(res["cycles_per_inference_estimate"] / 64000.0,
                                                             abs=1e-4)


def test_wrong_expected_score_names_the_image(pipeline, tmp_path):
    with open(pipeline["expected.json"]) as f:
        exp = json.load(f)
    victim = exp["images"][1]
    victim["scores"][0] = (victim["scores"][0] + 1) % 256
    bad = tmp_path / "expected_bad.json"
    bad.write_text(json.dumps(exp))
    out = tmp_path / "bad.json"
    from codegen.runners.simulate import simulate_cortex_m4
    with pytest.raises(PipelineError) as ei:
        simulate_cortex_m4(pipeline["mlf"], pipeline["images.c"], pipeline["images.h"], pipeline["images.json"],
                           str(bad), str(out), work_dir=str(tmp_path / "bad"), timeout_s=60)
    msg = str(ei.value)
    assert victim["name"] in msg and str(victim["scores"]) in msg
    assert exp["images"][0]["name"] not in msg  # only the corrupted image is reported
    assert not out.exists()


# the module fixture builds the whole tiny pipeline: minutes; `pytest -m "not heavy"` skips this module.
pytestmark = [pytestmark, pytest.mark.heavy]
