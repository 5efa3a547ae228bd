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


# ------------------------------------------------------------------------------------------------ classify()

def _rgb565(rgb):
    """RGB888 pixels -> RGB565 values, and the RGB888 pixels they widen back to (bit replication, as classify()
    does): a PNG of the latter is the same picture for the build as the 565 frame is for classify()."""
    import numpy as np

    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    v = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    r5, g6, b5 = v >> 11, (v >> 5) & 0x3F, v & 0x1F
    wide = np.stack([(r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)], axis=-1)
    return v, wide.astype(np.uint8)


def _frame(seed, height, width):
    """A smooth picture with some texture (a resize that rounds differently would show), as a camera gives."""
    import numpy as np

    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), (xx + yy) * 127 // (width + height)], -1)
    return np.clip(base + rng.randint(-40, 41, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def classify_build(tmp_path_factory):
    """A build whose test inputs are two PNGs of another size than the model's (32x32 RGB): a colour one whose
    colours RGB565 holds exactly, and a gray one."""
    from PIL import Image

    build = tmp_path_factory.mktemp("classify")
    _, color = _rgb565(_frame(1, 45, 61))
    gray = _frame(2, 50, 37)[..., 0]
    Image.fromarray(color, "RGB").save(build / "color.png")
    Image.fromarray(gray, "L").save(build / "gray.png")
    proc = run_scons(build / "b", "arduino-library", BOARD="nano33ble",
                     INPUTS=f"{build / 'color.png'},{build / 'gray.png'}")
    return build, proc, color, gray


def _classify_line(lib_dir, tmp_path, title, frame, width, height, fmt):
    """The line the library's classify example prints for `frame` (bytes), built and run on the host."""
    import shutil

    from codegen.runners import hostcheck
    from codegen.protocol import parse_results

    lib = tmp_path / "lib"
    shutil.copytree(lib_dir, lib)
    data = ", ".join(str(b) for b in frame)
    (lib / "examples" / "classify" / "frame.h").write_text(
        f'#include <stdint.h>\n#define FRAME_TITLE "{title}"\n#define FRAME_WIDTH {width}\n'
        f"#define FRAME_HEIGHT {height}\n#define FRAME_FORMAT {fmt}\n"
        f"static const uint8_t frame_pixels[] __attribute__((aligned(2))) = {{{data}}};\n")
    work = tmp_path / "work"
    work.mkdir()
    exe = hostcheck.build_library_example(str(lib), "classify", str(work))
    printed = parse_results(hostcheck.run_host_binary(exe, "the classify example"))
    assert len(printed) == 1 and printed[0].error is None, printed
    return printed[0]


@pytest.mark.heavy      # a tiny training + TVM codegen through scons, then five host builds of the example
def test_classify_on_a_resized_frame_equals_the_pipeline(classify_build, tmp_path):
    """classify() on a 61x45 frame as RGB888, RGB565 (both byte orders) and on a 37x50 gray frame gives the very
    scores and line that tf.lite gives for the same PNG as the build preprocesses it (INPUTS=)."""
    import numpy as np

    build, proc, color, gray = classify_build
    out = build / "b" / "nano33ble"
    lib_dir = out / "arduino_library" / "tvm_model_inferencing"
    assert "Host check of the Arduino library" in proc.stdout
    # the scons check ran the example on its frame: the first input, the same line as tf.lite
    check = json.loads((out / "arduino_library" / "librarycheck.json").read_text())
    assert check["compared"] == "image_color" and check["exact"]
    expected = {e["title"]: e for e in json.loads((out / "expected.json").read_text())["images"]}
    v565, _ = _rgb565(_frame(1, 45, 61))
    frames = [("color.png", color.tobytes(), 61, 45, "CLASSIFY_RGB888"),
              ("color.png", v565.astype("<u2").tobytes(), 61, 45, "CLASSIFY_RGB565"),
              ("color.png", v565.astype(">u2").tobytes(), 61, 45, "CLASSIFY_RGB565_BE"),
              ("gray.png", gray.tobytes(), 37, 50, "CLASSIFY_GRAY8"),
              ("gray.png", np.repeat(gray[..., None], 3, -1).tobytes(), 37, 50, "CLASSIFY_RGB888")]
    for i, (title, data, width, height, fmt) in enumerate(frames):
        got = _classify_line(lib_dir, tmp_path / str(i), title, data, width, height, fmt)
        assert got.scores == expected[title]["scores"], (fmt, got.text)
        assert got.line == expected[title]["line"], fmt


@pytest.mark.heavy
def test_library_without_test_images_still_compiles(classify_build):
    build, _, _, _ = classify_build
    images = f"{build / 'color.png'},{build / 'gray.png'}"
    proc = run_scons(build / "b", "arduino-library", BOARD="nano33ble", INPUTS=images, LIBRARY_IMAGES="0")
    lib_dir = build / "b" / "nano33ble" / "arduino_library" / "tvm_model_inferencing"
    assert not (lib_dir / "src" / "images.c").exists() and not (lib_dir / "examples" / "tvm_model").exists()
    assert "images.h" not in (lib_dir / "src" / "tvm_model_inferencing.h").read_text()
    assert "Host check of the Arduino library" in proc.stdout          # rebuilt without them, and ran
    with zipfile.ZipFile(lib_dir.parent / "tvm_model_inferencing.zip") as zf:
        assert not any("images." in n for n in zf.namelist())
    # the default keeps them
    run_scons(build / "b", "arduino-library", BOARD="nano33ble", INPUTS=images)
    assert (lib_dir / "src" / "images.c").exists() and (lib_dir / "examples" / "tvm_model").exists()


_PREPROCESS_MAIN = """#include <stdio.h>
#include <stdlib.h>
#include "tinyml_classify.h"
int32_t TVMExecute(const uint8_t* input, uint8_t* output) { output[0] = input[0]; output[1] = 0; return 0; }
static uint8_t frame[700 * 500 * 3], input[MODEL_INPUT_SIZE];
int main(int argc, char** argv) {
  if (argc != 4 || fread(frame, 1, sizeof frame, stdin) == 0) return 2;
  int32_t rc = classify_preprocess(frame, atoi(argv[1]), atoi(argv[2]), (classify_format_t)atoi(argv[3]), input);
  if (rc != 0) return 1;
  fwrite(input, 1, MODEL_INPUT_SIZE, stdout);
  return 0;
}
"""


@pytest.mark.parametrize("height,width,channels,dtype,scale,zero_point", [
    (32, 32, 3, "uint8", 1.0, 0), (24, 40, 1, "int8", 1.0, -128), (20, 20, 3, "int8", 1 / 255, -128)])
def test_classify_preprocess_is_the_builds_preprocessing(tmp_path, height, width, channels, dtype, scale,
                                                         zero_point):
    """classify()'s resize, channel conversion and quantization give the very bytes the build makes of the same
    picture as a PNG (codegen.modelio: Pillow's convert + bilinear resize, pixels_to_input): shrinking,
    enlarging, both, a 1x1 and a 640x480 frame, RGB and gray, a normalized int8 input."""
    import numpy as np
    from PIL import Image

    from codegen.modelio import images as imagesmod
    from codegen.modelio.quantio import pixels_to_input

    meta = {"shape": [1, height, width, channels], "dtype": dtype, "scale": scale, "zero_point": zero_point,
            "labels": ["a", "b"], "images": [],
            "output": {"dtype": "uint8", "shape": [1, 2], "size": 2, "scale": 1 / 256, "zero_point": 0,
                       "softmax": True, "confidence_multiplier": 4096000, "confidence_shift": 20}}
    md = {"inputs": [{"shape": meta["shape"], "dtype": dtype}], "outputs": [{"shape": [1, 2], "dtype": "uint8"}]}
    for rel, data in arduino_library.classify_files("t_inferencing", meta, md).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "src" / "model.h").write_text(
        f"#include <stdint.h>\n#define MODEL_INPUT_SIZE {height * width * channels}\n#define MODEL_OUTPUT_SIZE 2\n"
        "int32_t TVMExecute(const uint8_t* input, uint8_t* output);\n")
    (tmp_path / "main.c").write_text(_PREPROCESS_MAIN)
    exe = tmp_path / "pre"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu99", "-I", str(tmp_path / "src"),
                    str(tmp_path / "main.c"), str(tmp_path / "src" / "tinyml_classify.c"), "-o", str(exe)],
                   check=True)
    rng = np.random.RandomState(0)
    for fw, fh in [(width, height), (97, 61), (640, 480), (17, 13), (width + 1, height - 1), (333, 7), (1, 1)]:
        pixels = (rng.rand(fh, fw, 3) * 255).astype(np.uint8)
        for fmt, im, raw in ((0, Image.fromarray(pixels, "RGB"), pixels.tobytes()),
                             (3, Image.fromarray(pixels[..., 0], "L"), pixels[..., 0].tobytes())):
            im.save(tmp_path / "f.png")
            want = pixels_to_input(imagesmod.load_image(str(tmp_path / "f.png"), (height, width), channels), dtype,
                                   scale, zero_point)
            run = subprocess.run([str(exe), str(fw), str(fh), str(fmt)], input=raw, capture_output=True)
            assert run.returncode == 0, (fw, fh, fmt)
            assert run.stdout == np.ascontiguousarray(want).tobytes(), (fw, fh, fmt)
    # a frame too large for the fixed scratch is refused, not overrun
    run = subprocess.run([str(exe), "32767", "1", "3"], input=b"\0" * 32767, capture_output=True)
    assert run.returncode == 1


def test_library_files_with_classify_and_without_images(fake_sketch_inputs, tmp_path):
    files = _render(fake_sketch_inputs, tmp_path / "sk")
    lib = "demo_inferencing"
    with_all = arduino_library.library_files(files, "demo", lib, classify=True)
    assert {os.path.join("src", "tinyml_classify.c"), os.path.join("examples", "classify", "classify.ino"),
            os.path.join("examples", "classify", "frame.h")} <= set(with_all)
    lean = arduino_library.library_files(files, "demo", lib, classify=True, images=False)
    assert not any("images." in f or f.startswith(os.path.join("examples", "demo")) for f in lean)
    assert set(lean) < set(with_all)
