"""Model input/output <-> values conversion from a .tflite's quantization, without TensorFlow.

The tutorial's models rescale 0..255 pixels themselves, so their float input is the pixel value; a quantized
input then holds round(pixel / scale) + zero_point. With the usual calibration (pixels span 0..255) that is the
identity for uint8 and pixel - 128 for int8, but a representative set that misses 0 or 255 changes the scale:
always go through here. A model whose quantized input only covers about 0..1 or -1..1 (MLPerf Tiny's VWW,
Keras' MobileNetV2 preprocessing) expects normalized pixels: `pixels_to_input` scales them first.

On the output side the build prints each input's top class with its confidence: for a softmax output the
dequantized probability in tenths of a percent, computed with the integer formula of `confidence_text` (the
result-line protocol's, codegen.protocol), which the sketch and the emulator harnesses implement in C (no floating
point on an 8-bit MCU); `confidence_constants` gives its multiplier and shift.
"""
import math

from ..protocol import confidence_text  # noqa: F401 (stays importable from here)

# A quantized input whose float range ends below this is taken for normalized pixels (0..1 or -1..1), not
# 0..255 pixel values: no 0..255 calibration gives a range that small.
NORMALIZED_RANGE_MAX = 2.0
# Ops that only move or re-quantize values: looking through them from the model output finds its SOFTMAX.
_PASS_THROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE")
# The confidence multiplier's bound: |value - zero point| <= 255 times it, plus the rounding term, stays
# within int32 (the C code's arithmetic).
_CONFIDENCE_MULTIPLIER_MAX = 1 << 22
_CONFIDENCE_SHIFT_MAX = 22


def round_half_away(x):
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_values(values, dtype, scale, zero_point):
    """Float values -> the int8/uint8 tensor TFLite's QUANTIZE makes of them: round half away from zero,
    add the zero point, clamp to the type's range."""
    import numpy as np

    if dtype == "float32":
        return np.asarray(values, dtype=np.float32)
    if dtype not in ("uint8", "int8", "int16") or scale == 0:
        return np.asarray(values).astype(dtype)
    info = np.iinfo(dtype)
    v = np.asarray(values, dtype=np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def quantize_pixels(pixels, dtype, scale, zero_point):
    """0..255 pixels as the float input of a model that rescales them itself (the tutorial's)."""
    return quantize_values(pixels, dtype, scale, zero_point)


def float_range(dtype, scale, zero_point):
    """(lowest, highest) float value the quantized tensor can hold."""
    import numpy as np

    info = np.iinfo(dtype)
    return scale * (info.min - zero_point), scale * (info.max - zero_point)


def pixels_to_input(pixels, dtype, scale, zero_point):
    """0..255 pixels -> the model's quantized input: as pixel values, or first normalized to 0..1 or -1..1 when
    the input's quantization only covers such a range (a model trained on normalized images)."""
    values = pixels.astype("float64")
    if dtype in ("uint8", "int8", "int16") and scale > 0:
        lo, hi = float_range(dtype, scale, zero_point)
        if hi <= NORMALIZED_RANGE_MAX:
            values = values / 127.5 - 1.0 if lo < -0.5 else values / 255.0
    return quantize_values(values, dtype, scale, zero_point)


def _tensor_io(tflite, graph, index):
    names = {tflite.TensorType.UINT8: "uint8", tflite.TensorType.INT8: "int8",
             tflite.TensorType.FLOAT32: "float32", tflite.TensorType.INT16: "int16"}
    tensor = graph.Tensors(index)
    q = tensor.Quantization()
    return {"dtype": names.get(tensor.Type(), "float32"),
            "scale": float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0,
            "zero_point": int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0,
            "shape": [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []}


def _read_graph(tflite_path):
    """The `tflite` package, the model and its first subgraph, every index and tensor size checked first
    (codegen.tflite_limits): a damaged or hostile file is a ModelError here, not a crash or an 80 GiB allocation."""
    from .. import tflite_limits as limits

    _, tflite, model, graph = limits.open_graph(tflite_path)
    return tflite, model, graph


def input_quantization(tflite_path):
    """(dtype name, scale, zero_point, shape) of the model's first input, read with the light `tflite` package."""
    tflite, _, graph = _read_graph(tflite_path)
    t = _tensor_io(tflite, graph, graph.Inputs(0))
    return t["dtype"], t["scale"], t["zero_point"], t["shape"]


def model_io(tflite_path):
    """{"input": {...}, "output": {..., "softmax": bool}, "inputs": [...], "outputs": [...]} of a .tflite: dtype,
    scale, zero point, shape and name of each input and output ("input"/"output": the first); an output is a
    softmax when a SOFTMAX op makes it (possibly through a final QUANTIZE/RESHAPE/DEQUANTIZE); a float32 input the
    model quantizes itself has "quantize": that QUANTIZE's output quantization."""
    from .. import tflite_limits as limits

    tflite, model, graph = _read_graph(tflite_path)
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    producer, readers = {}, {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
        for t in outs:
            producer[t] = (name, ins)
        if ins and outs:
            readers.setdefault(ins[0], []).append((name, outs[0]))

    def named(index):
        t = _tensor_io(tflite, graph, index)
        t["name"] = limits.tensor_name(graph.Tensors(index), index)
        return t

    outputs = []
    for k in range(graph.OutputsLength()):
        tensor, softmax = graph.Outputs(k), False
        for _ in range(graph.OperatorsLength()):
            name, inputs = producer.get(tensor, (None, []))
            if name == "SOFTMAX":
                softmax = True
                break
            if name not in _PASS_THROUGH_OPS or not inputs:
                break
            tensor = inputs[0]
        out = named(graph.Outputs(k))
        out["softmax"] = softmax
        outputs.append(out)
    inputs = []
    for k in range(graph.InputsLength()):
        inp = named(graph.Inputs(k))
        if inp["dtype"] == "float32":
            # a float input the model quantizes itself: the QUANTIZE's quantization says which floats make sense
            quantize = [t for name, t in readers.get(graph.Inputs(k), []) if name == "QUANTIZE"]
            if quantize:
                inp["quantize"] = _tensor_io(tflite, graph, quantize[0])
        inputs.append(inp)
    return {"input": inputs[0], "output": outputs[0], "inputs": inputs, "outputs": outputs}


def confidence_constants(scale):
    """(multiplier, shift) with tenths of a percent = (|q - zero point| * multiplier + 2^(shift-1)) >> shift
    approximating |q - zero point| * scale * 1000, the largest shift whose multiplier keeps the product in
    int32; None when the scale is too large to express (not a probability)."""
    per_step = scale * 1000.0
    for shift in range(_CONFIDENCE_SHIFT_MAX, 0, -1):
        multiplier = int(round(per_step * (1 << shift)))
        if multiplier <= _CONFIDENCE_MULTIPLIER_MAX:
            return (multiplier, shift) if multiplier > 0 else None
    return None




PACK_ALIGN = 16


def packed_layout(sizes):
    """([offset], total bytes) of tensors of `sizes` bytes packed into one buffer, each at a 16-byte aligned
    offset: how a model with several inputs (outputs) takes them through the one-buffer API (the generated
    `tvmgen_<name>_run(input, output)`, the sketch's TVMExecute) and how test inputs and results are stored.
    One tensor is the buffer itself."""
    offsets, total = [], 0
    for size in sizes:
        total = (total + PACK_ALIGN - 1) // PACK_ALIGN * PACK_ALIGN
        offsets.append(total)
        total += int(size)
    return offsets, total
