"""`scons profile` and codegen.runners.profile: per kernel call on the emulated Cortex-M4F, instructions and
estimated cycles that add up to the whole inference, the table, the chart, and the board capability it needs.
The fast cases use plain data; the end-to-end case (a tiny user MODEL= through scons) is heavy."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from codegen import targets
from codegen import boards
from codegen.errors import PipelineError
from codegen.runners import profile
from helpers import ROOT, run_scons, scons_exe, stage_lines


def _meta():
    """Three kernel calls: input -> ws 0 (1000 B) -> ws 1024 (500 B, with a 64 B scratch) -> output, in place."""
    return {"calls": [
        {"index": 0, "kernel": "k0", "op_index": 0, "op": "CONV_2D", "macs": 4000, "output_bytes": 1000,
         "inputs": [{"kind": "input"}, {"kind": "constant", "name": "c0", "bytes": 90}],
         "output": {"kind": "workspace", "offset": 0}},
        {"index": 1, "kernel": "k1", "op_index": 1, "op": "DEPTHWISE_CONV_2D", "macs": 900, "output_bytes": 500,
         "inputs": [{"kind": "workspace", "offset": 0}, {"kind": "scratch", "offset": 2000, "bytes": 64}],
         "output": {"kind": "workspace", "offset": 1024}},
        {"index": 2, "kernel": "k2", "op_index": 3, "op": "SOFTMAX", "macs": 0, "output_bytes": 500,
         "inputs": [{"kind": "workspace", "offset": 1024}], "output": {"kind": "workspace", "offset": 1024}},
    ], "workspace_size_bytes": 2064}


def test_workspace_bytes_count_each_byte_once():
    assert profile.workspace_bytes(_meta()) == [1000, 1000 + 64 + 500, 500]


def test_rows_add_up_and_name_the_layers():
    regions = [{"insn": 8000, "cycles": 11000}, {"insn": 3000, "cycles": 4000}, {"insn": 900, "cycles": 1000},
               {"insn": 100, "cycles": 4000}]
    rows, insn, cycles = profile.rows_from_regions(_meta(), regions)
    assert (insn, cycles) == (12000, 20000)
    assert [r["layer"] for r in rows] == ["conv_2d_0", "depthwise_conv_2d_1", "softmax_3", profile.TAIL]
    assert rows[0]["insn_per_mac"] == 2.0 and rows[0]["cycles_per_mac"] == 2.75
    assert rows[2]["insn_per_mac"] is None and rows[3]["index"] is None
    assert [r["share_cycles_percent"] for r in rows] == [55.0, 20.0, 5.0, 20.0]
    assert [r["share_instructions_percent"] for r in rows] == [66.67, 25.0, 7.5, 0.83]
    with pytest.raises(PipelineError, match="4 kernel calls|3 kernel calls"):
        profile.rows_from_regions(_meta(), regions[:3])


def test_table_and_chart():
    from codegen import plots

    regions = [{"insn": 8000, "cycles": 11000}, {"insn": 3000, "cycles": 4000}, {"insn": 900, "cycles": 1000},
               {"insn": 100, "cycles": 4000}]
    rows, insn, cycles = profile.rows_from_regions(_meta(), regions)
    report = {"emulator": "qemu", "input": "x", "flash_wait_states": 0, "clock_hz": 64000000, "model_name": "m",
              "layers": rows, "total": {"instructions": insn, "cycles_estimate": cycles, "macs": 4900,
                                        "insn_per_mac": 2.449, "cycles_per_mac": 4.082, "ms_estimate": 0.3125,
                                        "workspace_size_bytes": 2064}}
    text = profile.format_profile(report)
    lines = text.splitlines()
    assert "an estimate" in lines[1]
    conv = next(line for line in lines if "conv_2d_0" in line and "depthwise" not in line)
    assert conv.split() == ["0", "conv_2d_0", "4,000", "8,000", "11,000", "2.00", "2.75", "55.0%", "1,000"]
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert total.split()[1:5] == ["4,900", "12,000", "20,000", "2.45"]
    assert "~0.31 ms per inference at 64 MHz" in text
    fig = plots.profile_figure(report)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["0 conv_2d_0", "1 depthwise_conv_2d_1", "2 softmax_3", profile.TAIL]
    assert "20,000 cycles (estimate)" in fig._suptitle.get_text()


def test_profile_needs_a_qemu_board():
    assert targets.board_has("profile", boards.get("nano33ble"))
    assert not targets.board_has("profile", boards.get("mega"))        # simavr: no cycle plugin
    assert not targets.board_has("profile", boards.get("pico"))
    assert targets.board_has("simulate", boards.get("mega"))
    proc = subprocess.run([scons_exe(), "-C", ROOT, "-Q", "BOARD=mega", "profile"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: BOARD=mega has no Cortex-M4 emulator; `scons profile` runs on boards simulated in QEMU (e.g. "
        "BOARD=nano33ble); leave `profile` out for it or pick another BOARD="]
    tree = os.path.join(ROOT, "..", "shared", "tflm-tree")
    if os.path.isdir(tree):     # BACKEND=tflm needs a TFLM tree to get this far
        proc = subprocess.run([scons_exe(), "-C", ROOT, "-Q", "BACKEND=tflm", f"TFLM_DIR={tree}", "profile"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
        assert proc.stderr.startswith("error: `scons profile` profiles the generated C of BACKEND=tvm")


@pytest.mark.heavy
@pytest.mark.skipif(not shutil.which("qemu-system-arm") or not shutil.which("arm-none-eabi-gcc"),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (Debian: gcc-arm-none-eabi "
                           "libnewlib-arm-none-eabi qemu-system-arm)")
def test_scons_profile_end_to_end(tmp_path):
    from tflite_helpers import convert_int8, tutorial_mobilenet

    rs = np.random.RandomState(3)
    X = rs.randint(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    model = tmp_path / "tiny.tflite"
    model.write_bytes(convert_int8(tutorial_mobilenet((32, 32, 3), 3, X), X, "uint8", "uint8"))
    build = tmp_path / "b"
    proc = run_scons(build, "profile", "simulate", MODEL=str(model))
    out = build / "nano33ble"
    report = json.loads((out / "profile.json").read_text())
    sim = json.loads((out / "simulate.json").read_text())
    with open(out / "profile.txt") as f:
        assert f.read() == profile.format_profile(report)
    assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layers, total = report["layers"], report["total"]
    from codegen.emit.mlf_archive import read_mlf
    meta, _ = read_mlf(str(out / "model_mlf.tar"))
    assert len(layers) == len(meta["calls"]) + 1
    assert [r["kernel"] for r in layers[:-1]] == [c["kernel"] for c in meta["calls"]]
    assert sum(r["instructions"] for r in layers) == total["instructions"]
    assert sum(r["cycles_estimate"] for r in layers) == total["cycles_estimate"]
    assert all(r["cycles_estimate"] >= r["instructions"] > 0 for r in layers[:-1])
    # the same inference as simulate's, plus the hook's two calls and returns per kernel: the instructions prove the
    # same work ran. In cycles the profile build also differs by how gcc schedules the inlined kernels around the
    # hook calls (the conv and depthwise loops pin registers in asm), either way: measured 0.06% more with the
    # earlier kernels, 0.07% fewer (1,157 cycles) with the ring depthwise and the LDM conv loops. The sum of the
    # per-layer cycles must stay within 0.5% of the real run's, which is what a user reading the table relies on
    slack = 8 * len(layers)
    assert sim["instructions_min"] <= total["instructions"] <= sim["instructions_max"] + slack
    assert 0.995 * sim["cycles_min_estimate"] <= total["cycles_estimate"] <= \
        1.005 * sim["cycles_max_estimate"] + 8 * slack
    assert total["macs"] == sum(c["macs"] for c in meta["calls"])
    printed = [line for line in stage_lines(proc.stdout) if "slowest" in line]
    assert len(printed) == 1 and f"{total['instructions']:,} instructions" in printed[0]
    again = run_scons(build, "profile", MODEL=str(model))
    assert not [line for line in stage_lines(again.stdout) if line.startswith(("Profiling", "Per-layer profile"))]
