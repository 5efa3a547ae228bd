"""Build variables: their defaults, help text and validation, in one place.

SConstruct, the SCons tool and the tests all read variables through `parse`, so a bad value gets the same clear
message everywhere and stops the build before any stage runs.
"""
import os
import shlex

from .errors import ConfigError

# MobileNetV1 widths Keras knows (and for which ImageNet weights exist): other values would silently build a
# network no pretrained file fits.
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
QUANT_MODES = ("int8", "float16", "dynamic")
IO_TYPES = ("uint8", "int8")

# name: (default, help)
VARIABLES = {
    "BOARD": ("nano33ble", "target board(s), comma separated; see codegen/boards.json"),
    "DATA": ("", "folder of class subfolders (images/<class>/*.jpg|png); empty: the built-in synthetic dataset"),
    "SAMPLES": ("1000", "images per class of the built-in synthetic dataset"),
    "EPOCHS": ("20", "training epochs"),
    "LR": ("", "Adam learning rate; empty: 5e-4 with WEIGHTS= (the tutorial's fine-tuning), 5e-3 from scratch"),
    "ALPHA": ("0.25", "MobileNetV1 width multiplier (0.25, 0.5, 0.75, 1.0)"),
    "DEPTH": ("", "keep only the first N of MobileNetV1's 13 depthwise-separable blocks; empty: all (tutorial)"),
    "SIZE": ("64", "model input height and width in pixels (>= 32)"),
    "CHANNELS": ("3", "model input channels: 3 (RGB) or 1 (grayscale)"),
    "SEED": ("0", "seed for dataset generation, split, weight init and shuffling"),
    "BATCH": ("32", "training batch size"),
    "WEIGHTS": ("", "optional Keras weights file or http(s) URL for the MobileNet base (transfer learning)"),
    "QUANT": ("int8", "post-training quantization: int8 (full integer), float16, dynamic (range)"),
    "IO_TYPE": ("uint8", "input/output type of the int8 model: uint8 or int8"),
    "REP_SAMPLES": ("100", "representative images used to calibrate int8 quantization"),
    "IMAGES": ("", "images to embed in the sketch, comma separated; empty: one held-out image per class"),
    "TEMPLATES": ("", "folder of Jinja sketch templates; empty: the project's templates/sketch"),
    "SKETCH": ("tvm_model", "name of the generated sketch folder and .ino"),
    "DOWNLOAD_DIR": ("data/tutorial", "where `scons download` puts target/ (cars) and random/ (COCO) images"),
    "DOWNLOAD_LIMIT": ("", "at most this many images per class from the downloaded archives; empty: all"),
    "CARS_URL": ("", "Stanford Cars archive URL (a mirror); empty: the tutorial's"),
    "COCO_URL": ("", "COCO val2017 archive URL (a mirror); empty: the tutorial's"),
    "CACHE_DIR": ("", "shared build cache folder (SCons CacheDir): reuse models/tflite/MLF built elsewhere"),
    "BUILD_DIR": ("build", "where outputs go: <BUILD_DIR>/<BOARD>/..."),
    "ARDUINO_CLI": ("arduino-cli", "arduino-cli executable"),
    "ARDUINO_FLAGS": ("", "extra arduino-cli compile arguments, e.g. --build-property compiler.cpp.extra_flags=-O3"),
    "PORT": ("", "serial port for upload/monitor (e.g. /dev/ttyACM0); empty: detected by fqbn or USB id"),
    "FORCE": ("0", "1: upload even if the board already runs this binary"),
    "MONITOR_TIMEOUT": ("30", "seconds `scons monitor` waits for the sketch's results"),
}


def _int(name, value, lo=None):
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number; e.g. {name}={VARIABLES[name][0]}") from None
    if lo is not None and v < lo:
        raise ConfigError(f"{name}={v} is too small; it must be at least {lo}")
    return v


def _float(name, value, above):
    try:
        v = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number; e.g. {name}=0.001") from None
    if not v > above:
        raise ConfigError(f"{name}={v} must be greater than {above}")
    return v


def _choice(name, value, choices, conv=str):
    try:
        v = conv(str(value).strip())
    except ValueError:
        v = None
    if v not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; use one of: {', '.join(str(c) for c in choices)}")
    return v


def _list(value):
    return [p.strip() for p in str(value).split(",") if p.strip()]


