"""The deployable bundle of a Linux board: a folder to copy to the board and run there without TensorFlow.

    model.tflite      the quantized model (QUANT=int8, float16 or dynamic)
    labels.txt        one label per model output
    run.py            the runner (LiteRT, falling back to tflite_runtime): files, folders or a camera
    requirements.txt  what run.py needs: ai-edge-litert, numpy, Pillow
    bundle.json       how inputs are prepared (size, channels, pixel range), the model's I/O, the samples
    samples/          the test inputs the build checks the bundle on (images, .npy or .bin)

The preprocessing is decided here, once, with the same rules as the MCU route (codegen.modelio.quantio), and
written down in bundle.json, so run.py stays a small generic script.
"""
import json
import os
import re
import shutil

from ..emit import bin2c
from ..errors import PipelineError
from ..fsutil import atomic_open, atomic_path
from ..modelio import images as imagesmod
from ..modelio import usermodel
from ..modelio.quantio import NORMALIZED_RANGE_MAX, float_range, model_io

BUNDLE_FILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundle_files")
STATIC_FILES = ("run.py", "requirements.txt")
GENERATED_FILES = ("model.tflite", "labels.txt", "bundle.json")
SAMPLES_DIR = "samples"
# Bumped when bundle.json gains fields run.py or the check read.
BUNDLE_FORMAT = 2
QUANTIZED = ("int8", "uint8")


def file_names(sample_names):
    """Every file the bundle stage writes, relative to the bundle folder (what the SCons tool declares)."""
    return list(GENERATED_FILES) + list(STATIC_FILES) + [f"{SAMPLES_DIR}/{n}" for n in sample_names]


def sample_names(input_paths, input_names=None, generated=bin2c.GENERATED_INPUTS):
    """The file name each test input gets under samples/ (unique; the input's extension kept), or inputN.npy
    for the seeded random inputs made when there are no input files."""
    if not input_paths:
        return [f"input{i}.npy" for i in range(generated)]
    names = []
    for i, path in enumerate(input_paths):
        ext = os.path.splitext(path)[1].lower()
        stem = input_names[i] if input_names else os.path.splitext(os.path.basename(path))[0]
        stem = re.sub(r"[^0-9A-Za-z._-]", "_", stem).lstrip(".") or "input"
        while stem + ext in names:
            stem += "_"
        names.append(stem + ext)
    return names


def pixel_range(inp):
    """The float range the model expects pixels in: 0..255 (the tutorial's models rescale them themselves),
    or 0..1 / -1..1 when a quantized input only covers such a range (quantio.pixels_to_input's rule)."""
    if inp["dtype"] in QUANTIZED and inp["scale"] > 0:
        lo, hi = float_range(inp["dtype"], inp["scale"], inp["zero_point"])
        if hi <= NORMALIZED_RANGE_MAX:
            return [-1, 1] if lo < -0.5 else [0, 1]
    return [0, 255]


def _count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def input_tensor(path, inp, pixels_in):
    """The model-input tensor (numpy, input dtype) the build expects for one sample file: the yardstick run.py's
    own preprocessing is compared with. Quantized inputs go through bin2c.load_input (the MCU route's bytes)."""
    import numpy as np

    shape = inp["shape"]
    if inp["dtype"] in QUANTIZED:
        return np.frombuffer(bin2c.load_input(path, inp), dtype=inp["dtype"]).reshape(shape)
    dtype, count = np.dtype(inp["dtype"]), _count(shape)
    ext = os.path.splitext(path)[1].lower()
    what = f"the model input {shape} takes {count} {dtype.name} values"
    if ext == ".bin":
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) != count * dtype.itemsize:
            raise PipelineError(f"{path}: {len(raw)} bytes, but {what} ({count * dtype.itemsize} bytes)")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise PipelineError(f"{path}: not a readable .npy file ({e}); write it with numpy.save") from None
        if arr.size != count or arr.dtype.kind != "f" or not np.isfinite(arr).all():
            raise PipelineError(f"{path}: {arr.dtype.name} array of shape {list(arr.shape)}, but {what}; give "
                                f"{count} finite float values")
        return arr.astype(dtype).reshape(shape)
    image = usermodel.image_input(shape)
    if image is None:
        raise PipelineError(f"{path}: an image, but {what} and is not an image; give .npy or .bin test inputs")
    values = imagesmod.load_image(path, image[:2], image[2]).astype(np.float64)
    if pixels_in == [0, 1]:
        values = values / 255.0
    elif pixels_in == [-1, 1]:
        values = values / 127.5 - 1.0
    return values.astype(dtype).reshape(shape)


