"""Typos get help: a mistyped target, variable, board or profile is one error line naming the closest known
name (before: `Do not know how to make File target 'chek'`, or a list of ten boards without the one meant); an
image fed to a model whose input is not an image is a warning."""
import os
import subprocess

import numpy as np
import pytest

from codegen import config, suggest, targets
from codegen import boards
from codegen.errors import ConfigError
from helpers import ROOT, scons_exe
from tflite_helpers import SHARED_MODELS


def typos(word):
    """Single-edit typos of `word`: each character dropped, each adjacent pair swapped, each character doubled."""
    out = set()
    for i in range(len(word)):
        out.add(word[:i] + word[i + 1:])
        out.add(word[:i] + word[i] + word[i:])
        if i + 1 < len(word) and word[i] != word[i + 1]:
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2:])
    return out - {word}


def _vocabularies():
    return {"target": [t.name for t in targets.TARGETS if t.listed] + sorted(boards.all_boards()),
            "variable": list(config.VARIABLES),
            "board": sorted(boards.all_boards())}


@pytest.mark.parametrize("kind", ["target", "variable", "board"])
def test_every_single_edit_typo_gets_a_suggestion_as_close_as_the_name_meant(kind):
    """Property over each vocabulary: every one-edit typo of a name of 3+ letters gets a suggestion, and the
    suggestion is the name meant unless the typo is as close to another name (nano33ble_sense / nano33ble)."""
    import difflib

    names = _vocabularies()[kind]
    checked = 0
    for name in names:
        if len(name) < 3:
            continue
        for typo in typos(name):
            if typo in names:
                continue
            got = suggest.closest(typo, names)
            assert got is not None, f"{kind} typo {typo!r} of {name!r}: no suggestion"
            ratio = lambda n: difflib.SequenceMatcher(None, typo.lower(), n.lower()).ratio()   # noqa: E731
            assert got == name or ratio(got) >= ratio(name), (typo, name, got)
            checked += 1
    assert checked > 50


def test_nonsense_gets_no_suggestion():
    assert suggest.closest("zzqqxx", _vocabularies()["target"]) is None
    assert suggest.did_you_mean("zzqqxx", ["check"]) == ""


def test_variable_board_and_profile_messages_name_the_closest():
    with pytest.raises(ConfigError, match=r"unknown build variable\(s\) EPOHCS \(did you mean EPOCHS=\?\); "):
        config.parse({"EPOHCS": "3"})
    with pytest.raises(ConfigError, match=r"BOARD='nano33bel' is not a known board; did you mean BOARD=nano33ble\? "):
        boards.get("nano33bel")
    with pytest.raises(ConfigError, match=r"BOARD='esp99' is not a known board; use one of"):
        boards.get("esp99")                                 # nothing close: no suggestion


def _scons(*args, cwd_build):
    return subprocess.run([scons_exe(), "-C", ROOT, "-Q", f"BUILD_DIR={cwd_build}", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, line", [
    (["chek"], "error: `chek` is not a target, a board or a file; did you mean `check`? `scons -h` lists the targets"),
    (["simulat"], "error: `simulat` is not a target, a board or a file; did you mean `simulate`? `scons -h` lists "
                  "the targets"),
    (["nano33bel"], "error: `nano33bel` is not a target, a board or a file; did you mean `nano33ble`? `scons -h` "
                    "lists the targets"),
    (["zzqqxx"], "error: `zzqqxx` is not a target, a board or a file; `scons -h` lists the targets"),
    (["BOARD=nano33bel"], None),
    (["EPOHCS=3"], None),
])
def test_scons_typos_are_one_error_line_with_the_closest_name(tmp_path, args, line):
    proc = _scons(*args, cwd_build=tmp_path / "b")
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
    assert "Do not know how to make" not in proc.stderr
    if line:
        assert errors[0] == line
    else:
        assert "did you mean " + {"BOARD": "BOARD=nano33ble", "EPOHCS": "EPOCHS="}[args[0].split("=")[0]] in errors[0]


def test_scons_profile_typo_suggests_the_profile(tmp_path):
    ini = tmp_path / "tinyml.ini"
    ini.write_text("[env:mega-tiny]\nBOARD = mega\n")
    proc = _scons("ENV=mega-tyni", f"--project-conf={ini}", cwd_build=tmp_path / "b")
    assert proc.returncode == 2 and "did you mean ENV=mega-tiny? known profiles: mega-tiny" in proc.stderr


def test_existing_files_and_output_folders_are_still_targets(tmp_path):
    """The typo check must not refuse what SCons builds: a declared output file and a folder of outputs."""
    build = tmp_path / "b"
    for target in (str(build / "nano33ble" / "dataset.npz"), str(build / "nano33ble")):
        proc = _scons("-n", target, cwd_build=build)
        assert proc.returncode == 0 and "error:" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------- an image into a non-image
@pytest.mark.parametrize("shape, image", [
    ([1, 32, 32, 3], True), ([1, 28, 28, 1], True), ([1, 96, 96, 1], True), ([1, 240, 320, 3], True),
    ([1, 49, 10, 1], False), ([1, 128, 3, 1], False), ([1, 8, 8, 1], False), ([1, 200, 20, 1], False),
])
def test_an_image_into_a_non_image_input_warns_and_proceeds(tmp_path, capfd, shape, image):
    from PIL import Image

    from codegen.emit import bin2c

    path = tmp_path / "car.png"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(path)
    raw = bin2c.load_input(str(path), {"dtype": "int8", "shape": shape, "scale": 1 / 255, "zero_point": -128})
    assert len(raw) == int(np.prod(shape))
    err = capfd.readouterr().err
    assert ("does not look like one" in err) == (not image), err
    if not image:
        assert err.startswith(f"warning: {path}: an image, but the model's input {shape}") and err.count("\n") == 1


def test_scons_images_warns_for_an_audio_model(tmp_path):
    model = os.path.join(SHARED_MODELS, "kws_ref_model.tflite")
    if not os.path.isfile(model):
        pytest.skip(f"{model} absent (the shared models folder is not beside this checkout)")
    from PIL import Image

    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / "car.png")
    proc = _scons("images", f"MODEL={model}", f"INPUTS={tmp_path / 'car.png'}", cwd_build=tmp_path / "b")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [x for x in proc.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and "model's input [1, 49, 10, 1] does not look like one" in warnings[0], proc.stderr
