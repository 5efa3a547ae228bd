#!/usr/bin/env python3
"""Cost of the generated C on a Cortex-M4 (QEMU instruction count), side by side with TFLite Micro + CMSIS-NN.

Side by side, one table for a list of models (default, those present: the tutorial model
build/nano33ble/model.tflite, the four MLPerf Tiny models of ../shared/models, TFLite Micro's micro_speech and
hello_world examples read from the peer's TFLM mirror in MIRROR= (nothing is downloaded), then every other model of
../shared/models):

    .venv/bin/python bench/mcu.py --peer [MODEL.tflite ...] [--board nano33ble] [--json]
    MIRROR=/work/.mirror .venv/bin/python bench/mcu.py --peer           # the peer needs its sources, see below

One model in detail (flash per object, x86 latency, goals; --profile: instructions and cycles per kernel):

    .venv/bin/python bench/mcu.py [MODEL.tflite] [--image K] [--runs N] [--cflags "-O2"] [--profile]

* This project: the model's C (codegen/emit/mlf.py) in firmware built by codegen/runners/qemu.py
  (arm-none-eabi-gcc -mcpu=cortex-m4 hard-float, newlib-nano, semihosting printf); the instructions executed
  inside tvmgen_default_run() between insn_region_begin()/insn_region_end(). RAM = workspace + input + output;
  flash = text + data of the whole firmware (side by side) or of the three model objects (detail).
* The peer: ../shared/peers/tflm_m4.sh (--peer-script or TINYML_PEER_SCRIPT for another one) builds TFLite
  Micro with CMSIS-NN kernels for the same CPU and flags, runs it on the same QEMU board with an
  instruction-count plugin and prints instructions per inference (count of 2 Invokes minus 1, so one input
  memcpy is included), its smallest working arena and its firmware's text + data. It needs bare git mirrors
  in MIRROR= (../shared/peers/README.md); without them the table keeps this project's columns, says why the
  peer's are missing and shows the README's recorded values, labelled as such, for models it lists.
* Side by side both get the peer's input (../shared/peers/tflm_main.cc): element i of the input = (i*7) mod 251 cast
  to its type (int8 wraps; int16 and int32 elements; float32 that / 255.0f); several inputs each so at its packed
  offset (the peer's firmware feeds one input only: its row says so). The last column says whether the outputs
  then equal the peer's, value for value (from the outputs.txt its script keeps).
* Latency at the board's clock (codegen/boards.json `clock_hz`) = instructions / clock: a lower bound,
  since a Cortex-M4 needs at least one cycle per instruction (loads, taken branches and flash wait states
  take more).
* Estimated cycles (and ms at the clock): the same QEMU plugin's Cortex-M4 cycle model (the TRM's instruction
  timings, the board's flash_wait_states; codegen/runners/baremetal/insn_count_plugin.c), for this project on
  the region, for the peer on the firmware its script built (bench/tflm_peer.py peer_cycles). An estimate.
* --profile: instructions and estimated cycles per kernel call (codegen/runners/profile.py, as `scons profile`).
"""
import argparse
import contextlib
import glob
import io
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# ROOT first: bench/codegen.py (run as a script, bench/ is sys.path[0]) must not hide the codegen package
if ROOT in sys.path:
    sys.path.remove(ROOT)
sys.path.insert(0, ROOT)
if HERE not in sys.path:
    sys.path.append(HERE)

import tflm_peer  # noqa: E402

from codegen import boards  # noqa: E402
from codegen.errors import PipelineError  # noqa: E402
from codegen.emit import mlf  # noqa: E402
from codegen.modelio.quantio import packed_layout  # noqa: E402
from codegen.runners import profile, qemu  # noqa: E402

DEFAULT_MODEL = os.path.join(ROOT, "build", "nano33ble", "model.tflite")
DEFAULT_DATA = os.path.join(ROOT, "build", "nano33ble", "dataset.npz")
SHARED_MODELS = os.path.join(ROOT, "..", "shared", "models")
# the order: MobileNet VWW, ResNet-8, DS-CNN KWS, FC autoencoder
SHARED_MODEL_NAMES = ("vww_96_int8", "pretrainedResnet_quant", "kws_ref_model", "ad01_int8")
TUTORIAL = "tutorial"
# TFLite Micro's example models that the issue names (micro_speech, hello_world), paths in its repository
TFLM_MIRROR_REPO = os.path.join("tensorflow+tflite-micro", "repo")
TFLM_EXAMPLES = ("tensorflow/lite/micro/examples/micro_speech/models/micro_speech_quantized.tflite",
                 "tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite")

GOAL_INSN_PER_MAC = 2.5
GOAL_RATIO = 0.4       # instructions and estimated cycles, this project / TFLM + CMSIS-NN
GOAL_RAM_RATIO = 0.7   # workspace + input + output / TFLM's smallest arena

FW_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include "baremetal.h"
#include "tvmgen_%(name)s.h"
#ifdef PEER_INPUT
/* the peer's input (../shared/peers/tflm_main.cc), computed, not stored in flash: element i of each input
   = (i*7) %% 251 cast to its type (int8 wraps), float32 ((i*7) %% 251) / 255.0f; inputs at their packed offsets */
