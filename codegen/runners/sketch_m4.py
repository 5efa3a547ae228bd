"""Runs a sketch's backend-neutral model API (src/model.h: TVMInitialize, TVMExecute) on the emulated Cortex-M4F,
for every backend whose model is more than the MLF's C (TFLM, TinyMaix): the harness of codegen/runners/simulate.py
(sketch_api=True) + the sketch's images.c + the backend's own compiled units and libraries, built for QEMU's
mps2-an386 and run with instruction counting. What a backend then makes of the printed scores (byte-exact with
tf.lite, or a reported difference) is its own.
"""
import os
import re

from . import qemu
from ..errors import PipelineError
from ..proc import run as _run_process
from ..protocol import parse_results
from .simulate import _load_json, harness_source, write_pgmspace_stub


def _run(cmd, what):
    proc = _run_process(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise qemu.QemuError(f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def c_flags(src_dir, stub_dir):
    """The harness's and the images' compile flags (Cortex-M4F hard-float, -O2, sections for --gc-sections)."""
    return [*qemu.ARCH_FLAGS, "-O2", "-ffunction-sections", "-fdata-sections", "-I", qemu.BAREMETAL_DIR,
            "-I", src_dir, "-I", stub_dir]


def elf_sizes(elf):
    """{"text", "data", "bss"} of an ARM ELF (arm-none-eabi-size, Berkeley format)."""
    proc = _run(["arm-none-eabi-size", elf], f"measuring {elf}")
    text, data, bss = (int(x) for x in proc.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def run_sketch_api(sketch_dir, images_json, *, work_dir, model_units, linker=qemu.CC, libs=(),
                   harness="harness/m4_main.c.j2", timeout_s=300, board=None, exit_hint=""):
    """Builds and runs the sketch's model under QEMU; returns {"elf", "printed" ([hostcheck.Result]), "region",
    "cost" (qemu.per_inference), "stdout", "sizes", "images"}.

    `model_units(src_dir, stub_dir)` -> [(compile command without -c/-o, source, what)]: the backend's sources
    (its model files, its runtime), each compiled to <work_dir>/<file name>.o; `linker` links everything with
    `libs`; `harness`: the harness template (one extending harness/m4_main.c.j2 can print a measured figure after
    the last input, e.g. TFLM's arena).
    `board` gives the clock and flash wait states of the cycle estimate."""
    work_dir = os.path.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    images_meta = _load_json(images_json, "images sidecar")
    images = images_meta.get("images", [])
    if not images:
        raise PipelineError(f"{images_json} lists no images: embed at least one test input")
    src = os.path.join(os.path.abspath(sketch_dir), "src")
    stub_dir = os.path.join(work_dir, "stub")
    write_pgmspace_stub(stub_dir)
    main_c = os.path.join(work_dir, "sim_main.c")
    with open(main_c, "w") as f:
        f.write(harness_source("default", images, images_meta["output"]["dtype"], labels=images_meta.get("labels"),
                               output=images_meta.get("output"), sketch_api=True, template=harness,
                               outputs=images_meta.get("outputs")))
    objs = []
    for path in (qemu.STARTUP_C, main_c, os.path.join(src, "images.c")):
        obj = os.path.join(work_dir, os.path.basename(path) + ".o")
        _run([qemu.CC, *c_flags(src, stub_dir), "-c", path, "-o", obj], f"compiling {path} for the Cortex-M4")
        objs.append(obj)
    for cmd, path, what in model_units(src, stub_dir):
        obj = os.path.join(work_dir, os.path.basename(path) + ".o")
        _run([*cmd, "-c", path, "-o", obj], what)
        objs.append(obj)
    elf = os.path.join(work_dir, "sim.elf")
    _run([linker, *qemu.ARCH_FLAGS, *objs, *libs, "-T", qemu.LINKER_SCRIPT, *qemu.LINK_FLAGS,
          f"-Wl,-Map={elf}.map", "-lm", "-o", elf], f"linking the firmware {elf} for the Cortex-M4")
    board = board or {}
    ws = int(board.get("flash_wait_states", 0))
    res = qemu.run_firmware(elf, timeout_s=timeout_s, count_instructions=True, flash_wait_states=ws)
    if res["exit_code"] != 0:
        raise qemu.QemuError(f"firmware {elf} exited with code {res['exit_code']} under QEMU{exit_hint}; "
                             f"output: {res['stdout'][-500:]!r}")
    printed = parse_results(res["stdout"])
    region = res["region"]
    if region is None or region["count"] != len(images):
        raise qemu.QemuError(f"firmware {elf} completed {0 if region is None else region['count']} "
                             f"instruction-count region(s) for {len(images)} input(s)")
    return {"elf": elf, "printed": printed, "region": region, "stdout": res["stdout"], "images": images,
            "cost": qemu.per_inference(region, clock_hz=board.get("clock_hz"), flash_wait_states=ws),
            "sizes": elf_sizes(elf)}


def printed_value(stdout, name):
    """An int the firmware printed as `name=<n>` on a line of its own (its harness's), or None."""
    m = re.search(rf"^{re.escape(name)}=(\d+)", stdout, re.M)
    return int(m.group(1)) if m else None
