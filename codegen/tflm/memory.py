"""Memory report of the TFLM backend and the side-by-side table of both backends (BACKEND=tvm,tflm).

The TFLM numbers are measured, not estimated: the model's generated sources and a main that runs it are
linked for the Cortex-M4F against the TFLM library (CMSIS-NN when the tree has it), and the same start-up code
and printf without the model are linked as a baseline; flash = the difference in text + data, RAM = the
difference in data + bss (the arena, the interpreter, the op resolver). Other ARM boards run the same Thumb-2 code.
"""
import json
import os

from ..fsutil import atomic_open
from . import library, model
from .runners import NATIVE_DIR, _cxx_flags, _run, elf_sizes, write_sources

BASELINE_MAIN = os.path.join(NATIVE_DIR, "baseline_main.c")
MODEL_MAIN = os.path.join(NATIVE_DIR, "memory_main.cc")


def _link(objs, elf, lib=None):
    from ..runners import qemu

    tc = library.TOOLCHAINS["cortex-m4"]
    _run([tc["cxx"], *qemu.ARCH_FLAGS, *objs, *([lib] if lib else []), "-T", qemu.LINKER_SCRIPT, *qemu.LINK_FLAGS,
          "-lm", "-o", elf], f"linking {elf}")
    return elf_sizes(elf)


def measure_m4(tflite_path, tflm_dir, arena, work_dir, *, cache_dir=None):
    """{"model": sizes, "baseline": sizes} of the M4 firmware with and without the model (see module doc)."""
    from ..runners import qemu

    root = library.check_tree(tflm_dir)
    lib = library.build_library(root, "cortex-m4", ops=model.library_ops(tflite_path, root), cache_dir=cache_dir)
    files, ctx = model.model_sources(tflite_path, root, arena)
    work_dir = os.path.abspath(work_dir)
    write_sources(files, work_dir)
    src = os.path.join(work_dir, "src")
    tc = library.TOOLCHAINS["cortex-m4"]
    c_flags = [*qemu.ARCH_FLAGS, "-O2", "-ffunction-sections", "-fdata-sections", "-I", qemu.BAREMETAL_DIR]
    startup = os.path.join(work_dir, "startup.o")
    _run([tc["cc"], *c_flags, "-c", qemu.STARTUP_C, "-o", startup], "compiling the M4 start-up code")
    base_obj = os.path.join(work_dir, "baseline_main.o")
    _run([tc["cc"], *c_flags, "-c", BASELINE_MAIN, "-o", base_obj], "compiling the baseline main")
    objs = [startup]
    for path in (os.path.join(src, "model.cpp"), os.path.join(src, "model_data.cpp"), MODEL_MAIN):
        obj = os.path.join(work_dir, os.path.basename(path) + ".o")
        _run([tc["cxx"], *_cxx_flags(root, "cortex-m4"), "-I", src, "-c", path, "-o", obj],
             f"compiling {os.path.basename(path)} for the Cortex-M4")
        objs.append(obj)
    return {"model": _link(objs, os.path.join(work_dir, "model.elf"), lib),
            "baseline": _link([startup, base_obj], os.path.join(work_dir, "baseline.elf")),
            "kernels": "cmsis-nn" if library.has_cmsis_nn(root) else "reference", "ops": ctx["ops"],
            "model_bytes": ctx["model_size"]}


def memory_report(tflite_path, arena_json, board, tflm_dir, out_json, out_txt, *, work_dir, cache_dir=None):
    from .. import boards
    from ..device.memreport import _budget

    board = boards.board(board)

    with open(arena_json) as f:
        arena = json.load(f)
    m = measure_m4(tflite_path, tflm_dir, arena, work_dir, cache_dir=cache_dir)
    flash = (m["model"]["text"] + m["model"]["data"]) - (m["baseline"]["text"] + m["baseline"]["data"])
    ram = (m["model"]["data"] + m["model"]["bss"]) - (m["baseline"]["data"] + m["baseline"]["bss"])
    margin = board.core_margin
    report = {
        "backend": "tflm",
        "board": {"name": board.name, "title": board.title, "cpu": board.cpu,
                  "flash_bytes": int(board.flash_bytes), "ram_bytes": int(board.ram_bytes)},
        "kernels": m["kernels"], "ops": m["ops"],
        "model_bytes": m["model_bytes"],
        "runtime_code_bytes": flash - m["model_bytes"],
        "arena_bytes": arena["size_bytes"], "arena_used_bytes": arena["used_bytes"],
        "arena_measured_on": arena["measured_on"],
        "flash_added_bytes": flash, "ram_added_bytes": ram, "code_bytes": flash - m["model_bytes"],
        "core_margin": margin,
        "firmware": m,
        "flash": _budget({"tflm_and_model": flash, "core_margin": margin["flash_bytes"]}, board.flash_bytes),
        "ram": _budget({"arena_interpreter_and_buffers": ram, "core_margin": margin["ram_bytes"]},
                       board.ram_bytes),
        "notes": [f"measured: Cortex-M4F link (-O2, TFLM {m['kernels']} kernels) minus the same firmware without "
                  "the model", f"core margin: an estimated {margin['flash_bytes']} B flash and "
                  f"{margin['ram_bytes']} B RAM for {margin['what']}"],
    }
    with atomic_open(out_json) as f:
        json.dump(report, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write(format_report(report))
    return report


def format_report(r):
    from ..device.memreport import budget_status

    b = r["board"]
    lines = [f"TFLM memory report on {b['title']} ({b['cpu']}, flash {b['flash_bytes']:,} B, RAM "
             f"{b['ram_bytes']:,} B); ops: {', '.join(r['ops'])}",
             f"flash: model {r['model_bytes']:,} B + TFLM runtime and {r['kernels']} kernels "
             f"{r['runtime_code_bytes']:,} B = {r['flash_added_bytes']:,} B",
             f"RAM: arena {r['arena_bytes']:,} B ({r['arena_used_bytes']:,} B needed on {r['arena_measured_on']}) + "
             f"interpreter, resolver, buffers = {r['ram_added_bytes']:,} B"]
    for key, label in (("flash", "Flash"), ("ram", "RAM")):
        x = r[key]
        status = budget_status(x)
        lines.append(f"{label}: {x['total']:,} of {x['limit']:,} B ({x['percent']}%) with core margin -> {status}")
    return "\n".join(lines + [f"note: {n}" for n in r["notes"]] + [""])
