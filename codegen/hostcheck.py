"""Host check: compiles the generated sketch (model C, images, .ino) with host gcc against a minimal Arduino API
stand-in, runs it, and compares the printed scores with TFLite's for the same images.

The build fails when any image's decision (argmax) differs; exact byte equality is reported alongside.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile

from .errors import PipelineError
from .fsutil import atomic_open
from .resources import host_stub_dir

HOST_STUB_DIR = host_stub_dir()
RUN_TIMEOUT_S = 60


def _sources(sketch_dir):
    c_files, cpp_files = [], []
    for dirpath, dirnames, filenames in os.walk(os.path.join(sketch_dir, "src")):
        dirnames.sort()
        for f in sorted(filenames):
            (c_files if f.endswith(".c") else cpp_files if f.endswith(".cpp") else []).append(
                os.path.join(dirpath, f))
    return c_files, cpp_files


def build_host_binary(sketch_dir, sketch_name, work_dir, cc="gcc", cxx="g++", stub_dir=HOST_STUB_DIR):
    c_files, cpp_files = _sources(sketch_dir)
    # Like the Arduino builder: the .ino becomes C++ with Arduino.h included first.
    ino_cpp = os.path.join(work_dir, sketch_name + ".ino.cpp")
    with open(os.path.join(sketch_dir, sketch_name + ".ino")) as f:
        ino = f.read()
    with open(ino_cpp, "w") as f:
        f.write('#include "Arduino.h"\n#line 1 "%s.ino"\n%s' % (sketch_name, ino))
    objs = []
    flags = ["-O2", "-Wall", "-I", stub_dir, "-I", sketch_dir]
    steps = [(cc, ["-std=gnu99"], p) for p in c_files] + \
            [(cxx, ["-std=gnu++11"], p) for p in cpp_files + [ino_cpp, os.path.join(stub_dir, "main.cpp")]]
    for i, (compiler, std, src) in enumerate(steps):
        obj = os.path.join(work_dir, f"{i:03d}_{os.path.basename(src)}.o")
        _run([compiler, *std, *flags, "-c", src, "-o", obj], f"compiling {src}")
        objs.append(obj)
    exe = os.path.join(work_dir, sketch_name + ".host")
    _run([cxx, *objs, "-o", exe, "-lm"], "linking the host check binary")
    return exe


def _run(cmd, what):
    if shutil.which(cmd[0]) is None:
        raise PipelineError(f"{cmd[0]} not found: the host check needs a C/C++ compiler "
                            "(Debian/Ubuntu: apt-get install gcc g++)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{what} failed:\n{proc.stderr.strip()}")


def parse_results(text):
    """[(title, [scores])] from the sketch's output: a '<title> results:' line, then 'a, b, ...'."""
    results = []
    lines = [ln.strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        if line.endswith("results:") and i + 1 < len(lines):
            nums = re.findall(r"-?\d+", lines[i + 1])
            results.append((line[:-len("results:")].strip(), [int(n) for n in nums]))
    return results


def compare(printed, expected, who="generated C"):
    """Checks printed results against expected.json's; returns a summary dict, raises on a wrong decision."""
    want = expected["images"]
    if len(printed) != len(want):
        raise PipelineError(f"the sketch printed {len(printed)} result(s), expected {len(want)}")
    rows, wrong = [], []
    for (title, scores), exp in zip(printed, want):
        if len(scores) != len(exp["scores"]):
            raise PipelineError(f"{title}: printed {len(scores)} scores, the model has {len(exp['scores'])}")
        argmax = max(range(len(scores)), key=lambda k: scores[k])
        diff = max(abs(a - b) for a, b in zip(scores, exp["scores"]))
        rows.append({"title": title, "scores": scores, "tflite": exp["scores"], "argmax": argmax,
                     "tflite_argmax": exp["argmax"], "max_abs_diff": diff})
        if argmax != exp["argmax"]:
            wrong.append(f"{title}: {who} says class {argmax} {scores}, TFLite says {exp['argmax']} "
                         f"{exp['scores']}")
    if wrong:
        raise PipelineError(f"check failed: the {who} disagrees with TFLite:\n  " + "\n  ".join(wrong))
    return {"images": rows, "exact": all(r["max_abs_diff"] == 0 for r in rows),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows)}


def host_check(sketch_dir, sketch_name, expected_json, out_json):
    with open(expected_json) as f:
        expected = json.load(f)
    with tempfile.TemporaryDirectory(prefix="hostcheck-") as work:
        exe = build_host_binary(sketch_dir, sketch_name, work)
        try:
            proc = subprocess.run([exe], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                  env=dict(os.environ, HOST_LOOPS="1"))
        except subprocess.TimeoutExpired:
            raise PipelineError(f"the host build of {sketch_dir} did not finish in {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise PipelineError(f"the host build of {sketch_dir} exited with {proc.returncode}:\n{proc.stderr}")
    summary = compare(parse_results(proc.stdout), expected)
    summary["output"] = proc.stdout
    with atomic_open(out_json) as f:
        json.dump(summary, f, indent=1)
    return summary
