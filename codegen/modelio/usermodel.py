"""A model the user brings (MODEL=): which kind it is and what input it takes, read without TensorFlow.

SConstruct reads the variables on every run (a no-op build included), so this only opens the file: a .tflite
is recognised by its flatbuffer identifier, a Keras model by its stored config (config.json inside a .keras
zip, the `model_config` attribute of an .h5). A file that cannot be used is a ConfigError before any stage.
"""
import json
import lzma
import os
import zipfile
import zlib

from .. import inputfiles
from ..errors import ConfigError, PipelineError

TFLITE_EXTENSIONS = (".tflite",)
KERAS_EXTENSIONS = (".keras", ".h5")

# Bounds on what reading a Keras file someone else made may cost (SConstruct reads its config on every run;
# the quantize stage unpacks the archive): a config is KBs, a model for a microcontroller a few MB.
KERAS_CONFIG_MAX_BYTES = 16 * 2**20
KERAS_MAX_UNPACKED_BYTES = 1 * 2**30
KERAS_MAX_MEMBERS = 10000
# As codegen.tflite_limits.MAX_TENSOR_BYTES (not imported: this runs at SConstruct time and must stay light).
MAX_INPUT_BYTES = 64 * 2**20
MAX_INPUT_RANK = 8


def kind(path):
    """"tflite" or "keras" from the file name; ConfigError for anything else."""
    ext = os.path.splitext(path)[1].lower()
    if ext in TFLITE_EXTENSIONS:
        return "tflite"
    if ext in KERAS_EXTENSIONS:
        return "keras"
    raise ConfigError(f"MODEL={path!r}: unknown model type {ext or '(no extension)'!r}; give a full-int8 .tflite "
                      "(used as it is) or a Keras .keras/.h5 model (quantized by the build)")


def inspect(path):
    """{"kind", "input_shape"} of MODEL=path; input_shape (batch first, None where unknown) only for Keras.

    A bounded header read: the first 8 bytes of a .tflite, the config of a Keras model (at most
    KERAS_CONFIG_MAX_BYTES, after checking the archive's declared sizes), never the weights."""
    model_kind = kind(path)
    what = inputfiles.not_regular(path)
    if what == "missing":
        raise ConfigError(f"MODEL={path!r} does not exist; give the path of a .tflite, .keras or .h5 file")
    if what is not None:
        raise ConfigError(f"MODEL={path!r} is {what}, not a regular file; give the path of a .tflite, .keras or "
                          ".h5 file")
    try:
        with inputfiles.open_regular(path, f"MODEL={path!r}") as f:
            head = f.read(8)
    except PipelineError as e:
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise ConfigError(f"MODEL={path!r} cannot be read ({e.strerror}); check its permissions") from None
    if model_kind == "tflite":
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise ConfigError(f"MODEL={path!r} is not a TensorFlow Lite flatbuffer (no 'TFL3' identifier); give "
                              "the .tflite file written by tf.lite.TFLiteConverter")
        return {"kind": model_kind, "input_shape": None}
    return {"kind": model_kind, "input_shape": _keras_input_shape(path, _keras_config(path))}


def _not_keras(path, why):
    return ConfigError(f"MODEL={path!r} is not a readable Keras model ({why}); save it again with "
                       "model.save('model.keras')")


def check_keras_archive(path, z):
    """ConfigError when the .keras zip `z` declares more than it may unpack (a decompression bomb)."""
    members = z.infolist()
    if len(members) > KERAS_MAX_MEMBERS:
        raise _not_keras(path, f"{len(members):,} archive members; a Keras model has a few")
    total = sum(m.file_size for m in members)
    if total > KERAS_MAX_UNPACKED_BYTES:
        big = max(members, key=lambda m: m.file_size)
        raise ConfigError(f"MODEL={path!r}: the archive unpacks to {total:,} bytes ({big.filename!r}: "
                          f"{big.file_size:,}), more than the {KERAS_MAX_UNPACKED_BYTES:,} bytes allowed; a model for "
                          "a microcontroller is far smaller: check that this is the model you meant")