static uint8_t bench_image[TVMGEN_%(NAME)s_INPUT_SIZE] __attribute__((aligned(16)));
#else
#include "bench_image.h"
#endif
static uint8_t out[TVMGEN_%(NAME)s_OUTPUT_SIZE] __attribute__((aligned(16)));
int main(void) {
  int i;
#ifdef PEER_INPUT
%(fill)s
#endif
  insn_region_begin();
  int32_t rc = tvmgen_%(name)s_run(bench_image, out);
  insn_region_end();
  printf("rc=%%d out=", (int)rc);
  for (i = 0; i < (int)sizeof out; ++i) printf("%%d ", out[i]);
  printf("\n");
  return 0;
}
"""

# C type of each input dtype, and the peer's value of element i (tflm_main.cc fill())
_PEER_FILL = {"int8": ("int8_t", "(int8_t)((i * 7) % 251)"), "uint8": ("uint8_t", "(uint8_t)((i * 7) % 251)"),
              "int16": ("int16_t", "(int16_t)((i * 7) % 251)"), "int32": ("int32_t", "(int32_t)((i * 7) % 251)"),
              "float32": ("float", "(float)((i * 7) % 251) / 255.0f")}
_ITEMSIZE = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "float32": 4}
_NP_DTYPE = {"int8": "<i1", "uint8": "<u1", "int16": "<i2", "int32": "<i4", "float32": "<u4"}


def peer_fill_c(inputs):
    """C statements that write the peer's input into bench_image: each input at its packed offset (one input:
    offset 0), element i = the value tflm_main.cc gives element i of a tensor of that type."""
    offsets, _ = packed_layout([t["size_bytes"] for t in inputs])
    lines = []
    for t, off in zip(inputs, offsets):
        if t["dtype"] not in _PEER_FILL:
            raise PipelineError(f"input {t['name']!r} is {t['dtype']}: the peer's input has no value for that type")
        ctype, value = _PEER_FILL[t["dtype"]]
        n = t["size_bytes"] // _ITEMSIZE[t["dtype"]]
        lines.append("  { %s* p = (%s*)(void*)(bench_image + %d); for (i = 0; i < %d; ++i) p[i] = %s; }"
                     % (ctype, ctype, off, n, value))
    return "\n".join(lines)


def decode_outputs(outputs, raw):
    """The packed output bytes `raw` (list of decimal byte strings) as the peer prints them: one list per output
    of decimal integers, or for float32 the IEEE bits as 0x%08x (tflm_main.cc dump())."""
    data = bytes(int(v) & 0xFF for v in raw)
    offsets, _ = packed_layout([t["size_bytes"] for t in outputs])
    result = []
    for t, off in zip(outputs, offsets):
        vals = np.frombuffer(data[off:off + t["size_bytes"]], dtype=_NP_DTYPE.get(t["dtype"], "<u1"))
        result.append(["0x%08x" % int(v) for v in vals] if t["dtype"] == "float32" else [str(int(v)) for v in vals])
    return result


HOST_MAIN = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include "tvmgen_%(name)s.h"
#include "bench_image.h"
static uint8_t out[TVMGEN_%(NAME)s_OUTPUT_SIZE];
static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b; return (x > y) - (x < y);
}
int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100, i;
  double* t = (double*)malloc(sizeof(double) * n);
  for (i = 0; i < 3; ++i) tvmgen_%(name)s_run(bench_image, out);
  for (i = 0; i < n; ++i) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    tvmgen_%(name)s_run(bench_image, out);
    clock_gettime(CLOCK_MONOTONIC, &b);
    t[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) * 1e-6;
  }
  qsort(t, n, sizeof(double), cmp);
  printf("median_ms=%%.6f out=", t[n / 2]);
  for (i = 0; i < (int)sizeof out; ++i) printf("%%d ", out[i]);
  printf("\n");
  return 0;
}
"""


class BenchError(Exception):
    """Bad command line input: main() prints it as one error: line."""


# --- this project's C -------------------------------------------------------------------------------------


def _image_header(path, img):
    data = np.ascontiguousarray(img).view(np.uint8).ravel()
    with open(path, "w") as f:
        f.write("#include <stdint.h>\nstatic const uint8_t bench_image[%d] = {\n" % data.size)
        for i in range(0, data.size, 24):
            f.write("  " + ", ".join(str(int(v)) for v in data[i:i + 24]) + ",\n")
        f.write("};\n")


def _load_image(meta, data_path, index):
    inp = meta["inputs"][0]
    shape = tuple(inp["shape"][1:])
    if data_path and os.path.exists(data_path):
        x = np.load(data_path)["x"]
        if tuple(x.shape[1:]) == shape:
            img = x[index % len(x)].astype(np.uint8)
            if inp["dtype"] == "int8":
                img = (img.astype(np.int16) - 128).astype(np.int8)
            return img, "%s[%d]" % (os.path.basename(data_path), index % len(x))
    rs = np.random.RandomState(index)
    img = rs.randint(0, 256, shape).astype(np.uint8)
    return (img.view(np.int8) if inp["dtype"] == "int8" else img), "random"


def _codegen(model_src, work, name="default"):
    """The model's MLF C in work/mlf; returns {"model" (the copy used), "meta", "sources", "incdir", ...}."""
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "model.tflite")
    shutil.copyfile(model_src, model)  # a build may rewrite the original meanwhile
    t = time.perf_counter()
    meta = mlf.build_mlf(model, os.path.join(work, "model.tar"), model_name=name)
    codegen_s = time.perf_counter() - t
    ext = os.path.join(work, "mlf")
    with tarfile.open(os.path.join(work, "model.tar")) as tar:
        tar.extractall(ext)
    srcdir = os.path.join(ext, "codegen", "host", "src")
    return {"model": model, "meta": meta, "name": name, "codegen_s": codegen_s,
            "tflite_bytes": os.path.getsize(model), "incdir": os.path.join(ext, "codegen", "host", "include"),
            "sources": [os.path.join(srcdir, "%s_lib%d.c" % (name, i)) for i in range(3)],
            "subst": {"name": name, "NAME": name.upper()}}


