"""A second compile backend for AVR boards: a real Arduino build with Debian's arduino-builder, run under simavr.

`compile_sketch` builds a sketch folder (`<dir>/<dir name>.ino` plus `src/`, compiled recursively) with
arduino-builder 1.3.x and the Debian AVR core, and measures the ELF with avr-size. Flags are passed
identically every time, so reusing one build path keeps arduino-builder's cache (core.a, object files) valid.

`run_simavr` runs the ELF in simavr and returns what the sketch printed on Serial (USART0). simavr prints that
output on stderr, one green line per '\\n', with every byte below ' ' shown as '.', and it cuts lines at 256
characters; the parser here undoes all of that, assuming Arduino's `println` line endings ("\\r\\n").
A sketch ends its run cleanly with `Serial.flush(); cli(); sleep_enable(); sleep_cpu();` (simavr quits when the
CPU sleeps with interrupts off); otherwise pass `until=` to stop once the expected output has arrived.
"""
import os
import re
import selectors
import shutil
import subprocess
import time

from .. import proc as external
from ..errors import PipelineError

HARDWARE_DIRS = ("/usr/share/arduino/hardware", "/usr/share/arduino-builder")
TOOLS_DIR = "/usr/bin"
IDE_VERSION = "10819"
# Debian's arduino-core-avr 1.8.7 uses DECIMAL_DIG in WString.cpp, which gcc-avr 5.4's <float.h> lacks.
CORE_CXX_FLAGS = "-DDECIMAL_DIG=__DECIMAL_DIG__"
COMPILE_TIMEOUT_S = 900

REQUIRED_TOOLS = ("arduino-builder", "avr-gcc", "avr-size", "simavr")

_SOURCE_EXTS = (".c", ".cpp", ".cc", ".cxx", ".h", ".hh", ".hpp", ".hxx", ".S", ".s", ".ino", ".pde", ".tpp",
                ".ipp")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SERIAL_MARK = "\x1b[32m"       # simavr's FONT_GREEN, put before every line of UART output
_SIMAVR_CHUNK = 256             # simavr flushes its UART line buffer at 256 characters even without '\n'
# With -v simavr logs "avr_sadly_crashed" on a bad opcode or PC, then waits for gdb on port 1234 (or, when that
# port is taken, exits with status 0 as if the run had ended normally).
_CRASH_MARKS = ("avr_sadly_crashed", "avr_gdb_init listening")


class AvrError(PipelineError):
    """The AVR toolchain or simulator failed; the message carries the tool's own error text."""


def missing_tools():
    """The tools (and the Debian core's hardware folder) that compile_sketch/run_simavr need but cannot find."""
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if not os.path.isdir(os.path.join(HARDWARE_DIRS[0], "arduino", "avr")):
        missing.append(f"{HARDWARE_DIRS[0]}/arduino/avr (Debian package arduino-core-avr)")
    return missing


def toolchain_available():
    """True when arduino-builder, avr-gcc, avr-size, simavr and the Debian AVR core are all installed."""
    return not missing_tools()


def _require(tools, what):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise AvrError(f"{what} needs {', '.join(missing)}, not found on PATH: install them: `sudo apt-get install "
                       f"arduino-builder arduino-core-avr gcc-avr avr-libc arduino-ctags simavr` (Debian/Ubuntu; "
                       f"`./dev setup` in a checkout installs every toolchain the project uses)")


# ---------------------------------------------------------------------------------------------------- compile

def _prefs(extra_prefs):
    """-prefs arguments: the DECIMAL_DIG fix merged with any compiler.cpp.extra_flags the caller adds."""
    cpp_flags = [CORE_CXX_FLAGS]
    others = []
    for pref in extra_prefs:
        key, sep, value = str(pref).partition("=")
        if not sep:
            raise AvrError(f"arduino-builder preference {pref!r} is not of the form key=value")
        if key.strip() == "compiler.cpp.extra_flags":
            cpp_flags.append(value.strip())
        else:
            others.append(f"{key.strip()}={value}")
    args = ["-prefs", "compiler.cpp.extra_flags=" + " ".join(f for f in cpp_flags if f)]
    for pref in others:
        args += ["-prefs", pref]
    return args


def _prune_stale_copies(sketch_dir, build_path, name):
    """Drop files arduino-builder copied into <build>/sketch from an earlier version of the sketch.

    arduino-builder copies the sketch's sources into the build path and never removes them, so a file deleted
    from the sketch would otherwise still be compiled and linked.
    """
    copy_root = os.path.join(build_path, "sketch")
    if not os.path.isdir(copy_root):
        return
    keep = {f"{name}.ino.cpp"}
    for root, _dirs, files in os.walk(copy_root):
        for fname in files:
            path = os.path.join(root, fname)
            rel = os.path.relpath(path, copy_root)
            if rel in keep:
                continue
            source_rel = rel
            for suffix in (".o", ".d"):
                if rel.endswith(suffix) and rel[:-len(suffix)].endswith(_SOURCE_EXTS):
                    source_rel = rel[:-len(suffix)]
            if source_rel in keep or not source_rel.endswith(_SOURCE_EXTS):
                continue
            if not os.path.exists(os.path.join(sketch_dir, source_rel)):
                os.remove(path)


