"""bench/mcu.py --peer: the side-by-side table against TFLite Micro + CMSIS-NN (issue 10).

The table logic is tested with a stand-in for ../shared/peers/tflm_m4.sh that prints the peer's line format
(no TFLM build); one heavy test runs the real peer on the MLPerf AD autoencoder when its mirrors and libraries
are there."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from codegen.runners import qemu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCU_PY = os.path.join(ROOT, "bench", "mcu.py")
PEER_SCRIPT = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers", "tflm_m4.sh"))
AD01 = os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "ad01_int8.tflite"))

needs_m4 = pytest.mark.skipif(not (qemu.toolchain_available() and shutil.which("gcc")),
                              reason="needs arm-none-eabi-gcc, qemu-system-arm and host gcc (Debian: "
                                     "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc)")


def _bench():
    """bench/mcu.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_mcu", MCU_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_bench(*args, env=None):
    return subprocess.run([sys.executable, MCU_PY, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=1200)


# The goals these cases are written around (the bench's own are the issue's, passed the same way)
GOALS = {"goal_ratio": 0.6, "goal_ram_ratio": 0.8}


def _project(macs=1_000_000, insn=1_500_000, ram=30_000, fw=120_000):
    return {"macs": macs, "insn": insn, "ram": ram, "workspace": ram - 1000, "input": 900, "output": 100,
            "firmware_flash": fw, "model_flash": fw - 20_000, "tflite_bytes": fw, "codegen_s": 1.0,
            "outputs": ["1", "2"]}


def test_row_ratios_goals_and_latency_come_from_both_measurements():
    mcu = _bench()
    peer = {"cmsis-nn": {"insn": 3_000_000, "arena": 40_000, "flash": 400_000}}
    row = mcu.compare_row("m", "/x/m.tflite", _project(), peer, clock_hz=64_000_000, **GOALS)
    assert row["ratio"] == 0.5 and row["goal_met"] is True
    assert row["ram_ratio"] == 0.75 and row["ram_goal_met"] is True
    assert row["flash_ratio"] == 0.3
    assert row["project"]["insn_per_mac"] == 1.5
    assert row["project"]["latency_ms_min"] == pytest.approx(1_500_000 / 64e6 * 1e3, abs=1e-6)
    assert row["peer"]["cmsis-nn"]["latency_ms_min"] == pytest.approx(3_000_000 / 64e6 * 1e3, abs=1e-6)
    assert row["peer"]["cmsis-nn"]["insn_per_mac"] == 3.0
    # the goals can fail too: 0.61x of the peer's instructions, 0.81x of its arena
    slow = mcu.compare_row("m", "/x/m.tflite", _project(insn=1_830_000, ram=32_400), peer, clock_hz=16_000_000, **GOALS)
    assert slow["ratio"] == 0.61 and slow["goal_met"] is False
    assert slow["ram_ratio"] == 0.81 and slow["ram_goal_met"] is False
    assert slow["project"]["latency_ms_min"] == pytest.approx(1_830_000 / 16e6 * 1e3, abs=1e-6)
    # the goal is judged on the counts, not on the ratio as rounded for printing
    edge = mcu.compare_row("m", "/x/m.tflite", _project(insn=1_800_001), peer, clock_hz=64_000_000, **GOALS)
    assert edge["ratio"] == 0.6 and edge["goal_met"] is False


def _report(mcu, rows, ksets=("cmsis-nn",)):
    return {"board": "nano33ble", "board_cpu": "cortex-m4f", "clock_hz": 64_000_000, "cflags": "-O2",
            "peer_script": "stand-in", "peer_kernel_sets": list(ksets), "goal_ratio": mcu.GOAL_RATIO,
            "goal_ram_ratio": mcu.GOAL_RAM_RATIO, "models": rows}


def test_table_prints_measured_columns_and_says_why_peer_columns_are_missing():
    mcu = _bench()
    peer = {"cmsis-nn": {"insn": 3_000_000, "arena": 40_000, "flash": 400_000}}
    measured = mcu.compare_row("fast", "/x/fast.tflite", _project(), peer, clock_hz=64_000_000, **GOALS)
    missing = mcu.compare_row("alone", "/x/alone.tflite", _project(insn=2_000_000), None, clock_hz=64_000_000,
                              peer_error="tflm_m4.sh exited with code 1: MIRROR: set MIRROR")
    text = mcu.format_compare(_report(mcu, [measured, missing]))
    lines = text.splitlines()
    assert lines[0].startswith("| model | MACs | this project insn | TFLM + CMSIS-NN insn | ratio |")
    fast = next(line for line in lines if line.startswith("| fast |"))
    assert "1.50 M (1.50/MAC)" in fast and "3.00 M" in fast and "0.50×" in fast and "| yes |" in fast
    assert "30,000 / 40,000 (0.75×)" in fast and "120,000 / 400,000 (0.30×)" in fast
    assert "23.4 / 46.9" in fast  # ms at 64 MHz
    alone = next(line for line in lines if line.startswith("| alone |"))
    assert "2.00 M (2.00/MAC)" in alone and "30,000 / -" in alone and "31.2 / -" in alone
    assert "| 2.00 M (2.00/MAC) | - | - | - |" in alone  # TFLM insn, ratio and goal: empty, not invented
    assert "TFLM columns missing for alone: tflm_m4.sh exited with code 1: MIRROR: set MIRROR" in text
    assert "lower bound" in text and "recorded" not in text
    # one reason for every model is said once
    again = mcu.compare_row("again", "/x/again.tflite", _project(), None, clock_hz=64_000_000,
                            peer_error=missing["peer_error"])
    text = mcu.format_compare(_report(mcu, [missing, again]))
    assert text.count("MIRROR: set MIRROR") == 1 and "TFLM columns missing for every model: " in text


def test_recorded_peer_values_only_for_the_same_model_and_clearly_labelled():
    mcu = _bench()
    rec = mcu.tflm_peer.RECORDED["ad01_int8"]
    same = mcu.compare_row("ad01_int8", "/x/ad01_int8.tflite", _project(macs=rec["macs"], insn=291_640), None,
                           clock_hz=64_000_000, peer_error="no mirrors")
    assert same["peer"] is None and same["ratio"] is None  # recorded values never fill the measured columns
    assert same["peer_recorded"]["cmsis-nn"]["insn"] == rec["cmsis-nn"]["insn"]
    text = mcu.format_compare(_report(mcu, [same]))
    assert "ad01_int8: recorded, not measured in this run" in text and "0.50× that" in text
    other = mcu.compare_row("ad01_int8", "/x/ad01_int8.tflite", _project(macs=rec["macs"] + 1), None,
                            clock_hz=64_000_000, peer_error="no mirrors")
    assert other["peer_recorded"] is None


def test_reference_kernel_column_when_asked():
    mcu = _bench()
    peer = {"cmsis-nn": {"insn": 3_000_000, "arena": 40_000, "flash": 400_000},
            "reference": {"insn": 12_000_000, "arena": 41_000, "flash": 380_000}}
    row = mcu.compare_row("m", "/x/m.tflite", _project(), peer, clock_hz=64_000_000)
    text = mcu.format_compare(_report(mcu, [row], ksets=("cmsis-nn", "reference")))
    assert "TFLM reference insn" in text.splitlines()[0] and "12.00 M" in text


def test_peer_output_parsing_ignores_other_lines():
    mcu = _bench()
    out = ("cmsis-nn: WARNING outputs differ between RUNS=1 and RUNS=2\n"
           "cmsis-nn insn=583280 arena=3012 flash=322612\n"
           "  count(N=1)=1 count(N=2)=2\n"
           "reference insn=1954145 arena=3020 flash=300000\n")
    assert mcu.tflm_peer.parse_output(out) == {
        "cmsis-nn": {"insn": 583280, "arena": 3012, "flash": 322612},
        "reference": {"insn": 1954145, "arena": 3020, "flash": 300000}}


def test_bad_input_is_one_error_line():
    proc = _run_bench("--peer", "/nonexistent/model.tflite")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: model /nonexistent/model.tflite does not exist: give the path of a .tflite file"]
    assert proc.stdout == ""


STAND_IN = r"""#!/bin/bash
# stand-in for tflm_m4.sh: records how it was called, answers in the peer's format, fails on models named bad*
echo "$1 KSETS=$KSETS OPT=$OPT MIRROR=$MIRROR" >> "%(log)s"
case "$(basename "$1")" in
  bad*) echo "building TFLM ..." ; echo "library build failed, see /tmp/lib.log" >&2; exit 1 ;;
  noline*) echo "cmsis-nn: probe failed:"; exit 0 ;;
esac
echo "cmsis-nn: WARNING something the table does not need" >&2
echo "cmsis-nn insn=%(insn)d arena=%(arena)d flash=%(flash)d"
"""


def _tiny_int8_model(path):
    """A two-layer int8 dense model, small enough for seconds of codegen and emulation."""
    import keras
    from tflite_helpers import convert_int8, fit_briefly
    keras.utils.set_random_seed(3)
    inp = keras.Input(shape=(24,), batch_size=1)
    x = keras.layers.Dense(16, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(4)(x))
    X = np.random.RandomState(0).rand(32, 24).astype(np.float32) * 255
    path.write_bytes(convert_int8(fit_briefly(model, X), X))
    return str(path)


@needs_m4
@pytest.mark.heavy      # QEMU runs of several models (~45 s on 2 shared cores)
def test_side_by_side_with_a_stand_in_peer(tmp_path):
    """The real CLI on a real model: this project's columns measured, the peer's parsed from the stand-in,
    a failing or silent peer leaves its columns empty with the reason, and --json carries it all."""
    model = _tiny_int8_model(tmp_path / "tiny.tflite")
    shutil.copyfile(model, tmp_path / "bad_tiny.tflite")
    shutil.copyfile(model, tmp_path / "noline_tiny.tflite")
    log = tmp_path / "calls.log"
    script = tmp_path / "peer.sh"
    script.write_text(STAND_IN % {"log": log, "insn": 50_000, "arena": 4_096, "flash": 200_000})
    proc = _run_bench("--peer", "--json", "--mirror", str(tmp_path), model, str(tmp_path / "bad_tiny.tflite"),
                      str(tmp_path / "noline_tiny.tflite"), env={"TINYML_PEER_SCRIPT": str(script)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["clock_hz"] == 64_000_000 and report["peer_kernel_sets"] == ["cmsis-nn"]
    good, bad, silent = report["models"]
    p = good["project"]
    assert good["model"] == "tiny" and p["macs"] == 24 * 16 + 16 * 4 and p["all_op_macs"] >= p["macs"]
    assert p["insn"] > p["macs"]  # real work was counted on the M4
    assert p["ram"] == p["workspace"] + p["input"] + p["output"] and p["input"] == 24 and p["output"] == 4
    assert good["peer"]["cmsis-nn"]["insn"] == 50_000 and good["peer_error"] is None
    assert good["ratio"] == round(p["insn"] / 50_000, 4) and good["goal_met"] == (p["insn"] <= report["goal_ratio"] * 50_000)
    assert good["ram_ratio"] == round(p["ram"] / 4_096, 4)
    assert good["flash_ratio"] == round(p["firmware_flash"] / 200_000, 4)
    assert p["latency_ms_min"] == pytest.approx(p["insn"] / 64e6 * 1e3, abs=1e-6)
    # a failing peer: this project's columns stay, the reason is the script's last error line
    assert bad["project"]["insn"] == p["insn"] and bad["peer"] is None and bad["ratio"] is None
    assert bad["peer_error"] == "peer.sh exited with code 1: library build failed, see /tmp/lib.log"
    assert silent["peer"] is None and "printed no result for cmsis-nn: cmsis-nn: probe failed:" in silent["peer_error"]
    calls = log.read_text().splitlines()
    assert calls[0] == "%s KSETS=cmsis-nn OPT=-O2 MIRROR=%s" % (model, tmp_path)
    assert len(calls) == 3
    text = _bench().format_compare(report)
    assert "| tiny |" in text and "TFLM columns missing for bad_tiny: peer.sh exited with code 1" in text


def _peer_ready():
    """None when the real peer can run here quickly, else why not."""
    mirror = os.environ.get("MIRROR")
    cache = os.environ.get("PEERS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tflm-peers")
    if not os.path.isfile(PEER_SCRIPT) or not os.path.isfile(AD01):
        return "../shared/peers and ../shared/models are absent (they come with the project's CI)"
    if not mirror or not os.path.isdir(os.path.join(mirror, "tensorflow+tflite-micro", "repo")):
        return "MIRROR is not set to the peer's bare git mirrors (../shared/peers/README.md)"
    if not os.path.isfile(os.path.join(cache, "lib", "cmsis-nn-O2", "libtensorflow-microlite.a")):
        return ("the TFLM + CMSIS-NN library is not built (10-15 min): MIRROR=... bash %s --lib-only"
                % PEER_SCRIPT)
    return None


@pytest.mark.heavy
@needs_m4
def test_side_by_side_with_the_real_peer_on_ad01():
    why = _peer_ready()
    if why:
        pytest.skip(why)
    proc = _run_bench("--peer", "--json", AD01)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["models"][0]
    assert row["peer_error"] is None, row["peer_error"]
    cm = row["peer"]["cmsis-nn"]
    # the table holds what the peer script itself prints for this model (its result is cached: a fast rerun)
    direct = subprocess.run(["bash", PEER_SCRIPT, AD01], capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "KSETS": "cmsis-nn", "TFLM_PY": sys.executable}).stdout
    assert "cmsis-nn insn=%d arena=%d flash=%d" % (cm["insn"], cm["arena"], cm["flash"]) in direct
    # a 640-in, 640-out FC autoencoder: the arena holds its int8 input and output, the firmware its weights
    assert cm["arena"] >= 2 * 640 and cm["flash"] > 250_000 and cm["insn"] > row["macs"]
    assert row["ratio"] == round(row["project"]["insn"] / cm["insn"], 4)
    # estimated cycles: this project's plugin on the peer's own firmware counts the very instructions its plugin
    # counted, and charges at least one cycle each
    assert cm["cycles_error"] is None and cm["insn_our_plugin"] == cm["insn"] and cm["cycles"] > cm["insn"]
    assert row["cycle_ratio"] == round(row["project"]["cycles"] / cm["cycles"], 4)


def test_cycle_columns_ratio_goal_and_why_missing():
    mcu = _bench()
    peer = {"cmsis-nn": {"insn": 3_000_000, "arena": 40_000, "flash": 400_000, "cycles": 4_800_000,
                         "insn_our_plugin": 3_000_000, "cycles_error": None}}
    row = mcu.compare_row("m", "/x/m.tflite", dict(_project(), cycles=2_000_000), peer, clock_hz=64_000_000, **GOALS)
    assert row["cycle_ratio"] == round(2_000_000 / 4_800_000, 4) and row["cycle_goal_met"] is True
    assert row["project"]["latency_ms_estimate"] == pytest.approx(31.25)
    assert row["peer"]["cmsis-nn"]["latency_ms_estimate"] == pytest.approx(75.0)
    slow = mcu.compare_row("slow", "/x/slow.tflite", dict(_project(), cycles=2_900_000), peer, clock_hz=64_000_000, **GOALS)
    assert slow["cycle_goal_met"] is False and slow["goal_met"] is True   # judged on cycles, apart from insn
    missing = {"cmsis-nn": dict(peer["cmsis-nn"], cycles=None, insn_our_plugin=None,
                                cycles_error="the peer's firmware is not in its cache (/c/fw)")}
    gone = mcu.compare_row("gone", "/x/gone.tflite", dict(_project(), cycles=2_000_000), missing,
                           clock_hz=64_000_000)
    assert gone["cycle_ratio"] is None and gone["cycle_goal_met"] is None
    text = mcu.format_compare(_report(mcu, [row, slow, gone]))
    assert "this project est. cycles (ms @ 64 MHz)" in text.splitlines()[0]
    cells = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| m |")).split("|")]
    assert cells[7:10] == ["2.00 M (31.2)", "4.80 M (75.0)", "0.42×"]
    assert "0.60× **NO**" in next(line for line in text.splitlines() if line.startswith("| slow |"))
    gone_cells = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| gone |")).split("|")]
    assert gone_cells[7:10] == ["2.00 M (31.2)", "-", "-"]
    assert "gone: TFLM's estimated cycles missing: the peer's firmware is not in its cache (/c/fw)" in text
    assert "an ESTIMATE" in text


@needs_m4
def test_peer_cycles_from_the_scripts_cached_firmware(tmp_path, monkeypatch):
    """peer_cycles runs this project's plugin on the two ELFs the peer script leaves in its cache (1 and 2
    Invokes) and takes the difference; without them it says where it looked."""
    mcu = _bench()
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not really a model, only its name and hash matter here")
    monkeypatch.setenv("PEERS_CACHE", str(tmp_path / "cache"))
    result = {"insn": 0, "arena": 4096, "flash": 1}
    with pytest.raises(mcu.tflm_peer.PeerUnavailable, match="not in its cache"):
        mcu.tflm_peer.peer_cycles(str(model), "cmsis-nn", result)
    e1, e2 = mcu.tflm_peer.firmware_paths(str(model), "cmsis-nn", 4096)
    assert os.path.dirname(e1).startswith(str(tmp_path / "cache" / "fw" / "m-"))
    main = tmp_path / "main.c"
    # RUNS loops of 1000 x (SUBS 1 + BNE taken 3) = 4 cycles, 2 instructions each
    main.write_text("int main(void) { for (int r = 0; r < RUNS; ++r) __asm__ volatile("
                    "\"movs r0, #250\\n movs r1, #4\\n mul r0, r0, r1\\n 1: subs r0, r0, #1\\n bne 1b\" ::: \"r0\", "
                    "\"r1\", \"cc\"); return 0; }\n")
    for runs, elf in ((1, e1), (2, e2)):
        qemu.build_firmware([], [], str(main), elf, cflags=("-O2", f"-DRUNS={runs}"))
    result["insn"] = 3 + 2 * 1000
    got = mcu.tflm_peer.peer_cycles(str(model), "cmsis-nn", result)
    # one more run of the asm: 3 set-up instructions and 1000 x (SUBS, BNE), plus the C loop's own few
    assert 3 + 2 * 1000 <= got["insn_our_plugin"] <= 3 + 2 * 1000 + 4
    # 3 + 1000 x (1 + 3) - 2 (the last BNE falls through), plus the C loop's compare and taken branch
    assert 3 + 4 * 1000 - 2 <= got["cycles"] <= 3 + 4 * 1000 - 2 + 8


def test_peer_input_per_type_and_packed_offset():
    """The side-by-side input is the one ../shared/peers/tflm_main.cc gives: element i = (i*7) mod 251 cast to
    the input's type (float32: / 255.0f), each input at its 16-byte aligned packed offset."""
    mcu = _bench()
    fill = mcu.peer_fill_c([{"name": "a", "dtype": "int16", "size_bytes": 10},
                            {"name": "b", "dtype": "float32", "size_bytes": 8},
                            {"name": "c", "dtype": "uint8", "size_bytes": 3}])
    lines = fill.splitlines()
    assert "int16_t* p = (int16_t*)(void*)(bench_image + 0); for (i = 0; i < 5; ++i) p[i] = (int16_t)((i * 7) % 251)" \
        in lines[0]
    assert "(bench_image + 16); for (i = 0; i < 2; ++i) p[i] = (float)((i * 7) % 251) / 255.0f" in lines[1]
    assert "(bench_image + 32); for (i = 0; i < 3; ++i) p[i] = (uint8_t)((i * 7) % 251)" in lines[2]
    with pytest.raises(mcu.PipelineError, match="'q' is bool"):
        mcu.peer_fill_c([{"name": "q", "dtype": "bool", "size_bytes": 1}])


def test_outputs_decoded_as_the_peer_prints_them_and_compared():
    mcu = _bench()
    outs = [{"dtype": "int8", "size_bytes": 2}, {"dtype": "float32", "size_bytes": 4},
            {"dtype": "int16", "size_bytes": 2}]
    raw = [str(b) for b in bytes([255, 3] + [0] * 14 + list(np.float32(1.0).tobytes()) + [0] * 12 + [0xFE, 0xFF])]
    ours = mcu.decode_outputs(outs, raw)
    assert ours == [["-1", "3"], ["0x3f800000"], ["-2"]]
    assert mcu.compare_outputs(ours, [["-1", "3"], ["0x3f800000"], ["-2"]]) == {"outputs_match": True,
                                                                               "outputs_note": None}
    diff = mcu.compare_outputs([["-1", "3"]], [["1", "3"]])
    assert diff == {"outputs_match": False, "outputs_note": "1 of 2 output values differ (by at most 2)"}
    assert mcu.compare_outputs(ours, None)["outputs_match"] is None
    assert mcu.compare_outputs([["1"]], [["1", "2"]])["outputs_note"] == "the output shapes differ"


def test_peer_outputs_read_from_the_scripts_cache(tmp_path, monkeypatch):
    mcu = _bench()
    model = tmp_path / "m.tflite"
    model.write_bytes(b"model bytes")
    monkeypatch.setenv("PEERS_CACHE", str(tmp_path / "cache"))
    assert mcu.tflm_peer.outputs(str(model), "cmsis-nn") is None
    d = os.path.dirname(mcu.tflm_peer.firmware_paths(str(model), "cmsis-nn", 0)[0])
    os.makedirs(d)
    with open(os.path.join(d, "outputs.txt"), "w") as f:
        f.write("arena_used=100\nout0 type=9: -1 2 3\nout1 type=1: 0x3f800000\n")
    assert mcu.tflm_peer.outputs(str(model), "cmsis-nn") == [["-1", "2", "3"], ["0x3f800000"]]


def test_an_op_tflm_has_no_kernel_for_is_named(tmp_path):
    mcu = _bench()
    script = tmp_path / "peer.sh"
    script.write_text("echo \"model_ops.h:18:7: error: 'class tflite::MicroMutableOpResolver<15>' has no member "
                      "named 'AddTile'; did you mean 'AddFill'?\" >&2\n"
                      "echo \"model_ops.h:19:7: error: 'class X' has no member named 'AddResizeBilinear2'\" >&2\n"
                      "echo 'compilation terminated.' >&2; exit 1\n")
    with pytest.raises(mcu.tflm_peer.PeerUnavailable) as e:
        mcu.tflm_peer.run(str(tmp_path / "m.tflite"), script=str(script))
    assert str(e.value) == ("TFLite Micro has no kernel for RESIZE_BILINEAR2, TILE (its op resolver has no "
                            "AddResizeBilinear2, AddTile), so the peer cannot run this model")


def test_tflm_examples_come_from_the_mirror_not_the_network(tmp_path):
    """micro_speech and hello_world are read from the peer's TFLM mirror (a bare git repository) at HEAD."""
    mcu = _bench()
    assert mcu.tflm_examples(None, str(tmp_path / "out"))[1].startswith("MIRROR is not set")
    assert "is absent" in mcu.tflm_examples(str(tmp_path), str(tmp_path / "out"))[1]
    src = tmp_path / "src"
    for i, rel in enumerate(mcu.TFLM_EXAMPLES):
        (src / os.path.dirname(rel)).mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"model %d" % i)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(src)], check=True)
    subprocess.run([*git, "-C", str(src), "add", "."], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "m"], check=True)
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(mirror / mcu.TFLM_MIRROR_REPO)], check=True)
    paths, why = mcu.tflm_examples(str(mirror), str(tmp_path / "out"))
    assert why is None
    assert [os.path.basename(p) for p in paths] == ["micro_speech_quantized.tflite", "hello_world_int8.tflite"]
    assert [open(p, "rb").read() for p in paths] == [b"model 0", b"model 1"]
    models, skipped = mcu.default_models(str(mirror), str(tmp_path / "out2"))
    assert [m for m in models if "out2" in m] == [os.path.join(str(tmp_path / "out2"), os.path.basename(p))
                                                    for p in paths]
    assert not any("micro_speech" in what for what, _ in skipped)
    models, skipped = mcu.default_models(None, str(tmp_path / "out3"))
    assert ("TFLM's micro_speech and hello_world",
            mcu.tflm_examples(None, "x")[1]) in [tuple(s) for s in skipped]
    text = mcu.format_compare(dict(_report(mcu, []), skipped=skipped))
    assert "TFLM's micro_speech and hello_world: not in the table: MIRROR is not set" in text
