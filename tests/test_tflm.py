"""The TensorFlow Lite Micro backend (BACKEND=tflm): op resolver from the model and the tree, the cached TFLM
library, the backend-neutral sketch, and (heavy) the host check, the Cortex-M4 simulation and the side-by-side
comparison with the TVM backend against the TFLM trees in ../shared."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from helpers import run_scons  # noqa: E402
from tflite_helpers import SHARED_MODELS, SHARED_TFLM_CMSIS, SHARED_TFLM_REF  # noqa: E402

from codegen.tflm import library, model  # noqa: E402
from codegen.tflm.library import TflmError  # noqa: E402

AD01 = os.path.join(SHARED_MODELS, "ad01_int8.tflite")
VWW = os.path.join(SHARED_MODELS, "vww_96_int8.tflite")
KWS = os.path.join(SHARED_MODELS, "kws_ref_model.tflite")


def need(*paths):
    for p in paths:
        if not os.path.exists(p):
            pytest.skip(f"{p} is absent (../shared comes with the project's CI, not with a user's clone)")


def need_arm():
    if not shutil.which("arm-none-eabi-g++") or not shutil.which("qemu-system-arm"):
        pytest.skip("needs gcc-arm-none-eabi, libstdc++-arm-none-eabi-newlib and qemu-system-arm")


def fake_tree(path, methods=("FullyConnected",), sources=None):
    """A minimal 'TFLM tree': the marker header, a resolver header with `methods`, and a few sources."""
    micro = path / "tensorflow" / "lite" / "micro"
    (micro / "kernels").mkdir(parents=True)
    (micro / "micro_interpreter.h").write_text("// marker\n")
    body = "".join(f"  TfLiteStatus Add{m}(const TFLMRegistration& r = Register_{m.upper()}()) {{ return 0; }}\n"
                   for m in methods)
    (micro / "micro_mutable_op_resolver.h").write_text(f"class R {{\n{body}}};\n")
    for rel, text in (sources or {}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return str(path)


# ------------------------------------------------------------------------------------------------ fast

def test_resolver_comes_from_the_model_and_the_trees_header():
    need(SHARED_TFLM_REF, VWW, AD01)
    root = library.check_tree(SHARED_TFLM_REF)
    assert model.model_ops(VWW) == ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE",
                                    "FULLY_CONNECTED", "SOFTMAX"]
    calls = model.resolver_calls(model.model_ops(VWW), root, VWW)
    assert calls[:2] == ["AddConv2D", "AddDepthwiseConv2D"] and "AddSoftmax" in calls
    assert model.resolver_calls(model.model_ops(AD01), root, AD01) == ["AddFullyConnected"]
    # Names that do not follow a simple rule map through the header too.
    methods = model.resolver_methods(root)
    assert methods["BATCHTOSPACEND"] == "AddBatchToSpaceNd" and methods["UNIDIRECTIONALSEQUENCELSTM"] \
        == "AddUnidirectionalSequenceLSTM" and methods["ADD"] == "AddAdd"


def test_op_missing_from_this_tflm_is_one_error_naming_it(tmp_path):
    need(VWW)
    tree = fake_tree(tmp_path / "tree", methods=("Conv2D", "Softmax"))
    with pytest.raises(TflmError) as e:
        model.resolver_calls(model.model_ops(VWW), tree, VWW)
    missing = str(e.value).split("has no kernel for ")[1].split(" (")[0].split(", ")
    assert missing == ["DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert "AddConv2D, AddSoftmax" in str(e.value)


def test_kernels_are_chosen_by_the_registrations_they_define():
    need(SHARED_TFLM_CMSIS)
    root = library.check_tree(SHARED_TFLM_CMSIS)
    sources = [s for s in library.tree_files(root) if s.endswith(library.SOURCE_EXTS) and library._wanted_source(s)]
    names = [os.path.relpath(s, library.KERNEL_DIR) for s in library.kernel_sources(root, sources, ["FullyConnected"])]
    assert "cmsis_nn/fully_connected.cc" in names and "fully_connected_common.cc" in names   # kernel + helper
    assert "cmsis_nn/conv.cc" not in names and "kernel_util.cc" in names
    assert "conv_common.cc" not in names                          # a helper goes with its kernel
    chosen = library.kernel_sources(root, sources, ["FullyConnected"])
    cmsis = [os.path.basename(s) for s in library.cmsis_nn_sources(root, sources, chosen)]
    assert "arm_fully_connected_s8.c" in cmsis and "arm_nn_vec_mat_mult_t_s8.c" in cmsis   # called, and callee
    assert "arm_convolve_s8.c" not in cmsis and "arm_softmax_s8.c" not in cmsis


def test_tree_errors(tmp_path):
    with pytest.raises(TflmError, match="TFLM_DIR="):
        library.check_tree("")
    with pytest.raises(TflmError, match="is not a TensorFlow Lite Micro source tree"):
        library.check_tree(str(tmp_path))
    # An Arduino library keeps the tree under src/.
    lib = tmp_path / "Arduino_TensorFlowLite"
    fake_tree(lib / "src")
    assert library.check_tree(str(lib)) == str(lib / "src")


def test_library_is_built_once_per_tree_content(tmp_path):
    src = {"tensorflow/lite/micro/a.cc": "int tflm_a() { return 1; }\n",
           "tensorflow/lite/micro/kernels/fc.cc": "struct TFLMRegistration {};\n"
                                                  "TFLMRegistration Register_FULLYCONNECTED() { return {}; }\n",
           "tensorflow/lite/micro/kernels/conv.cc": "struct TFLMRegistration {};\n"
                                                    "TFLMRegistration Register_CONV2D() { return {}; }\n"}
    tree = fake_tree(tmp_path / "tree", methods=("FullyConnected", "Conv2D"), sources=src)
    cache, logs = tmp_path / "cache", []
    lib = library.build_library(tree, "host", ops=["FullyConnected"], cache_dir=str(cache), log=logs.append)
    members = subprocess.run(["ar", "t", lib], capture_output=True, text=True).stdout.split()
    assert sorted(members) == ["a.cc.o", "fc.cc.o"] and len(logs) == 1          # conv.cc is not needed
    assert library.build_library(tree, "host", ops=["FullyConnected"], cache_dir=str(cache),
                                 log=logs.append) == lib and len(logs) == 1     # cached: nothing compiled
    both = library.build_library(tree, "host", ops=["FullyConnected", "Conv2D"], cache_dir=str(cache),
                                 log=logs.append)
    assert both != lib and "1 of 3 files" in logs[-1]                           # only the new kernel
    library._DIGESTS.clear()
    (tmp_path / "tree" / "tensorflow/lite/micro/a.cc").write_text("int tflm_a() { return 2; }\n")
    changed = library.build_library(tree, "host", ops=["FullyConnected"], cache_dir=str(cache), log=logs.append)
    assert os.path.dirname(changed) != os.path.dirname(lib)                     # new content, new key
    library._DIGESTS.clear()


def test_compile_error_in_the_tree_is_one_error(tmp_path):
    tree = fake_tree(tmp_path / "tree", sources={"tensorflow/lite/micro/bad.cc": "this is not C++\n"})
    with pytest.raises(TflmError, match=r"failed in 1 file\(s\), first tensorflow/lite/micro/bad.cc"):
        library.build_library(tree, "host", ops=[], cache_dir=str(tmp_path / "cache"), log=lambda m: None)
    library._DIGESTS.clear()


def test_sketch_keeps_the_ino_and_replaces_the_backend_files(tmp_path):
    need(SHARED_TFLM_REF, AD01)
    from codegen.emit import bin2c
    from codegen.resources import sketch_templates_dir
    from codegen.tflm import sketch

    imgs = [str(tmp_path / n) for n in ("images.c", "images.h", "images.json")]
    bin2c.embed([], AD01, *imgs)
    arena = tmp_path / "arena.json"
    arena.write_text(json.dumps(model.arena_record(5000, "test")))
    out = tmp_path / "sk"
    written = sketch.render(sketch_templates_dir(), str(out), "sk", AD01, SHARED_TFLM_REF, str(arena), *imgs,
                            {"board": {}, "classes": [], "baud": 115200})
    assert sorted(written) == sorted(sketch.sketch_outputs(sketch_templates_dir(), "sk"))
    assert not (out / "src" / "model.c").exists()                   # the TVM wrapper is replaced
    ino = (out / "sk.ino").read_text()
    assert "TVMExecute(" in ino and "TensorFlow Lite Micro" in ino and "tensorflow" not in ino.lower().replace(
        "tensorflow lite micro", "")
    header = (out / "src" / "model.h").read_text()
    assert "#define MODEL_ARENA_SIZE 5016" in header                # measured use + alignment slack
    cpp = (out / "src" / "model.cpp").read_text()
    assert "MicroMutableOpResolver<1>" in cpp and "AddFullyConnected()" in cpp and "AllOpsResolver" not in cpp
    execute = cpp[cpp.index('extern "C" int32_t TVMExecute('):]
    assert execute.index("memcpy(interpreter->input(0)") < execute.index("Invoke()")   # input in before each Invoke
    data = (out / "src" / "model_data.cpp").read_text()
    assert "alignas(16) const unsigned char g_model_data[]" in data
    assert f"g_model_data_len = {os.path.getsize(AD01)};" in data
    assert sketch.render(sketch_templates_dir(), str(out), "sk", AD01, SHARED_TFLM_REF, str(arena), *imgs,
                         {"board": {}, "classes": [], "baud": 115200}) == []     # unchanged files not rewritten


def test_arduino_library_is_made_around_a_plain_tree(tmp_path):
    from codegen.tflm import arduino_library

    tree = fake_tree(tmp_path / "tree")
    lib = arduino_library.library_for(tree, str(tmp_path / "out"))
    assert os.path.isfile(os.path.join(lib, "library.properties"))
    assert os.path.isfile(os.path.join(lib, "src", "TensorFlowLite.h"))
    assert os.readlink(os.path.join(lib, "src", "tensorflow")) == os.path.join(tree, "tensorflow")   # not copied
    assert arduino_library.library_for(lib, str(tmp_path / "other")) == lib     # an Arduino library is used as is


@pytest.mark.parametrize("args, message", [
    ({"BACKEND": "tflite"}, "'tflite' is not a backend"),
    ({"BACKEND": "tflm"}, "BACKEND=tflm needs TFLM_DIR="),
    ({"BACKEND": "tflm", "TFLM_DIR": "/nonexistent"}, "is not a TensorFlow Lite Micro source tree"),
])
def test_bad_backend_settings_stop_before_any_stage(tmp_path, args, message):
    proc = run_scons(tmp_path, "check", check=False, **args)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "nano33ble").exists()


# ------------------------------------------------------------------------------------------------ heavy

@pytest.mark.heavy
def test_check_on_tflm_equals_tflite(tmp_path):
    """scons check BACKEND=tflm: the sketch on TFLM (reference kernels, host gcc) prints tf.lite's lines."""
    need(SHARED_TFLM_REF, VWW)
    proc = run_scons(tmp_path, "check", BACKEND="tflm", TFLM_DIR=SHARED_TFLM_REF, MODEL=VWW)
    out = tmp_path / "nano33ble" / "tflm"
    summary = json.loads((out / "hostcheck.json").read_text())
    assert summary["matches_resolver"] == "BUILTIN_REF" and len(summary["images"]) == 2, proc.stdout
    assert "bytes identical to tf.lite (BUILTIN_REF)" in proc.stdout
    arena = json.loads((out / "arena.json").read_text())
    assert 0 < arena["used_bytes"] < 2 * 1024 * 1024 and arena["size_bytes"] == arena["used_bytes"] + 16
    # The smallest arena that works is more than what TFLM reports as used after allocation (its temporaries).
    assert arena["used_bytes"] >= arena["arena_used_bytes"]
    assert f"#define MODEL_ARENA_SIZE {arena['size_bytes']}" in (out / "tflm_model" / "src" / "model.h").read_text()
    assert not (tmp_path / "nano33ble" / "model_mlf.tar").exists()          # no TVM work for BACKEND=tflm
    again = run_scons(tmp_path, "check", BACKEND="tflm", TFLM_DIR=SHARED_TFLM_REF, MODEL=VWW)
    assert "up to date" in again.stdout and "Host check" not in again.stdout


