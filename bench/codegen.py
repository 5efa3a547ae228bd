#!/usr/bin/env python3
"""Prints a table: TVM codegen time per model (read + lower + write the MLF), split into its phases.

    .venv/bin/python bench/codegen.py [MODEL.tflite ...]

Default models: the MLPerf Tiny models in ../shared/models (when present) and build/nano33ble/model.tflite
(when built). TVM is imported once before timing, as in a build that generates several models.
"""
import glob
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from codegen.emit import mlf  # noqa: E402
from codegen.frontend import load  # noqa: E402
from codegen.lowering import lower  # noqa: E402

GOAL_S = 3.0


def default_models():
    models = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "models", "*.tflite")))
    tutorial = os.path.join(ROOT, "build", "nano33ble", "model.tflite")
    return models + ([tutorial] if os.path.isfile(tutorial) else [])


def main(argv):
    models = argv or default_models()
    if not models:
        print("no models: pass .tflite files (../shared/models is absent and nothing is built)")
        return 1
    t = time.perf_counter()
    import tvm  # noqa: F401  (one-off import cost, reported separately)
    print("import tvm: %.2f s" % (time.perf_counter() - t))
    hdr = "%-28s %6s %8s %7s %7s %7s %8s %6s" % ("model", "ops", "kernels", "relax", "plan", "C", "total s", "goal")
    print(hdr)
    print("-" * len(hdr))
    worst = 0.0
    with tempfile.TemporaryDirectory() as d:
        for path in models:
            lw = lower(load(path))
            t = time.perf_counter()
            meta = mlf.build_mlf(path, os.path.join(d, "m.tar"))
            total = time.perf_counter() - t
            worst = max(worst, total)
            print("%-28s %6d %8d %7.2f %7.2f %7.2f %8.2f %6s"
                  % (os.path.basename(path)[:28], len(meta["ops"]), meta["kernels"], lw.times["relax"],
                     lw.times["plan"], lw.times["c"], total, "yes" if total <= GOAL_S else "NO"))
    print("goal: every model <= %.1f s (the phases are from a separate lowering of the same model)" % GOAL_S)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
