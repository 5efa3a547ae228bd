"""The result at a glance, the [i/N] stage counter, VERBOSE=1 and arduino-cli's warnings (issue 12).

Fast unit tests of codegen.stages.summary / codegen.proc, the shared `tiny_build` for the default targets, and
one heavy module build (a chance-level model on the Nano 33 BLE and the Mega, simulated, VERBOSE=1)."""
import json
import os
import re
import shutil

import pytest

from helpers import ROOT, STAGE_COUNTER, built_stages, run_scons, stage_lines

from codegen import proc
from codegen import boards
from codegen.device import memreport
from codegen.stages import summary
from codegen.errors import PipelineError


def _load(path):
    with open(path) as f:
        return json.load(f)


def _summary_block(stdout):
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^=+ summary =+$", line)]
    assert len(starts) == 1, stdout[-3000:]
    return lines[starts[0] + 1:]


def _board_lines(block, name):
    """The indented lines under `<name> (<title>):` in the summary block."""
    out, inside = [], False
    for line in block:
        if not line.startswith("  "):
            inside = line.startswith(f"{name} (")
            continue
        if inside:
            out.append(line.strip())
    return out


def _expected_bar(label, budget):
    prefix = label.rsplit(" ", 1)[0] + " " if " " in label else ""
    return summary.bar(label, budget["total"], budget["limit"], budget["percent"], width=7 + len(prefix))


def _stage_counters(stdout):
    return [(int(m.group(1)), int(m.group(2))) for m in map(STAGE_COUNTER.match, stdout.splitlines()) if m]


# ---------------------------------------------------------------------------------------------- unit tests
def test_bar_is_platformio_style():
    assert summary.bar("RAM", 90658, 262144, 34.6) == \
        "RAM:   [===       ]  34.6% (used 90,658 bytes from 262,144 bytes)"
    assert summary.bar("Flash", 1000, 1000, 100.0).startswith("Flash: [==========] 100.0%")
    assert summary.bar("RAM", 9000, 8192, 109.9).startswith("RAM:   [==========] 109.9%")   # over: full, not more


def test_instruction_counts_print_as_the_file_holds_them():
    assert summary.count(1449747) == "1,449,747" and summary.count(12.0) == "12"
    assert summary.count(1449747.5) == "1,449,747.5"        # a mean over inferences is not rounded away


def test_chance_level_needs_a_margin_that_shrinks_with_more_validation_images():
    assert summary.at_chance(0.5, 2, 6) and summary.at_chance(0.8, 2, 6)      # 6 images: 80 % can be luck
    assert not summary.at_chance(0.95, 2, 6)
    assert summary.at_chance(0.54, 2, 400) and not summary.at_chance(0.6, 2, 400)
    assert summary.at_chance(0.15, 10, 2000) and not summary.at_chance(0.3, 10, 2000)


def test_low_memory_is_not_just_fits():
    budget = memreport._budget({"workspace": 7682}, 8192)
    assert budget["fits"] and budget["percent"] == 93.8
    assert "low memory available" in memreport.budget_status(budget)
    assert memreport.budget_status(memreport._budget({"workspace": 6000}, 8192)) == "fits"
    assert memreport.budget_status(memreport._budget({"workspace": 9000}, 8192)) == "OVER by 808 B"


