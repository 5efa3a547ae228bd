"""Per-layer profile on the emulated Cortex-M4F (`scons profile`, bench/mcu.py --profile): which layer is slow.

One firmware, one run: the MLF's C with its TVMGEN_TRACE hook (called by the entry function after every kernel
call) defined as "close the instruction-count region, open the next", so the QEMU plugin (run with each=1)
reports one region per kernel call of metadata.json's "calls", plus a last one for what follows the last call
(copies into the output, the return). Each region holds the kernel call and about six instructions of the hook's
own calls. The kernels are compiled unchanged (the hook lives in the entry function's file).

Per call: instructions, estimated cycles (the plugin's Cortex-M4 TRM model, the board's flash wait states), MACs,
instructions and cycles per MAC, share of the inference, and the workspace bytes the call reads and writes (its
activations and scratch in the static workspace, overlapping ranges counted once).
"""
import json
import os

from . import qemu
from .. import boards
from ..errors import PipelineError
from ..emit import templating
from ..fsutil import atomic_open

TRACE_DEFINE = "-DTVMGEN_TRACE(i,p,n)=do{insn_region_end();insn_region_begin();}while(0)"
TAIL = "(after the last kernel)"

def _union_length(ranges):
    total, end = 0, None
    for lo, hi in sorted(ranges):
        if end is None or lo >= end:
            total += hi - lo
            end = hi
        elif hi > end:
            total += hi - end
            end = hi
    return total


def workspace_bytes(meta):
    """For each kernel call of metadata.json, the workspace bytes it reads and writes: its workspace inputs (as
    large as the call that last wrote that offset made them), scratch and workspace output, overlaps once."""
    produced, out = {}, []
    for call in meta["calls"]:
        ranges = []
        for a in call["inputs"]:
            if a["kind"] == "workspace" and a["offset"] in produced:
                ranges.append((a["offset"], a["offset"] + produced[a["offset"]]))
            elif a["kind"] == "scratch":
                ranges.append((a["offset"], a["offset"] + a["bytes"]))
        o = call["output"]
        if o["kind"] == "workspace":
            ranges.append((o["offset"], o["offset"] + call["output_bytes"]))
            produced[o["offset"]] = call["output_bytes"]
        out.append(_union_length(ranges))
    return out


def rows_from_regions(meta, regions):
    """Profile rows (one per kernel call, then the tail) from the plugin's per-region counts."""
    calls = meta["calls"]
    if len(regions) != len(calls) + 1:
        raise PipelineError(f"the profile run reported {len(regions)} instruction-count regions for {len(calls)} "
                            "kernel calls (expected one more than calls): was the MLF built with a TVMGEN_TRACE "
                            "hook after every call? Rebuild it (`scons mlf`)")
    total_insn = sum(r["insn"] for r in regions)
    total_cycles = sum(r["cycles"] for r in regions)
    ws = workspace_bytes(meta)
    rows = []
    for k, region in enumerate(regions):
        call = calls[k] if k < len(calls) else None
        macs = int(call["macs"]) if call else 0
        rows.append({
            "index": k if call else None,
            "layer": "%s_%d" % (call["op"].lower(), call["op_index"]) if call else TAIL,
            "op": call["op"] if call else None,
            "kernel": call["kernel"] if call else None,
            "macs": macs,
            "instructions": region["insn"],
            "cycles_estimate": region["cycles"],
            "insn_per_mac": round(region["insn"] / macs, 3) if macs else None,
            "cycles_per_mac": round(region["cycles"] / macs, 3) if macs else None,
            "share_instructions_percent": round(100.0 * region["insn"] / total_insn, 2) if total_insn else 0.0,
            "share_cycles_percent": round(100.0 * region["cycles"] / total_cycles, 2) if total_cycles else 0.0,
            "workspace_bytes": ws[k] if call else 0,
        })
    return rows, total_insn, total_cycles


