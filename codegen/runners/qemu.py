"""Runs generated C on an emulated Cortex-M4F (QEMU's mps2-an386 board) and counts executed instructions.

Firmware is built with arm-none-eabi-gcc against the startup code, linker script and fault handler in
codegen/runners/baremetal/ (FPU enabled before main, printf/exit over semihosting via newlib's rdimon, every fault ends
the emulation with a message and exit code instead of spinning). Instructions are counted by a small TCG plugin
(codegen/runners/baremetal/insn_count_plugin.c) that adds one per executed guest instruction; without interrupts or
timers the count is deterministic, so it serves as a reproducible cost measure. The same plugin estimates Cortex-M4
cycles from the Technical Reference Manual's instruction timings (loads/stores, LDM/STM, MAC, divides, taken and
not-taken branches, VFP; a board's flash wait states per taken branch): an estimate, documented in the plugin.

Two ways to isolate the cost of the workload from startup and printing:
  * region markers: firmware calls insn_region_begin() / insn_region_end() (baremetal.h) around the work and the
    plugin sums the instructions executed between them (run_firmware(...)["region"], count_region());
  * differencing: instructions_per_call() builds the firmware with -DITERATIONS=0 and -DITERATIONS=N and divides
    the difference by N.
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from .. import proc as external
from .. import boards
from ..errors import PipelineError

BAREMETAL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "baremetal")
STARTUP_C = os.path.join(BAREMETAL_DIR, "startup.c")
LINKER_SCRIPT = os.path.join(BAREMETAL_DIR, "mps2_an386.ld")
PLUGIN_SRC = os.path.join(BAREMETAL_DIR, "insn_count_plugin.c")

CC = "arm-none-eabi-gcc"
NM = "arm-none-eabi-nm"
QEMU = "qemu-system-arm"
HOST_CC = "gcc"
# The emulated board (boards.json "emulators"): its QEMU machine, its CPU and that CPU's gcc flags.
EMULATOR = boards.emulator("qemu-mps2-an386")
MACHINE = EMULATOR.machine
CPU = EMULATOR.cpu
ARCH_FLAGS = tuple(boards.cpu(CPU).gcc_flags)
LINK_FLAGS = ("--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles", "-Wl,--gc-sections")

FAULT_EXIT_CODE = 0xFA  # BAREMETAL_FAULT_EXIT_CODE in baremetal.h
FAULT_MARKER = "*** FAULT"
REGION_BEGIN = "insn_region_begin"
REGION_END = "insn_region_end"

INSTALL_HINT = ("install them: `sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm` "
                "(Debian/Ubuntu; `./dev setup` in a checkout installs every toolchain the project uses)")


class QemuError(PipelineError):
    """Building or running firmware for the emulated Cortex-M4F failed."""


def toolchain_available():
    """True when arm-none-eabi-gcc and qemu-system-arm are on PATH."""
    return shutil.which(CC) is not None and shutil.which(QEMU) is not None


def _require(tool, hint):
    if shutil.which(tool) is None:
        raise QemuError(f"{tool} not found on PATH: {hint}")


def _tail(text, limit=3000):
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def build_plugin(out_so):
    """Compiles the instruction-counting QEMU plugin with the host gcc; returns the path of the shared object."""
    _require(HOST_CC, "install gcc (the host compiler builds the QEMU instruction-count plugin)")
    out_so = os.path.abspath(out_so)
    os.makedirs(os.path.dirname(out_so), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(out_so))
    os.close(fd)
    try:
        proc = external.run([HOST_CC, "-O2", "-Wall", "-shared", "-fPIC", PLUGIN_SRC, "-o", tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise QemuError(f"compiling the QEMU plugin {PLUGIN_SRC} with {HOST_CC} failed:\n"
                            f"{_tail(proc.stderr)}\nCheck that host gcc can build shared objects (-shared -fPIC).")
        os.replace(tmp, out_so)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_so


def _default_plugin():
    """The plugin built once per source version into the temp directory."""
    with open(PLUGIN_SRC, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"codegen-insn-count-{getattr(os, 'getuid', lambda: 0)()}-{digest}.so")
    if not os.path.exists(path):
        build_plugin(path)
    return path


def build_firmware(c_sources, include_dirs, main_c, out_elf, *, cflags=("-O2",)):
    """Compiles and links main_c + c_sources with the mps2-an386 startup code into out_elf; returns its path.

    All sources go through one arm-none-eabi-gcc command (Cortex-M4F hard-float, newlib nano, semihosting I/O,
    libm), so `cflags` may also hold link options such as "-u _printf_float" or defines such as
    "-DITERATIONS=3". codegen/runners/baremetal is on the include path (baremetal.h: region markers, baremetal_exit).
    """
    _require(CC, INSTALL_HINT)
    out_elf = os.path.abspath(out_elf)
    os.makedirs(os.path.dirname(out_elf), exist_ok=True)
    sources = [STARTUP_C, main_c, *c_sources]
    for src in sources:
        if not os.path.isfile(src):
            raise QemuError(f"firmware source {src} does not exist: generate it first or fix the path")
    cmd = [CC, *ARCH_FLAGS, *cflags, "-ffunction-sections", "-fdata-sections", "-I", BAREMETAL_DIR]
    for d in include_dirs:
        cmd += ["-I", d]
    cmd += [*sources, "-T", LINKER_SCRIPT, *LINK_FLAGS, f"-Wl,-Map={out_elf}.map", "-lm", "-o", out_elf]
    proc = external.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise QemuError(f"building firmware {out_elf} with {CC} failed:\n{_tail(proc.stderr)}\n"
                        f"Fix the C sources or flags above (command: {' '.join(cmd)}).")
    return out_elf


def _region_addresses(elf):
    """Addresses of insn_region_begin/insn_region_end in elf, or None when the firmware lacks them."""
    if shutil.which(NM) is None:
        return None
    proc = external.run([NM, elf], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    found = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in (REGION_BEGIN, REGION_END):
            found[parts[2]] = int(parts[0], 16) & ~1  # the Thumb bit is not part of the instruction address
    if len(found) != 2:
        return None
    return found[REGION_BEGIN], found[REGION_END]


def _parse_plugin_log(text, elf):
    """(instructions, estimated cycles, region or None, [per-region {"insn", "cycles"}], the whole run's cycles
    beyond one per instruction by kind {"loadstore", "branch", "divide", "fp", "other"}) from the plugin's log."""
    m = re.search(r"^insn_count total=(\d+)$", text, re.M)
    c = re.search(r"^cycle_estimate total=(\d+) taken_branches=(\d+) not_taken_branches=(\d+)$", text, re.M)
    if m is None or c is None:
        raise QemuError(f"the instruction-count plugin reported nothing for {elf} (QEMU log: {_tail(text, 500)!r}); "
                        "check that this QEMU supports TCG plugins (-plugin) and rebuild the plugin")
    region = None
    r = re.search(r"^insn_count regions=(\d+) region_total=(\d+) region_first=(\d+) region_min=(\d+) "
                  r"region_max=(\d+)$", text, re.M)
    rc = re.search(r"^cycle_estimate region_total=(\d+) region_first=(\d+) region_min=(\d+) region_max=(\d+)$",
                   text, re.M)
    if r is not None:
        count, total, first, lo, hi = (int(x) for x in r.groups())
        region = {"count": count, "total": total, "first": first, "min": lo, "max": hi}
        if rc is not None:
            region["cycles"] = dict(zip(("total", "first", "min", "max"), (int(x) for x in rc.groups())))
    each = [{"insn": int(n), "cycles": int(cy)}
            for _, n, cy in re.findall(r"^insn_region (\d+) insn=(\d+) cycles=(\d+)$", text, re.M)]
    b = re.search(r"^cycle_breakdown beyond_one_per_instruction (.*)$", text, re.M)
    breakdown = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", b.group(1))} if b else None
    return int(m.group(1)), int(c.group(1)), region, each, breakdown


