"""Report stage: float vs quantized accuracy on the validation split (metrics JSON) and a training-curve PNG."""
import json
import os

from ..fsutil import atomic_open, atomic_path
from .quantio import quantize_pixels


def evaluate(tflite_path, npz_path, history_path, metrics_out, curve_out):
    import numpy as np

    from .dataset import load_packed
    from .tf_env import import_tf, quiet, run_interpreter

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
    n = len(data["class_names"])
    confusion = np.zeros((n, n), dtype=int)
    for t, p in zip(yv, pred):
        confusion[t, p] += 1
    metrics = {
        "classes": [str(c) for c in data["class_names"]],
        "train_images": int((~data["is_val"]).sum()),
        "val_images": int(len(yv)),
        "float_val_accuracy": train_info["float_val_accuracy"],
        "quantized_val_accuracy": float((pred == yv).mean()),
        "quantized_confusion": confusion.tolist(),
        "tflite_bytes": os.path.getsize(tflite_path),
        "input_dtype": inp["dtype"].__name__,
        "epochs": train_info["epochs"],
        "final": {k: v[-1] for k, v in train_info["history"].items()},
    }
    with atomic_open(metrics_out) as f:
        json.dump(metrics, f, indent=1)
    draw_curves(train_info["history"], curve_out)
    return metrics


def draw_curves(history, out_png, width=640, height=360):
    """Loss and accuracy per epoch, train and validation, drawn with Pillow (no plotting library needed)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(im)
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", ["accuracy", "val_accuracy"])]
    colors = {"loss": (31, 119, 180), "val_loss": (255, 127, 14), "accuracy": (31, 119, 180),
              "val_accuracy": (255, 127, 14)}
    pw = width // 2
    for p, (title, keys) in enumerate(panels):
        x0, y0, x1, y1 = p * pw + 40, 30, p * pw + pw - 15, height - 35
        d.rectangle([x0, y0, x1, y1], outline="black")
        d.text((x0, 10), title + " (blue: train, orange: validation)" if p == 0 else title, fill="black")
        series = [history.get(k, []) for k in keys]
        values = [v for s in series for v in s]
        if not values:
            continue
        lo, hi = (0.0, 1.0) if title == "accuracy" else (0.0, max(values) * 1.05 or 1.0)
        d.text((x0 - 35, y0), f"{hi:.2f}", fill="black")
        d.text((x0 - 35, y1 - 10), f"{lo:.2f}", fill="black")
        epochs = max(len(s) for s in series)
        d.text((x1 - 60, y1 + 8), f"epoch {epochs}", fill="black")
        for key, s in zip(keys, series):
            pts = [(x0 + (x1 - x0) * (i / max(1, epochs - 1)), y1 - (y1 - y0) * ((v - lo) / ((hi - lo) or 1)))
                   for i, v in enumerate(s)]
            if len(pts) > 1:
                d.line(pts, fill=colors[key], width=2)
            for x, y in pts:
                d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colors[key])
    with atomic_path(out_png, suffix=".png") as tmp:
        im.save(tmp, format="PNG")
