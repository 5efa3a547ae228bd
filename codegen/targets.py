"""The command-line targets, registered once: `scons -h` lists them from here, and the checks made before any
stage runs (a board capability a target needs, the stages a Linux board has, the stages that need QUANT=int8)
derive from the same entries, so a new target cannot be listed in one place and forgotten in another.
"""
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    description: str            # what it does on a microcontroller board (empty: MCU boards lack it)
    linux: str = ""             # what it does on a Linux board (empty: Linux boards lack it)
    needs: tuple = ()           # (boards.json key, why) an MCU board must have for it
    needs_prefix: str = ""      # ... and how that key's value must begin (e.g. "qemu" for the QEMU emulator)
    int8_only: bool = False     # on MCU boards it needs the full-integer model
    listed: bool = True         # shown in `scons -h` (internal stage aliases are not)
    backends: tuple = ()        # the BACKEND= values that have it (empty: every backend); its steps are theirs
    only: str = ""              # ... and what it does that the others lack, for the error when none is chosen


TARGETS = (
    Target("dataset", "pack the dataset (built-in synthetic images unless DATA=)", linux="the same"),
    Target("train", "train ARCH (MobileNetV1 unless ARCH=) -> build/<BOARD>/model.keras", linux="the same"),
    Target("quantize", "TFLite post-training quantization -> model.tflite (of a Keras MODEL= too)", linux="the same"),
    Target("report", "float vs quantized accuracy -> metrics.json, training_curve.png, confusion_matrix.png",
           linux="the same"),
    Target("images", "embed the test inputs (INPUTS=) as C arrays -> images.c/.h", int8_only=True),
    Target("expected", "TFLite's scores for the embedded inputs -> expected.json", int8_only=True, listed=False),
    Target("tflm_arena", "BACKEND=tflm: the smallest tensor arena the model runs in -> tflm/arena.json",
           int8_only=True, listed=False, backends=("tflm",), only="measures TFLite Micro's tensor arena"),
    Target("mlf", "TVM codegen to standalone C -> model_mlf.tar (Model Library Format)", int8_only=True,
           backends=("tvm",), only="generates the standalone C of BACKEND=tvm"),
    Target("export", "the model as a plain C library (CMake, Zephyr, PlatformIO) -> c_library/, and "
                     "arduino-library", int8_only=True, backends=("tvm",),
           only="exports the generated C of BACKEND=tvm as a library"),
    Target("arduino-library", "the sketch as an Arduino library + .zip -> arduino_library/<SKETCH>_inferencing[.zip]",
           int8_only=True, backends=("tvm",), only="exports the generated C of BACKEND=tvm as an Arduino library"),
    Target("sketch", "render the Arduino sketch (+ sketch.yaml: arduino-cli compile there needs no --fqbn) -> "
                     "build/<BOARD>/<SKETCH>/", int8_only=True),
    Target("check", "compile + run the sketch on the host with gcc; scores must match TFLite", int8_only=True,
           linux="run.py in an isolated LiteRT venv (no TensorFlow); scores must equal tf.lite's"),
    Target("compiledb", "compile_commands.json of the host build (clangd, VS Code) -> "
                        "build/<BOARD>/compile_commands.json", int8_only=True, backends=("tvm",),
           only="lists the host build of the generated C of BACKEND=tvm"),
    Target("memory", "flash/RAM report per board and layer -> memory.json, memory.txt, memory_layers.png (compile "
                     "fails if it does not fit)", int8_only=True,
           linux="model size, parameters, activations; peak RSS and x86 latency measured here (a rough guide)"),
    Target("simulate", "run on an emulated board CPU (nano33ble: Cortex-M4F in QEMU; mega/uno: the sketch in "
                       "simavr), scores must equal TFLite's byte for byte; reports instructions per inference",
           int8_only=True, needs=("emulator", "has no emulator; `scons simulate` runs on boards with one (e.g. "
                                              "BOARD=nano33ble, BOARD=mega)")),
    Target("profile", "per-layer profile on the emulated Cortex-M4F (QEMU): instructions, estimated cycles, MACs, "
                      "per-MAC figures, share, workspace bytes per kernel call -> profile.txt, profile.json, "
                      "profile.png", int8_only=True,
           needs=("emulator", "has no Cortex-M4 emulator; `scons profile` runs on boards simulated in QEMU (e.g. "
                              "BOARD=nano33ble)"), needs_prefix="qemu", backends=("tvm",),
           only="profiles the generated C of BACKEND=tvm per kernel call"),
    Target("compile", "arduino-cli compile (needs arduino-cli and the board's core)", int8_only=True,
           needs=("fqbn", "has no arduino-cli board id (fqbn) to compile for"), backends=("tvm", "tflm"),
           only="builds the sketch of BACKEND=tvm or tflm with arduino-cli"),
    Target("upload", "arduino-cli upload (port from PORT= or detected by fqbn / USB id); skipped if the board on "
                     "the port reports this build id (FORCE=1 uploads anyway)", int8_only=True,
           needs=("fqbn", "has no arduino-cli board id (fqbn) to upload with"), backends=("tvm", "tflm"),
           only="uploads the sketch of BACKEND=tvm or tflm with arduino-cli",
           linux="copy the bundle over ssh (HOST=user@host; rsync or scp), skipped if the board has it (FORCE=1)"),
    Target("monitor", "serial monitor (pyserial's miniterm) on PORT= or the detected port at BAUD=; quit with "
                      "Ctrl+] or Ctrl+C; with stdin not a terminal, echoes the port for MONITOR_TIMEOUT s",
           linux="run it on the board over ssh and check its scores against tf.lite's (RUN_ARGS= for others)"),
    Target("verify", "read the board's serial output and check its scores against TFLite's: exact unless "
                     "TOLERANCE=; a mismatch fails the build (exit status 2)", int8_only=True, linux="the same as monitor",
           backends=("tvm", "tflm"), only="checks the uploaded sketch of BACKEND=tvm or tflm"),
    Target("bundle", "", linux="model.tflite, labels.txt, run.py, requirements.txt, samples/ -> "
                               "build/<BOARD>/bundle/"),
    Target("download", "fetch the tutorial's Stanford Cars + COCO images into DOWNLOAD_DIR (then DATA=<that dir>)"),
    Target("save", "write this command line's variables into tinyml.ini as profile ENV=NAME; builds nothing"),
    Target("boards", "list the known boards (BOARD=): cpu, flash, RAM, emulator; builds nothing"),
    Target("devices", "list the connected serial ports and the board each one is (pyserial, USB ids of "
                      "boards.json; no arduino-cli needed); builds nothing"),
    Target("tune", "search ARCH/ALPHA/SIZE/CHANNELS/DEPTH/... for the most accurate model that fits BOARD= "
                   "(flash, RAM, LATENCY_MS=): an Optuna study of ordinary builds under build/tune/<BOARD>/; "
                   "`scons tune save ENV=NAME TRIAL=n` keeps a trial as a profile"),
)
BY_NAME = {t.name: t for t in TARGETS}

