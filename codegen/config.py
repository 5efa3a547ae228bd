"""Build variables: their defaults, help text and validation, in one place.

SConstruct, the SCons tool and the tests all read variables through `parse`, so a bad value gets the same clear
message everywhere and stops the build before any stage runs.
"""
import os
import re
import shlex

from . import inputfiles
from .errors import ConfigError
from .linux import settings as linux_settings
from .tune import settings as tune_settings

# The widths each Keras application accepts (and for which ImageNet weights exist): other values would build a
# network no pretrained file fits, or make Keras refuse. The first is the default (the smallest).
ARCH_ALPHAS = {
    "mobilenet_v1": (0.25, 0.5, 0.75, 1.0),
    "mobilenet_v2": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    "mobilenet_v3_small": (0.75, 1.0),
}
QUANT_MODES = ("int8", "float16", "dynamic")
IO_TYPES = ("uint8", "int8")

# name: (default, help)
VARIABLES = {
    "ENV": ("", "profile: use the [env:NAME] section of tinyml.ini (see Profiles below; the command line overrides "
                "it); empty: the file's [tinyml] default_envs, if any"),
    "BOARD": ("nano33ble", "target board(s), comma separated; see codegen/boards.json"),
    "DATA": ("", "folder of class subfolders (images/<class>/*.jpg|png); empty: the built-in synthetic dataset"),
    "MODEL": ("", "your model instead of training ARCH: a full-int8 .tflite (used as it is) or a Keras .keras/.h5 "
                  "(quantized here, calibrated on DATA=, REP_DATA= or the built-in dataset)"),
    "SAMPLES": ("1000", "images per class of the built-in synthetic dataset"),
    "EPOCHS": ("20", "training epochs"),
    "LR": ("", "Adam learning rate; empty: 5e-4 with WEIGHTS= (the tutorial's fine-tuning), 5e-3 from scratch"),
    "ARCH": ("mobilenet_v1", "architecture to train: " + ", ".join(ARCH_ALPHAS) + " (Keras applications with the "
                             "tutorial's head; mobilenet_v1 is the tutorial's)"),
    "ALPHA": ("", "width multiplier: " + "; ".join(f"{a} {', '.join(map(str, w))}" for a, w in ARCH_ALPHAS.items())
                  + "; empty: the architecture's smallest"),
    "DEPTH": ("", "keep only the first N of MobileNetV1's 13 depthwise-separable blocks; empty: all (tutorial)"),
    "SIZE": ("64", "model input height and width in pixels (>= 32)"),
    "CHANNELS": ("3", "model input channels: 3 (RGB) or 1 (grayscale)"),
    "SEED": ("0", "seed for dataset generation, split, weight init and shuffling"),
    "BATCH": ("32", "training batch size"),
    "WEIGHTS": ("", "optional Keras weights file or http(s) URL for the MobileNet base (transfer learning)"),
    "QUANT": ("int8", "post-training quantization: int8 (full integer), float16, dynamic (range)"),
    "IO_TYPE": ("uint8", "input/output type of the int8 model: uint8 or int8"),
    "REP_SAMPLES": ("100", "representative images used to calibrate int8 quantization"),
    "REP_DATA": ("", ".npy of float model inputs, shape (N, *input shape) or (N, values), to calibrate the int8 "
                     "quantization instead of the dataset's images (e.g. for a non-image Keras MODEL=)"),
    "INPUTS": ("", "test inputs to embed in the sketch, comma separated: images (.png/.jpg/...), .npy (float: "
                   "quantized with the model's input scale; int8/uint8: used as is) or .bin (raw input bytes); "
                   "empty: for a model trained here, the demo (8 held-out images balanced over the classes; the "
                   "sketch ends with e.g. '7/8 correct'), with MODEL= and DATA= one held-out image per class, "
                   "else 2 seeded random inputs"),
    "IMAGES": ("", "the former name of INPUTS= (still accepted)"),
    "LABELS": ("", "text file with one class label per line, as many as the model has outputs; empty: the "
                   "dataset's class names (training, DATA=), else class0..classN-1"),
    "TEMPLATES": ("", "folder of Jinja sketch templates; empty: the project's templates/sketch"),
    "LIBRARY_IMAGES": ("1", "`scons arduino-library`: 1 puts the embedded test inputs (and the example that runs "
                            "them) into the Arduino library, 0 leaves them out (classify() and its example stay)"),
    "SKETCH": ("tvm_model", "name of the generated sketch folder and .ino (BACKEND=tflm: tflm_model unless set)"),
    "BACKEND": ("auto", "code generator(s) for the MCU stages: auto (the default: tvm where it supports every op "
                        "of the model, else tflm with TFLM_DIR=, saying which op sent it there; without TFLM_DIR= one "
                        "error naming every unsupported op), tvm (standalone C from TVM), tflm (TensorFlow Lite "
                       "Micro, needs TFLM_DIR=), tinymaix (TinyMaix, needs TINYMAIX_DIR=; not exact: the check says "
                       "by how much), or several (tvm,tflm,tinymaix) to build them and compare them side by side"),
    "TFLM_DIR": ("", "TensorFlow Lite Micro sources for BACKEND=tflm: a tree made by TFLM's create_tflm_tree.py or "
                     "the Arduino library Arduino_TensorFlowLite (its folder or its src/)"),
    "TFLM_CACHE": ("", "where the TFLM static libraries built from TFLM_DIR are kept (one per tree content and "
                       "toolchain); empty: ~/.cache/tinyml-scons/tflm"),
    "TINYMAIX_DIR": ("", "your TinyMaix checkout for BACKEND=tinymaix (git clone https://github.com/sipeed/TinyMaix): "
                         "its converter (tools/tflite2tmdl.py) and runtime (src/, include/) are used from there"),
    "DOWNLOAD_DIR": ("data/tutorial", "where `scons download` puts target/ (cars) and random/ (COCO) images"),
    "DOWNLOAD_LIMIT": ("", "at most this many images per class from the downloaded archives; empty: all"),
    "CARS_URL": ("", "Stanford Cars archive URL (a mirror); empty: the tutorial's"),
    "COCO_URL": ("", "COCO val2017 archive URL (a mirror); empty: the tutorial's"),
    "CACHE_DIR": ("", "shared build cache folder (SCons CacheDir): reuse models/tflite/MLF built elsewhere"),
    "BUILD_DIR": ("build", "where outputs go: <BUILD_DIR>/<BOARD>/...; unset: build/, a profile's build/<ENV>/, a "
                           "MODEL='s own model-<name>-<digest>/ inside that"),
    "ARDUINO_CLI": ("arduino-cli", "arduino-cli executable"),
    "ARDUINO_FLAGS": ("", "extra arduino-cli compile arguments, e.g. --build-property compiler.cpp.extra_flags=-O3"),
    "PORT": ("", "serial port for upload/monitor/verify (e.g. /dev/ttyACM0); empty: detected by fqbn or USB id"),
    "FORCE": ("0", "1: upload even if the board on the port reports this build id"),
    "MONITOR_TIMEOUT": ("30", "seconds `scons verify` waits for the sketch's results; `scons monitor` with stdin "
                              "not a terminal (a pipe) echoes the port for this long"),
    "BAUD": ("", "serial rate of `scons monitor`/`verify`; empty: the sketch's (the board's \"baud\" in "
                 "boards.json, else 115200)"),
    "TOLERANCE": ("0", "`scons verify`: largest difference allowed between a board's score and TFLite's (0: "
                       "exact); for boards whose toolchains round differently"),
    "VERBOSE": ("0", "1: print each external command line (gcc, qemu, simavr, arduino-cli, ssh, ...) before it "
                     "runs; changes no output and rebuilds nothing"),
}
VARIABLES.update(linux_settings.VARIABLES)     # HOST=, SSH_PORT=, ... of the Linux boards
VARIABLES.update(tune_settings.VARIABLES)      # TUNE_TRIALS=, LATENCY_MS=, ... of `scons tune`


