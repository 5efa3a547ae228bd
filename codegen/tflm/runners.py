"""Runs the TFLM backend's generated sources for real: the arena measurement (host), the host check and the
Cortex-M4 simulation, each linked against the TFLM static library built once per tree (library.py)."""
import json
import os
import re
import subprocess
import tempfile

from .. import proc as external
from ..device import boards
from ..errors import PipelineError
from ..fsutil import atomic_open, write_if_changed
from . import library, model
from .library import TflmError

NATIVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native")
ARENA_PROBE = os.path.join(NATIVE_DIR, "arena_probe.cc")
# The probe's arena: big enough for any model a microcontroller could hold; the measured use replaces it.
PROBE_ARENA_BYTES = 64 * 1024 * 1024
M4_PROBE_ARENA_BYTES = 2 * 1024 * 1024       # of the emulated board's 4 MiB RAM
RUN_TIMEOUT_S = 120


def _run(cmd, what, cwd=None):
    proc = external.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise TflmError(f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def write_sources(files, directory):
    for rel, data in files.items():
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_if_changed(path, data)


def _cxx_flags(root, toolchain):
    return [*library.compile_flags(root, toolchain), *library.CXX_ONLY]


def measure_arena(tflite_path, tflm_dir, out_json, *, cache_dir=None):
    """Finds the smallest tensor arena the model runs with (arena_probe.cc) and writes model.arena_record(...)
    to out_json. Measured where the tree's kernels belong: a CMSIS-NN tree on the emulated Cortex-M4F (32-bit, the
    exact figure for the boards), any other tree on the host (64-bit pointers: an upper bound for 32-bit boards)."""
    root = library.check_tree(tflm_dir)
    on_m4 = library.has_cmsis_nn(root)
    toolchain = "cortex-m4" if on_m4 else "host"
    probe_bytes = M4_PROBE_ARENA_BYTES if on_m4 else PROBE_ARENA_BYTES
    lib = library.build_library(root, toolchain, ops=model.library_ops(tflite_path, root), cache_dir=cache_dir)
    files, ctx = model.model_sources(tflite_path, root, model.arena_record(probe_bytes, "probe"))
    tc = library.TOOLCHAINS[toolchain]
    with tempfile.TemporaryDirectory(prefix="tflm-arena-") as work:
        write_sources(files, work)
        src = os.path.join(work, "src")
        objs = []
        for path in (os.path.join(src, "model.cpp"), os.path.join(src, "model_data.cpp"), ARENA_PROBE):
            obj = os.path.join(work, os.path.basename(path) + ".o")
            _run([tc["cxx"], *_cxx_flags(root, toolchain), f"-DMODEL_ARENA_SIZE={probe_bytes}",
                  "-DMODEL_ARENA_PROBE", f"-I{src}", "-c", path, "-o", obj],
                 f"compiling {os.path.basename(path)} for the arena measurement")
            objs.append(obj)
        if on_m4:
            from ..runners import qemu

            startup = os.path.join(work, "startup.o")
            _run([tc["cc"], *qemu.ARCH_FLAGS, "-O2", "-I", qemu.BAREMETAL_DIR, "-c", qemu.STARTUP_C, "-o", startup],
                 "compiling the M4 start-up code")
            elf = os.path.join(work, "arena_probe.elf")
            _run([tc["cxx"], *qemu.ARCH_FLAGS, startup, *objs, lib, "-T", qemu.LINKER_SCRIPT, *qemu.LINK_FLAGS,
                  "-lm", "-o", elf], "linking the arena probe for the Cortex-M4")
            res = qemu.run_firmware(elf, timeout_s=RUN_TIMEOUT_S)
            returncode, stdout = res["exit_code"], res["stdout"]
            where = "the emulated Cortex-M4F (QEMU mps2-an386, 32-bit pointers)"
        else:
            exe = os.path.join(work, "arena_probe")
            _run([tc["cxx"], *objs, lib, "-o", exe, "-lm"], "linking the arena probe")
            try:
                proc = external.run([exe], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise TflmError(f"the TFLM arena probe for {tflite_path} did not finish in {RUN_TIMEOUT_S} s") \
                    from None
            returncode, stdout = proc.returncode, proc.stdout
            where = "host x86-64 (64-bit pointers: an upper bound for 32-bit boards)"
    m = re.search(r"^arena_min_bytes=(\d+)", stdout, re.M)
    if returncode != 0 or m is None:
        raise TflmError(f"{tflite_path}: TensorFlow Lite Micro could not run the model with a "
                        f"{probe_bytes // (1024 * 1024)} MiB arena on {where} (probe exit {returncode}, output "
                        f"{stdout.strip()[-300:]!r}); check that every op and type of the model is supported by "
                        "TFLM's kernels, and that the model fits a microcontroller")
    record = model.arena_record(int(m.group(1)), where)
    record["arena_used_bytes"] = int(re.search(r"^arena_used_bytes=(\d+)", stdout, re.M).group(1))
    record.update(ops=ctx["ops"], library=lib, toolchain=toolchain)
    with atomic_open(out_json) as f:
        json.dump(record, f, indent=1)
    return record


def host_build_options(tflm_dir, tflite_path, *, cache_dir=None):
    """build_host_binary options that compile the sketch against TFLM (flags, C++17, the host library)."""
    root = library.check_tree(tflm_dir)
    lib = library.build_library(root, "host", ops=model.library_ops(tflite_path, root), cache_dir=cache_dir)
    # The sketch's arena is sized for the board (measured on the emulated M4 with the CMSIS-NN tree): x86-64's
    # 8-byte pointers need more, and AllocateTensors failed on the host. The host check checks scores, not the
    # arena: it gets the probe's.
    return {"extra_flags": [*(f for f in library.compile_flags(root, "host") if f != "-O1"),
                            f"-DMODEL_ARENA_SIZE={PROBE_ARENA_BYTES}"],
            "extra_cxxflags": ["-std=gnu++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"],
            "libs": [lib]}


def simulate_cortex_m4(sketch_dir, tflite_path, images_json, expected_json, out_json, tflm_dir, *, work_dir,
                       cache_dir=None, timeout_s=300, board=None):
    """The sketch's model sources + images + the simulate harness (calling TVMInitialize/TVMExecute) built for
    the mps2-an386 Cortex-M4F against the TFLM library of tflm_dir (CMSIS-NN kernels when the tree has them),
    run under QEMU with instruction counting and the cycle estimate (`board`: clock, flash_wait_states); scores
    checked against expected_json byte for byte."""
    from ..runners import qemu
    from ..runners.hostcheck import parse_results
    from ..runners.simulate import _PGMSPACE_STUB, _load_json, harness_source
    from .yardstick import describe, judge

    root = library.check_tree(tflm_dir)
    lib = library.build_library(root, "cortex-m4", ops=model.library_ops(tflite_path, root), cache_dir=cache_dir)
    work_dir = os.path.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    images_meta = _load_json(images_json, "images sidecar")
    expected = _load_json(expected_json, "expected scores")
    images = images_meta.get("images", [])
    if not images:
        raise PipelineError(f"{images_json} lists no images: embed at least one test input")
    src = os.path.join(os.path.abspath(sketch_dir), "src")
    stub_dir = os.path.join(work_dir, "stub")
    os.makedirs(os.path.join(stub_dir, "avr"), exist_ok=True)
    with open(os.path.join(stub_dir, "avr", "pgmspace.h"), "w") as f:
        f.write(_PGMSPACE_STUB)
    main_c = os.path.join(work_dir, "sim_main.c")
    with open(main_c, "w") as f:
        f.write(harness_source("default", images, images_meta["output"]["dtype"], labels=images_meta.get("labels"),
                               output=images_meta.get("output"), sketch_api=True).replace(
            "  return 0;\n}", '  printf("arena_used_bytes=%lu\\n", (unsigned long)ModelArenaUsedBytes());\n'
                              "  return 0;\n}"))
    tc = library.TOOLCHAINS["cortex-m4"]
    c_flags = [*qemu.ARCH_FLAGS, "-O2", "-ffunction-sections", "-fdata-sections", "-I", qemu.BAREMETAL_DIR,
               "-I", src, "-I", stub_dir]
    objs = []
    for path in (qemu.STARTUP_C, main_c, os.path.join(src, "images.c")):
        obj = os.path.join(work_dir, os.path.basename(path) + ".o")
        _run([tc["cc"], *c_flags, "-c", path, "-o", obj], f"compiling {path} for the Cortex-M4")
        objs.append(obj)
    for name in ("model.cpp", "model_data.cpp"):
        obj = os.path.join(work_dir, name + ".o")
        _run([tc["cxx"], *_cxx_flags(root, "cortex-m4"), "-I", src, "-c", os.path.join(src, name), "-o", obj],
             f"compiling {name} against TFLM for the Cortex-M4")
        objs.append(obj)
    elf = os.path.join(work_dir, "sim.elf")
    _run([tc["cxx"], *qemu.ARCH_FLAGS, *objs, lib, "-T", qemu.LINKER_SCRIPT, *qemu.LINK_FLAGS,
          f"-Wl,-Map={elf}.map", "-lm", "-o", elf], "linking the TFLM firmware for the Cortex-M4")
    board = boards.board(board or {})
    ws = int(board.flash_wait_states or 0)
    res = qemu.run_firmware(elf, timeout_s=timeout_s, count_instructions=True, flash_wait_states=ws)
    if res["exit_code"] != 0:
        raise qemu.QemuError(f"firmware {elf} exited with code {res['exit_code']} under QEMU (2: TVMExecute "
                             f"failed, e.g. the arena is too small); output: {res['stdout'][-500:]!r}")
    printed = parse_results(res["stdout"])
    verdict = judge([r.scores for r in printed], expected, "on the Cortex-M4")
    region = res["region"]
    if region is None or region["count"] != len(images):
        raise qemu.QemuError(f"firmware {elf} completed {0 if region is None else region['count']} "
                             f"instruction-count region(s) for {len(images)} input(s)")
    used = int(re.search(r"^arena_used_bytes=(\d+)", res["stdout"], re.M).group(1))
    sizes = elf_sizes(elf)
    result = {
        "backend": "tflm",
        "emulator": f"qemu-system-arm -M {qemu.MACHINE}",
        "cpu": qemu.CPU,
        "kernels": "cmsis-nn" if library.has_cmsis_nn(root) else "reference",
        "tflm_dir": root,
        "library": lib,
        "exact": verdict["resolver"] is not None,
        "matches_resolver": verdict["resolver"],
        "max_diff": verdict["max_diff"],
        "verdict": describe(verdict),
        "images": [{"name": exp["name"], "title": exp["title"], "scores": r.scores, "tflite": exp["scores"]}
                   for r, exp in zip(printed, expected["images"])],
        "inferences": region["count"],
        **qemu.per_inference(region, clock_hz=board.clock_hz, flash_wait_states=ws),
        "arena_used_bytes_m4": used,
        "firmware_bytes": sizes,
        "output": res["stdout"],
    }
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result


def elf_sizes(elf):
    """{"text", "data", "bss"} of an ARM ELF (arm-none-eabi-size, Berkeley format)."""
    proc = _run(["arm-none-eabi-size", elf], f"measuring {elf}")
    text, data, bss = (int(x) for x in proc.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
