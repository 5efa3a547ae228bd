"""codegen.device.memreport: per-layer memory table of a tiny MobileNet's MLF, flash/RAM totals against a board,
the size gate's message with the overshoot in bytes, and AVR accounting (const data copied to RAM)."""
import json
import os
import shutil

import numpy as np
import pytest

from codegen import boards

from codegen.device import memreport
from codegen.errors import PipelineError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHAPE = (32, 32, 3)

from tflite_helpers import convert_int8, tutorial_mobilenet  # noqa: E402

pytestmark = pytest.mark.heavy      # the module fixture runs TVM codegen on the tutorial model: minutes; `pytest -m 'not heavy'` skips it


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from codegen.emit import mlf
    d = tmp_path_factory.mktemp("memreport_model")
    X = np.random.RandomState(5).randint(0, 256, (16,) + SHAPE).astype(np.uint8)
    tflite = str(d / "model.tflite")
    with open(tflite, "wb") as f:
        f.write(convert_int8(tutorial_mobilenet(SHAPE, 4, X), X, "uint8", "uint8"))
    tar = str(d / "model_mlf.tar")
    meta = mlf.build_mlf(tflite, tar)
    return tar, meta


def test_nano33ble_fits_and_layers_sum_to_totals(model, tmp_path):
    tar, meta = model
    board = boards.get("nano33ble")
    out_json, out_txt = tmp_path / "mem.json", tmp_path / "mem.txt"
    rep = memreport.memory_report(tar, board, str(out_json), str(out_txt))
    memreport.check_fits(rep)  # does not raise
    with open(out_json) as f:
        assert json.load(f) == rep

    layers = [r for r in rep["layers"] if r["index"] is not None]
    assert [r["type"] for r in layers] == [o["type"] for o in meta["ops"]]
    assert [r["output_shape"] for r in layers] == [o["output_shape"] for o in meta["ops"]]
    # every constant array is attributed to the layer that uses it
    assert len(layers) == len(rep["layers"])
    assert sum(r["params_bytes"] for r in rep["layers"]) == rep["totals"]["params_bytes"] \
        == meta["constants_size_bytes"] == rep["constants_bytes"]
    assert sum(r["macs"] for r in rep["layers"]) == rep["totals"]["macs"] == meta["total_macs"]
    convs = [r for r in layers if r["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert convs and all(r["params_bytes"] > 0 and r["macs"] > 0 for r in convs)
    for r in layers:
        assert r["activation_bytes"] == int(np.prod(r["output_shape"]))
    # TVM's planned workspace holds at least the largest layer's live input+output (model input excepted)
    assert rep["workspace_bytes"] == meta["workspace_size_bytes"] > 0

    if shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        assert rep["code_measured"] and rep["code_bytes"] > 1000
        assert rep["code_bytes"] == sum(rep["code_by_file"].values())
    else:
        assert rep["code_bytes"] is None and "not measured" in rep["code_note"]

    flash, ram = rep["flash"], rep["ram"]
    assert flash["total"] == (rep["code_bytes"] or 0) + meta["constants_size_bytes"] \
        + rep["core_margin"]["flash_bytes"]
    assert ram["total"] == meta["workspace_size_bytes"] + meta["inputs"][0]["size_bytes"] \
        + meta["outputs"][0]["size_bytes"] + rep["core_margin"]["ram_bytes"]
    assert "constants_copied_to_ram" not in ram["items"]
    assert flash["fits"] and ram["fits"] and flash["limit"] == board["flash_bytes"]
    assert flash["percent"] == round(100.0 * flash["total"] / board["flash_bytes"], 1)
    text = out_txt.read_text()
    assert board["title"] in text and "CONV_2D" in text and f"{meta['total_macs']:,}" in text
    assert "Flash:" in text and "RAM:" in text and "fits" in text


def test_tiny_board_fails_with_overshoot(model, tmp_path):
    tar, meta = model
    tiny = {"name": "tiny", "title": "Tiny Test Board", "cpu": "cortex-m4f", "core": "arduino:mbed_nano",
            "flash_bytes": 40000, "ram_bytes": 30000, "progmem": False}
    rep = memreport.memory_report(tar, tiny, str(tmp_path / "m.json"), str(tmp_path / "m.txt"), code_bytes=5000)
    margin = memreport.CORE_MARGINS["arduino:mbed"]
    flash_need = 5000 + meta["constants_size_bytes"] + margin["flash_bytes"]
    ram_need = meta["workspace_size_bytes"] + meta["inputs"][0]["size_bytes"] + meta["outputs"][0]["size_bytes"] \
        + margin["ram_bytes"]
    assert rep["flash"]["total"] == flash_need and rep["ram"]["total"] == ram_need
    with pytest.raises(PipelineError) as ei:
        memreport.check_fits(rep)
    msg = str(ei.value)
    assert msg.startswith("model does not fit Tiny Test Board:")
    assert f"flash needs {flash_need} B, has 40000 B (over by {flash_need - 40000} B)" in msg
    assert f"RAM needs {ram_need} B, has 30000 B (over by {ram_need - 30000} B)" in msg
    assert str(margin["flash_bytes"]) in msg  # the core margin is stated
    assert "OVER by" in (tmp_path / "m.txt").read_text()


def _legacy_mlf(tar, dest):
    """The same MLF as an older codegen/emit/mlf.py wrote it: plain `const` arrays (no PROGMEM on AVR)."""
    import io
    import tarfile
    with tarfile.open(tar) as src, tarfile.open(dest, "w") as out:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "metadata.json":
                meta = json.loads(data)
                meta.pop("flash_constants_workspace_size_bytes", None)
                data = json.dumps(meta).encode()
            elif m.name.endswith("_lib0.c"):
                data = data.replace(b"TVMGEN_CONST_STORAGE PROGMEM", b"TVMGEN_CONST_STORAGE")
            m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    return dest


def test_avr_accounting(model, tmp_path):
    tar, meta = model
    mega = boards.get("mega")
    const = meta["constants_size_bytes"]
    # plain const arrays: avr-gcc copies all constant data into RAM at startup
    legacy = _legacy_mlf(tar, str(tmp_path / "legacy.tar"))
    rep = memreport.memory_report(legacy, mega, str(tmp_path / "a.json"), str(tmp_path / "a.txt"), code_bytes=4000)
    assert rep["constants_in_ram"]
    assert rep["ram"]["items"]["constants_copied_to_ram"] == const
    assert rep["flash"]["items"]["constants"] == const
    assert rep["ram"]["total"] == const + meta["workspace_size_bytes"] + meta["inputs"][0]["size_bytes"] \
        + meta["outputs"][0]["size_bytes"] + memreport.CORE_MARGINS["arduino:avr"]["ram_bytes"]
    assert not rep["ram"]["fits"]
    with pytest.raises(PipelineError, match=r"does not fit Arduino Mega 2560: .*RAM needs \d+ B, has 8192 B "
                                            r"\(over by \d+ B\).*constant data copied to RAM"):
        memreport.check_fits(rep)

    # current MLF: constants in PROGMEM, each kernel's constants staged in the (larger) workspace
    rep2 = memreport.memory_report(tar, mega, str(tmp_path / "b.json"), str(tmp_path / "b.txt"))
    assert not rep2["constants_in_ram"] and "constants_copied_to_ram" not in rep2["ram"]["items"]
    staged = rep2["ram"]["items"]["workspace"]
    assert staged == meta["flash_constants_workspace_size_bytes"] >= meta["workspace_size_bytes"]
    assert staged >= max(r["params_bytes"] for r in rep2["layers"])
    assert rep2["flash"]["items"]["constants"] == const
    assert rep2["code_bytes"] is None or rep2["code_bytes"] > 0

    # the same limits on an ARM core: constants stay in flash, the plain workspace suffices
    arm_like = dict(mega, progmem=False, core="arduino:sam", cpu="cortex-m3")
    rep3 = memreport.memory_report(tar, arm_like, str(tmp_path / "c.json"), str(tmp_path / "c.txt"),
                                   code_bytes=1234)
    assert "constants_copied_to_ram" not in rep3["ram"]["items"]
    assert rep3["ram"]["items"]["workspace"] == meta["workspace_size_bytes"]


def test_advice_fits_how_the_model_came(model, tmp_path):
    """A MODEL= file is not shrunk by SIZE=/ALPHA=: its advice names what the build can change."""
    tar, _ = model
    tiny = {"name": "tiny", "title": "Tiny Test Board", "cpu": "cortex-m4f", "core": "arduino:mbed_nano",
            "flash_bytes": 40000, "ram_bytes": 30000, "progmem": False}
    for origin, said, unsaid in (("model", ("Quantize the MODEL= file smaller", "BOARD=", "BACKEND="), "ALPHA="),
                                 ("trained", ("SIZE=", "ALPHA=", "BOARD="), "MODEL=")):
        rep = memreport.memory_report(tar, tiny, str(tmp_path / "m.json"), str(tmp_path / "m.txt"), code_bytes=5000,
                                      origin=origin)
        with pytest.raises(PipelineError) as ei:
            memreport.check_fits(rep)
        assert all(s in str(ei.value) for s in said) and unsaid not in str(ei.value), str(ei.value)


def test_simulate_of_a_model_too_big_for_the_board_stops_before_any_link(tmp_path):
    """`scons simulate MODEL=<1.1 MB of weights> BOARD=nano33ble`: one error line from the memory report, with the
    advice for a MODEL=, not the linker's "region 'FLASH' overflowed"."""
    import keras

    from helpers import run_scons

    from tflite_helpers import fit_briefly

    keras.utils.set_random_seed(0)
    inp = keras.Input((1100,), batch_size=1)
    big = keras.Model(inp, keras.layers.Dense(1000)(inp))
    X = np.random.RandomState(0).uniform(-1, 1, (16, 1100)).astype(np.float32)
    path = tmp_path / "big.tflite"
    path.write_bytes(convert_int8(fit_briefly(big, X), X, "int8", "int8"))
    build = tmp_path / "b"
    proc = run_scons(build, "simulate", check=False, MODEL=str(path), BOARD="nano33ble")
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, output[-3000:]
    assert "does not fit" in errors[0] and "flash needs" in errors[0], errors
    assert "Quantize the MODEL= file smaller" in errors[0] and "BACKEND=" in errors[0] and "ALPHA=" not in errors[0]
    assert "overflowed" not in output and "arm-none-eabi" not in output
    assert (build / "nano33ble" / "memory.json").is_file()
    assert not (build / "nano33ble" / "simulate.json").exists()
