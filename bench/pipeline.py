#!/usr/bin/env python3
"""Prints a table: the time of each pipeline stage on a clean build, and of a no-op `scons`.

    .venv/bin/python bench/pipeline.py [--build-dir DIR] [VAR=value ...]

Stage times come from SCons' own `--debug=time` per-command figures. The goal for a no-op run is <= 0.5 s
(TensorFlow and TVM must not be imported while SCons reads the build files).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
NOOP_GOAL_S = 0.5


def scons(build_dir, variables, *extra):
    cmd = [SCONS, "-C", ROOT, f"BUILD_DIR={build_dir}", *variables, *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"scons failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", help="default: a fresh temporary folder")
    ap.add_argument("--noop-runs", type=int, default=5)
    ap.add_argument("variables", nargs="*", help="build variables, e.g. EPOCHS=3")
    args = ap.parse_args()
    build = args.build_dir or tempfile.mkdtemp(prefix="bench-")
    try:
        out, total = scons(build, args.variables, "--debug=time")
        rows = []
        for target, secs in re.findall(r"Command execution time: (.+?): ([\d.]+) seconds", out):
            rows.append((os.path.relpath(target.split(" ")[0], build), float(secs)))
        noop = [scons(build, args.variables)[1] for _ in range(args.noop_runs)]
        print(f"{'stage (first target)':<44} {'seconds':>9}")
        print("-" * 54)
        for target, secs in rows:
            print(f"{target:<44} {secs:>9.2f}")
        print("-" * 54)
        print(f"{'clean build, wall':<44} {total:>9.2f}")
        med = statistics.median(noop)
        verdict = "ok" if med <= NOOP_GOAL_S else f"OVER the {NOOP_GOAL_S} s goal"
        print(f"{'no-op scons, median of %d' % len(noop):<44} {med:>9.3f}  ({verdict})")
    finally:
        if not args.build_dir:
            shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    main()