def _int(name, value, lo=None, example=None):
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number; e.g. {name}={example or VARIABLES[name][0]}") \
            from None
    if lo is not None and v < lo:
        raise ConfigError(f"{name}={v} is too small; it must be at least {lo}")
    return v


def _float(name, value, above):
    try:
        v = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number; e.g. {name}=0.001") from None
    if not v > above:           # (nan compares false)
        raise ConfigError(f"{name}={v} must be greater than {above}")
    if v == float("inf"):
        raise ConfigError(f"{name}={value!r} is not a finite number; e.g. {name}=0.001")
    return v


def _choice(name, value, choices, conv=str):
    try:
        v = conv(str(value).strip())
    except ValueError:
        v = None
    if v not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; use one of: {', '.join(str(c) for c in choices)}")
    return v


def _words(name, value):
    """A shell-like argument list (shlex); ConfigError naming the variable and the value for an unbalanced quote
    or a trailing backslash instead of shlex's ValueError."""
    try:
        return shlex.split(str(value))
    except ValueError as e:
        raise ConfigError(f"{name}={value!r} cannot be split into arguments ({e}); close the quote, or quote the "
                          "whole value for your shell, e.g. ARDUINO_FLAGS='--build-property \"a=b c\"'") from None


def _list(value):
    return [p.strip() for p in str(value).split(",") if p.strip()]


