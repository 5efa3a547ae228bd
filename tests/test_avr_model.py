"""End to end on an 8-bit MCU: a small MobileNetV1 (grayscale 32x32, alpha 0.25, first DEPTH blocks) trained and
quantized by the pipeline, turned into C by TVM, rendered into the project's sketch, built with a real Arduino
toolchain (arduino-builder, Debian's AVR core) for the Arduino Mega 2560 and run in simavr: the scores it
prints over Serial must equal TFLite's reference kernels byte for byte, within the Mega's 8 KB of RAM."""
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from codegen.runners import avr

from codegen.emit import bin2c

from codegen import boards

from codegen.stages import dataset

from codegen.stages import expected

from codegen.runners import hostcheck

from codegen.emit import mlf

from codegen.stages import quantize

from codegen.emit import sketch

from codegen.stages import train
from codegen.errors import PipelineError
from codegen.frontend.reader import ModelError

pytestmark = pytest.mark.skipif(
    not avr.toolchain_available(),
    reason="AVR toolchain missing: " + ", ".join(avr.missing_tools()) +
           " (apt-get install arduino-builder arduino-core-avr gcc-avr avr-libc arduino-ctags simavr)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "templates", "sketch")
BOARD = "mega"
MCU = "atmega2560"
DEPTH = 2
SIZE, CHANNELS, ALPHA = 32, 1, 0.25
# Room left for the stack above .data + .bss. test_measured_stack_fits measures the real need: 316 bytes at the
# deepest point of an inference (a kernel calling libgcc's 64-bit division, plus an interrupt on top).
STACK_MARGIN = 400
SKETCH = "avr_model"


@pytest.fixture(scope="module")
def mega_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("avr_model")
    times = {}
    t0 = time.monotonic()
    dataset.generate_synthetic(str(d / "synth"), 80, 7, str(d / "index.json"))
    classes = dataset.index_classes(str(d / "index.json"))
    heldout = {c: str(d / f"heldout_{c}.png") for c in classes}
    dataset.pack(classes, str(d / "data.npz"), heldout, SIZE, CHANNELS, 7)
    train.train(str(d / "data.npz"), str(d / "model.keras"), str(d / "history.json"), alpha=ALPHA, epochs=4,
                seed=7, batch=16, depth=DEPTH, verbose=0)
    quantize.quantize(str(d / "model.keras"), str(d / "data.npz"), str(d / "model.tflite"), mode="int8",
                      io_type="uint8")
    times["model"] = time.monotonic() - t0

    t1 = time.monotonic()
    meta = mlf.build_mlf(str(d / "model.tflite"), str(d / "model_mlf.tar"),
                         max_object_bytes=mlf.AVR_MAX_OBJECT_BYTES)
    # the tutorial's order: the car first, then the other object
    images = bin2c.embed([heldout[dataset.CLASS_CAR], heldout[dataset.CLASS_OTHER]], str(d / "model.tflite"),
                         str(d / "images.c"), str(d / "images.h"), str(d / "images.json"),
                         labels=[dataset.CLASS_CAR, dataset.CLASS_OTHER], progmem=True)
    want = expected.reference_scores(str(d / "model.tflite"), str(d / "images.json"), str(d / "expected.json"))
    board = boards.get(BOARD)
    sketch_dir = d / SKETCH
    sketch.render(TEMPLATES, str(sketch_dir), SKETCH, str(d / "model_mlf.tar"), str(d / "images.c"),
                  str(d / "images.h"), str(d / "images.json"),
                  {"board": board, "classes": sorted(classes), "baud": 115200})
    times["codegen"] = time.monotonic() - t1

    t2 = time.monotonic()
    build = avr.compile_sketch(sketch_dir, board["fqbn"], d / "build")
    times["compile"] = time.monotonic() - t2
    return {"dir": d, "meta": meta, "images": images, "expected": want, "board": board, "build": build,
            "sketch": sketch_dir, "times": times}


def test_small_model_shape(mega_build):
    meta = mega_build["meta"]
    assert meta["inputs"][0]["shape"] == [1, SIZE, SIZE, CHANNELS]
    assert meta["inputs"][0]["dtype"] == "uint8" and meta["outputs"][0]["dtype"] == "uint8"
    convs = [o for o in meta["ops"] if o["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 1 + 2 * DEPTH          # stem conv + DEPTH depthwise-separable blocks
    assert convs[-1]["output_shape"] == [1, 8, 8, 32]
    print(f"\nweights {meta['constants_size_bytes']} B, workspace {meta['workspace_size_bytes']} B "
          f"({meta['flash_constants_workspace_size_bytes']} B on AVR with constants in flash), "
          f"{meta['total_macs']} MACs")


def test_constants_are_in_flash_and_fit_the_mega(mega_build):
    build, board, meta = mega_build["build"], mega_build["board"], mega_build["meta"]
    print(f"\nMega build: flash {build['flash_bytes']} B of {board['flash_bytes']}, "
          f"RAM {build['ram_bytes']} B of {board['ram_bytes']}; times {mega_build['times']}")
    assert build["flash_bytes"] <= board["flash_bytes"]
    assert build["ram_bytes"] <= board["ram_bytes"] - STACK_MARGIN
    # RAM holds the workspace, the input copy and the Arduino core, not the weights: a build with the
    # constants in RAM would need constants_size_bytes more.
    assert build["ram_bytes"] < (meta["flash_constants_workspace_size_bytes"] + meta["inputs"][0]["size_bytes"]
                                 + 600)
    src = (mega_build["sketch"] / "src" / "model" / "default_lib0.c").read_text()
    assert "TVMGEN_CONST_STORAGE = {" in src and "#define TVMGEN_CONST_STORAGE PROGMEM" in src


def test_simavr_scores_equal_tflite(mega_build):
    want = mega_build["expected"]
    t0 = time.monotonic()
    # loop() prints one line per image, then starts over: stop once all have arrived.
    text = avr.run_simavr(mega_build["build"]["elf"], MCU, timeout_s=120,
                          until=lambda t: hostcheck.first_round(t, want) is not None)
    run_s = time.monotonic() - t0
    printed = hostcheck.first_round(text, want)
    print(f"\nsimavr {run_s:.1f} s:\n{text}expected: {[e['line'] for e in want['images']]}")
    assert [r.title for r in printed] == ["Car", "Other object"]
    assert [r.scores for r in printed] == [e["scores"] for e in want["images"]]
    assert [r.line for r in printed] == [e["line"] for e in want["images"]]     # labels, integer confidence
    summary = hostcheck.compare(printed, want)
    assert summary["exact"] and summary["max_abs_diff"] == 0


# Measures the stack the model really needs on the Mega: .init3 paints the free RAM between the end of .bss
# and the stack (at that point SP is at RAMEND and nothing has been pushed), and after the model's last kernel
# (the lib's TVMGEN_TRACE hook, defined with -D) the lowest overwritten byte gives the deepest stack reached.
STACK_PROBE_CPP = """\
#include <Arduino.h>

#define PAINT 0xA5
extern uint8_t __heap_start;   /* avr-libc: the first byte after .bss */

extern "C" __attribute__((naked, used, section(".init3"))) void tvmgen_stack_paint(void) {
  uint8_t* p = &__heap_start;
  while (p < (uint8_t*)(RAMEND - 16)) *p++ = PAINT;
}

extern "C" void tvmgen_stack_probe(int index) {
  if (index != %(last)d) return;
  const uint8_t* p = &__heap_start;
  while (p < (const uint8_t*)RAMEND && *p == PAINT) p++;
  Serial.print(F("stack high-water bytes: "));
  Serial.println((unsigned)(RAMEND - (unsigned)p + 1));
  Serial.print(F("free between .bss and stack: "));
  Serial.println((unsigned)(p - &__heap_start));
}
"""


def test_measured_stack_fits(mega_build, tmp_path):
    probe = tmp_path / "avr_probe"
    shutil.copytree(mega_build["sketch"], probe)
    os.rename(probe / f"{SKETCH}.ino", probe / "avr_probe.ino")
    lib2 = (probe / "src" / "model" / "default_lib2.c").read_text()
    last = len(re.findall(r"^  TVMGEN_TRACE\(", lib2, re.M)) - 1
    (probe / "src" / "stack_probe.cpp").write_text(STACK_PROBE_CPP % {"last": last})
    build = avr.compile_sketch(probe, mega_build["board"]["fqbn"], tmp_path / "build",
                               extra_prefs=["compiler.c.extra_flags=-DTVMGEN_TRACE(i,p,n)=tvmgen_stack_probe(i)"])
    assert build["ram_bytes"] == mega_build["build"]["ram_bytes"]     # the probe adds code, no RAM
    text = avr.run_simavr(build["elf"], MCU, timeout_s=120, until=lambda t: "free between" in t)
    used = int(re.search(r"stack high-water bytes: (\d+)", text).group(1))
    free = int(re.search(r"free between .bss and stack: (\d+)", text).group(1))
    print(f"\nRAM {build['ram_bytes']} B static, stack high-water {used} B during inference, {free} B never touched")
    assert build["ram_bytes"] + used + free == mega_build["board"]["ram_bytes"]
    assert used < STACK_MARGIN and free > 0


@pytest.mark.parametrize("constants_in_flash", [0, 1])
def test_same_sources_build_on_the_host(mega_build, tmp_path, constants_in_flash):
    """The very C that went into the AVR build compiles unchanged with host gcc and prints the same scores;
    with TVMGEN_CONSTANTS_IN_FLASH=1 (memcpy_P = memcpy) the host also runs the AVR schedule of copying each
    kernel's constants into free workspace bytes."""
    # images.h (bin2c with progmem=True) includes <avr/pgmspace.h> unconditionally: give the host build one.
    stubs = tmp_path / "host_stubs"
    shutil.copytree(hostcheck.HOST_STUB_DIR, stubs)
    (stubs / "avr").mkdir()
    (stubs / "avr" / "pgmspace.h").write_text("#include <string.h>\n#define PROGMEM\n#define memcpy_P memcpy\n")
    cc = tmp_path / "cc"
    cc.write_text(f'#!/bin/sh\nexec gcc -DTVMGEN_CONSTANTS_IN_FLASH={constants_in_flash} "$@"\n')
    cc.chmod(0o755)
    with tempfile.TemporaryDirectory() as work:
        exe = hostcheck.build_host_binary(str(mega_build["sketch"]), SKETCH, work, cc=str(cc), stub_dir=str(stubs))
        out = subprocess.run([exe], capture_output=True, text=True, check=True, timeout=60).stdout
    summary = hostcheck.compare(hostcheck.parse_results(out), mega_build["expected"])
    assert summary["exact"], summary


def test_depth_option_cuts_after_the_pointwise_block():
    model = train.build_model(SIZE, CHANNELS, ALPHA, 2, batch_size=1, depth=3)
    features = model.get_layer("mobilenet_features")
    names = [layer.name for layer in features.layers]
    assert names[-2:] == ["conv_pw_3_relu", "global_pool"] and "conv_dw_4" not in names
    assert tuple(features.output.shape)[1:] == (1, 1, int(128 * ALPHA))   # block 3 has 128 * alpha filters
    assert [layer.name for layer in model.layers][-4:] == ["reshape", "dropout", "flatten", "scores"]
    full = train.build_model(SIZE, CHANNELS, ALPHA, 2, batch_size=1)
    assert "conv_pw_13_relu" in [layer.name for layer in full.get_layer("mobilenet_features").layers]
    for bad in (0, 14, 2.5, "2", True):
        with pytest.raises(PipelineError, match="DEPTH="):
            train.build_model(SIZE, CHANNELS, ALPHA, 2, depth=bad)


def test_too_large_constant_is_a_model_error(tmp_path):
    """avr-gcc rejects objects over 32,767 bytes: build_mlf says which array instead of a compiler error."""
    import numpy as np
    import tensorflow as tf
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((1, 1, 256), batch_size=1)
    x = keras.layers.Conv2D(160, 1, activation="relu")(inp)      # 256 x 160 int8 weights = 40,960 bytes
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.random.RandomState(i).rand(1, 1, 1, 256).astype("float32")]
                                           for i in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    path = tmp_path / "big.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(ModelError, match=r"array '.*' \(TFLite tensor\) is 40960 bytes; AVR .* at most 32767"):
        mlf.build_mlf(str(path), str(tmp_path / "big.tar"), max_object_bytes=mlf.AVR_MAX_OBJECT_BYTES)
    assert not (tmp_path / "big.tar").exists()
    # without the limit (ARM, host) the same model is fine
    mlf.build_mlf(str(path), str(tmp_path / "big.tar"))
    with tarfile.open(tmp_path / "big.tar") as tar:
        assert json.load(tar.extractfile("metadata.json"))["constants_size_bytes"] > 40960


# the module fixture trains and builds for the Mega under simavr: minutes; `pytest -m "not heavy"` skips this module.
pytestmark = [pytestmark, pytest.mark.heavy]