@pytest.mark.heavy
def test_check_tflm_on_the_trained_tutorial_model(tmp_path):
    """The default pipeline (train, quantize with uint8 I/O) with BACKEND=tflm: its QUANTIZE kernel too."""
    need(SHARED_TFLM_REF)
    proc = run_scons(tmp_path, "check", BACKEND="tflm", TFLM_DIR=SHARED_TFLM_REF)
    out = tmp_path / "nano33ble" / "tflm"
    summary = json.loads((out / "hostcheck.json").read_text())
    assert summary["matches_resolver"] is not None, proc.stdout
    assert len(summary["images"]) >= 2                                # one held-out image per class
    cpp = (out / "tflm_model" / "src" / "model.cpp").read_text()
    ops = model.model_ops(str(tmp_path / "nano33ble" / "model.tflite"))
    assert "QUANTIZE" in ops and f"MicroMutableOpResolver<{len(ops)}>" in cpp and "AddQuantize()" in cpp


@pytest.mark.heavy
def test_fully_connected_rounding_is_reported_against_both_resolvers(tmp_path):
    """ad01 (ten FULLY_CONNECTED layers): TFLM rounds FC requantization twice, tf.lite 2.21's BUILTIN_REF once;
    the check keeps tf.lite's decisions and says how far each resolver is."""
    need(SHARED_TFLM_REF, AD01)
    proc = run_scons(tmp_path, "check", BACKEND="tflm", TFLM_DIR=SHARED_TFLM_REF, MODEL=AD01)
    summary = json.loads((tmp_path / "nano33ble" / "tflm" / "hostcheck.json").read_text())
    assert summary["max_diff"]["BUILTIN_REF"] >= 1 and summary["max_diff"]["BUILTIN_WITHOUT_DEFAULT_DELEGATES"] <= 1
    assert summary["max_diff"]["BUILTIN_WITHOUT_DEFAULT_DELEGATES"] < summary["max_diff"]["BUILTIN_REF"]
    assert "FULLY_CONNECTED rounding" in proc.stdout or "FULLY_CONNECTED rounds once" in proc.stdout