def profile_cortex_m4(mlf_tar, out_json, out_txt, *, work_dir, board=None, images_c=None, images_h=None,
                      images_json=None, timeout_s=300, cflags=("-O2",)):
    """Builds the MLF's C with the per-call region hook for the mps2-an386 Cortex-M4F, runs one inference under
    QEMU and writes the per-layer profile (out_json, out_txt); returns the report dict.

    The input is the first embedded test image (images_c/h/json, as bin2c wrote them) when given, else the
    peer benchmark's input (byte i = (i*7) mod 251, as bench/mcu.py --peer uses). `board`: its clock gives the
    estimated milliseconds, its flash_wait_states (default 0) the cycle model's wait states."""
    from .simulate import _load_json, extract_mlf, write_pgmspace_stub

    board = boards.board(board or {})
    ws = int(board.flash_wait_states or 0)
    clock = board.clock_hz
    work_dir = os.path.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    meta, sources, include_dir = extract_mlf(mlf_tar, os.path.join(work_dir, "mlf"))
    if not meta.get("calls"):
        raise PipelineError(f"{mlf_tar} lists no kernel calls in its metadata.json (an MLF from an older "
                            "generator?): rebuild it with `scons mlf`")
    name = meta.get("model_name", "default")
    include_dirs = [include_dir]
    extra_sources = []
    if images_c and images_json:
        images = _load_json(images_json, "images sidecar").get("images") or []
        if not images:
            raise PipelineError(f"{images_json} lists no images: embed at least one test input")
        stub_dir = os.path.join(work_dir, "stub")
        write_pgmspace_stub(stub_dir)
        include_dirs += [os.path.dirname(os.path.abspath(images_h or images_c)), stub_dir]
        extra_sources.append(os.path.abspath(images_c))
        first_input = images[0]["name"]
        input_desc = "the first embedded input (%s)" % images[0].get("title", images[0]["name"])
    else:
        first_input = None
        input_desc = "byte i = (i*7) mod 251"
    main_c = os.path.join(work_dir, "profile_main.c")
    with open(main_c, "w") as f:
        f.write(templating.render("harness/m4_profile.c.j2", name=name, input=first_input))
    elf = qemu.build_firmware([*sources, *extra_sources], include_dirs, main_c,
                              os.path.join(work_dir, "profile.elf"), cflags=(*cflags, TRACE_DEFINE))
    res = qemu.count_region(elf, timeout_s=timeout_s, flash_wait_states=ws, each_region=True)
    if not res["stdout"].startswith("rc=0"):
        raise PipelineError(f"the generated C of {mlf_tar} failed on the Cortex-M4: {res['stdout'][:200]!r}")
    rows, total_insn, total_cycles = rows_from_regions(meta, res["regions"])
    macs = sum(r["macs"] for r in rows)
    report = {
        "emulator": f"qemu-system-arm -M {qemu.MACHINE}",
        "cpu": qemu.CPU,
        "cflags": [*qemu.ARCH_FLAGS, *cflags],
        "model_name": name,
        "input": input_desc,
        "board": board.name,
        "clock_hz": clock,
        "flash_wait_states": ws,
        "cycle_model": qemu.CYCLE_MODEL,
        "layers": rows,
        "total": {"instructions": total_insn, "cycles_estimate": total_cycles, "macs": macs,
                  "insn_per_mac": round(total_insn / macs, 3) if macs else None,
                  "cycles_per_mac": round(total_cycles / macs, 3) if macs else None,
                  "ms_estimate": round(1000.0 * total_cycles / clock, 4) if clock else None,
                  "workspace_size_bytes": meta.get("workspace_size_bytes")},
    }
    text = format_profile(report)
    with atomic_open(out_json) as f:
        json.dump(report, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write(text)
    return report


def _per_mac(v):
    return "%.2f" % v if v is not None else "-"


def format_profile(report):
    """The profile as a fixed-width table: one row per kernel call, then the tail and the total."""
    t = report["total"]
    head = ("%4s  %-28s %12s %13s %13s %8s %9s %7s %11s"
            % ("#", "layer", "MACs", "instructions", "est. cycles", "insn/MAC", "cyc/MAC", "share", "workspace B"))
    lines = ["Per-layer profile, Cortex-M4F (%s), one inference (input: %s)" % (report["emulator"], report["input"]),
             "cycles: an estimate (%s; flash wait states %d)" % ("Cortex-M4 TRM instruction timings",
                                                                 report["flash_wait_states"]),
             "", head, "-" * len(head)]
    for r in report["layers"]:
        lines.append("%4s  %-28s %12s %13s %13s %8s %9s %6.1f%% %11s"
                     % ("" if r["index"] is None else r["index"], r["layer"][:28], format(r["macs"], ","),
                        format(r["instructions"], ","), format(r["cycles_estimate"], ","), _per_mac(r["insn_per_mac"]),
                        _per_mac(r["cycles_per_mac"]), r["share_cycles_percent"],
                        format(r["workspace_bytes"], ",") if r["index"] is not None else "-"))
    lines.append("-" * len(head))
    lines.append("%4s  %-28s %12s %13s %13s %8s %9s %6.1f%% %11s"
                 % ("", "total", format(t["macs"], ","), format(t["instructions"], ","),
                    format(t["cycles_estimate"], ","), _per_mac(t["insn_per_mac"]), _per_mac(t["cycles_per_mac"]),
                    100.0, format(t["workspace_size_bytes"] or 0, ",")))
    if report.get("clock_hz"):
        lines.append("")
        lines.append("~%.2f ms per inference at %g MHz (estimated cycles / clock); share = of the estimated cycles; "
                     "workspace B = the bytes of the static workspace the call reads and writes (total: its size)"
                     % (t["ms_estimate"], report["clock_hz"] / 1e6))
    return "\n".join(lines) + "\n"
