"""Host check: compiles the generated sketch (model C, images, .ino) with host gcc against a minimal Arduino API
stand-in, runs it, and compares the printed scores with TFLite's for the same images.

The build fails when any input's decision (top label) differs; exact byte equality of every printed line is
reported alongside.
"""
import json
import os
import shutil
import subprocess
import tempfile

from .. import proc as external
from ..errors import PipelineError
from ..fsutil import atomic_open
# The result-line protocol (the formats, the parser) is codegen.protocol's; its names stay importable from here.
from ..protocol import (DEMO_LINE, ERROR_LINE, RESULT_LINE, Result, first_round, parse_results,  # noqa: F401
                        result_line, top_index)
from ..resources import host_stub_dir

HOST_STUB_DIR = host_stub_dir()
RUN_TIMEOUT_S = 60


# The host build's flags, in one place: build_host_binary runs them and `scons compiledb` writes them into
# compile_commands.json (site_scons/site_tools/tinyml_hostcheck.py), so an IDE indexes what the check compiles.
COMMON_FLAGS = ("-O2", "-Wall")
C_FLAGS = ("-std=gnu99",)
CXX_FLAGS = ("-std=gnu++11",)
# Like the Arduino builder: the .ino is C++ with Arduino.h included first. gcc does both itself (-x, -include),
# so the .ino is compiled in place and its diagnostics name the .ino's own lines.
INO_FLAGS = ("-x", "c++", "-include", "Arduino.h")


def include_dirs(sketch_dir, stub_dir=HOST_STUB_DIR):
    return [stub_dir, sketch_dir]


def compile_units(sketch_dir, sketch_name, stub_dir=HOST_STUB_DIR, files=None):
    """[(kind, source)] of the host build, kind "c", "c++" or "ino": every .c/.cpp under src/, the .ino and
    the stub's main.cpp. `files` (paths relative to the sketch folder) stands for the folder's content when
    the sketch is not rendered yet (a build declaring its steps)."""
    if files is None:
        files = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(sketch_dir, "src")):
            dirnames.sort()
            files += [os.path.relpath(os.path.join(dirpath, f), sketch_dir) for f in sorted(filenames)]
    in_src = [f for f in files if f.split(os.sep)[0] == "src"]
    return ([("c", os.path.join(sketch_dir, f)) for f in in_src if f.endswith(".c")]
            + [("c++", os.path.join(sketch_dir, f)) for f in in_src if f.endswith(".cpp")]
            + [("ino", os.path.join(sketch_dir, sketch_name + ".ino")), ("c++", os.path.join(stub_dir, "main.cpp"))])


def build_host_binary(sketch_dir, sketch_name, work_dir, cc="gcc", cxx="g++", stub_dir=HOST_STUB_DIR, *,
                      extra_flags=(), extra_cxxflags=(), libs=()):
    """`extra_flags` (all sources), `extra_cxxflags` (C++ only, after the default -std) and `libs` (linked
    before libm) are what a backend's runtime needs, e.g. TFLM's defines, include paths and static library."""
    objs = []
    flags = [*COMMON_FLAGS, *(f for d in include_dirs(sketch_dir, stub_dir) for f in ("-I", d)), *extra_flags]
    for i, (kind, src) in enumerate(compile_units(sketch_dir, sketch_name, stub_dir)):
        compiler, std = (cc, list(C_FLAGS)) if kind == "c" else (cxx, [*CXX_FLAGS, *extra_cxxflags])
        if kind == "ino":
            std += INO_FLAGS
        obj = os.path.join(work_dir, f"{i:03d}_{os.path.basename(src)}.o")
        _run([compiler, *std, *flags, "-c", src, "-o", obj], f"compiling {src}")
        objs.append(obj)
    exe = os.path.join(work_dir, sketch_name + ".host")
    _run([cxx, *objs, *libs, "-o", exe, "-lm"], "linking the host check binary")
    return exe


def _run(cmd, what):
    if shutil.which(cmd[0]) is None:
        raise PipelineError(f"{cmd[0]} not found: the host check needs a C/C++ compiler "
                            "(Debian/Ubuntu: apt-get install gcc g++)")
    proc = external.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{what} failed:\n{proc.stderr.strip()}")


def _raise_run_errors(printed, who):
    failed = [r for r in printed if r.error]
    if failed:
        raise PipelineError(f"the model run failed on the {who}, so it printed no scores for "
                            f"{len(failed)} input(s): " + "; ".join(f"{r.title}: {r.error}" for r in failed)
                            + " (see TVMExecute in src/model.h for what the code means)")


def _differences(scores, reference):
    return [(k, a, b) for k, (a, b) in enumerate(zip(scores, reference)) if a != b]


