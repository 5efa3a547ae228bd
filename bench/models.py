#!/usr/bin/env python3
"""Prints a table: every published model in ../shared/models through `scons check simulate` as a user runs it
(`MODEL=... BOARD=...`): its I/O, the reference the check used, whether the scores equal it byte for byte, and
on the emulated board the instructions and estimated cycles per inference, or the stage's own one-line reason
(e.g. the memory stage's "does not fit" before any link).

    .venv/bin/python bench/models.py [--board nano33ble] [--jobs 2] [MODEL.tflite ...]

Each model builds in its own folder under a temporary directory (kept with --keep DIR).
"""
import argparse
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")


def default_models():
    return sorted(glob.glob(os.path.join(ROOT, "..", "shared", "models", "*.tflite")))


def _json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _io(images_json):
    meta = _json(images_json) or {}
    def one(ts):
        return " ".join(f"{t['dtype']}{t['shape']}" for t in ts)
    if "inputs" in meta:
        return f"{one(meta['inputs'])} -> {one(meta['outputs'])}"
    if "dtype" in meta:
        return f"{meta['dtype']}{meta['shape']} -> {meta['output']['dtype']}{meta['output']['shape']}"
    return "?"


def run(model, board, build):
    t = time.perf_counter()
    proc = subprocess.run([SCONS, "-C", ROOT, "check", "simulate", f"BOARD={board}", f"MODEL={model}",
                           f"BUILD_DIR={build}", "-k"], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    out = os.path.join(build, board)
    expected, sim = _json(os.path.join(out, "expected.json")) or {}, _json(os.path.join(out, "simulate.json"))
    errors = [line[len("error: "):] for line in proc.stderr.splitlines() if line.startswith("error: ")]
    host = _json(os.path.join(out, "hostcheck.json"))
    same = host and host.get("images") and all(e.get("scores") == e.get("tflite") for e in host["images"])
    check = "byte for byte" if same else "FAILED"
    if sim:
        simulated = "%.2f M insn, ~%.2f M cycles" % (sim["instructions_per_inference"] / 1e6,
                                                    sim.get("cycles_per_inference_estimate", 0) / 1e6)
    else:
        simulated = (errors[-1] if errors else "not run")[:110]
    return {"model": os.path.basename(model)[:-len(".tflite")], "io": _io(os.path.join(out, "images.json")),
            "reference": expected.get("reference", "?"), "check": check, "simulate": simulated,
            "errors": errors, "seconds": seconds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--board", default="nano33ble")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", help="build under this folder (kept) instead of a temporary one")
    args = ap.parse_args(argv)
    models = args.models or default_models()
    if not models:
        print("no models: pass .tflite files (../shared/models is absent)")
        return 1
    top = args.keep or tempfile.mkdtemp(prefix="bench-models-")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda m: run(m, args.board, os.path.join(top, os.path.basename(m)[:-7])), models))
    print(f"| model | I/O | reference | check | simulate BOARD={args.board} | s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['io']} | {r['reference']} | {r['check']} | {r['simulate']} | {r['seconds']:.0f} |")
    passed = sum(r["check"] == "byte for byte" for r in rows)
    print(f"\n{passed}/{len(rows)} pass `scons check`; "
          f"{sum('insn' in r['simulate'] for r in rows)}/{len(rows)} simulated on {args.board}")
    for r in rows:
        if r["check"] != "byte for byte":
            print(f"{r['model']}: " + " | ".join(r["errors"][-2:]))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