def test_summary_of_result_files_and_only_those_of_this_build(tmp_path):
    board = boards.get("mega")
    out = tmp_path / "mega"
    out.mkdir()
    metrics = {"classes": ["a", "b", "c"], "val_images": 60, "float_val_accuracy": 0.9, "quantized_val_accuracy": 0.35,
               "epochs": 3}
    ram = memreport._budget({"workspace": 7000}, board["ram_bytes"])
    flash = memreport._budget({"code": 20000}, board["flash_bytes"])
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "memory.json").write_text(json.dumps({"flash": flash, "ram": ram}))
    (out / "simulate.json").write_text(json.dumps({"flash_bytes": 30318, "ram_bytes": 7372,
                                                   "images": [{"ms": 1318.5}, {"ms": 1320.5}],
                                                   "ms_per_inference": 1320.5}))
    text = summary.format_summary([(board, summary.collect(str(out)))])
    assert "Accuracy: float 90.0%, int8 35.0% on 60 validation images, 3 classes (chance 33.3%)" in text
    assert _expected_bar("RAM", ram) in text and _expected_bar("Flash", flash) in text
    assert "firmware flash 30,318 bytes, static RAM 7,372 bytes" in text
    assert "Simulated (simavr): 1,320.5 ms per inference (the sketch's micros(), slowest input)" in text
    warnings = [line for line in text.splitlines() if line.startswith("warning:")]
    assert any("int8 accuracy 35.0%" in w and "REP_SAMPLES=" in w for w in warnings), text   # float is fine
    assert any("RAM 85.4% used" in w and "low memory available" in w for w in warnings), text
    # a file the build did not ask for this time (an old simulate.json) is left out
    include = {os.path.abspath(out / "metrics.json"), os.path.abspath(out / "memory.json")}
    assert "simavr" not in summary.format_summary([(board, summary.collect(str(out), include))])
    assert summary.format_summary([(board, summary.collect(str(out), set()))]) == ""


def test_linux_board_and_tflm_backend_files_are_summarized(tmp_path):
    rpi = boards.get("rpi4")
    out = tmp_path / "rpi4"
    out.mkdir()
    linux_memory = {"kind": "linux", "ram_bytes": rpi["ram_bytes"], "model_bytes": 320688, "bundle_bytes": 401234,
                    "ram_share_percent": round(100.0 * 61234567 / rpi["ram_bytes"], 1),
                    "measured_here": {"peak_rss_bytes": 61234567, "latency_ms_median": 1.234, "machine": "x86_64"}}
    (out / "memory.json").write_text(json.dumps(linux_memory))
    (out / "linuxcheck.json").write_text(json.dumps({"exact": True, "runtime": "ai_edge_litert",
                                                     "samples": [{"name": "a"}, {"name": "b"}]}))
    text = summary.format_summary([(rpi, summary.collect(str(out)))])
    assert summary.bar("RAM", 61234567, rpi["ram_bytes"], linux_memory["ram_share_percent"],
                       what="peak RSS here") in text
    assert "Model: 320,688 bytes (bundle 401,234 bytes); latency 1.234 ms median" in text
    assert "LiteRT check: 2 sample(s), scores equal tf.lite's (ai_edge_litert" in text

    nano = boards.get("nano33ble")
    out = tmp_path / "nano33ble"
    (out / "tflm").mkdir(parents=True)
    tvm_ram = memreport._budget({"workspace": 50000}, nano["ram_bytes"])
    tflm_ram = memreport._budget({"arena": 210000}, nano["ram_bytes"])
    flash = memreport._budget({"code": 100000}, nano["flash_bytes"])
    (out / "memory.json").write_text(json.dumps({"flash": flash, "ram": tvm_ram}))
    (out / "tflm" / "memory.json").write_text(json.dumps({"flash": flash, "ram": tflm_ram}))
    (out / "tflm" / "simulate.json").write_text(json.dumps({"instructions_per_inference": 3200000, "exact": True}))
    text = summary.format_summary([(nano, summary.collect(str(out)))])
    assert _expected_bar("TVM RAM", tvm_ram) in text and _expected_bar("TFLM RAM", tflm_ram) in text
    assert "TFLM Simulated (QEMU): 3,200,000 instructions per inference, ~50.0 ms at 64 MHz" in text
    # a simulate.json with the plugin's cycle estimate: the summary repeats its cycles and ms, labelled
    (out / "tflm" / "simulate.json").write_text(json.dumps({
        "instructions_per_inference": 3200000, "cycles_per_inference_estimate": 4480000, "clock_hz": 64000000,
        "ms_per_inference_estimate": 70.0, "exact": True}))
    text = summary.format_summary([(nano, summary.collect(str(out)))])
    assert ("TFLM Simulated (QEMU): 3,200,000 instructions per inference, ~4,480,000 cycles (estimate), ~70.0 ms at "
            "64 MHz; scores identical to TFLite") in text
    assert "warning: nano33ble: TFLM RAM 80.1% used" in text and "TVM RAM" not in text.split("warning:", 1)[1]