def run_firmware(elf, *, timeout_s=60, count_instructions=False, plugin_so=None, flash_wait_states=0,
                 each_region=False):
    """Runs elf on qemu-system-arm -M mps2-an386 with semihosting.

    Returns {"exit_code", "stdout", "stderr", "instructions", "cycles", "region", "regions"}: "stdout" is what the
    firmware printed
    (newlib stdio over semihosting), "stderr" QEMU's messages and the semihosting console (SYS_WRITE0);
    "instructions" is the total number of executed guest instructions (None unless count_instructions);
    "region" is None or, when counting and the firmware calls the baremetal.h markers (uncalled markers are
    dropped by --gc-sections), {"count", "total", "first", "min", "max"} over the completed
    insn_region_begin()..insn_region_end() regions, with "cycles": {"total", "first", "min", "max"} estimated the
    same way. "cycles" is the whole run's estimated Cortex-M4 cycles (the plugin's TRM-based model, with
    `flash_wait_states` per taken branch in flash); "regions" lists every completed region's {"insn", "cycles"}
    in order when `each_region` (else []); "cycle_breakdown" the whole run's cycles beyond one per instruction by
    kind (loadstore, branch, divide, fp, other).
    A fault or a run longer than timeout_s raises QemuError.
    """
    _require(QEMU, INSTALL_HINT)
    elf = os.path.abspath(elf)
    if not os.path.isfile(elf):
        raise QemuError(f"firmware {elf} does not exist: build it first")
    cmd = [QEMU, "-M", MACHINE, "-nographic", "-semihosting", "-kernel", elf]
    with tempfile.TemporaryDirectory(prefix="qemu-run-") as tmp:
        log = os.path.join(tmp, "plugin.log")
        if count_instructions:
            plugin = os.path.abspath(plugin_so) if plugin_so else _default_plugin()
            arg = plugin
            addrs = _region_addresses(elf)
            if addrs is not None:
                arg += ",begin=0x%x,end=0x%x" % addrs
                if each_region:
                    arg += ",each=1"
            arg += ",ws=%d" % int(flash_wait_states)
            cmd += ["-plugin", arg, "-d", "plugin", "-D", log]
        try:
            proc = external.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace")
            raise QemuError(f"firmware {elf} did not finish within {timeout_s} s under QEMU {MACHINE} (endless loop "
                            f"or waiting for input?); make main() return or call exit(), or raise the timeout. "
                            f"Output so far: {_tail(out, 500)!r}") from None
        stdout = proc.stdout.decode("utf-8", "replace")
        stderr = proc.stderr.decode("utf-8", "replace")
        # The fault handler reports through SYS_WRITE0, i.e. QEMU's semihosting console (stderr by default).
        console = stderr + stdout
        if proc.returncode == FAULT_EXIT_CODE and FAULT_MARKER in console:
            fault = console[console.index(FAULT_MARKER):].strip().splitlines()[0]
            raise QemuError(f"firmware {elf} crashed under QEMU {MACHINE}: {fault}. Look up pc with "
                            f"arm-none-eabi-addr2line -e {elf} <pc> (bfar/mmfar give a bad data address).")
        qemu_errors = [line for line in stderr.splitlines()
                       if line.startswith(QEMU + ":") and "warning:" not in line]
        if proc.returncode != 0 and qemu_errors:
            raise QemuError(f"QEMU could not run firmware {elf}: {_tail(chr(10).join(qemu_errors), 1000)}")
        instructions = cycles = region = breakdown = None
        regions = []
        if count_instructions:
            text = ""
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    text = f.read()
            instructions, cycles, region, regions, breakdown = _parse_plugin_log(text, elf)
    return {"exit_code": proc.returncode, "stdout": stdout, "stderr": stderr, "instructions": instructions,
            "cycles": cycles, "region": region, "regions": regions, "cycle_breakdown": breakdown}


