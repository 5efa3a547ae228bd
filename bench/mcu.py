#!/usr/bin/env python3
"""Prints a table: cost of the generated C for one .tflite on a Cortex-M4 (QEMU instruction count) and on x86.

    .venv/bin/python bench/mcu.py [MODEL.tflite] [--image K] [--runs N] [--cflags "-O2"]

Default model: build/nano33ble/model.tflite (copied to a temporary folder first: a build may rewrite it),
default image: the first one of build/nano33ble/dataset.npz.

* Cortex-M4 instructions per inference: firmware built with codegen/runners/qemu.py (arm-none-eabi-gcc, -mcpu=cortex-m4
  hard-float) runs one inference between insn_region_begin()/insn_region_end() on a real image; the output is
  checked against the same C compiled for the host.
* flash: text + data of the three model objects (arm-none-eabi-size); RAM: workspace + input + output bytes.
* x86 latency: the same C compiled with host gcc -O2, median of N runs, next to the tflite-micro interpreter
  (pip package `tflite-micro`) when it is installed (smallest working arena found by bisection).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from codegen.emit import mlf

from codegen.runners import qemu  # noqa: E402

DEFAULT_MODEL = os.path.join(ROOT, "build", "nano33ble", "model.tflite")
DEFAULT_DATA = os.path.join(ROOT, "build", "nano33ble", "dataset.npz")

# Anchors for the tutorial model (MobileNetV1 alpha 0.25, 64x64x3, 3,329,024 MACs).
ANCHORS = [
    ("TFLite Micro + CMSIS-NN", 11.22e6, 59828, 410724),
    ("TFLM reference kernels", 44.5e6, None, None),
    ("TVM QDQ float C", 59.3e6, None, None),
]
TFLM_CMSIS_ARENA = 59828
GOAL_INSN_PER_MAC = 2.5

FW_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include "baremetal.h"
#include "tvmgen_%(name)s.h"
#include "bench_image.h"
static uint8_t out[TVMGEN_%(NAME)s_OUTPUT_SIZE];
int main(void) {
  int i;
  insn_region_begin();
  int32_t rc = tvmgen_%(name)s_run(bench_image, out);
  insn_region_end();
  printf("rc=%%d out=", (int)rc);
  for (i = 0; i < (int)sizeof out; ++i) printf("%%d ", out[i]);
  printf("\n");
  return 0;
}
"""

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


def _tflm(path, img, runs):
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