def test_proc_echoes_the_command_only_when_verbose(capsys):
    try:
        proc.set_verbose(False)
        proc.run(["true", "a b"])
        assert capsys.readouterr().out == ""
        proc.set_verbose(True)
        proc.run(["true", "a b"], cwd="/")
        assert capsys.readouterr().out == "cd / && true 'a b'\n"
    finally:
        proc.set_verbose(False)


def test_verbose_is_0_or_1_and_in_no_stage_parameter():
    from codegen import config
    from codegen.errors import ConfigError

    assert config.parse({"VERBOSE": "1"})["verbose"] and not config.parse({})["verbose"]
    with pytest.raises(ConfigError, match="VERBOSE"):
        config.parse({"VERBOSE": "2"})
    assert "verbose" not in config.CONSTRUCTION_VARIABLES      # never a TINY_* stage parameter


def test_no_subprocess_call_bypasses_the_helper():
    """VERBOSE=1 shows every external command only if every one goes through codegen.proc."""
    offenders = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "codegen")):
        for name in files:
            path = os.path.join(dirpath, name)
            if not name.endswith(".py") or path.endswith(os.path.join("codegen", "proc.py")):
                continue
            with open(path) as f:
                text = f.read()
            if re.search(r"subprocess\.(run|Popen|call|check_call|check_output)\(|os\.system\(", text):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


# ---------------------------------------------------------------------------------------------- tiny_build
@pytest.mark.heavy          # a full scons build (the shared tiny_build)
def test_default_build_counts_its_stages_and_summarizes_its_files(tiny_build):
    build, proc_ = tiny_build
    counters = _stage_counters(proc_.stdout)
    total = counters[0][1]
    # a fresh build runs every stage it counted, in order, under -j1
    assert counters == [(i, total) for i in range(1, total + 1)], proc_.stdout[-3000:]
    assert len(built_stages(proc_.stdout)) <= total
    out = build / "nano33ble"
    metrics, memory, check = (_load(out / n) for n in ("metrics.json", "memory.json", "hostcheck.json"))
    lines = _board_lines(_summary_block(proc_.stdout), "nano33ble")
    assert (f"Accuracy: float {summary.percent(metrics['float_val_accuracy'])}, int8 "
            f"{summary.percent(metrics['quantized_val_accuracy'])} on {metrics['val_images']} validation images, "
            f"{len(metrics['classes'])} classes (chance 50.0%)") in lines
    assert _expected_bar("Flash", memory["flash"]) in lines and _expected_bar("RAM", memory["ram"]) in lines
    assert f"Host check: {len(check['images'])} input(s), scores match TFLite byte for byte" in lines
    assert not any(line.startswith("Simulated") for line in lines)      # not asked for
    warned = any("float accuracy" in line for line in proc_.stdout.splitlines() if line.startswith("warning:"))
    assert warned == summary.at_chance(metrics["float_val_accuracy"], 2, metrics["val_images"])


# ---------------------------------------------------------------------------------------------- heavy build
@pytest.fixture(scope="module")
def chance_build(tmp_path_factory):
    """Two classes of the very same image: no model can tell them apart (accuracy = chance). The Mega's tiny
    model fills over 75 % of its RAM. Simulated on both, with VERBOSE=1."""
    from PIL import Image

    root = tmp_path_factory.mktemp("chance")
    data = root / "data"
    for cls in ("left", "right"):
        (data / cls).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (40, 40), (90, 120, 150)).save(data / cls / f"{i}.png")
    build = root / "build"
    proc_ = run_scons(build, "report", "memory", "check", "simulate", DATA=str(data), BOARD="nano33ble,mega",
                      VERBOSE="1")
    return build, data, proc_


