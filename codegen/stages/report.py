"""Report stage: float vs quantized accuracy on the validation split (metrics.json with both confusion
matrices) and its figures (codegen.plots): the training curves and the confusion matrices."""
import json
import os

from ..fsutil import atomic_open
from ..modelio.quantio import quantize_pixels


def confusion_matrix(true, pred, n):
    import numpy as np

    m = np.zeros((n, n), dtype=int)
    np.add.at(m, (np.asarray(true, dtype=int), np.asarray(pred, dtype=int)), 1)
    return m


def _float_predictions(train_info, keras_path, xv):
    """The float model's predicted classes on the validation split: those the train stage recorded, or, for a
    history written before it recorded them (e.g. one from a shared cache), the saved model's own."""
    recorded = train_info.get("float_val_predictions")
    if recorded is not None and len(recorded) == len(xv):
        return recorded
    if not keras_path:
        return None
    from ..modelio.tf_env import import_tf

    _, keras = import_tf()
    model = keras.models.load_model(keras_path, compile=False)
    # model.keras has a fixed batch of 1 (for conversion to a static TFLite graph)
    return model.predict(xv.astype("float32"), batch_size=1, verbose=0).argmax(axis=1).tolist()


def _tflite_label(interp, input_dtype):
    """The quantized panel's title, by what the .tflite holds (QUANT=int8, dynamic or float16)."""
    kinds = {d["dtype"].__name__ for d in interp.get_tensor_details()}
    if input_dtype in ("int8", "uint8"):
        return "int8 TFLite model"
    if "int8" in kinds:
        return "TFLite model, int8 weights (dynamic range)"
    return "float16 TFLite model" if "float16" in kinds else "TFLite model"


def evaluate(tflite_path, npz_path, history_path, metrics_out, curve_out, confusion_out=None, keras_path=None):
    """Writes metrics.json, the training-curve PNG and (with confusion_out) the confusion-matrix PNG; returns
    the metrics. Plot paths are listed in metrics["plots"] relative to metrics.json's folder."""
    from .. import plots
    from .dataset import load_packed
    from ..modelio.tf_env import import_tf, quiet, run_interpreter

    tf, _ = import_tf()
    with open(history_path) as f:
        train_info = json.load(f)
    data = load_packed(npz_path)
    xv, yv = data["x"][data["is_val"]], data["y"][data["is_val"]]
    with quiet():                       # the XNNPACK banner
        interp = tf.lite.Interpreter(model_path=tflite_path)
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    scale, zp = inp["quantization"]
    xq = quantize_pixels(xv, inp["dtype"].__name__, scale, zp)
    pred = run_interpreter(interp, xq).argmax(axis=1)
    classes = [str(c) for c in data["class_names"]]
    n = len(classes)
    quantized_confusion = confusion_matrix(yv, pred, n)
    float_pred = _float_predictions(train_info, keras_path, xv)
    float_confusion = confusion_matrix(yv, float_pred, n) if float_pred is not None else None
    quantized_label = _tflite_label(interp, inp["dtype"].__name__)

    folder = os.path.dirname(os.path.abspath(metrics_out))
    plot_files = {"training_curve": curve_out}
    if confusion_out:
        plot_files["confusion_matrix"] = confusion_out
    metrics = {
        "classes": classes,
        "train_images": int((~data["is_val"]).sum()),
        "val_images": int(len(yv)),
        "float_val_accuracy": train_info["float_val_accuracy"],
        "quantized_val_accuracy": float((pred == yv).mean()),
        # rows: true class, columns: predicted class, in the order of "classes"
        "float_confusion": float_confusion.tolist() if float_confusion is not None else None,
        "quantized_confusion": quantized_confusion.tolist(),
        "quantized_model": quantized_label,
        "tflite_bytes": os.path.getsize(tflite_path),
        "input_dtype": inp["dtype"].__name__,
        "epochs": train_info["epochs"],
        "final": {k: v[-1] for k, v in train_info["history"].items()},
        "plots": {k: os.path.relpath(os.path.abspath(p), folder) for k, p in plot_files.items()},
    }
    plots.save_png(plots.training_curves_figure(
        train_info["history"], title=f"training: {train_info.get('arch', 'model')}, {len(yv)} validation images"),
        curve_out)
    if confusion_out:
        draw_confusion(metrics, confusion_out)
    # metrics.json last: it names the plots, which exist once it does
    with atomic_open(metrics_out) as f:
        json.dump(metrics, f, indent=1)
    return metrics


def draw_confusion(metrics, out_png):
    """The confusion-matrix PNG from metrics.json's numbers alone: what the picture shows is what it says."""
    from .. import plots

    panels = ([("float Keras model", metrics["float_confusion"])] if metrics.get("float_confusion") else []) \
        + [(metrics.get("quantized_model", "quantized TFLite model"), metrics["quantized_confusion"])]
    plots.save_png(plots.confusion_figure(panels, metrics["classes"]), out_png)
