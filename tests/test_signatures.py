"""Nothing stale (issue 18): every stage's signature covers what its output depends on (file content, file
name, order, count, each variable), and nothing is recorded, cached or pushed when a stage did not really run
(-n, -q, a failed or interrupted stage). The seen cases, then a table-driven property test over every
registered stage (codegen/targets.py): change one thing, exactly the stages downstream of it rebuild, and the
outputs equal a clean build's."""
import filecmp
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, built_stages, run_scons, stage_lines

FAKE_CLI = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny full-int8 .tflite (8x8x3 uint8 -> 2 classes) and three 8x8 PNGs: a.png, b.png (a's bytes) and c.png."""
    import sys

    import keras

    sys.path.insert(0, os.path.dirname(__file__))
    from tflite_helpers import convert_int8, fit_briefly

    d = tmp_path_factory.mktemp("small")
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    X = np.random.RandomState(0).randint(0, 256, (16, 8, 8, 3)).astype(np.float32)
    fitted = fit_briefly(model, X)
    (d / "m.tflite").write_bytes(convert_int8(fitted, X, "uint8", "uint8"))
    (d / "m2.tflite").write_bytes(convert_int8(fitted, X[::-1], "uint8", "uint8", rep=5))  # other scales
    for name, seed in (("a.png", 1), ("c.png", 2), ("d.png", 3)):
        Image.fromarray(np.random.RandomState(seed).randint(0, 256, (8, 8, 3)).astype(np.uint8)).save(d / name)
    shutil.copy(d / "a.png", d / "b.png")
    return d


def _json(path):
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------ the seen cases
@pytest.mark.heavy      # several scons runs; the fast loop keeps the dry-run case below
def test_renamed_input_is_a_change(small, tmp_path):
    """Case 3: INPUTS=a.png then INPUTS=b.png with the same bytes was "up to date" and the sketch printed a.png."""
    build, model = tmp_path / "b", str(small / "m.tflite")
    run_scons(build, "check", MODEL=model, INPUTS=str(small / "a.png"), cache=True)      # the baseline
    proc = run_scons(build, "check", MODEL=model, INPUTS=str(small / "b.png"))
    assert "Embedding images" in built_stages(proc.stdout), proc.stdout
    out = build / "nano33ble"
    assert [i["title"] for i in _json(out / "expected.json")["images"]] == ["b.png"]
    assert "b.png" in (out / "images.c").read_text() and "a.png" not in (out / "images.c").read_text()
    assert [r["title"] for r in _json(out / "hostcheck.json")["images"]] == ["b.png"]


def test_dry_run_and_question_do_not_poison_the_next_build(small, tmp_path):
    """Case 2 (the check half): `scons -n check INPUTS=...` recorded the old outputs as built from the new
    inputs, and the next real build kept them ("kept ... its signature was never saved")."""
    build, model = tmp_path / "b", str(small / "m.tflite")
    run_scons(build, "check", MODEL=model, INPUTS=str(small / "a.png"), cache=True)      # the baseline
    new = str(small / "c.png")
    def records():
        folder = build / ".scons-finished"
        return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}

    before = records()
    for flag in ("-n", "-q"):
        proc = run_scons(build, flag, "check", check=False, MODEL=model, INPUTS=new)
        assert proc.returncode == (1 if flag == "-q" else 0), proc.stdout + proc.stderr
        assert records() == before, f"{flag} changed the records of finished targets"
    proc = run_scons(build, "check", MODEL=model, INPUTS=new)
    assert "kept `" not in proc.stdout, proc.stdout
    assert "Embedding images" in built_stages(proc.stdout)
    assert [r["title"] for r in _json(build / "nano33ble" / "hostcheck.json")["images"]] == ["c.png"]


def test_failed_stage_records_nothing(small, tmp_path):
    """A stage that failed wrote nothing the records (or a cache) could bring back."""
    build, model = tmp_path / "b", str(small / "m.tflite")
    bad = tmp_path / "bad.png"
    bad.write_text("not a PNG")
    proc = run_scons(build, "images", check=False, MODEL=model, INPUTS=str(bad))
    assert proc.returncode != 0
    assert not any(n.endswith(".json") for n in os.listdir(build / ".scons-finished")) \
        if (build / ".scons-finished").exists() else True