def parse(raw, board=None):
    """Turns a {NAME: string} mapping (SCons ARGUMENTS) into typed settings, or raises ConfigError.

    A board's `model_defaults` (boards.json) replace the global defaults of variables the user did not set:
    a Mega gets a model that fits its 8 KB of RAM unless told otherwise.
    """
    unknown = sorted(set(raw) - set(VARIABLES))
    if unknown:
        raise ConfigError(f"unknown build variable(s) {', '.join(unknown)}; `scons -h` lists them")
    defaults = {k: d for k, (d, _) in VARIABLES.items()}
    defaults.update({k: str(d) for k, d in ((board or {}).get("model_defaults") or {}).items()})
    v = {k: str(raw.get(k, defaults[k])) for k in VARIABLES}
    cfg = {
        "boards": _list(v["BOARD"]) or [VARIABLES["BOARD"][0]],
        "data": v["DATA"].strip(),
        "samples": _int("SAMPLES", v["SAMPLES"], 4),
        "epochs": _int("EPOCHS", v["EPOCHS"], 1),
        "alpha": _choice("ALPHA", v["ALPHA"], MOBILENET_ALPHAS, float),
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
        "images": _list(v["IMAGES"]),
        "templates": v["TEMPLATES"].strip(),
        "sketch": v["SKETCH"].strip(),
        "build_dir": v["BUILD_DIR"].strip() or "build",
        "cache_dir": v["CACHE_DIR"].strip(),
        "download_dir": v["DOWNLOAD_DIR"].strip() or "data/tutorial",
        "download_limit": _int("DOWNLOAD_LIMIT", v["DOWNLOAD_LIMIT"], 1) if v["DOWNLOAD_LIMIT"].strip() else None,
        "cars_url": v["CARS_URL"].strip() or None,
        "coco_url": v["COCO_URL"].strip() or None,
        "arduino_cli": v["ARDUINO_CLI"].strip() or "arduino-cli",
        "port": v["PORT"].strip(),
        "arduino_flags": shlex.split(v["ARDUINO_FLAGS"]),
        "force": _choice("FORCE", v["FORCE"], (0, 1), int) == 1,
        "monitor_timeout": _int("MONITOR_TIMEOUT", v["MONITOR_TIMEOUT"], 1),
    }
    if not cfg["sketch"].replace("_", "a").isalnum() or cfg["sketch"][0].isdigit():
        raise ConfigError(f"SKETCH={cfg['sketch']!r} must be a C-identifier-like name (letters, digits, _)")
    if cfg["depth"] is not None and cfg["depth"] > 13:
        raise ConfigError(f"DEPTH={cfg['depth']}: MobileNetV1 has 13 depthwise-separable blocks; use 1 to 13")
    if cfg["data"] and not os.path.isdir(cfg["data"]):
        raise ConfigError(f"DATA={cfg['data']!r} is not a folder; point it at a folder with one subfolder of "
                          "images per class (e.g. DATA/target/*.jpg and DATA/random/*.jpg)")
    for img in cfg["images"]:
        if not os.path.isfile(img):
            raise ConfigError(f"IMAGES: {img!r} does not exist; give existing PNG/JPEG files, comma separated")
    if cfg["templates"] and not os.path.isdir(cfg["templates"]):
        raise ConfigError(f"TEMPLATES={cfg['templates']!r} is not a folder of Jinja templates")
    if cfg["weights"] and not cfg["weights"].startswith(("http://", "https://")) \
            and not os.path.isfile(cfg["weights"]):
        raise ConfigError(f"WEIGHTS={cfg['weights']!r} does not exist; give a Keras weights file or an URL")
    return cfg


# Settings that are per-stage construction variables TINY_<NAME> (the rest are command-line only).
CONSTRUCTION_VARIABLES = ("data", "samples", "epochs", "alpha", "depth", "size", "channels", "seed", "batch", "lr",
                          "weights", "quant", "io_type", "rep_samples", "sketch", "arduino_cli", "arduino_flags",
                          "port", "force", "monitor_timeout")


def construction_defaults():
    """{setting: typed default} for the TINY_* construction variables, from the same table as `scons -h`."""
    cfg = parse({})
    return {name: cfg[name] for name in CONSTRUCTION_VARIABLES}
