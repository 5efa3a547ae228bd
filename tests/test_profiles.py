"""Profiles (tinyml.ini [env:NAME] sections), `scons save` and `scons -h`'s table of values in force.

Through scons itself: each run points --project-conf at a file in tmp_path (the project's own tinyml.ini is
never written). Values not meant to come from the profile are given on the command line, as run_scons does.
"""
import json
import os
import re
import subprocess

import numpy as np
import pytest

from codegen import config, profiles
from codegen import boards
from codegen.errors import ConfigError
from helpers import ROOT, TINY, built_stages, scons_exe


def scons(conf, *targets, **variables):
    """scons with the profiles file `conf` and exactly these variables (no TINY values unless given)."""
    cmd = [scons_exe(), "-C", ROOT, f"--project-conf={conf}", *[f"{k}={v}" for k, v in variables.items()], *targets]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def error_lines(proc):
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]


def help_rows(output):
    """{NAME: (value, source, column where the value starts)} from `scons -h`'s variable table."""
    table = output.split("\nVariables (", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = {}
    for line in table:
        match = re.match(r"  ([A-Z][A-Z0-9_]*)( +)(\S.*?)  +(\S.*)$", line)
        if match:
            rows[match.group(1)] = (match.group(3), match.group(4), 2 + len(match.group(1)) + len(match.group(2)))
    return rows


def write(path, text):
    path.write_text(text)
    return path


def test_precedence_command_line_profile_common_board_builtin(tmp_path):
    ini = write(tmp_path / "tinyml.ini", """
[env]
SEED = 3
CHANNELS = 3      ; over the Mega's model_defaults (CHANNELS 1)

[env:base]
EPOCHS = 5
BATCH = 4

[env:mega-tiny]
extends = env:base
board = mega      ; keys are case-insensitive
BATCH = 8
ARDUINO_FLAGS = --warnings all
    --verbose
""")
    chosen = profiles.resolve({"ENV": "mega-tiny", "EPOCHS": "2"}, str(ini))
    cfg = chosen.parse("mega")
    assert (cfg["epochs"], cfg["batch"], cfg["seed"], cfg["channels"], cfg["size"], cfg["depth"], cfg["samples"]) \
        == (2, 8, 3, 3, 32, 2, 1000)
    assert cfg["boards"] == ["mega"] and cfg["arduino_flags"] == ["--warnings", "all", "--verbose"]
    # a list on several lines, as platformio.ini writes them
    listed = write(tmp_path / "listed.ini", "[env:two]\nBOARD =\n    mega,\n    nano33ble\n")
    assert profiles.resolve({"ENV": "two"}, str(listed)).parse()["boards"] == ["mega", "nano33ble"]
    sources = {name: source for name, _, source in profiles.in_force(chosen, [boards.get("mega")])}
    assert sources["EPOCHS"] == "command line"
    assert sources["BATCH"].endswith("[env:mega-tiny]") and sources["BOARD"].endswith("[env:mega-tiny]")
    assert sources["SEED"].endswith("[env]") and sources["CHANNELS"].endswith("[env]")
    assert sources["SIZE"] == "board default (boards.json: mega)" and sources["SAMPLES"] == "built-in default"
    # several boards: a value their model_defaults set differently is shown per board
    both = {name: (value, source) for name, value, source in
            profiles.in_force(profiles.resolve({"BOARD": "mega,nano33ble"}, str(ini)),
                              [boards.get("mega"), boards.get("nano33ble")])}
    assert both["DEPTH"] == ("mega: 2; nano33ble: (empty)", "mega: board default (boards.json); nano33ble: "
                                                            "built-in default")
    assert both["CHANNELS"][1].endswith("[env]") and both["BATCH"] == ("32", "built-in default")
    # The same file without ENV=: only [env] applies
    assert profiles.resolve({}, str(ini)).parse()["epochs"] == 20


def test_save_edits_only_its_section(tmp_path):
    original = """; team profiles
[tinyml]
default_envs = nano   # the usual one

[env:nano]
BOARD = nano33ble
epochs = 3     ; quick

# the Mega
[env:mega-tiny]
LABELS = a.txt
   continued.txt
SAMPLES = 16
"""
    ini = write(tmp_path / "tinyml.ini", original)
    message = profiles.save(str(ini), {"ENV": "nano", "EPOCHS": "5", "SEED": "4"})
    text = ini.read_text()
    assert "updated [env:nano]" in message and "EPOCHS = 5" in message and "SEED = 4" in message
    # the key keeps its spelling, place and comment; the new one follows the section's last line
    assert "epochs = 5  ; quick\nSEED = 4\n\n# the Mega" in text
    assert text.replace("epochs = 5  ; quick\nSEED = 4", "epochs = 3     ; quick") == original
    profiles.save(str(ini), {"ENV": "mega-tiny", "LABELS": "", "BOARD": "mega"})
    assert ini.read_text().endswith("[env:mega-tiny]\nLABELS =\nSAMPLES = 16\nBOARD = mega\n")
    profiles.save(str(ini), {"ENV": "new", "SIZE": "48"})
    sections = profiles.load(str(ini)).sections
    assert sections["env:new"]["SIZE"][0] == "48" and sections["env:nano"]["EPOCHS"][0] == "5"
    # a value the ini syntax would cut short is refused and the file stays as it was
    before = ini.read_text()
    with pytest.raises(ConfigError, match="cannot be kept in an ini file"):
        profiles.save(str(ini), {"ENV": "new", "RUN_ARGS": "--a ;b"})
    assert ini.read_text() == before and os.listdir(tmp_path) == ["tinyml.ini"]


def test_profile_values_reach_the_build_and_a_bare_rerun_is_a_noop(tmp_path):
    build = tmp_path / "build"
    ini = write(tmp_path / "tinyml.ini", f"""
[tinyml]
default_envs = small

[env:small]
SIZE = 32
SAMPLES = 12
CHANNELS = 1
BUILD_DIR = {build}
""")
    first = scons(ini, "dataset", ENV="small")
    assert first.returncode == 0, first.stderr
    npz = build / "nano33ble" / "dataset.npz"
    assert np.load(npz)["x"].shape[1:] == (32, 32, 1)
    count = len(np.load(npz)["x"])
    assert built_stages(first.stdout)
    # the same profile, by name and through default_envs: nothing to do
    for again in (scons(ini, "dataset", ENV="small"), scons(ini, "dataset")):
        assert again.returncode == 0 and built_stages(again.stdout) == [], again.stdout
    # the command line wins for its run only
    override = scons(ini, "dataset", CHANNELS=3, SAMPLES=16)
    assert "Packing dataset" in " ".join(built_stages(override.stdout))
    assert np.load(npz)["x"].shape[1:] == (32, 32, 3) and len(np.load(npz)["x"]) > count
    back = scons(ini, "dataset")
    assert np.load(npz)["x"].shape[1:] == (32, 32, 1) and len(np.load(npz)["x"]) == count
    # ENV= (empty) chooses no profile: the built-in defaults, elsewhere
    other = tmp_path / "other"
    none = scons(ini, "dataset", ENV="", BUILD_DIR=other, SAMPLES=8)
    assert none.returncode == 0 and np.load(other / "nano33ble" / "dataset.npz")["x"].shape[1:] == (64, 64, 3)
    assert back.returncode == 0


@pytest.mark.heavy
def test_epochs_from_the_profile_train_the_model(tmp_path):
    build = tmp_path / "build"
    tiny = {k: v for k, v in TINY.items() if k != "EPOCHS"}
    ini = write(tmp_path / "tinyml.ini", "[env:two]\nEPOCHS = 2\n" + "".join(f"{k} = {v}\n" for k, v in tiny.items()))
    proc = scons(ini, "train", ENV="two", BUILD_DIR=build)
    assert proc.returncode == 0, proc.stderr[-2000:]
    history = json.loads((build / "nano33ble" / "train_history.json").read_text())
    assert history["epochs"] == 2 and len(history["history"]["loss"]) == 2
    again = scons(ini, "train", ENV="two", BUILD_DIR=build)
    assert again.returncode == 0 and built_stages(again.stdout) == []


def test_help_shows_values_in_force_and_their_sources(tmp_path):
    ini = write(tmp_path / "tinyml.ini", """
[env]
SEED = 7

[env:mega-tiny]
BOARD = mega
SAMPLES = 16
MONITOR_TIMEOUT = 45
""")
    proc = scons(ini, "-h", ENV="mega-tiny", EPOCHS=3, DOWNLOAD_LIMIT=5)
    assert proc.returncode == 0, proc.stderr
    rows = help_rows(proc.stdout)
    assert set(rows) == set(config.VARIABLES)
    shown = str(ini)        # outside the project folder: named in full
    assert rows["EPOCHS"][:2] == ("3", "command line")
    assert rows["DOWNLOAD_LIMIT"][:2] == ("5", "command line")
    assert rows["BOARD"][:2] == ("mega", f"{shown} [env:mega-tiny]")
    assert rows["MONITOR_TIMEOUT"][:2] == ("45", f"{shown} [env:mega-tiny]")
    assert rows["SEED"][:2] == ("7", f"{shown} [env]")
    assert rows["SIZE"][:2] == ("32", "board default (boards.json: mega)")
    assert rows["BATCH"][:2] == ("32", "built-in default")
    assert rows["DATA"][:2] == ("(empty)", "built-in default")
    assert rows["ENV"][:2] == ("mega-tiny", "command line")
    assert rows["BUILD_DIR"][:2] == (os.path.join("build", "mega-tiny"), "profile mega-tiny's own folder")
    # one value column for all names (aligned to the longest), no quoted numbers, wrapped to the width
    assert len({column for _, _, column in rows.values()}) == 1
    assert "'20'" not in proc.stdout and "'32'" not in proc.stdout
    table = proc.stdout.split("\nVariables (", 1)[1].split("\n\n", 1)[0]
    helps = [line for line in table.splitlines()[1:] if line.startswith(" " * 10)]
    assert helps and max(len(line) for line in helps) <= 100
    assert "* mega-tiny" in proc.stdout and "in force: ENV=mega-tiny" in proc.stdout


def test_save_through_scons_writes_the_profile_and_builds_nothing(tmp_path):
    build = tmp_path / "build"
    ini = write(tmp_path / "tinyml.ini", "# ours\n[env:nano]\nBOARD = nano33ble\n")
    proc = scons(ini, "save", ENV="mega-tiny", BOARD="mega", EPOCHS=5, BUILD_DIR=build)
    assert proc.returncode == 0, proc.stderr
    assert "added [env:mega-tiny]" in proc.stdout and "EPOCHS = 5" in proc.stdout
    assert not build.exists() and built_stages(proc.stdout) == []
    text = ini.read_text()
    assert text.startswith("# ours\n[env:nano]\nBOARD = nano33ble\n") and "[env:mega-tiny]\nBOARD = mega\n" in text
    rows = help_rows(scons(ini, "-h", ENV="mega-tiny").stdout)
    assert rows["EPOCHS"][:2] == ("5", f"{ini} [env:mega-tiny]") and rows["BOARD"][0] == "mega"
    # a bad value is refused before the file is touched, as on any command line
    bad = scons(ini, "save", ENV="mega-tiny", EPOCHS=0)
    assert bad.returncode == 2 and error_lines(bad) == ["error: EPOCHS=0 is too small; it must be at least 1"]
    assert ini.read_text() == text
    alone = scons(ini, "save", "dataset", ENV="mega-tiny", EPOCHS=4)
    assert alone.returncode == 2 and "run it alone" in error_lines(alone)[0] and ini.read_text() == text
    for no_write in ("-h", "-n"):
        untouched = scons(ini, "save", no_write, ENV="mega-tiny", EPOCHS=4)
        assert untouched.returncode == 0 and ini.read_text() == text
    assert "not written" in untouched.stdout
    nameless = scons(ini, "save", EPOCHS=4)
    assert nameless.returncode == 2 and "needs ENV=NAME" in error_lines(nameless)[0]


def command_line_message(**raw):
    with pytest.raises(ConfigError) as e:
        config.parse({k: str(v) for k, v in raw.items()})
    return str(e.value)


@pytest.mark.parametrize("text,variables,expected", [
    ("[env:a]\nEPOCHS = 3\n", {"ENV": "b"}, "ENV=b: {ini} has no [env:b]; known profiles: a"),
    ("[env:a]\nSEED = 1\nEPOHCS = 3\n", {"ENV": "a"}, "{ini}:3: unknown key 'EPOHCS' in [env:a]; `scons -h` lists"),
    ("[env]\nSEED = 1\n\n[env:a]\nEPOCHS = 0\n", {"ENV": "a"},
     "{ini}:5 [env:a]: " + command_line_message(EPOCHS=0)),
    ("[env]\nALPHA = 0.3\n", {}, "{ini}:2 [env]: " + command_line_message(ALPHA=0.3)),
    ("[env:a]\nBOARD = esp99\n", {"ENV": "a"}, "{ini}:2 [env:a]: BOARD='esp99' is not a known board"),
    ("EPOCHS = 3\n", {}, "{ini}:1: 'EPOCHS = 3' comes before any [section] header"),
    ("[env:a]\nEPOCHS 3\n", {"ENV": "a"}, "{ini}:2: 'EPOCHS 3' is not a KEY = value line"),
    ("[env:a]\nEPOCHS = 1\nepochs = 2\n", {"ENV": "a"}, "{ini}:3: 'epochs' is given twice in [env:a]"),
    ("[envs:a]\n", {}, "{ini}:1: unknown section [envs:a]"),
    ("[env]\n[env: a]\n", {}, "{ini}:2: [env: a] is not a profile name"),
    ("[env:a]\nextends = env:b\n[env:b]\nextends = a\n", {"ENV": "a"}, "{ini}:2: [env:a] extends itself"),
    ("[tinyml]\ndefault_envs = a, b\n[env:a]\n[env:b]\n", {}, "{ini}:2: default_envs names 2 profiles"),
    ("[env]\nENV = a\n", {}, "{ini}:2: unknown key 'ENV' in [env]; ENV= chooses a profile on the command line"),
    (b"[env]\nDATA = caf\xe9\n", {}, "{ini} is not UTF-8 text"),
    (None, {}, "cannot read {ini} (Is a directory)"),
])
def test_bad_profiles_are_one_error_line(tmp_path, text, variables, expected):
    ini = tmp_path / "tinyml.ini"
    if text is None:
        ini.mkdir()
    elif isinstance(text, bytes):
        ini.write_bytes(text)
    else:
        ini.write_text(text)
    proc = scons(ini, "dataset", BUILD_DIR=tmp_path / "build", **variables)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = error_lines(proc)
    assert len(errors) == 1 and errors[0].startswith("error: " + expected.format(ini=ini)), errors
    assert not (tmp_path / "build").exists()


def test_a_fixed_profile_builds(tmp_path):
    build = tmp_path / "build"
    ini = write(tmp_path / "tinyml.ini", f"[env:a]\nSAMPLES = 2\nSIZE = 32\nBUILD_DIR = {build}\n")
    bad = scons(ini, "dataset", ENV="a")
    assert bad.returncode == 2 and error_lines(bad)[0].startswith(f"error: {ini}:2 [env:a]: SAMPLES=2 is too small")
    ini.write_text(ini.read_text().replace("SAMPLES = 2", "SAMPLES = 8"))
    fixed = scons(ini, "dataset", ENV="a")
    assert fixed.returncode == 0 and (build / "nano33ble" / "dataset.npz").exists()


def test_without_a_file_help_says_how_to_write_one(tmp_path):
    proc = scons(tmp_path / "tinyml.ini", "-h")
    assert proc.returncode == 0 and "Profiles: none" in proc.stdout and "scons save ENV=NAME" in proc.stdout
    missing = scons(tmp_path / "tinyml.ini", "dataset", ENV="x", BUILD_DIR=tmp_path / "b")
    assert missing.returncode == 2 and "there is no" in error_lines(missing)[0]
    assert profiles.project_file(ROOT) == os.path.join(ROOT, "tinyml.ini")
    if not os.path.exists(os.path.join(ROOT, "tinyml.ini")):     # without --project-conf: the project's file
        default = subprocess.run([scons_exe(), "-C", ROOT, "-h", f"BUILD_DIR={tmp_path / 'b'}"],
                                 capture_output=True, text=True, timeout=300)
        assert "Profiles: none (tinyml.ini does not exist" in default.stdout


def test_model_folder_is_readable_stable_and_apart_for_same_named_files(tmp_path):
    a = profiles.model_folder(str(tmp_path / "a" / "kws model.tflite"))
    assert a.startswith("model-kws_model-") and a == profiles.model_folder(str(tmp_path / "a" / "kws model.tflite"))
    assert a != profiles.model_folder(str(tmp_path / "b" / "kws model.tflite"))
    resolved = profiles.resolve({"MODEL": str(tmp_path / "m.tflite")}, str(tmp_path / "none.ini"))
    assert resolved.raw["BUILD_DIR"] == os.path.join("build", profiles.model_folder(str(tmp_path / "m.tflite")))
    explicit = profiles.resolve({"MODEL": "m.tflite", "BUILD_DIR": "out"}, str(tmp_path / "none.ini"))
    assert explicit.raw["BUILD_DIR"] == "out"       # an explicit BUILD_DIR= still wins
    ini = write(tmp_path / "tinyml.ini", "[env:x]\nSEED = 1\n")
    in_profile = profiles.resolve({"ENV": "x", "MODEL": "m.tflite"}, str(ini))
    assert in_profile.raw["BUILD_DIR"] == os.path.join("build", "x", profiles.model_folder("m.tflite"))


@pytest.mark.heavy      # four scons runs on a user model
def test_each_model_builds_in_its_own_folder_and_switching_rebuilds_neither(tmp_path):
    """MODEL=a, MODEL=b, MODEL=a again: the third run builds nothing (both shared build/<BOARD>/ before)."""
    import shutil
    import sys

    import keras

    sys.path.insert(0, os.path.dirname(__file__))
    from tflite_helpers import convert_int8, fit_briefly

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(keras.layers.Rescaling(1 / 255.0)(inp))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))
    X = np.random.RandomState(0).randint(0, 256, (16, 8, 8, 3)).astype(np.float32)
    fitted = fit_briefly(model, X)
    # two files with one name in two folders: their own folders all the same
    paths = [tmp_path / d / "m.tflite" for d in ("a", "b")]
    for path, rep in zip(paths, (16, 5)):
        path.parent.mkdir()
        path.write_bytes(convert_int8(fitted, X, "uint8", "uint8", rep=rep))
    ini = tmp_path / "none.ini"
    folders = [os.path.join(ROOT, "build", profiles.model_folder(str(p))) for p in paths]
    try:
        for path in paths:
            proc = scons(ini, "mlf", MODEL=path)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert built_stages(proc.stdout), proc.stdout
        assert all(os.path.isfile(os.path.join(f, "nano33ble", "model_mlf.tar")) for f in folders), os.listdir(folders[0])
        again = scons(ini, "mlf", MODEL=paths[0])
        assert again.returncode == 0 and built_stages(again.stdout) == [], again.stdout
    finally:
        for folder in folders:      # under the project's build/: the digest of a tmp path is this test's alone
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rmdir(os.path.join(ROOT, "build"))     # if this test made it
        except OSError:
            pass