@pytest.mark.heavy
def test_summary_numbers_equal_the_result_files(chance_build):
    build, _, proc_ = chance_build
    block = _summary_block(proc_.stdout)
    for name in ("nano33ble", "mega"):
        out = build / name
        metrics, memory, sim = (_load(out / n) for n in ("metrics.json", "memory.json", "simulate.json"))
        lines = _board_lines(block, name)
        assert any(line.startswith(f"Accuracy: float {summary.percent(metrics['float_val_accuracy'])}, int8 "
                                   f"{summary.percent(metrics['quantized_val_accuracy'])} ") for line in lines)
        assert _expected_bar("Flash", memory["flash"]) in lines and _expected_bar("RAM", memory["ram"]) in lines
        if name == "nano33ble":
            per, cycles = sim["instructions_per_inference"], sim["cycles_per_inference_estimate"]
            ms = 1000.0 * cycles / boards.get(name)["clock_hz"]
            assert ms == pytest.approx(sim["ms_per_inference_estimate"], abs=1e-4) and cycles > per
            assert any(f"{summary.count(per)} instructions per inference, ~{summary.count(cycles)} cycles "
                       f"(estimate), ~{ms:.1f} ms at 64 MHz" in line for line in lines), lines
        else:
            assert any(f"firmware flash {sim['flash_bytes']:,} bytes, static RAM {sim['ram_bytes']:,} bytes" in line
                       for line in lines), lines
    warnings = [line for line in block if line.startswith("warning:")]
    assert any(w.startswith("warning: nano33ble: float accuracy 50.0% is no better than guessing") and "EPOCHS="
               in w and "WEIGHTS=" in w for w in warnings), warnings
    mega_ram = _load(build / "mega" / "memory.json")["ram"]["percent"]
    assert mega_ram > 75
    assert any(f"mega: RAM {mega_ram:.1f}% used" in w and "stability problems" in w for w in warnings), warnings
    assert "low memory available" in (build / "mega" / "memory.txt").read_text()


@pytest.mark.heavy
def test_verbose_shows_the_host_checks_gcc_line_and_the_emulators(chance_build):
    _, _, proc_ = chance_build
    lines = proc_.stdout.splitlines()
    assert any(re.match(r"^g(cc|\+\+) .*-c .*tvm_model", line) for line in lines), proc_.stdout[-3000:]
    assert any(line.startswith("qemu-system-arm ") for line in lines)
    assert any(line.startswith(("arduino-builder ", "simavr ", "avr-size ")) for line in lines)


@pytest.mark.heavy
def test_no_op_is_quiet_and_a_partial_rebuild_counts_only_its_stages(chance_build):
    build, data, _ = chance_build
    args = dict(DATA=str(data), BOARD="nano33ble,mega")
    again = run_scons(build, "report", "memory", "check", "simulate", **args)
    assert _stage_counters(again.stdout) == [] and "summary" not in again.stdout
    # VERBOSE is in no signature: turning it off rebuilt nothing above
    shutil.rmtree(build / ".scons-finished")         # or the record would bring the file back
    (build / "mega" / "hostcheck.json").unlink()
    redo = run_scons(build, "report", "memory", "check", "simulate", **args)
    assert _stage_counters(redo.stdout) == [(1, 1)], redo.stdout
    assert [line for line in stage_lines(redo.stdout) if line.startswith("Host check")]
    assert not any(line.startswith(("gcc ", "g++ ")) for line in redo.stdout.splitlines())    # VERBOSE=0 again
    assert len(_board_lines(_summary_block(redo.stdout), "mega")) >= 4


@pytest.mark.heavy
def test_arduino_cli_warnings_are_shown_on_success(chance_build, tmp_path):
    build, data, _ = chance_build
    cli = os.path.join(ROOT, "tests", "fixtures", "fake_arduino_cli.py")
    warning = "tvm_model.ino:12:5: warning: unused variable 'x' [-Wunused-variable]"
    done = run_scons(build, "compile", DATA=str(data), BOARD="nano33ble", ARDUINO_CLI=cli,
                     env={"FAKE_ARDUINO_LOG": str(tmp_path / "log"), "FAKE_ARDUINO_WARNING": warning})
    assert warning in done.stdout.splitlines(), done.stdout[-3000:]
    assert _stage_counters(done.stdout)[-1][0] >= 1
    assert any(line.startswith("Firmware (arduino-cli): text ")
               for line in _board_lines(_summary_block(done.stdout), "nano33ble"))