def test_upload_after_the_board_was_reflashed_elsewhere(small, tmp_path):
    """Case 4: "already runs this binary: upload skipped" came from firmware/upload.json, so a board reflashed
    from the IDE in between was skipped. Through scons, the arduino-cli stand-in and a pty as the board."""
    from helpers import FakeBoard

    board = FakeBoard(runs="0123456789abcdef")
    build = tmp_path / "b"
    log = tmp_path / "cli.log"
    variables = {"MODEL": str(small / "m.tflite"), "INPUTS": str(small / "a.png"), "ARDUINO_CLI": FAKE_CLI,
                 "PORT": board.port}

    def uploads():
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return sum(json.loads(line)[0] == "upload" for line in lines)

    try:
        first = run_scons(build, "upload", env={"FAKE_ARDUINO_LOG": str(log)}, **variables)
        assert uploads() == 1, first.stdout
        board.runs = _json(build / "nano33ble" / "firmware" / "compile.json").get("build_id", "(none)")
        same = run_scons(build, "upload", env={"FAKE_ARDUINO_LOG": str(log)}, **variables)
        assert uploads() == 0 and "upload skipped" in same.stdout, same.stdout
        board.runs = "fedcba9876543210"             # reflashed from the Arduino IDE
        reflashed = run_scons(build, "upload", env={"FAKE_ARDUINO_LOG": str(log)}, **variables)
        assert uploads() == 1, reflashed.stdout
        # and each decision says why
        assert "runs build 0123456789abcdef" in first.stdout, first.stdout
        assert f"reports build id {board.runs}" not in same.stdout and "reports build id" in same.stdout
        assert "runs build fedcba9876543210" in reflashed.stdout and "uploaded to" in reflashed.stdout
    finally:
        board.close()


@pytest.mark.heavy
def test_dry_run_before_retraining_does_not_keep_the_old_model(tmp_path):
    """Case 2 as filed: train EPOCHS=1, `scons -n train EPOCHS=2`, then `scons train EPOCHS=2` kept the 1-epoch
    model (train_history.json said 1 epoch)."""
    build = tmp_path / "b"
    small_run = {"SAMPLES": "50", "SIZE": "32"}
    run_scons(build, "train", EPOCHS="1", **small_run)
    run_scons(build, "-n", "train", EPOCHS="2", **small_run)
    proc = run_scons(build, "train", EPOCHS="2", **small_run)
    assert "kept `" not in proc.stdout and "Training MobileNetV1" in built_stages(proc.stdout), proc.stdout
    history = _json(build / "nano33ble" / "train_history.json")
    assert history["epochs"] == 2 and len(history["history"]["loss"]) == 2


# ------------------------------------------------------------------------------------------------ the property
# Which stage printed a stage line (its COMSTR), so that a run's output says which stages rebuilt.
STAGE_LINES = {"Generating synthetic": "dataset", "Packing dataset": "dataset", "Training": "train",
               "Quantizing": "quantize", "Evaluating": "report", "Embedding images": "images",
               "TFLite reference scores": "expected", "TVM codegen": "mlf", "Rendering sketch": "sketch",
               "Host check": "check", "Memory report": "memory", "Per-layer memory plot": "memory",
               "Exporting the model as a C library": "export", "Exporting the Arduino library": "arduino-library",
               "Building compilation database": "compiledb", "arduino-cli compile": "compile",
               "Simulating": "simulate", "Measuring the TFLM tensor arena": "tflm_arena",
               "Profiling per layer": "profile", "Per-layer profile plot": "profile"}


def rebuilt(output):
    """The set of stages a scons run executed; a stage line this table does not know fails the test."""
    stages = set()
    for line in stage_lines(output):
        if " -> " not in line and not line.startswith("Building compilation database"):
            continue
        if line.startswith(("scons:", "warning:", "note:", "error:")) or line.startswith(" "):
            continue
        known = [stage for prefix, stage in STAGE_LINES.items() if line.startswith(prefix)]
        assert known, f"a stage line the property test cannot place: {line!r}"
        stages.add(known[0])
    return stages - {"compiledb"}       # always built, see NOT_INCREMENTAL


