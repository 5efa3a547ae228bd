"""Issue 12: the generated sketch as an Arduino library (library.properties, src/, examples/, a .zip that
`arduino-cli lib install --zip-path` accepts, an example Debian's arduino-builder compiles for the Mega with the
library found via -libraries), sketch.yaml in the sketch folder, compile_commands.json for the host build."""
import json
import re
import os
import shlex
import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT, run_scons
from codegen import boards
from codegen.emit import arduino_library, sketch
from codegen.resources import sketch_templates_dir
from codegen.runners import avr

FAKE_CLI = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")
MEGA = {"name": "mega", "title": "Arduino Mega 2560", "fqbn": "arduino:avr:mega:cpu=atmega2560", "core": "arduino:avr",
        "progmem": True}   # as in boards.json: the example keeps its inputs in PROGMEM


def _cli(tmp_path, *args, unsafe=True, cwd=None):
    env = dict(os.environ, FAKE_ARDUINO_LOG=str(tmp_path / "cli.log"), ARDUINO_DIRECTORIES_USER=str(tmp_path / "sb"))
    env.pop("ARDUINO_LIBRARY_ENABLE_UNSAFE_INSTALL", None)
    if unsafe:
        env["ARDUINO_LIBRARY_ENABLE_UNSAFE_INSTALL"] = "true"
    return subprocess.run([sys.executable, FAKE_CLI, *args], capture_output=True, text=True, env=env, cwd=cwd)


def _render(fake_sketch_inputs, out, board=MEGA, name="demo", templates=None):
    ctx = {"board": board, "classes": ["random", "target"], "baud": 115200}
    sketch.render(templates or sketch_templates_dir(), str(out / name), name, *fake_sketch_inputs, ctx)
    return sketch.sketch_outputs(templates or sketch_templates_dir(), name, board=board)


def _export(fake_sketch_inputs, tmp_path, **kw):
    files = _render(fake_sketch_inputs, tmp_path / "sk", **kw)
    name = kw.get("name", "demo")
    lib = arduino_library.library_name(name)
    meta = {"inputs": [{"shape": [1, 8, 8, 3], "dtype": "uint8"}],
            "outputs": [{"shape": [1, 2], "dtype": "uint8", "size_bytes": 2}], "workspace_size_bytes": 64}
    fields = arduino_library.library_fields(kw.get("board", MEGA), ["random", "target"], meta)
    zip_path = tmp_path / "out" / (lib + ".zip")
    written = arduino_library.export_arduino_library(str(tmp_path / "sk" / name), name, files, str(tmp_path / "out"),
                                                     lib, fields, str(zip_path))
    return files, lib, written, zip_path