def check_variable_names(raw):
    """ConfigError for a NAME=value whose NAME is not a build variable, with the closest one suggested."""
    from .suggest import did_you_mean

    unknown = sorted(set(raw) - set(VARIABLES))
    if unknown:
        named = [name + did_you_mean(name, VARIABLES, " (did you mean {}=?)") for name in unknown]
        raise ConfigError(f"unknown build variable(s) {', '.join(named)}; `scons -h` lists them")


def parse(raw, board=None):
    """Turns a {NAME: string} mapping (SCons ARGUMENTS) into typed settings, or raises ConfigError.

    A board's `model_defaults` (boards.json) replace the global defaults of variables the user did not set:
    a Mega gets a model that fits its 8 KB of RAM unless told otherwise.
    """
    check_variable_names(raw)
    defaults = {k: d for k, (d, _) in VARIABLES.items()}
    defaults.update({k: str(d) for k, d in ((board or {}).get("model_defaults") or {}).items()})
    v = {k: str(raw.get(k, defaults[k])) for k in VARIABLES}
    cfg = {
        "boards": _list(v["BOARD"]) or [VARIABLES["BOARD"][0]],
        "data": v["DATA"].strip(),
        "samples": _int("SAMPLES", v["SAMPLES"], 4),
        "epochs": _int("EPOCHS", v["EPOCHS"], 1),
        "arch": _choice("ARCH", v["ARCH"], tuple(ARCH_ALPHAS)),
        "size": _int("SIZE", v["SIZE"], 32),
        "depth": _int("DEPTH", v["DEPTH"], 1) if v["DEPTH"].strip() else None,
        "channels": _choice("CHANNELS", v["CHANNELS"], (1, 3), int),
        "seed": _int("SEED", v["SEED"], 0),
        "batch": _int("BATCH", v["BATCH"], 1),
        "lr": _float("LR", v["LR"], 0.0) if v["LR"].strip() else None,
        "weights": v["WEIGHTS"].strip(),
        "quant": _choice("QUANT", v["QUANT"], QUANT_MODES),
        "io_type": _choice("IO_TYPE", v["IO_TYPE"], IO_TYPES),
        "rep_samples": _int("REP_SAMPLES", v["REP_SAMPLES"], 1),
        "inputs": _list(v["INPUTS"]) or _list(v["IMAGES"]),
        "labels_file": v["LABELS"].strip(),
        "model": v["MODEL"].strip(),
        "rep_data": v["REP_DATA"].strip(),
        "templates": v["TEMPLATES"].strip(),
        "library_images": _choice("LIBRARY_IMAGES", v["LIBRARY_IMAGES"], (0, 1), int) == 1,
        "sketch": v["SKETCH"].strip(),
        "backends": _backends(v["BACKEND"]),
        "tflm_dir": v["TFLM_DIR"].strip(),
        "tflm_cache": v["TFLM_CACHE"].strip(),
        "tinymaix_dir": v["TINYMAIX_DIR"].strip(),
        "build_dir": v["BUILD_DIR"].strip() or "build",
        "cache_dir": v["CACHE_DIR"].strip(),
        "download_dir": v["DOWNLOAD_DIR"].strip() or "data/tutorial",
        "download_limit": _int("DOWNLOAD_LIMIT", v["DOWNLOAD_LIMIT"], 1) if v["DOWNLOAD_LIMIT"].strip() else None,
        "cars_url": v["CARS_URL"].strip() or None,
        "coco_url": v["COCO_URL"].strip() or None,
        "arduino_cli": v["ARDUINO_CLI"].strip() or "arduino-cli",
        "port": v["PORT"].strip(),
        "arduino_flags": _words("ARDUINO_FLAGS", v["ARDUINO_FLAGS"]),
        "force": _choice("FORCE", v["FORCE"], (0, 1), int) == 1,
        "monitor_timeout": _int("MONITOR_TIMEOUT", v["MONITOR_TIMEOUT"], 1),
        "baud": _int("BAUD", v["BAUD"], 1, example=9600) if v["BAUD"].strip() else None,
        "tolerance": _int("TOLERANCE", v["TOLERANCE"], 0),
        "verbose": _choice("VERBOSE", v["VERBOSE"], (0, 1), int) == 1,
    }
    cfg.update(linux_settings.parse(v))
    cfg["alpha"] = _alpha(cfg["arch"], v["ALPHA"])
    if cfg["arch"] != "mobilenet_v1" and cfg["depth"] is not None:
        if "DEPTH" in raw:
            raise ConfigError(f"DEPTH={cfg['depth']} cuts MobileNetV1's blocks; ARCH={cfg['arch']} has no DEPTH= "
                              "(make it smaller with ALPHA= and SIZE=)")
        cfg["depth"] = None     # a board's model_defaults are meant for MobileNetV1
    if _list(v["INPUTS"]) and _list(v["IMAGES"]) and _list(v["INPUTS"]) != _list(v["IMAGES"]):
        raise ConfigError("INPUTS= and IMAGES= (its former name) are both set, differently; give only INPUTS=")
    cfg["images"] = cfg["inputs"]       # the former name, for code that reads it
    _check_user_model(cfg)
    cfg["backend_note"] = None
    if cfg["backends"] == [AUTO]:
        cfg["backends"], cfg["backend_note"] = _auto_backend(cfg)
    # The TFLM sketch is another program: its own default name keeps it apart from the TVM one in the IDE.
    cfg["tflm_sketch"] = v["SKETCH"].strip() if "SKETCH" in raw else "tflm_model"
    cfg["tinymaix_sketch"] = v["SKETCH"].strip() if "SKETCH" in raw else "tinymaix_model"
    # It names the folder, the .ino, the library's header and its guard: ASCII only (isalnum() took 'é').
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cfg["sketch"]):
        raise ConfigError(f"SKETCH={cfg['sketch']!r} must be a C-identifier-like name (ASCII letters, digits, _, "
                          "not starting with a digit)")
    if cfg["depth"] is not None and cfg["depth"] > 13:
        raise ConfigError(f"DEPTH={cfg['depth']}: MobileNetV1 has 13 depthwise-separable blocks; use 1 to 13")
    if cfg["data"] and not os.path.isdir(cfg["data"]):
        raise ConfigError(f"DATA={cfg['data']!r} is not a folder; point it at a folder with one subfolder of "
                          "images per class (e.g. DATA/target/*.jpg and DATA/random/*.jpg)")
    name = "INPUTS" if _list(v["INPUTS"]) else "IMAGES"
    for path in cfg["inputs"]:
        _need_file(f"{name}: {path!r}", path, "give existing images (.png/.jpg), .npy or .bin files, comma separated")
    if cfg["labels_file"]:
        _need_file(f"LABELS={cfg['labels_file']!r}", cfg["labels_file"],
                   "give a text file with one class label per line")
    if cfg["templates"] and not os.path.isdir(cfg["templates"]):
        raise ConfigError(f"TEMPLATES={cfg['templates']!r} is not a folder of Jinja templates")
    if cfg["weights"] and not cfg["weights"].startswith(("http://", "https://")):
        _need_file(f"WEIGHTS={cfg['weights']!r}", cfg["weights"], "give a Keras weights file or an URL")
    return cfg