@pytest.mark.heavy
def test_simulate_tflm_on_cortex_m4_equals_tflite(tmp_path):
    """scons simulate BACKEND=tflm BOARD=nano33ble: CMSIS-NN TFLM on the emulated M4, scores byte for byte."""
    need(SHARED_TFLM_CMSIS, SHARED_TFLM_REF, KWS)
    need_arm()
    run_scons(tmp_path, "simulate", BACKEND="tflm", TFLM_DIR=SHARED_TFLM_CMSIS, MODEL=KWS, BOARD="nano33ble")
    result = json.loads((tmp_path / "nano33ble" / "tflm" / "simulate.json").read_text())
    arena = json.loads((tmp_path / "nano33ble" / "tflm" / "arena.json").read_text())
    assert result["matches_resolver"] == "BUILTIN_REF" and result["kernels"] == "cmsis-nn"
    assert result["inferences"] == 2
    assert result["instructions_per_inference"] > 1_000_000
    # The host measurement (64-bit pointers) bounds what the 32-bit M4 really uses.
    assert 0 < result["arena_used_bytes_m4"] <= arena["used_bytes"]


@pytest.mark.heavy
def test_both_backends_side_by_side(tmp_path):
    """BACKEND=tvm,tflm: memory and simulate build both and the table holds flash, arena/workspace and M4
    instructions of each."""
    need(SHARED_TFLM_CMSIS, KWS)
    need_arm()
    proc = run_scons(tmp_path, "memory", "check", BACKEND="tvm,tflm", TFLM_DIR=SHARED_TFLM_CMSIS, MODEL=KWS)
    table = json.loads((tmp_path / "nano33ble" / "backends.json").read_text())["rows"]
    # The arena is measured on the M4 (32-bit pointers) for the CMSIS-NN tree: the host check must not run
    # the 64-bit host build in it (AllocateTensors failed and the scores were zeros).
    assert "Cortex-M4" in json.loads((tmp_path / "nano33ble" / "tflm" / "arena.json").read_text())["measured_on"]
    check = json.loads((tmp_path / "nano33ble" / "tflm" / "hostcheck.json").read_text())
    assert check["matches_resolver"] is not None, proc.stdout
    for row in ("flash_bytes", "workspace_or_arena_bytes", "m4_instructions_per_inference"):
        assert table[row]["tvm"] > 0 and table[row]["tflm"] > 0, table
    assert "Cortex-M4 instructions / inference" in proc.stdout
    assert (tmp_path / "nano33ble" / "simulate.json").is_file()
    assert (tmp_path / "nano33ble" / "tflm" / "simulate.json").is_file()


