"""The check, simulate and memory steps of BACKEND=tinymaix: the sketch's model (src/model.c on tm_load/tm_run)
compiled with TinyMaix's runtime from TINYMAIX_DIR, on the host (TM_ARCH_CPU) and on the emulated Cortex-M4F
(TM_ARCH_ARM_SIMD, its SMLAD/SXTB16 kernels; the plain C kernels, TM_ARCH_CPU, are measured beside them).

TinyMaix has its own kernels and rounding (e.g. its softmax requantizes by truncation): its scores are compared
with tf.lite's, not required to equal them. A run fails only when it cannot be built or run, or prints no
result for an input; otherwise the result says how far it is (largest score difference) and on how many inputs
it takes tf.lite's decision.
"""
import json
import os
import tempfile

from ... import proc as external
from ...errors import PipelineError
from ...fsutil import atomic_open
from .tree import build_host_library, check_tree, compile_flags, run, runtime_sources

NATIVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native")
MEMORY_MAIN = os.path.join(NATIVE_DIR, "memory_main.c")
RUN_TIMEOUT_S = 60
M4_ARCH = "TM_ARCH_ARM_SIMD"
M4_OTHER_ARCH = "TM_ARCH_CPU"
# The runtime's optimisation per architecture on the M4. TM_ARCH_ARM_SIMD's dot products are inline asm that
# clobber r2-r7; where GCC (arm-none-eabi 13) inlines tm_dot_prod_pack2 at -O1/-O2/-Os it needs r7 as the frame
# pointer ("'asm' operand has impossible constraints"); at -O3 it builds. The plain C kernels build at the
# project's -O2 like every other M4 firmware.
RUNTIME_OPT = {"TM_ARCH_ARM_SIMD": "-O3", "TM_ARCH_CPU": "-O2"}