# Stages that build nothing that could be stale, with why; every other registered stage needs a row below that
# changes something it depends on (a new stage without either fails test_every_registered_stage_is_covered).
NOT_INCREMENTAL = {
    "upload": "always asked for; skipped only when the board reports this build id (test_arduino)",
    "monitor": "builds nothing: watches the port",
    "verify": "builds nothing: reads the board's scores",
    "download": "fetches URLs into DOWNLOAD_DIR; its cache is keyed by URL (test_scons_download)",
    "save": "writes tinyml.ini, builds nothing",
    "bundle": "Linux boards only (test_linux covers its rebuilds)",
    "tflm_arena": "BACKEND=tflm with a TFLite Micro tree from ../shared (test_tflm); not in these configs",
    "compiledb": "SCons' compilation_db tool makes the database AlwaysBuild (it collects its entries during the "
                 "run; milliseconds); its bytes are compared with a clean build's below",
    "boards": "builds nothing: lists boards.json",
    "devices": "builds nothing: lists the serial ports",
    "tune": "a study whose trials are ordinary builds of these stages, in folders of their own (test_tune)",
}

BASE_INPUTS = ("a.png", "c.png")
FAST_TARGETS = ("check", "memory", "export", "compiledb", "compile")
# The heavy rows also run the QEMU stages: simulate reads the MLF, the images, the expected scores and the
# sketch; profile the MLF and the images.
HEAVY_TARGETS = (*FAST_TARGETS, "simulate", "profile")
AFTER_INPUTS = {"images", "expected", "sketch", "check", "arduino-library", "compile", "simulate", "profile"}

# (what changes, the stages it must rebuild, how): each row changes ONE thing relative to the previous row's state.
# The fast loop's budget takes one row (a file name: test_renamed_input_is_a_change); the rest are heavy.
FAST_ROWS = [
    ("ARDUINO_FLAGS", {"compile"}, {"ARDUINO_FLAGS": "--warnings all"}),
]
HEAVY_ROWS = [
    ("input file name", AFTER_INPUTS, {"INPUTS": ("b.png", "c.png")}),          # b.png has a.png's bytes
    ("input order", AFTER_INPUTS, {"INPUTS": ("c.png", "b.png")}),
    ("input count", AFTER_INPUTS, {"INPUTS": ("c.png", "b.png", "d.png")}),
    ("input content", AFTER_INPUTS, {"edit": "d.png"}),
    ("model content", {"mlf", "memory", "export", *AFTER_INPUTS}, {"model": "m2.tflite"}),
    ("LABELS file content", AFTER_INPUTS, {"LABELS": "one\ntwo\n"}),
    ("LABELS file name", set(), {"LABELS_NAME": "labels2.txt"}),
    ("SKETCH", {"sketch", "check", "arduino-library", "compile", "simulate"}, {"SKETCH": "other_sketch"}),
    # the code generator's switch (an environment variable): other C (and code size) for the model, same images
    ("TINYML_MICROKERNELS=0", {"mlf", "memory", "export", "sketch", "check", "arduino-library", "compile",
                               "simulate", "profile"},
     {"environ": {"TINYML_MICROKERNELS": "0"}}),
]
COVERED_BY_TRAINING = {"dataset", "train", "quantize", "report"}     # test_training_parameters_property


def test_every_registered_stage_is_covered():
    from codegen import targets

    rows = set().union(*(stages for _, stages, _ in FAST_ROWS + HEAVY_ROWS)) | COVERED_BY_TRAINING
    registered = {t.name for t in targets.TARGETS}
    missing = registered - rows - set(NOT_INCREMENTAL)
    assert not missing, f"registered stages no property row rebuilds (add a row or a NOT_INCREMENTAL reason): {missing}"
    assert not (set(NOT_INCREMENTAL) | rows) - registered, "rows name stages that are not registered"
    assert set(STAGE_LINES.values()) <= registered