@pytest.mark.heavy
def test_compile_hands_tflm_to_arduino_cli_as_a_library(tmp_path):
    need(SHARED_TFLM_CMSIS, AD01)
    need_arm()
    log = tmp_path / "cli.log"
    cli = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")
    run_scons(tmp_path, "compile", env={"FAKE_ARDUINO_LOG": str(log)}, ARDUINO_CLI=cli, BACKEND="tflm",
              TFLM_DIR=SHARED_TFLM_CMSIS, MODEL=AD01)
    compile_args = [json.loads(line) for line in log.read_text().splitlines() if '"compile"' in line][0]
    lib = compile_args[compile_args.index("--library") + 1]
    # compiled from the staged copy that carries the build id (firmware-sketch/)
    assert compile_args[-1].endswith(os.path.join("tflm", "firmware-sketch", "tflm_model"))
    assert os.path.isfile(os.path.join(lib, "src", "TensorFlowLite.h"))
    assert os.path.realpath(os.path.join(lib, "src", "tensorflow")) == os.path.realpath(
        os.path.join(SHARED_TFLM_CMSIS, "tensorflow"))


def test_tflm_for_an_avr_board_stops_before_any_stage(tmp_path):
    tree = fake_tree(tmp_path / "tree")
    proc = run_scons(tmp_path / "b", "check", check=False, BACKEND="tflm", TFLM_DIR=tree, BOARD="mega")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "needs a 32-bit CPU" in errors[0], proc.stderr