def compare(printed, expected, who="generated C", tolerance=None):
    """Checks printed results against expected.json's; returns a summary dict, raises on a wrong decision.

    A wrong top label (or number of results or scores) fails, and so does a line that differs with the same
    scores (the printing is wrong); "exact" says whether every line equals the expected one byte for byte.
    `tolerance` (an int): also fail when any score differs from TFLite's by more than that (0: exactly)."""
    want = expected["images"]
    _raise_run_errors(printed, who)
    if len(printed) != len(want):
        raise PipelineError(f"the sketch printed {len(printed)} result(s), expected {len(want)}")
    rows, wrong = [], []
    for got, exp in zip(printed, want):
        title, scores = got.title, got.scores
        if len(scores) != len(exp["scores"]):
            raise PipelineError(f"{title}: printed {len(scores)} scores, the model has {len(exp['scores'])}")
        argmax = top_index(scores)
        diff = max(abs(a - b) for a, b in zip(scores, exp["scores"]))
        rows.append({"title": title, "label": got.label, "confidence": got.confidence, "scores": scores,
                     "tflite": exp["scores"], "argmax": argmax, "tflite_argmax": exp["argmax"],
                     "max_abs_diff": diff, "line": got.line, "expected_line": exp.get("line"),
                     "printed": got.text, "ms": got.ms,
                     "exact": got.line == exp.get("line", got.line) and diff == 0})
        if argmax != exp["argmax"] or got.label != exp.get("top", got.label):
            wrong.append(f"{title}: {who} says class {argmax} ({got.label}) {scores}, TFLite says class "
                         f"{exp['argmax']} ({exp.get('top', '?')}) {exp['scores']}")
        elif tolerance is not None and diff > tolerance:
            wrong.append(f"{title}: " + ", ".join(
                f"score {k} is {a} on the {who}, TFLite {b}" for k, a, b in _differences(scores, exp["scores"])
                if abs(a - b) > tolerance) + f" (difference {diff} > TOLERANCE={tolerance})")
        elif diff == 0 and got.line != exp.get("line", got.line):
            # Same scores, different text: the printing (label, confidence) is wrong, not the arithmetic.
            wrong.append(f"{title}: {who} prints {got.line!r}, expected {exp['line']!r}")
    if wrong:
        raise PipelineError(f"check failed: the {who} disagrees with TFLite:\n  " + "\n  ".join(wrong))
    # a model with several outputs has a line per input and output: count the inputs by name
    inputs = len(dict.fromkeys(e.get("name", i) for i, e in enumerate(want)))
    return {"images": rows, "exact": all(r["exact"] for r in rows),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows), "inputs": inputs,
            "outputs": len(want) // max(inputs, 1)}


def compare_lines(printed, expected, source, where):
    """Raises PipelineError unless the printed results equal expected.json's byte for byte: the same titles and
    scores, and the same lines (top label, confidence). `where` names the runner, e.g. "on simavr"."""
    want = expected["images"]
    _raise_run_errors(printed, f"{source} ({where})")
    if len(printed) != len(want):
        raise PipelineError(f"{source} printed results for {len(printed)} input(s), expected.json has {len(want)}")
    bad = []
    for got, exp in zip(printed, want):
        name = f"{exp['name']} ({exp['title']})"
        if got.title != exp["title"]:
            bad.append(f"{name}: printed under the title {got.title!r}")
        elif got.scores != exp["scores"]:
            bad.append(f"{name}: printed {got.scores} {where}, TFLite reference expects {exp['scores']}")
        elif got.line != exp.get("line", got.line):
            bad.append(f"{name}: printed {got.line!r} {where}, expected {exp['line']!r}")
    if bad:
        raise PipelineError(f"{source}: the generated C is not bit-exact with TFLite {where}:\n  "
                            + "\n  ".join(bad))


def check_demo_line(text, expected, who):
    """With the held-out demo, the runner's output must hold expected.json's `7/8 correct (87.5%)` line: the
    sketch's count of right answers is TFLite's."""
    demo = expected.get("demo")
    if not demo:
        return
    lines = DEMO_LINE.findall(text)
    if not lines:
        raise PipelineError(f"{who} printed no demo line (N/M correct); TFLite's decisions give {demo['line']!r}")
    if lines[0] != demo["line"]:
        raise PipelineError(f"{who} printed {lines[0]!r}; TFLite's decisions give {demo['line']!r}")