def _properties(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


# ------------------------------------------------------------------------------------------------ sketch.yaml

def test_sketch_yaml_names_the_boards_fqbn_and_core(fake_sketch_inputs, tmp_path):
    yaml = pytest.importorskip("yaml")
    files = _render(fake_sketch_inputs, tmp_path)
    assert "sketch.yaml" in files
    project = yaml.safe_load((tmp_path / "demo" / "sketch.yaml").read_text())
    assert project["default_fqbn"] == MEGA["fqbn"]
    assert project["profiles"]["mega"]["fqbn"] == MEGA["fqbn"]
    assert project["profiles"]["mega"]["platforms"] == [{"platform": "arduino:avr"}]
    # a pinned core version goes into the profile as arduino-cli writes it
    _render(fake_sketch_inputs, tmp_path, board=dict(MEGA, core_version="1.8.6"))
    project = yaml.safe_load((tmp_path / "demo" / "sketch.yaml").read_text())
    assert project["profiles"]["mega"]["platforms"] == [{"platform": "arduino:avr (1.8.6)"}]


def test_arduino_cli_compiles_the_sketch_folder_without_fqbn(fake_sketch_inputs, tmp_path):
    _render(fake_sketch_inputs, tmp_path)
    sketch_dir = str(tmp_path / "demo")
    args = ["compile", "--build-path", str(tmp_path / "b"), "--output-dir", str(tmp_path / "fw"), sketch_dir]
    assert _cli(tmp_path, *args).returncode == 0
    os.remove(os.path.join(sketch_dir, "sketch.yaml"))            # the stand-in wants a board, as the real one
    proc = _cli(tmp_path, *args)
    assert proc.returncode == 1 and "Missing FQBN" in proc.stderr


def test_board_without_fqbn_gets_no_sketch_yaml(fake_sketch_inputs, tmp_path):
    files = _render(fake_sketch_inputs, tmp_path, board={"name": "rpi4", "title": "Raspberry Pi 4"})
    assert "sketch.yaml" not in files and not (tmp_path / "demo" / "sketch.yaml").exists()
    # a BOARD that had one before: the stale file is removed, not left to mislead arduino-cli
    _render(fake_sketch_inputs, tmp_path)
    assert (tmp_path / "demo" / "sketch.yaml").exists()
    _render(fake_sketch_inputs, tmp_path, board={"name": "x"})
    assert not (tmp_path / "demo" / "sketch.yaml").exists()


# ------------------------------------------------------------------------------------------------ the library

def test_library_layout_properties_and_example(fake_sketch_inputs, tmp_path):
    files, lib, written, zip_path = _export(fake_sketch_inputs, tmp_path)
    root = tmp_path / "out" / lib
    assert written == arduino_library.library_files(files, "demo", lib)     # what the emitter declares
    props = _properties(root / "library.properties")
    for field in arduino_library.REQUIRED_PROPERTIES:
        assert props[field], field
    assert props["name"] == lib and props["architectures"] == "avr" and props["includes"] == lib + ".h"
    assert (root / "src" / "model" / "default_lib1.c").is_file() and (root / "src" / "images.c").is_file()
    ino = (root / "examples" / "demo" / "demo.ino").read_text()
    original = (tmp_path / "sk" / "demo" / "demo.ino").read_text()
    assert f"#include <{lib}.h>" in ino and '"src/' not in ino
    assert len(ino.splitlines()) == len(original.splitlines())        # compiler line numbers stay the sketch's
    header = (root / "src" / (lib + ".h")).read_text()
    assert header.index('#include "model.h"') < header.index('#include "images.h"')
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
    assert names == sorted(f"{lib}/{f}" for f in written)


def test_zip_is_reproducible_and_stale_files_go(fake_sketch_inputs, tmp_path):
    _, lib, _, zip_path = _export(fake_sketch_inputs, tmp_path)
    first = zip_path.read_bytes()
    stale = tmp_path / "out" / lib / "src" / "old.c"
    stale.write_text("int old;\n")
    _export(fake_sketch_inputs, tmp_path)
    assert zip_path.read_bytes() == first and not stale.exists()


def test_bad_library_name_or_field_is_a_clear_error():
    with pytest.raises(ValueError, match="may hold only"):
        arduino_library.properties_text({**{k: "x" for k in arduino_library.REQUIRED_PROPERTIES}, "name": "-bad"})
    with pytest.raises(ValueError, match="lacks url"):
        arduino_library.properties_text({k: "x" for k in arduino_library.REQUIRED_PROPERTIES if k != "url"})
    with pytest.raises(ValueError, match="line break"):
        arduino_library.properties_text({**{k: "x" for k in arduino_library.REQUIRED_PROPERTIES},
                                         "sentence": "two\nlines"})


def test_board_without_core_gets_any_architecture():
    assert arduino_library.architecture({"name": "linuxish"}) == "*"
    assert arduino_library.architecture({"core": "arduino:mbed_nano"}) == "mbed_nano"


# ------------------------------------------------------------------------------------------------ the stand-in

def test_portable_boards_get_any_architecture_and_the_version_follows_the_model():
    """Only an example that keeps its inputs in PROGMEM (AVR) is tied to its architecture; the version was 1.0.0
    for every model, now it carries the model's hash as semver build metadata."""
    meta = {"inputs": [{"shape": [1, 8, 8, 3], "dtype": "uint8"}],
            "outputs": [{"shape": [1, 2], "dtype": "uint8", "size_bytes": 2}], "workspace_size_bytes": 64}
    nano = arduino_library.library_fields(boards.get("nano33ble"), ["a", "b"], meta, "ab" * 32)
    mega = arduino_library.library_fields(MEGA, ["a", "b"], meta, "cd" * 32)
    assert nano["architectures"] == "*" and mega["architectures"] == "avr"
    assert nano["version"] == "1.0.0+" + "ab" * 6 and mega["version"] == "1.0.0+" + "cd" * 6
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+[0-9a-f]+)?", nano["version"])


def test_zip_installs_with_the_arduino_cli_stand_in(fake_sketch_inputs, tmp_path):
    _, lib, written, zip_path = _export(fake_sketch_inputs, tmp_path)
    proc = _cli(tmp_path, "lib", "install", "--zip-path", str(zip_path))
    assert proc.returncode == 0, proc.stderr
    installed = tmp_path / "sb" / "libraries" / lib
    assert sorted(os.path.relpath(os.path.join(d, f), installed) for d, _, fs in os.walk(installed)
                  for f in fs) == written
    # installing again replaces it, unless --no-overwrite
    assert _cli(tmp_path, "lib", "install", "--zip-path", str(zip_path)).returncode == 0
    proc = _cli(tmp_path, "lib", "install", "--no-overwrite", "--zip-path", str(zip_path))
    assert proc.returncode == 1 and "already installed" in proc.stderr