def _compiler_errors(output, build_path, sketch_dir):
    """The diagnostic lines of a failed build, with build-path copies mapped back to the sketch's own files."""
    copy_root = os.path.join(build_path, "sketch") + os.sep
    lines = [line.replace(copy_root, sketch_dir + os.sep).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip() and not re.fullmatch(r"exit status \d+", line.strip())]
    picked = []
    for i, line in enumerate(lines):
        if re.search(r"\berror\b|undefined reference|\bIn function\b|not found", line, re.I):
            picked.append(line)
            # gcc follows an error with the offending source line and a caret
            if re.search(r":\d+:\d+: (fatal )?error:", line):
                picked.extend(lines[i + 1:i + 3])
    picked = picked or lines[-30:]
    seen = []
    for line in picked:
        if line not in seen or not line.strip(" ^~"):
            seen.append(line)
    if len(seen) > 40:
        seen = seen[:40] + [f"... ({len(seen) - 40} more lines)"]
    return "\n".join(seen)


def elf_sizes(elf):
    """(flash_bytes, ram_bytes) of an AVR ELF: text+data and data+bss as avr-size reports them."""
    _require(["avr-size"], "measuring the AVR build")
    proc = external.run(["avr-size", elf], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AvrError(f"avr-size {elf} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    lines = proc.stdout.strip().splitlines()
    try:
        header = lines[0].split()
        values = dict(zip(header, lines[1].split()))
        text, data, bss = (int(values[k]) for k in ("text", "data", "bss"))
    except (IndexError, KeyError, ValueError):
        raise AvrError(f"cannot read the output of avr-size {elf}:\n{proc.stdout}") from None
    return text + data, data + bss


def compile_sketch(sketch_dir, fqbn, build_path, *, extra_prefs=(), libraries=()):
    """Build <sketch_dir>/<name>.ino for `fqbn` into `build_path` with arduino-builder; `libraries`: folders
    holding Arduino libraries (each a sketchbook's libraries/), searched for the sketch's #includes.

    Returns {"elf", "hex", "flash_bytes", "ram_bytes"}; raises AvrError with the compiler's error lines.
    """
    sketch_dir = os.path.abspath(os.fspath(sketch_dir))
    name = os.path.basename(sketch_dir.rstrip(os.sep))
    ino = os.path.join(sketch_dir, f"{name}.ino")
    if not os.path.isfile(ino):
        raise AvrError(f"no sketch to compile: {ino} does not exist (a sketch folder must hold a .ino file "
                       f"named after the folder)")
    _require(["arduino-builder", "avr-gcc", "avr-size"], f"compiling {ino}")
    build_path = os.path.abspath(os.fspath(build_path))
    os.makedirs(build_path, exist_ok=True)
    _prune_stale_copies(sketch_dir, build_path, name)

    cmd = ["arduino-builder", "-compile"]
    for hw in HARDWARE_DIRS:
        cmd += ["-hardware", hw]
    for folder in libraries:
        cmd += ["-libraries", os.path.abspath(os.fspath(folder))]
    cmd += ["-tools", TOOLS_DIR, "-fqbn", fqbn, "-ide-version", IDE_VERSION, "-build-path", build_path,
            *_prefs(extra_prefs), ino]
    try:
        proc = external.run(cmd, capture_output=True, text=True, errors="replace", timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AvrError(f"arduino-builder did not finish compiling {ino} within {COMPILE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        detail = _compiler_errors(proc.stderr + "\n" + proc.stdout, build_path, sketch_dir)
        raise AvrError(f"arduino-builder failed to compile {ino} for {fqbn} (exit {proc.returncode}):\n{detail}")

    elf = os.path.join(build_path, f"{name}.ino.elf")
    hex_path = os.path.join(build_path, f"{name}.ino.hex")
    for path in (elf, hex_path):
        if not os.path.isfile(path):
            raise AvrError(f"arduino-builder reported success for {ino} but did not write {path}:\n"
                           f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
    flash, ram = elf_sizes(elf)
    return {"elf": elf, "hex": hex_path, "flash_bytes": flash, "ram_bytes": ram}


# ---------------------------------------------------------------------------------------------------- simavr

class _SerialParser:
    """Turns simavr's stderr into the sketch's Serial lines, keeping everything else as diagnostics."""

    def __init__(self):
        self.lines = []           # complete Serial lines, plain text
        self.diagnostics = []     # other stderr/stdout lines (errors, crash reports)
        self._partial = ""        # a Serial line simavr split at 256 characters
        self._pending = b""

    def feed(self, data):
        self._pending += data
        *complete, self._pending = self._pending.split(b"\n")
        for raw in complete:
            self._line(raw.decode("utf-8", errors="replace"))

    def finish(self):
        if self._pending:
            self._line(self._pending.decode("utf-8", errors="replace"))
            self._pending = b""
        if self._partial:
            self.lines.append(self._partial)
            self._partial = ""

    def _line(self, raw):
        is_serial = _SERIAL_MARK in raw
        text = _ANSI.sub("", raw)
        if not is_serial:
            if text.strip():
                self.diagnostics.append(text.strip())
            return
        if len(text) >= _SIMAVR_CHUNK and not text.endswith("."):
            self._partial += text     # cut by simavr's buffer, not by a '\n' from the sketch
            return
        text = self._partial + text
        self._partial = ""
        if text.endswith("."):        # the '\n' (simavr shows bytes below ' ' as '.')
            text = text[:-1]
            if text.endswith("."):    # the '\r' of Arduino's println
                text = text[:-1]
        self.lines.append(text)

    def text(self):
        return "".join(line + "\n" for line in self.lines)


def _until_met(until, parser):
    if until is None:
        return False
    if isinstance(until, bool):
        raise TypeError("until must be a callable or a line count")
    if isinstance(until, int):
        return len(parser.lines) >= until
    return bool(until(parser.text()))


def _crashed(stdout_lines, parser):
    return any(mark in line for line in stdout_lines + parser.diagnostics for mark in _CRASH_MARKS)


def run_simavr(elf, mcu, *, freq=16000000, timeout_s=60, until=None):
    """Run `elf` in simavr and return the sketch's Serial output as plain text lines ("line\\n" each).

    `until`: a callable on the text so far, or a number of lines; once it is met simavr is stopped and the text
    returned. Without it the sketch must end the run itself (flush Serial, cli(), sleep). A crash, a timeout,
    or a run that ends before `until` is met raises AvrError with the output seen so far.
    """
    elf = os.path.abspath(os.fspath(elf))
    if until is not None and not callable(until) and (isinstance(until, bool) or not isinstance(until, int)):
        raise TypeError(f"until must be a callable or a line count, not {until!r}")
    if not os.path.isfile(elf):
        raise AvrError(f"cannot simulate {elf}: the file does not exist (compile the sketch first)")
    _require(["simavr"], f"simulating {elf}")
    cmd = ["simavr", "-v", "-m", str(mcu), "-f", str(int(freq)), elf]
    if shutil.which("stdbuf"):
        # simavr's own stdout messages (the crash report) are block-buffered into a pipe: unbuffer them
        cmd = ["stdbuf", "-o0", *cmd]
    parser = _SerialParser()
    stdout_lines = []
    proc = external.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    stdout_buf = b""
    deadline = time.monotonic() + timeout_s
    outcome = None
    try:
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = "timeout"
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                data = os.read(key.fileobj.fileno(), 65536)
                if not data:
                    sel.unregister(key.fileobj)
                elif key.data == "err":
                    parser.feed(data)
                else:
                    stdout_buf += data
                    *complete, stdout_buf = stdout_buf.split(b"\n")
                    stdout_lines.extend(c.decode("utf-8", errors="replace") for c in complete)
            if _until_met(until, parser):
                outcome = "until"
                break
            if _crashed(stdout_lines, parser):
                outcome = "crash"     # simavr waits for a debugger after a crash: do not wait for the timeout
                break
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    if outcome is None:               # simavr exited by itself: take any last unterminated line too
        parser.finish()
        if stdout_buf:
            stdout_lines.append(stdout_buf.decode("utf-8", errors="replace"))
        if _crashed(stdout_lines, parser):
            outcome = "crash"
        elif _until_met(until, parser):
            outcome = "until"

    text = parser.text()
    if outcome == "until":
        return text
    if outcome is None and proc.returncode == 0 and until is None:
        return text

    notes = [line for line in stdout_lines if not line.startswith("Loaded ")] + parser.diagnostics
    seen = f"\nSerial output so far:\n{text}" if text else "\nno Serial output"
    diag = ("\nsimavr said:\n" + "\n".join(notes[-20:])) if notes else ""
    if outcome == "timeout":
        goal = ("the expected output" if until is not None
                else "the end of the run (end the sketch with Serial.flush(); cli(); sleep_cpu(); or pass until=)")
        why = f"did not reach {goal} within {timeout_s} s"
    elif outcome == "crash":
        why = "crashed (bad opcode or program counter: simavr stopped the CPU)"
    elif proc.returncode != 0:
        why = f"failed (simavr exit {proc.returncode})"
    else:
        why = "ended before the expected output arrived"
    raise AvrError(f"simavr run of {elf} on {mcu} at {int(freq)} Hz {why}{diag}{seen}")