def test_backend_table_has_estimated_cycles_when_both_simulations_do(tmp_path):
    """backends.txt/.json: the Cortex-M4 cycle estimate of each backend beside its instructions (fast: plain
    files); a simulate.json from before the estimate leaves the row out instead of inventing it."""
    from codegen.backends.compare import compare_backends

    files = {
        "tvm.json": {"code_bytes": 20000, "constants_bytes": 60000, "ram_workspace_bytes": 30000, "input_bytes": 100,
                     "output_bytes": 2},
        "tflm.json": {"flash_added_bytes": 150000, "model_bytes": 70000, "runtime_code_bytes": 80000,
                      "arena_bytes": 50000, "ram_added_bytes": 52000, "kernels": "cmsis-nn"},
        "sim_tvm.json": {"instructions_per_inference": 1_000_000, "cycles_per_inference_estimate": 1_400_000},
        "sim_tflm.json": {"instructions_per_inference": 2_000_000, "cycles_per_inference_estimate": 3_500_000},
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    sources = [str(tmp_path / n) for n in files]
    board = {"name": "nano33ble", "title": "Arduino Nano 33 BLE"}
    text = compare_backends(sources, str(tmp_path / "b.json"), str(tmp_path / "b.txt"), board)
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows["m4_cycles_estimate_per_inference"] == {"tvm": 1_400_000, "tflm": 3_500_000}
    line = next(line for line in text.splitlines() if line.startswith("Cortex-M4 cycles"))
    assert line.split()[-3:] == ["1,400,000", "3,500,000", "2.50"]
    del files["sim_tflm.json"]["cycles_per_inference_estimate"]
    (tmp_path / "sim_tflm.json").write_text(json.dumps(files["sim_tflm.json"]))
    text = compare_backends(sources, str(tmp_path / "b.json"), str(tmp_path / "b.txt"), board)
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert "cycles" not in text and "m4_instructions_per_inference" in rows