def _profile(work, sources, incdir, cflags, subst, meta):
    """Instructions of each kernel call: one firmware per call, whose TVMGEN_TRACE hook (called
    by lib2 after every kernel) moves the region markers around that call only."""
    calls = meta["calls"]
    objs = []
    for s in sources[:2]:  # the big objects are compiled once
        o = os.path.join(work, "prof_" + os.path.basename(s) + ".o")
        subprocess.run([qemu.CC, *qemu.ARCH_FLAGS, *cflags, "-ffunction-sections", "-fdata-sections",
                        "-I", incdir, "-c", s, "-o", o], check=True)
        objs.append(o)
    fw_main = os.path.join(work, "prof_main.c")
    with open(fw_main, "w") as f:
        f.write((FW_MAIN % subst)
                .replace("insn_region_begin();\n", "if (PROF_K == 0) insn_region_begin();\n")
                .replace("insn_region_end();\n", ""))
    rows = []
    for k, call in enumerate(calls):
        trace = ("-DTVMGEN_TRACE(i,p,n)=do{if((i)==%d-1)insn_region_begin();"
                 "if((i)==%d)insn_region_end();}while(0)" % (k, k))
        elf = qemu.build_firmware([*objs, sources[2]], [incdir, work], fw_main,
                                  os.path.join(work, "prof.elf"), cflags=(*cflags, "-DPROF_K=%d" % k, trace))
        n = qemu.count_region(elf, timeout_s=300)["first"]
        rows.append(("%s_%d" % (call["op"].lower(), call["op_index"]), call["macs"], n))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--image", type=int, default=0)
    ap.add_argument("--runs", type=int, default=200, help="x86 runs (median)")
    ap.add_argument("--cflags", default="-O2", help="arm-none-eabi-gcc optimisation flags")
    ap.add_argument("--keep", help="keep the work folder here")
    ap.add_argument("--profile", action="store_true", help="also count the instructions of each kernel")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="bench-mcu-")
    os.makedirs(work, exist_ok=True)
    try:
        model = os.path.join(work, "model.tflite")
        shutil.copyfile(args.model, model)
        tflite_size = os.path.getsize(model)
        name = "default"
        t = time.perf_counter()
        meta = mlf.build_mlf(model, os.path.join(work, "model.tar"), model_name=name)
        codegen_s = time.perf_counter() - t
        ext = os.path.join(work, "mlf")
        with tarfile.open(os.path.join(work, "model.tar")) as tar:
            tar.extractall(ext)
        srcdir = os.path.join(ext, "codegen", "host", "src")
        incdir = os.path.join(ext, "codegen", "host", "include")
        sources = [os.path.join(srcdir, "%s_lib%d.c" % (name, i)) for i in range(3)]
        img, img_desc = _load_image(meta, args.data, args.image)
        _image_header(os.path.join(work, "bench_image.h"), img)
        subst = {"name": name, "NAME": name.upper()}
        macs = meta["total_macs"]
        cflags = tuple(args.cflags.split())

        # --- Cortex-M4 ---------------------------------------------------------------------------
        fw_main = os.path.join(work, "fw_main.c")
        with open(fw_main, "w") as f:
            f.write(FW_MAIN % subst)
        elf = qemu.build_firmware(sources, [incdir, work], fw_main, os.path.join(work, "fw.elf"),
                                  cflags=cflags)
        res = qemu.count_region(elf, timeout_s=300)
        m4_insn = res["count"] and res["total"] // res["count"]
        m4_out = res["stdout"].strip()
        # flash of the model objects
        objs = []
        for s in sources:
            o = os.path.join(work, os.path.basename(s) + ".o")
            subprocess.run([qemu.CC, *qemu.ARCH_FLAGS, *cflags, "-ffunction-sections", "-fdata-sections",
                            "-I", incdir, "-c", s, "-o", o], check=True)
            objs.append(o)
        sz = subprocess.run(["arm-none-eabi-size", *objs], capture_output=True, text=True, check=True).stdout
        flash = 0
        per_obj = {}
        for line in sz.splitlines()[1:]:
            p = line.split()
            flash += int(p[0]) + int(p[1])
            per_obj[os.path.basename(p[-1])] = int(p[0]) + int(p[1])
        ram = meta["workspace_size_bytes"] + meta["inputs"][0]["size_bytes"] + meta["outputs"][0]["size_bytes"]

        profile = []
        if args.profile:
            profile = _profile(work, sources, incdir, cflags, subst, meta)

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
        fw_out = m4_out.split("out=")[1].split() if "out=" in m4_out else None
        tflm = _tflm(model, img, args.runs)

        # --- table -------------------------------------------------------------------------------
        print("model %s (%s), image %s, MACs %s, codegen %.2f s, kernels %d"
              % (args.model, meta["inputs"][0]["dtype"], img_desc, format(macs, ","), codegen_s,
                 meta["kernels"]))
        print("outputs: M4 %s  x86 %s%s%s" % (" ".join(fw_out or ["?"]), " ".join(host_out),
              "  TFLM %s" % " ".join(str(int(v) & 0xFF) for v in tflm["out"]) if tflm else "",
              "" if fw_out == host_out else "  ** M4 != x86 **"))
        print()
        hdr = "%-28s %14s %10s %12s %12s" % ("Cortex-M4", "instructions", "insn/MAC", "RAM B", "flash B")
        print(hdr)
        print("-" * len(hdr))
        print("%-28s %14s %10.2f %12s %12s" % ("this C (%s)" % args.cflags, format(m4_insn, ","),
                                               m4_insn / macs, format(ram, ","), format(flash, ",")))
        for label, insn, arena, fl in ANCHORS:
            print("%-28s %14s %10.2f %12s %12s" % (label, format(int(insn), ","), insn / 3329024,
                                                   format(arena, ",") if arena else "-",
                                                   format(fl, ",") if fl else "-"))
        print("  workspace %s + input %d + output %d; flash per object: %s; .tflite %s B"
              % (format(meta["workspace_size_bytes"], ","), meta["inputs"][0]["size_bytes"],
                 meta["outputs"][0]["size_bytes"],
                 ", ".join("%s %s" % (k, format(v, ",")) for k, v in per_obj.items()),
                 format(tflite_size, ",")))
        if profile:
            print()
            print("%-44s %12s %12s %9s" % ("kernel (Cortex-M4)", "MACs", "instructions", "insn/MAC"))
            print("-" * 80)
            for kname, kmacs, n in profile:
                print("%-44s %12s %12s %9s" % (kname, format(kmacs, ","), format(n, ","),
                                               "%.2f" % (n / kmacs) if kmacs else "-"))
        print()
        print("%-28s %12s" % ("x86 latency (median of %d)" % args.runs, "ms"))
        print("-" * 41)
        print("%-28s %12.3f" % ("this C (gcc -O2)", host_ms))
        if tflm:
            print("%-28s %12.3f   (arena %s B)" % ("tflite-micro interpreter", tflm["ms"],
                                                   format(tflm["arena"], ",")))
        else:
            print("%-28s %12s" % ("tflite-micro interpreter", "not installed"))
        print()
        goals = [
            ("insn/MAC <= %.1f" % GOAL_INSN_PER_MAC, m4_insn / macs <= GOAL_INSN_PER_MAC,
             "%.2f" % (m4_insn / macs)),
            ("x86 <= 0.5x TFLM", (host_ms <= 0.5 * tflm["ms"]) if tflm else None,
             "%.2fx" % (host_ms / tflm["ms"]) if tflm else "-"),
            ("RAM <= 0.8x TFLM arena", ram <= 0.8 * TFLM_CMSIS_ARENA, "%.2fx" % (ram / TFLM_CMSIS_ARENA)),
            ("flash <= 0.9x .tflite", flash <= 0.9 * tflite_size, "%.2fx" % (flash / tflite_size)),
            ("codegen <= 20 s", codegen_s <= 20, "%.2f s" % codegen_s),
        ]
        print("%-28s %10s %8s" % ("goal", "value", "met"))
        print("-" * 48)
        for g, ok, v in goals:
            print("%-28s %10s %8s" % (g, v, "-" if ok is None else ("yes" if ok else "NO")))
        print(json.dumps({"m4_instructions": m4_insn, "insn_per_mac": round(m4_insn / macs, 3), "ram": ram,
                          "flash": flash, "codegen_s": round(codegen_s, 2), "x86_ms": round(host_ms, 4),
                          "tflm_ms": round(tflm["ms"], 4) if tflm else None,
                          "tflm_arena": tflm["arena"] if tflm else None}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
