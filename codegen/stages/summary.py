"""The result at a glance, printed after a build that ran stages: per board, accuracy, flash and RAM as
PlatformIO-style bars, the host check, and where simulated, instructions and estimated cycles per inference and the
estimated latency.

Everything comes from the files the build wrote (metrics.json, memory.json, hostcheck.json, simulate.json,
compile.json, linuxcheck.json and the TFLM backend's files under tflm/): the summary repeats their numbers, it
computes none of its own (the estimated cycles and ms come from simulate.json; only a simulate.json from before
the cycle estimate gets instructions / the board's clock_hz). The SCons side
decides which files belong to this build (`include`): a file a previous run left for a target not asked for now
(e.g. an old simulate.json) may not match the current model and is left out.
"""
import json
import math
import os

from .. import boards
from ..device.memreport import LOW_MEMORY_PERCENT

# file key -> path under the board's build directory
FILES = {
    "metrics": "metrics.json",
    "memory": "memory.json",
    "hostcheck": "hostcheck.json",
    "simulate": "simulate.json",
    "compile": os.path.join("firmware", "compile.json"),
    "linuxcheck": "linuxcheck.json",
}
# ... and, per backend besides TVM's route, the same four under its folder, keyed "<backend>_<key>"
BACKEND_FILES = ("memory", "hostcheck", "simulate", "compile")
BAR_WIDTH = 10


def files(backends=(("tflm", "tflm"),)):
    """{file key: path under the board's folder}: FILES, plus BACKEND_FILES for each (backend name, its folder)."""
    found = dict(FILES)
    for name, folder in backends:
        found.update({f"{name}_{key}": os.path.join(folder, FILES[key]) for key in BACKEND_FILES})
    return found


def collect(out_dir, include=None, backends=(("tflm", "tflm"),)):
    """{file key: parsed JSON} of the result files in `out_dir` that exist and, when `include` (a set of absolute
    paths) is given, belong to it. A file that does not parse is left out (the stage that writes it reports).
    `backends`: (name, folder) of the backends besides TVM's route (codegen/backends)."""
    found = {}
    for key, rel in files(backends).items():
        path = os.path.abspath(os.path.join(out_dir, rel))
        if include is not None and path not in include:
            continue
        try:
            with open(path) as f:
                found[key] = json.load(f)
        except (OSError, ValueError):
            continue
    return found


def chance_margin(classes, val_images):
    """How far above chance (1/classes) an accuracy must be to say the model learned something: two standard
    errors of a guessing model's accuracy on this many validation images (a small split can hit 70 % by luck),
    and at least a tenth of the distance from chance to 100 %."""
    chance = 1.0 / classes
    return max(0.1 * (1.0 - chance), 2.0 * math.sqrt(chance * (1.0 - chance) / max(1, val_images)))


def at_chance(accuracy, classes, val_images):
    return classes >= 2 and accuracy <= 1.0 / classes + chance_margin(classes, val_images)


def percent(value):
    """An accuracy (0..1) as the summary prints it."""
    return f"{100.0 * value:.1f}%"


def bar(label, used, limit, share, what="used", width=7):
    """PlatformIO's size line: `RAM:   [===       ]  34.6% (used 90,658 bytes from 262,144 bytes)`. `share` is
    the percentage as the report file holds it (printed as it is, so the two agree); `width` aligns the bars of
    labels longer than "Flash: " (e.g. "TFLM Flash: ")."""
    filled = min(BAR_WIDTH, max(0, int(share * BAR_WIDTH / 100.0))) if share is not None else 0
    shown = f"{share:5.1f}%" if share is not None else "    ?%"
    return (f"{label + ':':<{width}}[{'=' * filled:<{BAR_WIDTH}}] {shown} ({what} {used:,} bytes from {limit:,} "
            "bytes)")


def _budget_lines(prefix, report, board_name, warnings, fix):
    lines = []
    for key, label in (("flash", "Flash"), ("ram", "RAM")):
        budget = report.get(key)
        if not isinstance(budget, dict):
            continue
        lines.append(bar(f"{prefix}{label}", budget["total"], budget["limit"], budget["percent"],
                         width=7 + len(prefix)))
        if not budget["fits"]:
            warnings.append(f"{board_name}: {prefix}{label.lower() if key == 'flash' else label} needs "
                            f"{budget['total']:,} bytes, the board has {budget['limit']:,} (over by "
                            f"{budget['over_by']:,}): compile and upload will refuse it; {fix}")
        elif budget["percent"] is not None and budget["percent"] > LOW_MEMORY_PERCENT:
            warnings.append(f"{board_name}: {prefix}{label} {budget['percent']:.1f}% used (over "
                            f"{LOW_MEMORY_PERCENT:g}%): low memory available, stability problems may occur "
                            f"(the stack and heap need the rest); {fix}")
    return lines