CYCLE_MODEL = ("estimate: each executed instruction charged the Cortex-M4 TRM's cycles (loads/stores 2, pipelined 1; "
               "LDM/STM 1+N; MAC 1; divide 12; taken branch 1+2, not taken 1; VDIV/VSQRT 14), plus the board's "
               "flash wait states per taken branch; no bus, memory or dependency stalls "
               "(codegen/runners/baremetal/insn_count_plugin.c)")


def _mean(total, count):
    return total // count if total % count == 0 else total / count


def per_inference(region, *, clock_hz=None, flash_wait_states=0):
    """simulate.json's cost fields from a region of one inference per marker pair: instructions and estimated
    cycles per inference (mean, min, max) and, at `clock_hz`, the estimated milliseconds."""
    count = region["count"]
    cycles = region["cycles"]
    fields = {
        "instructions_per_inference": _mean(region["total"], count),
        "instructions_min": region["min"],
        "instructions_max": region["max"],
        "cycles_per_inference_estimate": _mean(cycles["total"], count),
        "cycles_min_estimate": cycles["min"],
        "cycles_max_estimate": cycles["max"],
        "flash_wait_states": int(flash_wait_states),
        "cycle_model": CYCLE_MODEL,
    }
    if clock_hz:
        fields["clock_hz"] = int(clock_hz)
        fields["ms_per_inference_estimate"] = round(1000.0 * fields["cycles_per_inference_estimate"] / clock_hz, 4)
    return fields