class _Config:
    """The variables of one build, changed one thing at a time."""

    def __init__(self, small, folder):
        self.small, self.folder = small, folder
        self.inputs, self.flags, self.labels, self.sketch = BASE_INPUTS, None, None, None
        self.environ = {}
        self.model = folder / "model.tflite"
        shutil.copy(small / "m.tflite", self.model)
        for name in ("a.png", "b.png", "c.png", "d.png"):
            shutil.copy(small / name, folder / name)

    def apply(self, change):
        for key, value in change.items():
            if key == "INPUTS":
                self.inputs = value
            elif key == "edit":
                path = self.folder / value
                arr = np.asarray(Image.open(path)).copy()
                arr[0, 0] = 255 - arr[0, 0]
                Image.fromarray(arr).save(path)
            elif key == "ARDUINO_FLAGS":
                self.flags = value
            elif key == "model":
                shutil.copy(self.small / value, self.model)
            elif key == "LABELS":
                self.labels = self.folder / "labels.txt"
                self.labels.write_text(value)
            elif key == "LABELS_NAME":
                renamed = self.folder / value
                os.replace(self.labels, renamed)
                self.labels = renamed
            elif key == "SKETCH":
                self.sketch = value
            elif key == "environ":
                self.environ.update(value)
            else:
                raise AssertionError(key)

    def variables(self):
        v = {"MODEL": str(self.model), "INPUTS": ",".join(str(self.folder / n) for n in self.inputs),
             "ARDUINO_CLI": FAKE_CLI}
        if self.flags:
            v["ARDUINO_FLAGS"] = self.flags
        if self.labels:
            v["LABELS"] = str(self.labels)
        if self.sketch:
            v["SKETCH"] = self.sketch
        return v


def _scons(build, *args, check=True, environ=None, **variables):
    log = build.parent / f"{build.name}-cli.log"
    return run_scons(build, *args, check=check, env={"FAKE_ARDUINO_LOG": str(log), **(environ or {})}, **variables)


# Files whose bytes legitimately differ between two builds of the same inputs, and why.
NOT_COMPARED = {
    "hostcheck.json": "holds the measured inference time",
    "compile.json": "holds arduino-cli's command line (the build folder's path)",
    "model.keras": "a zip with the time it was saved in it (train_history.json and model.tflite are compared)",
    "compile_commands.json": "absolute paths of the build folder and the sketch copy's",
    "sim.elf.map": "the linker's map names gcc's temporary objects (/tmp/ccXXXXXX.o), new in every build",
    "profile.elf.map": "the linker's map names gcc's temporary objects (/tmp/ccXXXXXX.o), new in every build",
}


def _outputs(build):
    """{path relative to the board's folder: bytes} of every output, without the build's own bookkeeping."""
    board = build / "nano33ble"
    found = {}
    for dirpath, dirnames, filenames in os.walk(board):
        dirnames[:] = [d for d in dirnames if d not in ("arduino-build", "compiledb")]
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), board)
            if os.path.basename(rel) not in NOT_COMPARED:
                found[rel] = (board / rel).read_bytes().replace(str(build).encode(), b"<BUILD>")
    return found


def _assert_same_outputs(incremental, clean):
    a, b = _outputs(incremental), _outputs(clean)
    # Files of targets no longer declared (the old sketch folder after SKETCH=) stay, as SCons leaves them.
    assert not set(b) - set(a), f"the incremental build lacks {sorted(set(b) - set(a))}"
    differ = [rel for rel in b if a[rel] != b[rel]]
    assert not differ, f"incremental and clean builds differ in {differ}"


def _run_rows(rows, small, tmp_path, base_build=None, targets=FAST_TARGETS):
    config = _Config(small, tmp_path)
    build = base_build or tmp_path / "inc"
    if base_build is None:
        _scons(build, *targets, environ=config.environ, **config.variables())
    for what, expected, change in rows:
        config.apply(change)
        proc = _scons(build, *targets, environ=config.environ, **config.variables())
        assert rebuilt(proc.stdout) == expected, f"changing the {what}: rebuilt {rebuilt(proc.stdout)}, " \
                                                 f"expected {expected}\n{proc.stdout[-3000:]}"
        again = _scons(build, *targets, environ=config.environ, **config.variables())
        assert rebuilt(again.stdout) == set(), f"after the {what}, a second run rebuilt {rebuilt(again.stdout)}"
    clean = tmp_path / "clean"
    _scons(clean, *targets, environ=config.environ, **config.variables())
    _assert_same_outputs(build, clean)