def _accuracy_lines(metrics, board_name, warnings):
    classes = len(metrics.get("classes") or [])
    val = int(metrics.get("val_images") or 0)
    float_acc, int8_acc = metrics.get("float_val_accuracy"), metrics.get("quantized_val_accuracy")
    parts = []
    if float_acc is not None:
        parts.append(f"float {percent(float_acc)}")
    if int8_acc is not None:
        parts.append(f"int8 {percent(int8_acc)}")
    lines = [f"Accuracy: {', '.join(parts)} on {val:,} validation images, {classes} classes "
             f"(chance {percent(1.0 / classes) if classes else '?'})"]
    if classes >= 2 and float_acc is not None and at_chance(float_acc, classes, val):
        warnings.append(
            f"{board_name}: float accuracy {percent(float_acc)} is no better than guessing ({classes} classes: "
            f"{percent(1.0 / classes)}, margin {percent(chance_margin(classes, val))} for {val} validation "
            f"images): the model has not learned; try more EPOCHS= (now {metrics.get('epochs')}), more data "
            "(DATA=, or SAMPLES= for the built-in set) or pretrained weights (WEIGHTS=)")
    elif classes >= 2 and int8_acc is not None and at_chance(int8_acc, classes, val):
        warnings.append(
            f"{board_name}: int8 accuracy {percent(int8_acc)} is no better than guessing while the float model "
            f"has {percent(float_acc)}: quantization lost it; calibrate on more images (REP_SAMPLES=) or "
            "data closer to the validation set (REP_DATA=)")
    return lines


def _check_line(label, check):
    n = check.get("inputs") or len(check.get("images") or check.get("samples") or [])
    # the reference is tf.lite unless it refused the file and TFLite Micro's interpreter gave the scores
    reference = check.get("reference") or ""
    ref = "TFLite" if reference.startswith("tf.lite") or not reference else f"{reference} (tf.lite refuses the file)"
    if check.get("outputs", 1) > 1:
        n = f"{n} input(s) x {check['outputs']} outputs"
    else:
        n = f"{n} input(s)"
    if check.get("exact"):
        return f"{label}: {n}, scores match {ref} byte for byte"
    diff = check.get("max_abs_diff", check.get("max_diff"))
    return f"{label}: {n}, same decisions as {ref}, scores differ by at most {diff}"