def count_region(elf, *, timeout_s=60, plugin_so=None, flash_wait_states=0, each_region=False):
    """Instructions executed between the insn_region_begin()/insn_region_end() markers of elf.

    Returns {"count", "total", "first", "min", "max", "cycles", "instructions", "exit_code", "stdout",
    "regions"}, where "total" sums all completed regions, "cycles" holds the same four figures in estimated
    cycles, "instructions" is the whole run and "regions" every region when `each_region`.
    Raises QemuError when the firmware has no markers,
    completed no region, or exited with a non-zero code.
    """
    if _region_addresses(elf) is None:
        raise QemuError(f"firmware {elf} has no {REGION_BEGIN}/{REGION_END} symbols: include baremetal.h and call "
                        "them around the code to measure")
    res = run_firmware(elf, timeout_s=timeout_s, count_instructions=True, plugin_so=plugin_so,
                       flash_wait_states=flash_wait_states, each_region=each_region)
    if res["exit_code"] != 0:
        raise QemuError(f"firmware {elf} exited with code {res['exit_code']} while counting instructions; "
                        f"output: {_tail(res['stdout'], 500)!r}")
    region = res["region"]
    if region is None or region["count"] == 0:
        raise QemuError(f"firmware {elf} never completed an {REGION_BEGIN}()..{REGION_END}() region; "
                        "call both around the workload")
    return {**region, "instructions": res["instructions"], "exit_code": res["exit_code"], "stdout": res["stdout"],
            "regions": res["regions"]}


def instructions_per_call(build_fn, iterations=10, *, base_iterations=0, timeout_s=60, plugin_so=None):
    """Instructions per workload call by differencing two builds.

    build_fn(n) must build firmware that runs the workload n times (typically via cflags "-DITERATIONS=%d" % n)
    and return the ELF path. Runs build_fn(base_iterations) and build_fn(base_iterations + iterations) and returns
    {"per_call", "base", "total", "iterations"}: base/total are the whole-run counts, per_call =
    (total - base) / iterations (an int when exact).

    With the default base_iterations=0 everything that depends on whether the workload ran at all lands in
    per_call divided by `iterations`, e.g. printf formatting real outputs instead of zeros (about a hundred
    instructions for ten bytes); base_iterations=1 removes that bias.
    """
    if iterations < 1 or base_iterations < 0:
        raise QemuError(f"instructions_per_call needs iterations >= 1 and base_iterations >= 0, "
                        f"got {iterations} and {base_iterations}")
    counts = []
    for n in (base_iterations, base_iterations + iterations):
        elf = build_fn(n)
        res = run_firmware(elf, timeout_s=timeout_s, count_instructions=True, plugin_so=plugin_so)
        if res["exit_code"] != 0:
            raise QemuError(f"firmware {elf} (ITERATIONS={n}) exited with code {res['exit_code']}; "
                            f"output: {_tail(res['stdout'], 500)!r}")
        counts.append(res["instructions"])
    base, total = counts
    diff = total - base
    per_call = diff // iterations if diff % iterations == 0 else diff / iterations
    return {"per_call": per_call, "base": base, "total": total, "iterations": iterations}
