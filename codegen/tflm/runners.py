"""Runs the TFLM backend's generated sources for real: the arena measurement (host), the host check and the
Cortex-M4 simulation, each linked against the TFLM static library built once per tree (library.py)."""
import json
import os
import re
import subprocess
import tempfile

from .. import proc as external
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
    from ..runners.simulate import _load_json
    from ..runners.sketch_m4 import printed_value, run_sketch_api
    from .yardstick import describe, judge

    root = library.check_tree(tflm_dir)
    lib = library.build_library(root, "cortex-m4", ops=model.library_ops(tflite_path, root), cache_dir=cache_dir)
    expected = _load_json(expected_json, "expected scores")
    cxx = library.TOOLCHAINS["cortex-m4"]["cxx"]

    def units(src, stub_dir):
        return [([cxx, *_cxx_flags(root, "cortex-m4"), "-I", src], os.path.join(src, name),
                 f"compiling {name} against TFLM for the Cortex-M4") for name in ("model.cpp", "model_data.cpp")]

    run = run_sketch_api(sketch_dir, images_json, work_dir=work_dir, model_units=units, linker=cxx, libs=[lib],
                         harness="harness/m4_tflm_main.c.j2",
                         timeout_s=timeout_s, board=board,
                         exit_hint=" (2: TVMExecute failed, e.g. the arena is too small)")
    printed = run["printed"]
    verdict = judge([r.scores for r in printed], expected, "on the Cortex-M4")
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
        "inferences": run["region"]["count"],
        **run["cost"],
        "arena_used_bytes_m4": printed_value(run["stdout"], "arena_used_bytes"),
        "firmware_bytes": run["sizes"],
        "output": run["stdout"],
    }
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result


def elf_sizes(elf):
    """{"text", "data", "bss"} of an ARM ELF (arm-none-eabi-size, Berkeley format)."""
    from ..runners.sketch_m4 import elf_sizes as sizes

    return sizes(elf)