def host_check(sketch_dir, sketch_name, expected_json, out_json, build_options=None):
    """`build_options`: keyword arguments for build_host_binary (a backend's flags and libraries)."""
    with open(expected_json) as f:
        expected = json.load(f)
    with tempfile.TemporaryDirectory(prefix="hostcheck-") as work:
        exe = build_host_binary(sketch_dir, sketch_name, work, **(build_options or {}))
        try:
            proc = external.run([exe], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                  env=dict(os.environ, HOST_LOOPS="1"))
        except subprocess.TimeoutExpired:
            raise PipelineError(f"the host build of {sketch_dir} did not finish in {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise PipelineError(f"the host build of {sketch_dir} exited with {proc.returncode}:\n{proc.stderr}")
    summary = compare(parse_results(proc.stdout), expected)
    check_demo_line(proc.stdout, expected, f"the host build of {sketch_dir}")
    if expected.get("demo"):
        summary["demo"] = expected["demo"]
    if expected.get("reference"):
        summary["reference"] = expected["reference"]       # whose scores these are (codegen/stages/expected.py)
    summary["output"] = proc.stdout
    with atomic_open(out_json) as f:
        json.dump(summary, f, indent=1)
    return summary


# ------------------------------------------------------------------------------------------------ the Arduino library
def library_units(lib_dir, example, stub_dir=HOST_STUB_DIR):
    """[(kind, source)] of the host build of one example of an Arduino library: every .c/.cpp under the library's
    src/ (as the Arduino builder compiles a library), the example's .ino and .c/.cpp files, the stub's main.cpp."""
    units = []
    for folder in (os.path.join(lib_dir, "src"), os.path.join(lib_dir, "examples", example)):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for f in sorted(filenames):
                kind = {".c": "c", ".cpp": "c++", ".ino": "ino"}.get(os.path.splitext(f)[1])
                if kind:
                    units.append((kind, os.path.join(dirpath, f)))
    return units + [("c++", os.path.join(stub_dir, "main.cpp"))]


def build_library_example(lib_dir, example, work_dir, cc="gcc", cxx="g++", stub_dir=HOST_STUB_DIR):
    """The host binary of examples/<example> of the Arduino library in `lib_dir` (found via -I <lib>/src, as
    `#include <Lib.h>` finds an installed library), with the host check's flags."""
    flags = [*COMMON_FLAGS, "-I", stub_dir, "-I", os.path.join(lib_dir, "src"),
             "-I", os.path.join(lib_dir, "examples", example)]
    objs = []
    for i, (kind, src) in enumerate(library_units(lib_dir, example, stub_dir)):
        compiler, std = (cc, list(C_FLAGS)) if kind == "c" else (cxx, list(CXX_FLAGS))
        if kind == "ino":
            std += INO_FLAGS
        obj = os.path.join(work_dir, f"{i:03d}_{os.path.basename(src)}.o")
        _run([compiler, *std, *flags, "-c", src, "-o", obj], f"compiling {src}")
        objs.append(obj)
    exe = os.path.join(work_dir, example + ".host")
    _run([cxx, *objs, "-o", exe, "-lm"], "linking the library example's host binary")
    return exe


def run_host_binary(exe, what):
    """The stdout of a host binary run once (HOST_LOOPS=1); PipelineError when it fails or hangs."""
    try:
        proc = external.run([exe], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                            env=dict(os.environ, HOST_LOOPS="1"))
    except subprocess.TimeoutExpired:
        raise PipelineError(f"the host build of {what} did not finish in {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise PipelineError(f"the host build of {what} exited with {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def library_check(lib_dir, example, expected_json, out_json, frame_input=None, labels=None):
    """Builds and runs the library's classify example on the host. Its one result line must be well formed and
    name one of the labels; when its frame is an embedded input's pixels (`frame_input`: that input's name), its
    scores and line must equal tf.lite's for that input exactly (classify() preprocesses as the build does)."""
    with open(expected_json) as f:
        expected = json.load(f)
    what = os.path.join(lib_dir, "examples", example)
    with tempfile.TemporaryDirectory(prefix="librarycheck-") as work:
        output = run_host_binary(build_library_example(lib_dir, example, work), what)
    printed = parse_results(output)
    _raise_run_errors(printed, f"library example {what}")
    if len(printed) != 1:
        raise PipelineError(f"{what} printed {len(printed)} result lines, expected one:\n{output}")
    labels = labels or expected.get("labels") or []
    if labels and printed[0].label not in labels:
        raise PipelineError(f"{what} printed the label {printed[0].label!r}, which is not one of the model's")
    summary = {"example": example, "printed": printed[0].text, "scores": printed[0].scores, "compared": None}
    want = [e for e in expected["images"] if e["name"] == frame_input]
    if want:
        summary.update(compare(printed, {"images": want}, who=f"library example {example}", tolerance=0),
                       compared=frame_input)
    with atomic_open(out_json) as f:
        json.dump(summary, f, indent=1)
    return summary