def count(value):
    """An instruction count as simulate.json has it: a whole number, or a mean over inferences that is not."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _simulate_line(label, sim, board):
    per = sim.get("instructions_per_inference")
    if per is not None:
        line = f"{label}: {count(per)} instructions per inference"
        cycles, ms = sim.get("cycles_per_inference_estimate"), sim.get("ms_per_inference_estimate")
        clock = sim.get("clock_hz") or board.get("clock_hz")
        if cycles is not None:
            # the plugin's Cortex-M4 cycle model (TRM timings, the board's flash wait states): an estimate
            line += f", ~{count(cycles)} cycles (estimate)"
            if ms is not None and clock:
                line += f", ~{ms:.1f} ms at {clock / 1e6:g} MHz"
        elif clock:
            # an older simulate.json without cycles: at one instruction per cycle (a lower bound on a Cortex-M4;
            # flash wait states and multi-cycle loads add more).
            line += f", ~{1000.0 * per / clock:.1f} ms at {clock / 1e6:g} MHz (1 instruction/cycle)"
        return line + ("; scores identical to TFLite" if sim.get("exact", True) else "")
    if "flash_bytes" in sim:        # simavr: the real sketch, sized by avr-size, timed by its own micros()
        ms = sim.get("ms_per_inference")
        timed = f"{ms:,.1f} ms per inference (the sketch's micros(), slowest input), " if ms else ""
        return (f"{label}: {timed}scores identical to TFLite; firmware flash {sim['flash_bytes']:,} bytes, static "
                f"RAM {sim['ram_bytes']:,} bytes")
    return f"{label}: scores identical to TFLite"


def _firmware_line(label, compiled):
    sections = compiled.get("sections") or {}
    parts = []
    for name, section in sections.items():
        size, limit = section.get("size"), section.get("max_size")
        if size is None:
            continue
        parts.append(f"{name} {size:,} bytes" + (f" of {limit:,} ({100.0 * size / limit:.1f}%)" if limit else ""))
    return f"{label}: " + (", ".join(parts) if parts else "compiled")


def _linux_lines(memory, check, board_name, warnings):
    lines = []
    if memory:
        here = memory.get("measured_here") or {}
        lines.append(bar("RAM", here.get("peak_rss_bytes", 0), memory["ram_bytes"], memory.get("ram_share_percent"),
                         what="peak RSS here"))
        lines.append(f"Model: {memory['model_bytes']:,} bytes (bundle {memory['bundle_bytes']:,} bytes); "
                     f"latency {here.get('latency_ms_median')} ms median on this {here.get('machine')} machine "
                     f"(a rough guide, not the board)")
        share = memory.get("ram_share_percent")
        if share is not None and share > LOW_MEMORY_PERCENT:
            warnings.append(f"{board_name}: the runtime's peak RSS is {share:.1f}% of the board's RAM (over "
                            f"{LOW_MEMORY_PERCENT:g}%): little is left for the rest of the system; use a smaller "
                            "model or QUANT=int8")
    if check:
        n = len(check.get("samples") or [])
        lines.append(f"LiteRT check: {n} sample(s), scores equal tf.lite's ({check.get('runtime')}, no TensorFlow)")
    return lines


def board_summary(board, results):
    """(lines, warnings) for one board; `results` as `collect` returns them. No lines when nothing is known."""
    name = board.get("name", "?")
    warnings, lines = [], []
    fix = "make the model smaller (SIZE=, ALPHA=, DEPTH=, CHANNELS=1) or pick a bigger BOARD="
    if "metrics" in results:
        lines += _accuracy_lines(results["metrics"], name, warnings)
    if boards.board(board).is_linux:
        lines += _linux_lines(results.get("memory"), results.get("linuxcheck"), name, warnings)
        return lines, warnings
    others = sorted({k.split("_", 1)[0] for k in results if "_" in k and k.split("_", 1)[1] in BACKEND_FILES})
    several = len(others) + any(k in results for k in ("memory", "hostcheck", "simulate")) > 1
    for prefix, tag in (("", "tvm"), *((f"{name}_", name) for name in others)):
        label = f"{tag.upper()} " if several or prefix else ""
        if prefix + "hostcheck" in results:
            lines.append(_check_line(f"{label}Host check", results[prefix + "hostcheck"]))
            demo = results[prefix + "hostcheck"].get("demo")
            if demo:
                # What the sketch's last line says: the model's answers on held-out images, not the C's exactness.
                lines.append(f"{label}Demo: {demo['line'].replace(' correct', ' held-out images correct')}")
        if prefix + "memory" in results:
            lines += _budget_lines(label, results[prefix + "memory"], name, warnings, fix)
            note = results[prefix + "memory"].get("code_note") or ""
            if results[prefix + "memory"].get("code_bytes") is None and note.startswith("not measured"):
                # Say it plainly: the flash bar leaves the generated code out (no compiler for the board here).
                lines.append(f"{label}Flash excludes the generated code: {note}")
        if prefix + "compile" in results:
            lines.append(_firmware_line(f"{label}Firmware (arduino-cli)", results[prefix + "compile"]))
        if prefix + "simulate" in results:
            sim = results[prefix + "simulate"]
            where = "simavr" if "flash_bytes" in sim and "instructions_per_inference" not in sim else "QEMU"
            lines.append(_simulate_line(f"{label}Simulated ({where})", sim, board))
    return lines, warnings


def format_summary(entries):
    """The whole summary for [(board entry, results)], or "" when no board has results."""
    blocks, warnings = [], []
    for board, results in entries:
        lines, warns = board_summary(board, results)
        warnings += warns
        if lines:
            blocks.append(f"{board.get('name')} ({board.get('title', '')}):")
            blocks += [f"  {line}" for line in lines]
    if not blocks:
        return ""
    rule = "=" * 30
    return "\n".join([f"{rule} summary {rule}", *blocks, *[f"warning: {w}" for w in warnings]]) + "\n"
