"""A model the user brings (MODEL=): which kind it is and what input it takes, read without TensorFlow.

SConstruct reads the variables on every run (a no-op build included), so this only opens the file: a .tflite
is recognised by its flatbuffer identifier, a Keras model by its stored config (config.json inside a .keras
zip, the `model_config` attribute of an .h5). A file that cannot be used is a ConfigError before any stage.
"""
import json
import os
import zipfile

from ..errors import ConfigError

TFLITE_EXTENSIONS = (".tflite",)
KERAS_EXTENSIONS = (".keras", ".h5")


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
    """{"kind", "input_shape"} of MODEL=path; input_shape (batch first, None where unknown) only for Keras."""
    model_kind = kind(path)
    if not os.path.isfile(path):
        raise ConfigError(f"MODEL={path!r} does not exist; give the path of a .tflite, .keras or .h5 file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ConfigError(f"MODEL={path!r} cannot be read ({e.strerror}); check its permissions") from None
    if model_kind == "tflite":
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise ConfigError(f"MODEL={path!r} is not a TensorFlow Lite flatbuffer (no 'TFL3' identifier); give "
                              "the .tflite file written by tf.lite.TFLiteConverter")
        return {"kind": model_kind, "input_shape": None}
    return {"kind": model_kind, "input_shape": _keras_input_shape(path, _keras_config(path))}


def _keras_config(path):
    try:
        if path.lower().endswith(".keras"):
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        import h5py

        with h5py.File(path, "r") as h:
            raw = h.attrs.get("model_config")
        if raw is None:
            raise KeyError("model_config")
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except KeyError:
        what = ("has no config.json" if path.lower().endswith(".keras")
                else "holds weights only (no model_config)")
        raise ConfigError(f"MODEL={path!r} {what}; save the whole model with model.save(...)") from None
    except (OSError, zipfile.BadZipFile, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"MODEL={path!r} is not a readable Keras model ({e}); save it again with "
                          "model.save('model.keras')") from None


def _keras_input_shape(path, config):
    """The batch shape of the model's one input, from the top-level layers of its config."""
    cfg = config.get("config") or {}
    inputs = [layer for layer in cfg.get("layers") or [] if layer.get("class_name") == "InputLayer"]
    if len(inputs) > 1:
        raise ConfigError(f"MODEL={path!r} has {len(inputs)} inputs; the pipeline runs models with one input")
    shape = None
    if inputs:
        layer_cfg = inputs[0].get("config") or {}
        shape = layer_cfg.get("batch_shape") or layer_cfg.get("batch_input_shape")
    else:   # a Sequential model built without an Input layer
        first = (cfg.get("layers") or [{}])[0].get("config") or {}
        shape = (cfg.get("build_input_shape") or (config.get("build_config") or {}).get("input_shape")
                 or first.get("batch_input_shape"))
    if not shape or any(d is None for d in shape[1:]):
        raise ConfigError(f"MODEL={path!r}: its input has no fixed shape ({shape}); build the model on "
                          "keras.Input(shape=(...), batch_size=1) with every dimension set")
    return [None if d is None else int(d) for d in shape]


def image_input(shape):
    """(height, width, channels) when a batch shape is an image the dataset stage can pack, else None."""
    if shape and len(shape) == 4 and shape[3] in (1, 3):
        return int(shape[1]), int(shape[2]), int(shape[3])
    return None