def test_unmeasured_code_size_is_said_plainly_with_how_to_measure_it(tmp_path, monkeypatch):
    """Without the board's compiler the flash bar leaves the generated code out: the summary says so and how to
    get the measured figure, instead of a bar that looks complete."""
    board = boards.get("nano33ble")
    monkeypatch.setattr(memreport.shutil, "which", lambda name: None)
    code, _, note = memreport.measure_code([], board)
    assert code is None and "`./dev setup`" in note
    out = tmp_path / "nano33ble"
    out.mkdir()
    flash = memreport._budget({"weights": 200000}, board["flash_bytes"])
    (out / "memory.json").write_text(json.dumps({"flash": flash, "code_bytes": None, "code_note": note}))
    text = summary.format_summary([(board, summary.collect(str(out)))])
    assert f"Flash excludes the generated code: {note}" in text, text
    (out / "memory.json").write_text(json.dumps({"flash": flash, "code_bytes": 1234, "code_note": "measured"}))
    assert "excludes the generated code" not in summary.format_summary([(board, summary.collect(str(out)))])


@pytest.mark.heavy      # reads the tiny default build (a full scons run)
def test_default_build_embeds_a_balanced_held_out_demo_and_counts_it_right(tiny_build):
    """The demo: the default build embeds DEMO_INPUTS held-out images, balanced over the classes (the car first),
    each with its true class; the sketch's last line counts the right answers as TFLite's decisions give them,
    and the summary repeats it (before: two hand-picked images, no count, and both could be wrong)."""
    from codegen.emit import bin2c
    from codegen.stages import dataset

    build, proc = tiny_build
    out = build / "nano33ble"
    images = _load(out / "images.json")
    expected = _load(out / "expected.json")
    classes = images["labels"]
    per_class = dataset.demo_per_class(len(classes))
    truths = [e["truth"] for e in images["images"]]
    assert images["demo"] and sorted(truths) == sorted(list(range(len(classes))) * per_class)
    assert classes[truths[0]] == "target" and images["images"][0]["title"] == "Car 1"
    # held out: none of the demo's pixels is a training or validation image
    packed = dataset.load_packed(str(out / "dataset.npz"))
    train = {x.tobytes() for x in packed["x"]}
    assert not any(x.tobytes() in train for x in packed["demo_x"])
    correct = sum(1 for e in expected["images"] if e["argmax"] == e["truth"])
    line = bin2c.demo_summary_line(correct, len(truths))
    assert expected["demo"]["line"] == line
    check = _load(out / "hostcheck.json")
    printed = [x.strip() for x in check["output"].splitlines() if x.strip()]
    assert printed[len(truths)] == line           # the sketch's own last line, right after the inputs' lines
    assert f"  Demo: {line.replace(' correct', ' held-out images correct')}" in _summary_block(proc.stdout)


def test_demo_line_is_the_sketchs_integer_arithmetic():
    from codegen.emit import bin2c
    from codegen.runners import hostcheck

    assert bin2c.demo_summary_line(7, 8) == "7/8 correct (87.5%)"
    assert bin2c.demo_summary_line(2, 3) == "2/3 correct (66.7%)"
    assert bin2c.demo_summary_line(0, 5) == "0/5 correct (0.0%)"
    expected = {"demo": {"line": "7/8 correct (87.5%)"}}
    hostcheck.check_demo_line("Car 1: target 90.0% [1, 2]\n7/8 correct (87.5%)\r\n", expected, "the host build")
    with pytest.raises(PipelineError, match=r"printed '6/8 correct \(75.0%\)'; TFLite's decisions give '7/8"):
        hostcheck.check_demo_line("6/8 correct (75.0%)\n", expected, "the host build")
    with pytest.raises(PipelineError, match="printed no demo line"):
        hostcheck.check_demo_line("Car 1: target 90.0% [1, 2]\n", expected, "the host build")
    hostcheck.check_demo_line("anything\n", {"images": []}, "the host build")      # no demo: nothing to check
