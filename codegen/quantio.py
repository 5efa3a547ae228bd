"""Pixel <-> model-input conversion from a .tflite's input quantization, without TensorFlow.

The model rescales 0..255 pixels itself, so the float input is the pixel value; a quantized input then holds
round(pixel / scale) + zero_point. With the usual calibration (pixels span 0..255) that is the identity for uint8
and pixel - 128 for int8, but a representative set that misses 0 or 255 changes the scale: always go through here.
"""
import math


def round_half_away(x):
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_pixels(pixels, dtype, scale, zero_point):
    import numpy as np

    if dtype not in ("uint8", "int8"):
        return pixels.astype(dtype)
    if scale == 0:
        return pixels.astype(dtype)
    info = np.iinfo(dtype)
    q = np.floor(pixels.astype(np.float64) / scale + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def input_quantization(tflite_path):
    """(dtype name, scale, zero_point, shape) of the model's first input, read with the light `tflite` package."""
    import tflite

    with open(tflite_path, "rb") as f:
        buf = f.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    tensor = graph.Tensors(graph.Inputs(0))
    names = {tflite.TensorType.UINT8: "uint8", tflite.TensorType.INT8: "int8",
             tflite.TensorType.FLOAT32: "float32", tflite.TensorType.INT16: "int16"}
    dtype = names.get(tensor.Type(), "float32")
    q = tensor.Quantization()
    scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
    zp = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
    return dtype, scale, zp, [int(d) for d in tensor.ShapeAsNumpy()]