def _need_file(what, path, hint):
    """ConfigError unless `path` is a regular file: "does not exist", or what it is instead (a FIFO, a socket, a
    device, a folder, a symlink loop), which a stage would block on or fail to read."""
    kind = inputfiles.not_regular(path)
    if kind == "missing":
        raise ConfigError(f"{what} does not exist; {hint}")
    if kind is not None:
        raise ConfigError(f"{what} is {kind}, not a regular file; {hint}")


AUTO = "auto"


def _backends(value):
    from .backends import names

    chosen = _list(value) or [AUTO]
    if AUTO in chosen and len(chosen) > 1:
        raise ConfigError(f"BACKEND={value!r}: auto picks one backend itself; give auto alone or name the backends "
                          "(tvm,tflm)")
    for b in chosen:
        if b != AUTO and b not in names():
            raise ConfigError(f"BACKEND={value!r}: {b!r} is not a backend; use {', '.join(names())} or several, "
                              "comma separated (tvm,tflm)")
    return list(dict.fromkeys(chosen))


def _auto_backend(cfg):
    """BACKEND=auto (the default): (backends, note). The TVM generator for a model trained or quantized here, for
    Linux boards only (they run LiteRT, no MCU backend) and for a MODEL= .tflite whose every op it supports; else
    TFLite Micro when TFLM_DIR= is set (the note says which op sent it there); else ConfigError naming every
    unsupported op at once.  A MODEL= the generator refuses for another reason than its ops (its inputs and
    outputs, a float tensor, ...) stays with TVM without TFLM_DIR=: the stage that cannot take it says why, as with
    BACKEND=tvm."""
    if cfg["model_kind"] != "tflite" or _linux_boards_only(cfg["boards"]):
        return ["tvm"], None
    missing, refused = _tvm_verdict(cfg["model"])
    if not missing and not refused:
        return ["tvm"], None
    if missing:
        why = "the TVM generator does not support " + ", ".join(f"{t} (op #{i})" for t, i in missing)
    else:
        why = f"the TVM generator cannot take it ({refused})"
    if cfg["tflm_dir"]:
        return ["tflm"], f"BACKEND=auto: TFLite Micro for MODEL={cfg['model']!r}: {why}"
    if not missing:
        return ["tvm"], None
    raise ConfigError(f"BACKEND=auto: MODEL={cfg['model']!r}: {why}; set TFLM_DIR= to a TFLite Micro tree to "
                      "build it with TFLM, or change the model")