@pytest.mark.heavy
def test_dry_run_and_question_before_any_build_change_nothing_and_each_change_rebuilds_its_stages(small, tmp_path):
    """-n and -q on a fresh build dir, then the build, then the fast rows: the outputs equal a clean build's (the
    rows rebuild only `compile`, so every other output is the one built after -n and -q)."""
    config = _Config(small, tmp_path)
    first = tmp_path / "first"
    for flag in ("-n", "-q"):
        proc = _scons(first, flag, *FAST_TARGETS, check=False, **config.variables())
        assert proc.returncode == (1 if flag == "-q" else 0), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not (first / ".scons-finished").exists() or not os.listdir(first / ".scons-finished")
    _scons(first, *FAST_TARGETS, **config.variables())
    _run_rows(FAST_ROWS, small, tmp_path, base_build=first)


@pytest.mark.heavy
def test_order_count_content_model_labels_sketch_and_switch_rows(small, tmp_path):
    _run_rows(HEAVY_ROWS, small, tmp_path, targets=HEAVY_TARGETS)


# Training rows: the default targets in the TINY configuration; each row changes one variable.
AFTER_TFLITE = {"quantize", "report", "mlf", "memory", "images", "expected", "sketch", "check"}
TRAINING_ROWS = [
    ("REP_SAMPLES", AFTER_TFLITE, {"REP_SAMPLES": "4"}),
    ("EPOCHS", {"train"} | AFTER_TFLITE, {"EPOCHS": "2"}),
    ("SAMPLES", {"dataset", "train"} | AFTER_TFLITE, {"SAMPLES": "20"}),
]


@pytest.mark.heavy
def test_training_parameters_property(tmp_path):
    """dataset, train, quantize and report: change one variable, exactly what depends on it rebuilds (a no-op
    after), and the outputs equal a clean build's."""
    assert COVERED_BY_TRAINING <= set().union(*(stages for _, stages, _ in TRAINING_ROWS))
    build, variables = tmp_path / "inc", {}
    run_scons(build)
    for what, expected, change in TRAINING_ROWS:
        variables.update(change)
        proc = run_scons(build, **variables)
        assert rebuilt(proc.stdout) == expected, f"changing {what}: rebuilt {rebuilt(proc.stdout)}, expected " \
                                                 f"{expected}\n{proc.stdout[-3000:]}"
        assert rebuilt(run_scons(build, **variables).stdout) == set(), f"after {what}, a second run rebuilt"
    clean = tmp_path / "clean"
    run_scons(clean, **variables)
    _assert_same_outputs(build, clean)


# ------------------------------------------------------------------------------------------------ the project's code
def _checkout_copy(dest):
    """This working tree's tracked files (as they are now) in `dest`, with the venv linked: a checkout to edit."""
    import subprocess

    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(dest / os.path.dirname(rel), exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


CODE_ROWS = [   # (file edited, the stages whose output comes from it)
    ("codegen/lowering/ops/pool.py", {"mlf"}),
    ("codegen/emit/bin2c.py", {"images", "expected"}),    # expected uses its helpers; the sketch quotes through codegen.escape
    ("codegen/errors.py", set()),                 # how stages fail, not what they write
    ("codegen/stages/train.py", set()),           # no training with MODEL=
    ("codegen/runners/hostcheck.py", {"check", "expected"}),
]


@pytest.mark.heavy
def test_a_change_in_the_code_generator_rebuilds_what_it_made(small, tmp_path):
    """An edit in codegen/ is a change of what the stages that import it produce (a fixed lowering must
    regenerate the MLF), and of nothing else. A comment keeps every output, so only those stages run."""
    import subprocess
    import sys

    checkout = _checkout_copy(tmp_path / "checkout")
    scons = os.path.join(os.path.dirname(sys.executable), "scons")
    variables = {"BUILD_DIR": str(tmp_path / "b"), "MODEL": str(small / "m.tflite"), "INPUTS": str(small / "a.png")}

    def build():
        proc = subprocess.run([scons, "-C", str(checkout), *[f"{k}={v}" for k, v in variables.items()], "check"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return rebuilt(proc.stdout)

    assert "mlf" in build()
    for rel, expected in CODE_ROWS:
        with open(checkout / rel, "a") as f:
            f.write("# an edit\n")
        assert build() == expected, rel
        assert build() == set(), f"after editing {rel}, a second run rebuilt"