def _generated_samples(inp, names, seed):
    """Seeded random inputs (the MCU route's for quantized inputs, so both routes check the same tensors)."""
    import numpy as np

    if inp["dtype"] in QUANTIZED:
        return [np.frombuffer(raw, dtype=inp["dtype"]).reshape(inp["shape"])
                for _, raw in bin2c.generated_inputs(inp, len(names), seed)]
    rng = np.random.RandomState(seed)
    return [rng.uniform(0, 255, inp["shape"]).astype(inp["dtype"]) for _ in names]


def quantization_of(tflite_path):
    """What the model is, read from its tensors (a MODEL= .tflite says nothing else): "int8" (integer input),
    "float16" (float16 weights), "dynamic" (int8 weights, float activations) or "float32"."""
    import tflite

    with open(tflite_path, "rb") as f:
        buf = f.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    types = {graph.Tensors(i).Type() for i in range(graph.TensorsLength())}
    if graph.Tensors(graph.Inputs(0)).Type() in (tflite.TensorType.INT8, tflite.TensorType.UINT8):
        return "int8"
    if tflite.TensorType.FLOAT16 in types:
        return "float16"
    if tflite.TensorType.INT8 in types or tflite.TensorType.UINT8 in types:
        return "dynamic"
    return "float32"


def make_bundle(tflite_path, input_paths, out_dir, *, names, board, quant=None, class_labels=None, labels_file=None,
                class_source="the dataset", seed=0):
    """Writes the bundle folder; `names`: the sample file names (sample_names). Returns bundle.json's content.
    `quant`: the QUANT= the build asked for, recorded beside what the model holds (they differ for a MODEL=)."""
    import numpy as np

    io = model_io(tflite_path)
    inp, out = io["input"], io["output"]
    if len(names) != (len(input_paths) or len(names)):
        raise ValueError("one sample name per input file")
    labels = bin2c.class_labels_for(_count(out["shape"]), labels_file, class_labels, class_source)
    image = usermodel.image_input(inp["shape"])
    pixels_in = pixel_range(inp) if image else None
    # Every sample must be usable before anything is written: a bad INPUTS= file fails this stage alone.
    tensors = ([input_tensor(p, inp, pixels_in) for p in input_paths] if input_paths
               else _generated_samples(inp, names, seed))
    with open(tflite_path, "rb") as f:
        model_bytes = f.read()
    import hashlib

    spec = {
        "format": BUNDLE_FORMAT, "board": board["name"], "board_title": board["title"],
        "quant": quantization_of(tflite_path), "quant_requested": quant,
        "model": "model.tflite", "model_bytes": len(model_bytes),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "size": list(image[:2]) if image else None, "channels": image[2] if image else None,
        "pixel_range": pixels_in, "softmax": bool(out["softmax"]), "input": inp, "output": out,
        "labels": labels, "samples": [f"{SAMPLES_DIR}/{n}" for n in names],
        "sample_sha256": {f"{SAMPLES_DIR}/{n}": hashlib.sha256(t.tobytes()).hexdigest()
                          for n, t in zip(names, tensors)},
    }
    samples_dir = os.path.join(out_dir, SAMPLES_DIR)
    os.makedirs(samples_dir, exist_ok=True)
    # The folder is copied to the board as a whole (rsync --delete): files of an earlier input set go.
    keep = set(file_names(names))
    for root, dirs, files in os.walk(out_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), out_dir).replace(os.sep, "/")
            if rel not in keep:
                os.remove(os.path.join(root, name))
    with atomic_open(os.path.join(out_dir, "model.tflite"), "wb") as f:
        f.write(model_bytes)
    with atomic_open(os.path.join(out_dir, "labels.txt"), encoding="utf-8") as f:
        f.write("".join(label + "\n" for label in labels))
    for name in STATIC_FILES:
        with atomic_path(os.path.join(out_dir, name)) as tmp:
            shutil.copyfile(os.path.join(BUNDLE_FILES_DIR, name), tmp)
    for name, path, tensor in zip(names, input_paths or [None] * len(names), tensors):
        target = os.path.join(samples_dir, name)
        if path is None:
            with atomic_open(target, "wb") as f:
                np.save(f, tensor)
        else:
            with atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
    with atomic_open(os.path.join(out_dir, "bundle.json")) as f:
        json.dump(spec, f, indent=1)
    # Temporary files are private (0600); the board's other users (a service account) may run the bundle.
    for rel in keep:
        os.chmod(os.path.join(out_dir, rel), 0o755 if rel == "run.py" else 0o644)
    return spec


def content_hash(bundle_dir):
    """sha256 over the bundle's files (names and bytes): what the upload compares with the board's copy."""
    import hashlib

    h = hashlib.sha256()
    for root, dirs, files in os.walk(bundle_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, bundle_dir).replace(os.sep, "/")
            h.update(rel.encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read())
            h.update(b"\0")
    return h.hexdigest()