_VERDICTS = {}      # (path, size, mtime) -> _tvm_verdict: SConstruct parses once per board, the model is read once


def _tvm_verdict(path):
    """([(op type, first op index)] the generator's registry lacks, the reason it refuses the model otherwise or
    None) for the .tflite at `path`."""
    from .errors import ModelError
    from .frontend import reader

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _VERDICTS:
        missing, refused = [], None
        try:
            missing = reader.unsupported_ops(path)
            if not missing:
                reader.load(path)
        except ModelError as e:
            text = str(e)
            refused = (text[len(path) + 2:] if text.startswith(f"{path}: ") else text).rstrip(". ")
        _VERDICTS[key] = (missing, refused)
    return _VERDICTS[key]


def _alpha(arch, value):
    if not str(value).strip():
        return ARCH_ALPHAS[arch][0]
    try:
        alpha = float(str(value).strip())
    except ValueError:
        alpha = None
    if alpha not in ARCH_ALPHAS[arch]:
        raise ConfigError(f"ALPHA={value!r} is not supported for ARCH={arch}; use one of: "
                          f"{', '.join(map(str, ARCH_ALPHAS[arch]))}")
    return alpha


def _linux_boards_only(names):
    """Linux boards run any .tflite with LiteRT: a Keras MODEL= may be quantized to float16/dynamic for them."""
    from . import boards

    return all(boards.is_linux(boards.get(name)) for name in names)


def _check_user_model(cfg):
    """MODEL= and REP_DATA=: the file must be usable, and the other variables must make sense with it."""
    from .modelio import usermodel

    cfg["model_kind"], cfg["model_input_shape"] = None, None
    if cfg["model"]:
        info = usermodel.inspect(cfg["model"])
        cfg["model_kind"], cfg["model_input_shape"] = info["kind"], info["input_shape"]
        if cfg["quant"] != "int8" and not (info["kind"] == "keras" and _linux_boards_only(cfg["boards"])):
            raise ConfigError(f"QUANT={cfg['quant']} compares a float model with the trained one; with MODEL= the "
                              "build makes (or takes) a full-int8 model: drop QUANT=")
    rep = cfg["rep_data"]
    if rep:
        if cfg["model_kind"] == "tflite":
            raise ConfigError(f"REP_DATA= calibrates a model the build quantizes; MODEL={cfg['model']!r} is "
                              "already quantized: drop REP_DATA=")
        if not rep.lower().endswith(".npy"):
            raise ConfigError(f"REP_DATA={rep!r} must be a .npy file of float inputs (numpy.save)")
        _need_file(f"REP_DATA={rep!r}", rep, "give a .npy file of float inputs, shape (N, *input shape)")
    elif cfg["model_kind"] == "keras" and not usermodel.image_input(cfg["model_input_shape"]):
        raise ConfigError(f"MODEL={cfg['model']!r} takes input {cfg['model_input_shape']}, not an image "
                          "(height, width, 1 or 3 channels): calibrate its quantization with REP_DATA=<inputs.npy>")


# Settings that are per-stage construction variables TINY_<NAME> (the rest are command-line only).
CONSTRUCTION_VARIABLES = ("data", "samples", "epochs", "arch", "alpha", "depth", "size", "channels", "seed", "batch", "lr",
                          "weights", "quant", "io_type", "rep_samples", "sketch", "arduino_cli", "arduino_flags",
                          "port", "force", "monitor_timeout", "baud", "tolerance")


def construction_defaults():
    """{setting: typed default} for the TINY_* construction variables, from the same table as `scons -h`."""
    cfg = parse({})
    return {name: cfg[name] for name in CONSTRUCTION_VARIABLES}