def test_stand_in_refuses_what_arduino_cli_refuses(fake_sketch_inputs, tmp_path):
    _, lib, _, zip_path = _export(fake_sketch_inputs, tmp_path)
    proc = _cli(tmp_path, "lib", "install", "--zip-path", str(zip_path), unsafe=False)
    assert proc.returncode == 1 and "disabled by default" in proc.stderr
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(two, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("README.txt", "stray\n")
    proc = _cli(tmp_path, "lib", "install", "--zip-path", str(two))
    assert proc.returncode == 1 and "multiple files found in zip file top level" in proc.stderr
    no_version = tmp_path / "noversion.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(no_version, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("library.properties"):
                data = b"\n".join(l for l in data.splitlines() if not l.startswith(b"version=")) + b"\n"
            dst.writestr(info, data)
    proc = _cli(tmp_path, "lib", "install", "--zip-path", str(no_version))
    assert proc.returncode == 1 and "missing version" in proc.stderr
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert _cli(tmp_path, "lib", "install", "--zip-path", str(tmp_path / "junk.zip")).returncode == 1
    assert not (tmp_path / "sb" / "libraries").exists() or not os.listdir(tmp_path / "sb" / "libraries")


# ------------------------------------------------------------------------------------------------ through scons

@pytest.fixture(scope="module")
def mega_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("arduinolib")
    proc = run_scons(build, "arduino-library", "compiledb", BOARD="mega")
    return build, proc


@pytest.mark.heavy      # a tiny training + TVM codegen through scons (~30 s)
def test_scons_library_installs_and_its_example_compiles_for_the_mega(mega_build, tmp_path):
    build, proc = mega_build
    lib = "tvm_model_inferencing"
    zip_path = build / "mega" / "arduino_library" / (lib + ".zip")
    assert f"Exporting the Arduino library -> {zip_path}" in proc.stdout
    assert _cli(tmp_path, "lib", "install", "--zip-path", str(zip_path)).returncode == 0
    installed = tmp_path / "sb" / "libraries" / lib
    assert _properties(installed / "library.properties")["architectures"] == "avr"
    if not avr.toolchain_available():
        pytest.skip("arduino-builder/AVR core missing: " + ", ".join(avr.missing_tools()))
    result = avr.compile_sketch(installed / "examples" / "tvm_model", MEGA["fqbn"], tmp_path / "ab",
                                libraries=[tmp_path / "sb" / "libraries"])
    # the model was compiled as the library's, not from a copy in the example
    assert os.path.isdir(tmp_path / "ab" / "libraries" / lib)
    # ... and it is the sketch's program: the same flash and static RAM as the sketch folder built alone
    alone = avr.compile_sketch(build / "mega" / "tvm_model", MEGA["fqbn"], tmp_path / "sk")
    assert (result["flash_bytes"], result["ram_bytes"]) == (alone["flash_bytes"], alone["ram_bytes"])
    # the sketch folder carries the board for arduino-cli
    assert (build / "mega" / "tvm_model" / "sketch.yaml").read_text().count(MEGA["fqbn"]) == 2


@pytest.mark.heavy
def test_scons_compile_commands_cover_the_sketch_and_compile(mega_build, tmp_path):
    build, _ = mega_build
    entries = json.loads((build / "mega" / "compile_commands.json").read_text())
    sketch_dir = build / "mega" / "tvm_model"
    sources = {str(p) for p in sketch_dir.rglob("*") if p.suffix in (".c", ".cpp", ".ino")}
    assert sources <= {e["file"] for e in entries}
    for e in entries:
        cmd = shlex.split(e["command"])
        assert f"-I{sketch_dir}" in cmd and cmd[0] in ("gcc", "g++")
        cmd[cmd.index("-o") + 1] = str(tmp_path / "x.o")      # the database's commands are real ones
        run = subprocess.run(cmd, cwd=e["directory"], capture_output=True, text=True)
        assert run.returncode == 0, (e["file"], run.stderr)


# ------------------------------------------------------------------------------------------------ scons -c

@pytest.mark.heavy      # a full tiny build of every MCU stage, then `scons -c`
def test_scons_clean_leaves_only_the_signature_database_and_lock(tmp_path):
    build = tmp_path / "b"
    targets = ["compile", "export", "compiledb", "arduino-library"]
    if avr.toolchain_available():
        targets.append("simulate")      # arduino-builder's work folder under simulate/
    common = {"BOARD": "mega", "ARDUINO_CLI": FAKE_CLI}
    env = {"FAKE_ARDUINO_LOG": str(tmp_path / "cli.log")}
    run_scons(build, *targets, env=env, **common)
    run_scons(build, env=env, **common)                     # and the default targets (report, memory, check)
    made = {os.path.relpath(os.path.join(d, f), build) for d, _, fs in os.walk(build) for f in fs}
    # the undeclared work files are there to be cleaned
    assert {"mega/firmware/tvm_model.ino.hex", "dataset/synthetic/index.json"} <= made
    assert any(f.startswith("dataset/synthetic/") and f.endswith(".png") for f in made)
    partial = build / "download-cache" / "archive.part"        # what `scons download` leaves to resume
    partial.parent.mkdir()
    partial.write_text("partial\n")
    proc = run_scons(build, "-c", env=env, **common)
    assert "Removed" in proc.stdout
    left = sorted(os.path.relpath(os.path.join(d, n), build) for d, ds, fs in os.walk(build) for n in ds + fs)
    # SCons writes its signature database after cleaning; the build lock is held until scons exits; the
    # download cache (multi-GB, resumable) goes only with `scons -c download`
    assert set(left) <= {".sconsign.dblite", ".scons.lock", "download-cache", "download-cache/archive.part"}, left
    assert partial.exists()
    run_scons(build, "-c", "download", env=env, **common)
    assert not partial.parent.exists()