def _keras_config(path):
    try:
        if path.lower().endswith(".keras"):
            with inputfiles.open_regular(path, f"MODEL={path!r}") as f, zipfile.ZipFile(f) as z:
                check_keras_archive(path, z)
                info = z.getinfo("config.json")
                if info.file_size > KERAS_CONFIG_MAX_BYTES:
                    raise ConfigError(f"MODEL={path!r}: its config.json is {info.file_size:,} bytes unpacked, more "
                                      f"than the {KERAS_CONFIG_MAX_BYTES:,} bytes allowed; a Keras model's config is "
                                      "far smaller: check that this is the model you meant")
                with z.open(info) as member:
                    raw = member.read(KERAS_CONFIG_MAX_BYTES + 1)
                if len(raw) > KERAS_CONFIG_MAX_BYTES:
                    raise _not_keras(path, "config.json is longer than its archive entry says")
                return json.loads(raw)
        import h5py

        with inputfiles.open_regular(path, f"MODEL={path!r}") as f, h5py.File(f, "r") as h:
            if "model_config" not in h.attrs:
                raise KeyError("model_config")
            size = h.attrs.get_id("model_config").get_storage_size()
            if size > KERAS_CONFIG_MAX_BYTES:
                raise ConfigError(f"MODEL={path!r}: its model_config is {size:,} bytes, more than the "
                                  f"{KERAS_CONFIG_MAX_BYTES:,} bytes allowed; check that this is the model you meant")
            raw = h.attrs.get("model_config")
        if isinstance(raw, bytes):
            raw = raw.decode()
        if not isinstance(raw, str):
            raise ValueError(f"model_config is {type(raw).__name__}, not JSON text")
        return json.loads(raw)
    except KeyError:
        what = ("has no config.json" if path.lower().endswith(".keras")
                else "holds weights only (no model_config)")
        raise ConfigError(f"MODEL={path!r} {what}; save the whole model with model.save(...)") from None
    except ConfigError:
        raise
    except PipelineError as e:
        raise ConfigError(str(e)) from None
    except (OSError, zipfile.BadZipFile, ValueError, UnicodeDecodeError, RuntimeError, TypeError,
            RecursionError, EOFError, NotImplementedError, zlib.error, lzma.LZMAError) as e:
        # (zipfile raises NotImplementedError for unknown compression methods, RuntimeError for encrypted
        # members, the decompressors' own errors for damaged data; json RecursionError for absurd nesting)
        raise _not_keras(path, f"{type(e).__name__}: {str(e)[:200]}") from None


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _sequence(value):
    return value if isinstance(value, list) else []


def _keras_input_shape(path, config):
    """The batch shape of the model's one input, from the top-level layers of its config; ConfigError for a
    config that is not shaped like a Keras model's (any JSON type anywhere) or an input beyond the limits."""
    if not isinstance(config, dict):
        raise _not_keras(path, f"its config is a JSON {type(config).__name__}, not an object")
    cfg = _mapping(config.get("config"))
    layers = [_mapping(layer) for layer in _sequence(cfg.get("layers"))]
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if len(inputs) > 1:
        raise ConfigError(f"MODEL={path!r} has {len(inputs)} inputs; the pipeline runs models with one input")
    shape = None
    if inputs:
        layer_cfg = _mapping(inputs[0].get("config"))
        shape = layer_cfg.get("batch_shape") or layer_cfg.get("batch_input_shape")
    else:   # a Sequential model built without an Input layer
        first = _mapping((layers or [{}])[0].get("config"))
        shape = (cfg.get("build_input_shape") or _mapping(config.get("build_config")).get("input_shape")
                 or first.get("batch_input_shape"))
    if not shape or any(d is None for d in _sequence(shape)[1:]):
        raise ConfigError(f"MODEL={path!r}: its input has no fixed shape ({shape}); build the model on "
                          "keras.Input(shape=(...), batch_size=1) with every dimension set")
    if not isinstance(shape, list) or any(d is not None and (type(d) is not int or d < 1) for d in shape):
        raise _not_keras(path, f"its input shape {str(shape)[:100]} is not a list of positive whole numbers")
    if len(shape) > MAX_INPUT_RANK:
        raise ConfigError(f"MODEL={path!r}: its input has {len(shape)} dimensions ({shape[:12]}); at most "
                          f"{MAX_INPUT_RANK} are supported")
    count = 1
    for d in shape[1:]:
        count *= d
    if count * 4 > MAX_INPUT_BYTES:
        raise ConfigError(f"MODEL={path!r}: its input {shape} takes {count * 4:,} bytes as float32; the limit is "
                          f"{MAX_INPUT_BYTES:,} bytes for one tensor. Use a model with a smaller input")
    return list(shape)


def image_input(shape):
    """(height, width, channels) when a batch shape is an image the dataset stage can pack, else None."""
    if shape and len(shape) == 4 and shape[3] in (1, 3):
        return int(shape[1]), int(shape[2]), int(shape[3])
    return None
