"""BACKEND=auto is the default (issue 21): a build that the TVM generator can take writes what BACKEND=tvm wrote, in
the same folders, so an existing build tree is not rebuilt by the switch (nor rebuilt when switching back); the
model file is read once per scons run however many boards are parsed."""
import hashlib
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from codegen import config  # noqa: E402
from helpers import built_stages, run_scons  # noqa: E402


def test_auto_is_the_default_and_a_trained_model_is_tvms():
    assert config.VARIABLES["BACKEND"][0] == "auto"
    cfg = config.parse({})
    assert cfg["backends"] == ["tvm"] and cfg["backend_note"] is None


def _tree(build):
    """{relative path: sha256} of every file the build wrote, SCons' own database and lock file left out."""
    out = {}
    for folder, _, names in os.walk(build):
        for n in names:
            if n.startswith((".sconsign", ".scons.lock")):
                continue
            p = os.path.join(folder, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, build)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.mark.heavy
def test_switching_the_default_rebuilds_nothing(tiny_build):
    """The tiny configuration built by default (auto) is up to date for BACKEND=tvm, and the other way round."""
    build, _ = tiny_build
    before = _tree(build)
    for backend in ("tvm", None, "auto"):
        proc = run_scons(build, **({"BACKEND": backend} if backend else {}))
        assert built_stages(proc.stdout) == [], (backend, proc.stdout)
        assert "BACKEND=auto" not in proc.stdout
    assert _tree(build) == before


@pytest.mark.heavy
def test_user_model_tvm_build_is_the_default_build(tmp_path):
    """A MODEL= built with BACKEND=tvm (the former default), then with the default: nothing rebuilt, every file the
    same, in the same place; the model is read for the choice once, and the choice says nothing when it is TVM."""
    import keras

    from tflite_helpers import convert_int8

    inp = keras.Input((6, 6, 1), batch_size=1)
    x = keras.layers.Conv2D(3, 3, activation="relu")(inp)
    m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
    X = np.random.RandomState(0).rand(8, 6, 6, 1).astype(np.float32)
    model = tmp_path / "small.tflite"
    model.write_bytes(convert_int8(m, X, "int8", "int8"))
    build = tmp_path / "build"
    run_scons(build, "check", BACKEND="tvm", MODEL=str(model))
    before = _tree(build)
    assert any(p.endswith(".tar") for p in before), sorted(before)
    proc = run_scons(build, "check", MODEL=str(model))
    assert built_stages(proc.stdout) == [] and "BACKEND=auto" not in proc.stdout, proc.stdout
    assert _tree(build) == before
    proc = run_scons(build, "check", BACKEND="tvm", MODEL=str(model))
    assert built_stages(proc.stdout) == [], proc.stdout


def test_model_is_read_once_for_every_board(tmp_path, monkeypatch):
    """SConstruct parses the variables once plus once per board: the choice reads the model file once."""
    from codegen import boards
    from codegen.frontend import reader
    from tflite_helpers import SHARED_MODELS

    vww = os.path.join(SHARED_MODELS, "vww_96_int8.tflite")
    if not os.path.isfile(vww):
        pytest.skip(f"{SHARED_MODELS} absent (the shared models folder is not beside this checkout)")
    calls = []
    real = reader.unsupported_ops
    monkeypatch.setattr(reader, "unsupported_ops", lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(config, "_VERDICTS", {})
    for board in (None, "nano33ble", "nano33ble"):
        cfg = config.parse({"MODEL": vww}, boards.get(board) if board else None)
        assert cfg["backends"] == ["tvm"]
    assert len(calls) == 1