# Targets that only read or write something else (a profile, a listing) and build no stage: run alone.
STANDALONE = ("save", "boards", "devices")
# Stages (per-board targets), as codegen/linux/targets.py checks them; download, tune (a study of builds) and the
# standalone ones are not.
_PER_BOARD = [t for t in TARGETS if t.name not in ("download", "tune", *STANDALONE)]
LINUX_STAGES = tuple(t.name for t in _PER_BOARD if t.linux)
MCU_ONLY_STAGES = tuple(t.name for t in _PER_BOARD if t.description and not t.linux)
LINUX_ONLY_STAGES = tuple(t.name for t in _PER_BOARD if t.linux and not t.description)
INT8_STAGES = tuple(t.name for t in TARGETS if t.int8_only)
NEEDS = {t.name: t.needs for t in TARGETS if t.needs}
NEEDS_PREFIX = {t.name: t.needs_prefix for t in TARGETS if t.needs_prefix}


def lacking_backends(target, chosen, lacks=None):
    """The error line's text when none of the backends `chosen` (BACKEND=) has `target`, else None. `lacks`: {backend:
    {stage: why}} (codegen.backends' Backend.lacks), for the reason."""
    t = BY_NAME.get(target)
    if t is None or not t.backends or set(t.backends) & set(chosen):
        return None
    why = "; ".join(filter(None, ((lacks or {}).get(b, {}).get(target) for b in chosen)))
    alone = " alone" if len(chosen) == 1 else ""
    return (f"`scons {target}` {t.only}; BACKEND={','.join(chosen)}{alone} has none" + (f" ({why})" if why else "")
            + f": use BACKEND={t.backends[0]} or BACKEND={t.backends[0]},{','.join(chosen)}")


def board_has(target, board):
    """True when an MCU board has what `target` needs (NEEDS, NEEDS_PREFIX), or when the target needs nothing."""
    if target not in NEEDS:
        return True
    value = board.get(NEEDS[target][0])
    return bool(value) and str(value).startswith(NEEDS_PREFIX.get(target, ""))


def listed(names):
    """Of `names`, those `scons -h` shows (for messages that list stages to a user)."""
    return [n for n in names if BY_NAME[n].listed]


def _rows(pairs, width):
    """`name  description` rows, names aligned to the longest, descriptions wrapped under themselves."""
    column = max(len(name) for name, _ in pairs) + 4
    lines = []
    for name, text in pairs:
        wrapped = textwrap.wrap(text, max(width - column, 30)) or [""]
        lines.append(f"  {name:<{column - 2}}{wrapped[0]}")
        lines += [" " * column + more for more in wrapped[1:]]
    return lines


def help_text(width=100):
    """The Targets part of `scons -h`: the MCU boards' targets, then what Linux boards do differently."""
    mcu = [(t.name, t.description) for t in TARGETS if t.listed and t.description]
    mcu.append(("<board>", "the default targets for one board, e.g. scons nano33ble"))
    linux = [(t.name, t.linux) for t in TARGETS if t.listed and t.linux and t.linux != "the same"]
    return "\n".join([*_rows(mcu, width),
                      "Linux boards (BOARD=rpi4, rpi5, rpi_zero2) run the .tflite with LiteRT instead (any QUANT=):",
                      *_rows(linux, width)])