def _load(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PipelineError(f"{what} {path} cannot be read ({e}): rebuild it") from None


def judge(printed, expected, where):
    """{"images": rows, "max_diff", "same_decision", "inputs", "exact", "verdict"} of TinyMaix's printed results
    against tf.lite's; PipelineError only when a run failed or a result is missing or malformed."""
    from ...runners.hostcheck import top_index

    want = expected["images"]
    failed = [r for r in printed if r.error]
    if failed:
        raise PipelineError(f"TinyMaix failed {where} on {len(failed)} input(s): "
                            + "; ".join(f"{r.title}: {r.error}" for r in failed)
                            + " (-1: tm_load refused the model, -2: tm_run failed; see src/model.h)")
    if len(printed) != len(want):
        raise PipelineError(f"TinyMaix {where} printed {len(printed)} result line(s) for {len(want)} input(s): "
                            "its output holds no parseable result for some; see the program's output above")
    rows = []
    for got, exp in zip(printed, want):
        if len(got.scores) != len(exp["scores"]):
            raise PipelineError(f"{exp['title']}: TinyMaix {where} printed {len(got.scores)} scores, the model has "
                                f"{len(exp['scores'])}")
        rows.append({"name": exp["name"], "title": exp["title"], "scores": got.scores, "tflite": exp["scores"],
                     "argmax": top_index(got.scores), "tflite_argmax": exp["argmax"],
                     "max_abs_diff": max(abs(a - b) for a, b in zip(got.scores, exp["scores"])),
                     "printed": got.text})
    max_diff = max(r["max_abs_diff"] for r in rows)
    same = sum(1 for r in rows if r["argmax"] == r["tflite_argmax"])
    if max_diff == 0:
        verdict = f"scores identical to tf.lite's on all {len(rows)} input(s)"
    else:
        verdict = (f"not exact: scores differ from tf.lite's by up to {max_diff} (int8 steps); tf.lite's decision on "
                   f"{same} of {len(rows)} input(s)")
    return {"images": rows, "max_diff": max_diff, "same_decision": same, "inputs": len(rows),
            "exact": max_diff == 0, "verdict": verdict}


def host_check(sketch_dir, sketch_name, tinymaix_dir, expected_json, out_json):
    """Builds the sketch (the shared .ino, the host Arduino stand-in) with TinyMaix's runtime for the host,
    runs it once over the embedded inputs and writes hostcheck.json; returns it."""
    from ...runners.hostcheck import build_host_binary, parse_results

    root = check_tree(tinymaix_dir)
    expected = _load(expected_json, "expected scores")
    with tempfile.TemporaryDirectory(prefix="tinymaix-hostcheck-") as work:
        lib = build_host_library(root, work)
        exe = build_host_binary(sketch_dir, sketch_name, work, extra_flags=compile_flags(root, "host"), libs=[lib])
        try:
            proc = external.run([exe], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                env=dict(os.environ, HOST_LOOPS="1"))
        except external.TimeoutExpired:
            raise PipelineError(f"the host build of {sketch_dir} did not finish in {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise PipelineError(f"the host build of {sketch_dir} on TinyMaix exited with {proc.returncode}:\n"
                            f"{proc.stderr.strip()[-2000:]}")
    summary = judge(parse_results(proc.stdout), expected, "on the host")
    summary.update(backend="tinymaix", arch="TM_ARCH_CPU", tinymaix_dir=root, output=proc.stdout)
    with atomic_open(out_json) as f:
        json.dump(summary, f, indent=1)
    return summary


def _m4_units(root, arch):
    from ...runners import qemu
    from ...runners.sketch_m4 import c_flags

    def units(src, stub_dir):
        flags = [qemu.CC, *c_flags(src, stub_dir), *compile_flags(root, "cortex-m4", arch)]
        return [(flags, os.path.join(src, name), f"compiling {name} for the Cortex-M4")
                for name in ("model.c", "model_data.c")] + \
               [([*flags, RUNTIME_OPT[arch]], path,
                 f"compiling TinyMaix's {os.path.relpath(path, root)} ({arch}) for the Cortex-M4")
                for path in runtime_sources(root)]
    return units


def simulate(sketch_dir, images_json, expected_json, out_json, tinymaix_dir, *, work_dir, board=None,
             timeout_s=300):
    """The sketch's model + TinyMaix (TM_ARCH_ARM_SIMD) + the simulate harness on QEMU's Cortex-M4F with
    instruction counting; the same with TinyMaix's plain C kernels (TM_ARCH_CPU) for comparison. Writes
    simulate.json; returns it."""
    from ...runners import qemu
    from ...runners.sketch_m4 import run_sketch_api

    root = check_tree(tinymaix_dir)
    expected = _load(expected_json, "expected scores")
    runs = {}
    for arch in (M4_ARCH, M4_OTHER_ARCH):
        runs[arch] = run_sketch_api(sketch_dir, images_json, work_dir=os.path.join(work_dir, arch.lower()),
                                    model_units=_m4_units(root, arch), timeout_s=timeout_s, board=board,
                                    exit_hint=" (2: TVMExecute failed: see src/model.h)")
    main = runs[M4_ARCH]
    verdict = judge(main["printed"], expected, "on the Cortex-M4")
    other = judge(runs[M4_OTHER_ARCH]["printed"], expected, "on the Cortex-M4 (TM_ARCH_CPU)")
    result = {
        "backend": "tinymaix",
        "emulator": f"qemu-system-arm -M {qemu.MACHINE}",
        "cpu": "cortex-m4f",
        "arch": M4_ARCH,
        "tinymaix_dir": root,
        "exact": verdict["exact"],
        "max_diff": verdict["max_diff"],
        "same_decision": verdict["same_decision"],
        "verdict": verdict["verdict"],
        "images": [{k: r[k] for k in ("name", "title", "scores", "tflite", "max_abs_diff")}
                   for r in verdict["images"]],
        "inferences": main["region"]["count"],
        **main["cost"],
        "firmware_bytes": main["sizes"],
        "other_arch": {"arch": M4_OTHER_ARCH, "max_diff": other["max_diff"],
                       "instructions_per_inference": runs[M4_OTHER_ARCH]["cost"]["instructions_per_inference"],
                       "cycles_per_inference_estimate":
                           runs[M4_OTHER_ARCH]["cost"]["cycles_per_inference_estimate"],
                       "firmware_bytes": runs[M4_OTHER_ARCH]["sizes"]},
        "output": main["stdout"],
    }
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result


def _m4_firmware(root, src, work_dir, with_model):
    """The memory firmware's ELF sizes, with or without the model and TinyMaix."""
    from ...runners import qemu
    from ...runners.sketch_m4 import elf_sizes

    tag = "model" if with_model else "baseline"
    out = os.path.join(work_dir, tag)
    os.makedirs(out, exist_ok=True)
    flags = [*qemu.ARCH_FLAGS, "-O2", "-ffunction-sections", "-fdata-sections", "-I", qemu.BAREMETAL_DIR,
             "-I", src, *compile_flags(root, "cortex-m4")]
    sources = [qemu.STARTUP_C, MEMORY_MAIN]
    if with_model:
        sources += [os.path.join(src, "model.c"), os.path.join(src, "model_data.c"), *runtime_sources(root)]
    runtime = set(runtime_sources(root))
    objs = []
    for path in sources:
        obj = os.path.join(out, os.path.basename(path) + ".o")
        opt = [RUNTIME_OPT[M4_ARCH]] if path in runtime else []
        run([qemu.CC, *flags, *opt, *(["-DWITH_MODEL"] if with_model else []), "-c", path, "-o", obj],
            f"compiling {os.path.basename(path)} for the Cortex-M4 memory measurement")
        objs.append(obj)
    elf = os.path.join(out, f"{tag}.elf")
    run([qemu.CC, *qemu.ARCH_FLAGS, *objs, "-T", qemu.LINKER_SCRIPT, *qemu.LINK_FLAGS, "-lm", "-o", elf],
        f"linking {elf}")
    return elf_sizes(elf)


def memory_report(layers_json, sketch_dir, tinymaix_dir, board, out_json, out_txt, *, work_dir):
    """memory.json/.txt: TinyMaix's per-layer table and the model's flash and RAM on board. Measured on a
    Cortex-M4F link (model + runtime, minus the same firmware without them) when arm-none-eabi-gcc is there,
    else the converter's figures (the model's bytes, its buffer) without the runtime."""
    import shutil

    from ...device.memreport import _budget, core_margin

    root = check_tree(tinymaix_dir)
    layers = _load(layers_json, "TinyMaix layer table")
    src = os.path.join(os.path.abspath(sketch_dir), "src")
    model_bytes, buffer_bytes = layers["tmdl_bytes"], layers["buffer_bytes"]
    if shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        work_dir = os.path.abspath(work_dir)
        m = {"model": _m4_firmware(root, src, work_dir, True), "baseline": _m4_firmware(root, src, work_dir, False)}
        flash = (m["model"]["text"] + m["model"]["data"]) - (m["baseline"]["text"] + m["baseline"]["data"])
        ram = (m["model"]["data"] + m["model"]["bss"]) - (m["baseline"]["data"] + m["baseline"]["bss"])
        measured = (f"measured: Cortex-M4F link (TinyMaix TM_ARCH_ARM_SIMD at {RUNTIME_OPT[M4_ARCH]}, the rest -O2) "
                    "minus the same firmware without the model")
    else:
        m, flash, ram = None, model_bytes, buffer_bytes
        measured = ("the converter's figures (no arm-none-eabi-gcc to measure a link): the model and its buffer, "
                    "without TinyMaix's code and static buffers")
    margin = core_margin(board)
    report = {
        "backend": "tinymaix",
        "board": {"name": board.get("name"), "title": board.get("title"), "cpu": board.get("cpu"),
                  "flash_bytes": int(board["flash_bytes"]), "ram_bytes": int(board["ram_bytes"])},
        "flash_bytes": flash, "ram_bytes": ram,
        "model_bytes": model_bytes, "runtime_code_bytes": flash - model_bytes,
        "buffer_bytes": buffer_bytes, "keep_bytes": layers.get("keep_bytes") or 0,
        "runtime_ram_bytes": ram - buffer_bytes,
        "converter": {"model_bytes": layers.get("model_bytes"), "ram_bytes": layers.get("ram_bytes"),
                      "single_layer_buffer_bytes": layers.get("single_layer_buffer_bytes")},
        "layers": layers["layers"],
        "ops": layers["ops"],
        "measured": m is not None,
        "firmware": m,
        "core_margin": margin,
        "flash": _budget({"tinymaix_and_model": flash, "core_margin": margin["flash_bytes"]}, board["flash_bytes"]),
        "ram": _budget({"buffer_and_runtime": ram, "core_margin": margin["ram_bytes"]}, board["ram_bytes"]),
        "notes": [measured, f"core margin: an estimated {margin['flash_bytes']} B flash and {margin['ram_bytes']} B "
                  f"RAM for {margin['what']}"],
    }
    with atomic_open(out_json) as f:
        json.dump(report, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write(format_report(report))
    return report


def format_report(r):
    from ...device.memreport import budget_status

    b = r["board"]
    lines = [f"TinyMaix memory report on {b['title']} ({b['cpu']}, flash {b['flash_bytes']:,} B, RAM "
             f"{b['ram_bytes']:,} B)",
             f"flash: model {r['model_bytes']:,} B + TinyMaix runtime {r['runtime_code_bytes']:,} B = "
             f"{r['flash_bytes']:,} B",
             f"RAM: activation buffer {r['buffer_bytes']:,} B (of which {r['keep_bytes']:,} B kept for ADD) + "
             f"runtime statics {r['runtime_ram_bytes']:,} B = {r['ram_bytes']:,} B",
             "",
             f"{'#':>3} {'layer':<18} {'input (dims)':<18} {'output (dims)':<18} {'in@offset':>12} "
             f"{'out@offset':>12} {'bytes':>8}"]
    for row in r["layers"]:
        dims = [row.get("in_dims", [])[1:], row.get("out_dims", [])[1:]]
        lines.append(f"{row['index']:>3} {row['op'] + (' KEEP' if row.get('keep') else ''):<18} "
                     f"{'x'.join(map(str, dims[0])):<18} {'x'.join(map(str, dims[1])):<18} "
                     f"{row.get('in_bytes', 0):>6}@{row.get('in_offset', 0):<5} "
                     f"{row.get('out_bytes', 0):>6}@{row.get('out_offset', 0):<5} {row.get('layer_bytes', 0):>8}")
    lines.append("")
    for key, label in (("flash", "Flash"), ("ram", "RAM")):
        x = r[key]
        lines.append(f"{label}: {x['total']:,} of {x['limit']:,} B ({x['percent']}%) with core margin -> "
                     f"{budget_status(x)}")
    return "\n".join(lines + [f"note: {n}" for n in r["notes"]] + [""])