def _text_data(paths):
    """{basename: text + data} of ELF or object files (arm-none-eabi-size, Berkeley format)."""
    sz = subprocess.run(["arm-none-eabi-size", *paths], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in sz.splitlines()[1:]:
        p = line.split()
        sizes[os.path.basename(p[-1])] = int(p[0]) + int(p[1])
    return sizes


def _m4_count(cg, work, cflags, peer_input, flash_wait_states=0):
    """Builds the firmware and counts the instructions of one tvmgen_*_run() on QEMU's Cortex-M4F."""
    fw_main = os.path.join(work, "fw_main.c")
    with open(fw_main, "w") as f:
        f.write(FW_MAIN % dict(cg["subst"], fill=peer_fill_c(cg["meta"]["inputs"]) if peer_input else ""))
    extra = ("-DPEER_INPUT",) if peer_input else ()
    elf = qemu.build_firmware(cg["sources"], [cg["incdir"], work], fw_main, os.path.join(work, "fw.elf"),
                              cflags=(*cflags, *extra))
    res = qemu.count_region(elf, timeout_s=600, flash_wait_states=flash_wait_states)
    out = res["stdout"].strip()
    if not out.startswith("rc=0 "):
        raise PipelineError(f"the generated C of {cg['model']} failed on the Cortex-M4: {out[:200]!r}")
    return {"insn": res["first"], "cycles": res["cycles"]["first"], "elf": elf, "out": out.split("out=")[1].split(),
            "firmware_flash": _text_data([elf])[os.path.basename(elf)]}


def _model_objects_flash(cg, work, cflags):
    objs = []
    for s in cg["sources"]:
        o = os.path.join(work, os.path.basename(s) + ".o")
        subprocess.run([qemu.CC, *qemu.ARCH_FLAGS, *cflags, "-ffunction-sections", "-fdata-sections",
                        "-I", cg["incdir"], "-c", s, "-o", o], check=True)
        objs.append(o)
    per_obj = _text_data(objs)
    return sum(per_obj.values()), per_obj


def _ram(meta):
    """workspace + the input and output buffers (several inputs or outputs: packed, as the one-buffer API takes
    them)."""
    parts = {"workspace": meta["workspace_size_bytes"],
             "input": packed_layout([t["size_bytes"] for t in meta["inputs"]])[1],
             "output": packed_layout([t["size_bytes"] for t in meta["outputs"]])[1]}
    return sum(parts.values()), parts


# The MACs the table divides by: those of the multiply-accumulate layers, as ../shared/peers/tflite_info.py and
# the issue count them (metadata's total_macs also counts pooling and elementwise ops).
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def layer_macs(meta):
    return sum(o["macs"] for o in meta["ops"] if o["type"] in MAC_OPS)


def measure_project(model_src, work, cflags, flash_wait_states=0):
    """This project's columns for one model, measured on the peer's input."""
    cg = _codegen(model_src, work)
    meta = cg["meta"]
    m4 = _m4_count(cg, work, cflags, peer_input=True, flash_wait_states=flash_wait_states)
    model_flash, _ = _model_objects_flash(cg, work, cflags)
    ram, parts = _ram(meta)
    return {"macs": layer_macs(meta), "all_op_macs": meta["total_macs"], "insn": m4["insn"], "cycles": m4["cycles"],
            "ram": ram, **parts,
            "firmware_flash": m4["firmware_flash"], "model_flash": model_flash, "tflite_bytes": cg["tflite_bytes"],
            "codegen_s": round(cg["codegen_s"], 2), "outputs": m4["out"],
            "outputs_decoded": decode_outputs(meta["outputs"], m4["out"]),
            "n_inputs": len(meta["inputs"]), "io": _io_text(meta)}


def _io_text(meta):
    def one(ts):
        return ", ".join("%s%s" % (t["dtype"], list(t["shape"])) for t in ts)
    return "%s -> %s" % (one(meta["inputs"]), one(meta["outputs"]))


# --- side by side -----------------------------------------------------------------------------------------


def _ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def compare_row(name, path, project, peer, *, clock_hz, peer_error=None, error=None,
                goal_ratio=GOAL_RATIO, goal_ram_ratio=GOAL_RAM_RATIO):
    """One model's row: this project's measurement (None when it failed: `error`), the peer's per kernel set
    (None when it could not run: `peer_error`), and what follows from them. Latencies are lower bounds (ms)."""
    def latency(insn):
        return round(insn / clock_hz * 1e3, 6)

    def estimate(m):
        return dict(latency_ms_estimate=latency(m["cycles"])) if m.get("cycles") is not None else {}

    row = {"model": name, "path": path, "error": error, "macs": None, "project": None, "peer": None, "peer_error": peer_error,
           "peer_recorded": None, "ratio": None, "goal_met": None, "cycle_ratio": None, "cycle_goal_met": None,
           "ram_ratio": None, "ram_goal_met": None, "flash_ratio": None}
    if project is not None:
        row["macs"] = project["macs"]
        row["project"] = dict(project, insn_per_mac=round(project["insn"] / project["macs"], 3)
                              if project["macs"] else None, latency_ms_min=latency(project["insn"]),
                              **estimate(project))
    if peer is not None:
        row["peer"] = {k: dict(v, latency_ms_min=latency(v["insn"]), **estimate(v),
                               insn_per_mac=round(v["insn"] / project["macs"], 3)
                               if project is not None and project["macs"] else None)
                       for k, v in peer.items()}
    elif project is not None:
        row["peer_recorded"] = tflm_peer.recorded(name, project["macs"])
    cmsis = (peer or {}).get(tflm_peer.CMSIS_NN)
    if project is not None and cmsis is not None:
        row["ratio"] = _ratio(project["insn"], cmsis["insn"])
        row["goal_met"] = project["insn"] <= goal_ratio * cmsis["insn"]  # not the rounded ratio
        row["ram_ratio"] = _ratio(project["ram"], cmsis["arena"])
        row["ram_goal_met"] = project["ram"] <= goal_ram_ratio * cmsis["arena"]
        row["flash_ratio"] = _ratio(project["firmware_flash"], cmsis["flash"])
        if project.get("cycles") is not None and cmsis.get("cycles"):
            row["cycle_ratio"] = _ratio(project["cycles"], cmsis["cycles"])
            row["cycle_goal_met"] = project["cycles"] <= goal_ratio * cmsis["cycles"]
    return row


def compare_outputs(ours, theirs):
    """{"outputs_match": True/False/None (the peer left none), "outputs_note"}: this project's outputs on the
    peer's input against the peer's (both decoded as tflm_main.cc prints them)."""
    if theirs is None:
        return {"outputs_match": None, "outputs_note": "the peer's outputs.txt is not in its cache"}
    if len(ours) != len(theirs) or any(len(a) != len(b) for a, b in zip(ours, theirs)):
        return {"outputs_match": False, "outputs_note": "the output shapes differ"}
    diff = [(a, b) for x, y in zip(ours, theirs) for a, b in zip(x, y) if a != b]
    if not diff:
        return {"outputs_match": True, "outputs_note": None}
    total = sum(len(x) for x in ours)
    note = "%d of %d output values differ" % (len(diff), total)
    if not any(a.startswith("0x") for a, _ in diff):
        note += " (by at most %d)" % max(abs(int(a) - int(b)) for a, b in diff)
    return {"outputs_match": False, "outputs_note": note}


def _m(n):
    return "%.2f M" % (n / 1e6) if n >= 100_000 else format(n, ",")


def _b(n):
    return format(n, ",")


def _ms(ms):
    return ("%.1f" % ms) if ms >= 10 else ("%.2f" % ms)


def _cycles(m):
    """A table cell: estimated cycles and ms at the clock, or "-" when not estimated."""
    if m.get("cycles") is None:
        return "-"
    return "%s (%s)" % (_m(m["cycles"]), _ms(m["latency_ms_estimate"])) if "latency_ms_estimate" in m \
        else _m(m["cycles"])


def format_compare(report):
    """The side-by-side table (Markdown) and its notes."""
    rows, mhz = report["models"], report["clock_hz"] / 1e6
    ksets = report["peer_kernel_sets"]
    ref = tflm_peer.REFERENCE in ksets
    head = ["model", "MACs", "this project insn", "TFLM + CMSIS-NN insn", "ratio",
            "goal ≤ %.1f×" % report["goal_ratio"]]
    if ref:
        head.insert(4, "TFLM reference insn")
    head += ["this project est. cycles (ms @ %g MHz)" % mhz, "TFLM + CMSIS-NN est. cycles (ms)", "cycle ratio",
             "RAM B: this / TFLM arena", "flash B: this / TFLM firmware",
             "latency ≥ ms @ %g MHz: this / TFLM" % mhz, "code + weights B / .tflite", "outputs = TFLM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for r in rows:
        p, peer = r["project"], r["peer"] or {}
        cm, rf = peer.get(tflm_peer.CMSIS_NN), peer.get(tflm_peer.REFERENCE)
        if p is None:
            cells = [r["model"], "-", "failed", _m(cm["insn"]) if cm else "-", "-", "-"]
            if ref:
                cells.insert(4, _m(rf["insn"]) if rf else "-")
            cells += ["-", _cycles(cm) if cm else "-", "-", "-", "-", "-", "-", "-"]
            notes.append("%s: this project failed: %s" % (r["model"], r["error"]))
            lines.append("| " + " | ".join(cells) + " |")
            continue
        per_mac = "%.2f/MAC" % p["insn_per_mac"] if p["insn_per_mac"] is not None else "no MACs"
        cells = [r["model"], _m(p["macs"]), "%s (%s)" % (_m(p["insn"]), per_mac),
                 _m(cm["insn"]) if cm else "-",
                 "%.2f×" % r["ratio"] if r["ratio"] is not None else "-",
                 ("yes" if r["goal_met"] else "**NO**") if r["goal_met"] is not None else "-"]
        if ref:
            cells.insert(4, _m(rf["insn"]) if rf else "-")
        cells += [_cycles(p), _cycles(cm) if cm else "-",
                  ("%.2f×%s" % (r["cycle_ratio"], "" if r["cycle_goal_met"] else " **NO**"))
                  if r["cycle_ratio"] is not None else "-"]
        if cm and cm.get("cycles_error"):
            notes.append("%s: TFLM's estimated cycles missing: %s" % (r["model"], cm["cycles_error"]))
        elif cm and cm.get("insn_our_plugin") not in (None, cm["insn"]):
            notes.append("%s: this project's plugin counts %s TFLM instructions where the peer's counts %s"
                         % (r["model"], _b(cm["insn_our_plugin"]), _b(cm["insn"])))
        if cm:
            cells += ["%s / %s (%.2f×%s)" % (_b(p["ram"]), _b(cm["arena"]), r["ram_ratio"],
                                             "" if r["ram_goal_met"] else ", > %.1f×" % report["goal_ram_ratio"]),
                      "%s / %s (%.2f×)" % (_b(p["firmware_flash"]), _b(cm["flash"]), r["flash_ratio"]),
                      "%s / %s" % (_ms(p["latency_ms_min"]), _ms(cm["latency_ms_min"]))]
        else:
            cells += ["%s / -" % _b(p["ram"]), "%s / -" % _b(p["firmware_flash"]),
                      "%s / -" % _ms(p["latency_ms_min"])]
        if p.get("model_flash") and p.get("tflite_bytes"):
            cells.append("%s / %s (%.2f×)" % (_b(p["model_flash"]), _b(p["tflite_bytes"]),
                                             p["model_flash"] / p["tflite_bytes"]))
        else:
            cells.append("-")
        match = r.get("outputs_match")
        cells.append("-" if match is None else ("yes" if match else "**no**"))
        if r.get("outputs_note"):
            notes.append("%s: outputs against TFLM's: %s" % (r["model"], r["outputs_note"]))
        lines.append("| " + " | ".join(cells) + " |")
        if r["peer_error"]:
            rec = r["peer_recorded"]
            if rec:
                rc = rec[tflm_peer.CMSIS_NN]
                notes.append("%s: recorded, not measured in this run (%s): TFLM + CMSIS-NN %s insn (this project "
                             "%.2f× that), arena %s B, flash %s B" % (r["model"], tflm_peer.RECORDED_SOURCE,
                                                                   _b(rc["insn"]), p["insn"] / rc["insn"],
                                                                   _b(rc["arena"]), _b(rc["flash"])))
    # why the peer's columns are missing: once per distinct reason (typically the same for every model)
    reasons = {}
    for r in rows:
        if r["peer_error"]:
            reasons.setdefault(r["peer_error"], []).append(r["model"])
    notes[:0] = ["TFLM columns missing for %s: %s" % ("every model" if len(ms) == len(rows) > 1 else ", ".join(ms),
                                                       why) for why, ms in reasons.items()]
    notes[len(reasons):len(reasons)] = ["%s: not in the table: %s" % (what, why)
                                        for what, why in report.get("skipped", ())]
    cpu = report["board_cpu"]
    notes += [
        "code + weights: text + data of the model's three objects (its kernels and constants, not the firmware "
        "around them) against the .tflite file's size (goal: ≤ 0.9×). outputs = TFLM: this "
        "project's outputs on the same input equal, value for value, those the peer's firmware printed.",
        "MACs: those of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (as ../shared/peers/tflite_info.py counts).",
        "instructions per inference on QEMU mps2-an386 (Cortex-M4F), %s: this project inside tvmgen_default_run(); "
        "TFLM count(2 Invokes) - count(1), which includes one input memcpy. Input for both (tflm_main.cc): element i = "
        "(i*7) mod 251 cast to the input's type (int8 wraps), float32 that / 255."
        % report["cflags"],
        "RAM: this project's workspace + input + output; TFLM's smallest arena that gives the same outputs. "
        "flash: text + data of each whole firmware (startup, newlib-nano, semihosting printf, model).",
        "latency: instructions / %g MHz (%s, %s in codegen/boards.json) is a lower bound: a Cortex-M4 "
        "needs at least one cycle per instruction, loads, taken branches and flash wait states more."
        % (mhz, report["board"], cpu),
        "est. cycles: an ESTIMATE by this project's QEMU plugin (Cortex-M4 TRM instruction timings: loads/stores 2, "
        "pipelined 1, LDM/STM 1+N, MAC 1, divide 12, taken branch 3, not taken 1, VDIV/VSQRT 14; %d flash wait "
        "states), the same model for both: TFLM's is cycles(2 Invokes) - cycles(1) on the firmware its script "
        "built. Not a timing: no bus, memory or dependency stalls." % report.get("flash_wait_states", 0)
        + ("" if cpu.startswith("cortex-m4") else
           " The counts are Cortex-M4 instructions; this board's CPU differs, so the estimate is indicative only."),
    ]
    return "\n".join(lines + [""] + ["- " + n for n in notes])


def _label(path):
    if os.path.abspath(path) == os.path.abspath(DEFAULT_MODEL):
        return TUTORIAL
    return os.path.splitext(os.path.basename(path))[0]


def tflm_examples(mirror, dest):
    """TFLite Micro's example models (TFLM_EXAMPLES) read from the peer's own TFLM mirror (the commit its script
    builds, HEAD) into `dest`, under their file names; nothing is downloaded. Returns ([path], why not or None)."""
    if not mirror:
        return [], "MIRROR is not set (they are read from its tensorflow+tflite-micro mirror, ../shared/peers/README.md)"
    repo = os.path.join(mirror, TFLM_MIRROR_REPO)
    if not os.path.isdir(repo):
        return [], f"{repo} is absent (the peer's TFLM mirror, ../shared/peers/README.md)"
    os.makedirs(dest, exist_ok=True)
    paths = []
    for src in TFLM_EXAMPLES:
        proc = subprocess.run(["git", "--git-dir", repo, "show", "HEAD:" + src], capture_output=True)
        if proc.returncode != 0:
            return paths, "%s is not in %s at HEAD: %s" % (src, repo, _last(proc.stderr.decode(errors="replace")))
        path = os.path.join(dest, os.path.basename(src))
        with open(path, "wb") as f:
            f.write(proc.stdout)
        paths.append(path)
    return paths, None


def _last(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def default_models(mirror=None, dest=None):
    """The issue's models, those present: the tutorial model, the four MLPerf Tiny models, TFLM's micro_speech
    and hello_world (from MIRROR, into `dest`), then every other model of ../shared/models by name.
    Returns ([path], [(what, why it is not in the list)])."""
    models = [DEFAULT_MODEL] if os.path.exists(DEFAULT_MODEL) else []
    skipped = [] if models else [(TUTORIAL, f"{DEFAULT_MODEL} is not built (run scons)")]
    mlperf = [os.path.normpath(os.path.join(SHARED_MODELS, n + ".tflite")) for n in SHARED_MODEL_NAMES]
    models += [p for p in mlperf if os.path.exists(p)]
    if dest is not None:
        examples, why = tflm_examples(mirror, dest)
        models += examples
        if why:
            skipped.append(("TFLM's micro_speech and hello_world", why))
    if os.path.isdir(SHARED_MODELS):
        models += [p for p in sorted(glob.glob(os.path.join(os.path.normpath(SHARED_MODELS), "*.tflite")))
                   if p not in mlperf]
    else:
        skipped.append(("../shared/models", f"{os.path.normpath(SHARED_MODELS)} is absent"))
    return models, skipped


def _opt_level(cflags):
    opts = [f for f in cflags if f.startswith("-O")]
    return opts[-1] if opts else "-O2"


def compare(models, *, board, cflags, peer_script, mirror, ksets, peer_timeout, work_root, log=sys.stderr,
            skipped=()):
    """Measures every model (this project, then the peer) and returns the report dict (format_compare)."""
    b = boards.get(board)
    if not b.get("clock_hz"):
        raise BenchError(f"board {board} has no clock_hz in codegen/boards.json: add its CPU clock in Hz")
    report = {"board": board, "board_cpu": b.get("cpu", "?"), "clock_hz": b["clock_hz"],
              "cflags": " ".join(cflags), "peer_script": peer_script, "peer_kernel_sets": list(ksets),
              "goal_ratio": GOAL_RATIO, "goal_ram_ratio": GOAL_RAM_RATIO,
              "flash_wait_states": int(b.get("flash_wait_states", 0)), "models": [],
              "skipped": [list(x) for x in skipped]}
    for i, path in enumerate(models):
        name = _label(path)
        project = error = peer = peer_error = None
        log.write("[%d/%d] %s: this project's C on the Cortex-M4 ...\n" % (i + 1, len(models), name))
        log.flush()
        try:
            project = measure_project(path, os.path.join(work_root, "%d_%s" % (i, name)), cflags,
                                      flash_wait_states=report["flash_wait_states"])
        except (PipelineError, subprocess.CalledProcessError) as e:
            error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        log.write("[%d/%d] %s: TFLM (%s) with %s (its first run builds the libraries, 10-15 min) ...\n"
                  % (i + 1, len(models), name, ", ".join(ksets), os.path.basename(peer_script)))
        log.flush()
        try:
            peer = tflm_peer.run(path, script=peer_script, mirror=mirror, ksets=ksets, opt=_opt_level(cflags),
                                 timeout_s=peer_timeout)
            tflm_peer.add_cycles(path, peer, opt=_opt_level(cflags), flash_wait_states=report["flash_wait_states"])
        except tflm_peer.PeerUnavailable as e:
            peer_error = str(e)
            if project is not None and project["n_inputs"] > 1:
                peer_error = ("the peer's firmware (../shared/peers/tflm_main.cc) feeds one input and this model "
                              "has %d (%s)" % (project["n_inputs"], peer_error))
        row = compare_row(name, os.path.abspath(path), project, peer, clock_hz=b["clock_hz"],
                          peer_error=peer_error, error=error)
        if project is not None and peer is not None:
            row.update(compare_outputs(project["outputs_decoded"],
                                       tflm_peer.outputs(path, tflm_peer.CMSIS_NN, _opt_level(cflags))))
        report["models"].append(row)
    return report


def _ksets(args):
    # the reference kernels only when asked: their library is another 10-15 min build and 4x the emulation
    return [tflm_peer.CMSIS_NN] + ([tflm_peer.REFERENCE] if args.peer_reference else [])


def compare_main(args):
    for m in args.model:
        if not os.path.isfile(m):
            raise BenchError(f"model {m} does not exist: give the path of a .tflite file")
    ksets = _ksets(args)
    work = args.keep or tempfile.mkdtemp(prefix="bench-mcu-")
    try:
        models, skipped = (args.model, []) if args.model else default_models(args.mirror,
                                                                             os.path.join(work, "tflm_examples"))
        if not models:
            raise BenchError(f"no models: {DEFAULT_MODEL} is not built (run scons), {SHARED_MODELS} is absent and "
                             "MIRROR is not set; give MODEL.tflite paths")
        report = compare(models, board=args.board, cflags=tuple(args.cflags.split()),
                         peer_script=args.peer_script or tflm_peer.default_script(), mirror=args.mirror,
                         ksets=ksets, peer_timeout=args.peer_timeout, work_root=work, skipped=skipped)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_compare(report))
    return 1 if any(r["error"] for r in report["models"]) else 0


# --- one model in detail ----------------------------------------------------------------------------------


def _tflm_x86(path, img, runs):
    """The TFLite Micro interpreter's x86 latency and arena, in a child process: its Python package crashes the
    process on some models (a segmentation fault on the shared mnist_lstm), which must not end the bench; None
    when it is not installed, fails or crashes."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=lambda: q.put(_tflm_x86_child(path, img, runs)))
    p.start()
    p.join()
    if p.exitcode != 0:
        sys.stderr.write("the tflite-micro interpreter crashed on %s (exit %s): no x86 TFLM row\n" % (path, p.exitcode))
        return None
    try:
        return q.get(timeout=30)
    except queue.Empty:
        return None


def _tflm_x86_child(path, img, runs):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except Exception:
        return None

    def works(n):
        try:
            it = runtime.Interpreter.from_file(path, arena_size=int(n))
            it.set_input(img[None], 0)
            it.invoke()
            return it
        except Exception:
            return None

    lo, hi = 1024, 1 << 20
    # the interpreter reports each failed allocation on stdout/stderr: silence the bisection
    sys.stdout.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        if works(hi) is None:
            return None
        while hi - lo > 64:
            mid = (lo + hi) // 2
            if works(mid) is not None:
                hi = mid
            else:
                lo = mid
        it = works(hi)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
    ts = []
    for _ in range(3):
        it.set_input(img[None], 0)
        it.invoke()
    for _ in range(runs):
        it.set_input(img[None], 0)
        t = time.perf_counter()
        it.invoke()
        ts.append((time.perf_counter() - t) * 1e3)
    out = np.asarray(it.get_output(0)).ravel()
    return {"arena": hi, "ms": statistics.median(ts), "out": out}


def _profile(work, cflags, board):
    """Instructions and estimated cycles of each kernel call, one QEMU run (codegen/runners/profile.py, the
    mechanism of `scons profile`); the input is the peer's (byte i = (i*7) mod 251)."""
    return profile.profile_cortex_m4(os.path.join(work, "model.tar"), os.path.join(work, "profile.json"),
                                     os.path.join(work, "profile.txt"), work_dir=os.path.join(work, "profile"),
                                     board=boards.get(board), cflags=cflags, timeout_s=600)


def _peer_rows(args, model, name, macs, cflags, flash_wait_states=0):
    """The peer's rows for the detail table: measured when the peer runs, else the README's recorded values
    (labelled), else none; plus a note saying which."""
    if args.no_peer:
        return [], "TFLM not measured (--no-peer)", None
    sys.stderr.write("TFLM (%s) with the peer script (its first run builds the libraries, 10-15 min) ...\n"
                     % ", ".join(_ksets(args)))
    try:
        peer = tflm_peer.run(model, script=args.peer_script or tflm_peer.default_script(), mirror=args.mirror,
                             ksets=_ksets(args), opt=_opt_level(cflags),
                             timeout_s=args.peer_timeout)
        tflm_peer.add_cycles(model, peer, opt=_opt_level(cflags), flash_wait_states=flash_wait_states)
        label, note = "measured", "TFLM measured in this run with %s" % os.path.basename(
            args.peer_script or tflm_peer.default_script())
    except tflm_peer.PeerUnavailable as e:
        peer = tflm_peer.recorded(name, macs)
        if peer is None:
            return [], "TFLM not measured: %s" % e, None
        label, note = "recorded", "TFLM not measured (%s); recorded values from %s" % (e, tflm_peer.RECORDED_SOURCE)
    rows = [("TFLM + CMSIS-NN (%s)" % label, peer[tflm_peer.CMSIS_NN]),
            ("TFLM reference (%s)" % label, peer.get(tflm_peer.REFERENCE))]
    return [(lab, v) for lab, v in rows if v], note, peer[tflm_peer.CMSIS_NN].get("arena")


def detail_main(args):
    if len(args.model) > 1:
        raise BenchError("one model at a time without --peer (give --peer for a side-by-side table of several)")
    model_src = args.model[0] if args.model else DEFAULT_MODEL
    if not os.path.isfile(model_src):
        raise BenchError(f"model {model_src} does not exist: run scons first or give a .tflite path")
    work = args.keep or tempfile.mkdtemp(prefix="bench-mcu-")
    os.makedirs(work, exist_ok=True)
    try:
        cg = _codegen(model_src, work)
        meta, sources, incdir, subst = cg["meta"], cg["sources"], cg["incdir"], cg["subst"]
        model, tflite_size, codegen_s = cg["model"], cg["tflite_bytes"], cg["codegen_s"]
        img, img_desc = _load_image(meta, args.data, args.image)
        _image_header(os.path.join(work, "bench_image.h"), img)
        macs = layer_macs(meta)
        cflags = tuple(args.cflags.split())

        # --- Cortex-M4 ---------------------------------------------------------------------------
        ws = int(boards.get(args.board).get("flash_wait_states", 0))
        m4 = _m4_count(cg, work, cflags, peer_input=False, flash_wait_states=ws)
        m4_insn, fw_out = m4["insn"], m4["out"]
        flash, per_obj = _model_objects_flash(cg, work, cflags)
        ram, _ = _ram(meta)
        peer_rows, peer_note, peer_arena = _peer_rows(args, model_src, _label(model_src), macs, cflags, ws)

        prof = _profile(work, cflags, args.board) if args.profile else None

        # --- x86 ---------------------------------------------------------------------------------
        host_main = os.path.join(work, "host_main.c")
        with open(host_main, "w") as f:
            f.write(HOST_MAIN % subst)
        exe = os.path.join(work, "host")
        subprocess.run(["gcc", "-O2", "-I", incdir, "-I", work, host_main, *sources, "-o", exe, "-lm"],
                       check=True)
        hr = subprocess.run([exe, str(args.runs)], capture_output=True, text=True, check=True).stdout.strip()
        host_ms = float(hr.split()[0].split("=")[1])
        host_out = hr.split("out=")[1].split()
        tflm = _tflm_x86(model, img, args.runs)

        # --- table -------------------------------------------------------------------------------
        # with --json only the JSON line goes to stdout
        with contextlib.redirect_stdout(io.StringIO() if args.json else sys.stdout):
            print("model %s (%s), image %s, MACs %s, codegen %.2f s, kernels %d"
                  % (model_src, meta["inputs"][0]["dtype"], img_desc, format(macs, ","), codegen_s,
                     meta["kernels"]))
            print("outputs: M4 %s  x86 %s%s%s" % (" ".join(fw_out or ["?"]), " ".join(host_out),
                  "  TFLM %s" % " ".join(str(int(v) & 0xFF) for v in tflm["out"]) if tflm else "",
                  "" if fw_out == host_out else "  ** M4 != x86 **"))
            print()
            hdr = "%-30s %14s %10s %16s %12s %12s" % ("Cortex-M4", "instructions", "insn/MAC", "est. cycles",
                                                       "RAM B", "flash B")
            print(hdr)
            print("-" * len(hdr))
            print("%-30s %14s %10.2f %16s %12s %12s" % ("this C (%s)" % args.cflags, format(m4_insn, ","),
                                                        m4_insn / macs, format(m4["cycles"], ","), format(ram, ","),
                                                        format(flash, ",")))
            for label, v in peer_rows:
                print("%-30s %14s %10.2f %16s %12s %12s" % (label, format(v["insn"], ","), v["insn"] / macs,
                                                            format(v["cycles"], ",") if v.get("cycles") else "-",
                                                            format(v["arena"], ",") if v.get("arena") else "-",
                                                            format(v["flash"], ",") if v.get("flash") else "-"))
            print("  est. cycles: an estimate (the QEMU plugin's Cortex-M4 TRM timings, %d flash wait states); "
                  "~%.2f ms at %g MHz" % (ws, 1000.0 * m4["cycles"] / boards.get(args.board)["clock_hz"],
                                          boards.get(args.board)["clock_hz"] / 1e6))
            print("  workspace %s + input %d + output %d; flash per object: %s; .tflite %s B"
                  % (format(meta["workspace_size_bytes"], ","), meta["inputs"][0]["size_bytes"],
                     meta["outputs"][0]["size_bytes"],
                     ", ".join("%s %s" % (k, format(v, ",")) for k, v in per_obj.items()),
                     format(tflite_size, ",")))
            print("  %s (TFLM: RAM = its arena, flash = its whole firmware; its input is byte i = (i*7) mod 251)"
                  % peer_note)
            if prof:
                print()
                print(profile.format_profile(prof), end="")
            print()
            print("%-28s %12s" % ("x86 latency (median of %d)" % args.runs, "ms"))
            print("-" * 41)
            print("%-28s %12.3f" % ("this C (gcc -O2)", host_ms))
            if tflm:
                print("%-28s %12.3f   (arena %s B)" % ("tflite-micro interpreter", tflm["ms"],
                                                       format(tflm["arena"], ",")))
            else:
                print("%-28s %12s" % ("tflite-micro interpreter", "not run (not installed or crashed)"))
            print()
            goals = [
                ("insn/MAC <= %.1f" % GOAL_INSN_PER_MAC, m4_insn / macs <= GOAL_INSN_PER_MAC,
                 "%.2f" % (m4_insn / macs)),
                ("x86 <= 0.5x TFLM", (host_ms <= 0.5 * tflm["ms"]) if tflm else None,
                 "%.2fx" % (host_ms / tflm["ms"]) if tflm else "-"),
                ("RAM <= %.1fx TFLM arena" % GOAL_RAM_RATIO, ram <= GOAL_RAM_RATIO * peer_arena if peer_arena else None,
                 "%.2fx" % (ram / peer_arena) if peer_arena else "-"),
                ("flash <= 0.9x .tflite", flash <= 0.9 * tflite_size, "%.2fx" % (flash / tflite_size)),
                ("codegen <= 20 s", codegen_s <= 20, "%.2f s" % codegen_s),
            ]
            print("%-28s %10s %8s" % ("goal", "value", "met"))
            print("-" * 48)
            for g, ok, v in goals:
                print("%-28s %10s %8s" % (g, v, "-" if ok is None else ("yes" if ok else "NO")))
        print(json.dumps({"m4_instructions": m4_insn, "m4_cycles_estimate": m4["cycles"],
                          "insn_per_mac": round(m4_insn / macs, 3), "ram": ram,
                          "flash": flash, "codegen_s": round(codegen_s, 2), "x86_ms": round(host_ms, 4),
                          "tflm_ms": round(tflm["ms"], 4) if tflm else None,
                          "tflm_x86_arena": tflm["arena"] if tflm else None,
                          "tflm_m4": dict(peer_rows) or None}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="*", help=".tflite file(s); several only with --peer")
    ap.add_argument("--peer", action="store_true",
                    help="side-by-side table against TFLite Micro + CMSIS-NN for every model")
    ap.add_argument("--json", action="store_true", help="the data as JSON on stdout instead of the table")
    ap.add_argument("--board", default="nano33ble", help="board whose clock gives the latency estimate")
    ap.add_argument("--peer-script", help="the peer script (default: $%s or ../shared/peers/tflm_m4.sh)"
                    % tflm_peer.PEER_SCRIPT_ENV)
    ap.add_argument("--mirror", default=os.environ.get("MIRROR"),
                    help="folder of the peer's bare git mirrors (default: $MIRROR)")
    ap.add_argument("--peer-reference", action="store_true", help="also TFLM's reference kernels")
    ap.add_argument("--peer-timeout", type=int, default=3600, help="seconds per model for the peer script")
    ap.add_argument("--no-peer", action="store_true", help="without --peer: do not run the peer script")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--image", type=int, default=0)
    ap.add_argument("--runs", type=int, default=200, help="x86 runs (median)")
    ap.add_argument("--cflags", default="-O2", help="arm-none-eabi-gcc optimisation flags")
    ap.add_argument("--keep", help="keep the work folder here")
    ap.add_argument("--profile", action="store_true",
                    help="also count the instructions and estimated cycles of each kernel call")
    args = ap.parse_args(argv)
    try:
        return compare_main(args) if args.peer else detail_main(args)
    except (BenchError, PipelineError) as e:
        sys.stderr.write("error: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
