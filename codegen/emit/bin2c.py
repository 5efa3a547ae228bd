"""Embed stage (bin2c): the test inputs -> raw model-input bytes -> const C arrays + header.

An input is an image (PNG/JPEG/...: resized like training, quantized with the .tflite's input scale/zero
point), a .npy array (float: quantized the same way; int8/uint8: used as is) or a .bin file of raw input bytes;
with no inputs, a few seeded random ones. The bytes are exactly the model's input tensor, so the sketch passes
an array straight to TVMExecute. A JSON sidecar carries the same bytes for the reference run, with the class
labels and the output quantization that the sketch prints its results with.
"""
import base64
import hashlib
import io
import json
import os
import sys

from .. import escape
from ..modelio import images as imagesmod
from ..modelio import usermodel
from ..protocol import FLOAT_TYPES, SUMMARY_MAX, demo_line
from ..errors import PipelineError
from ..fsutil import atomic_open
from ..inputfiles import load_npy, read_bounded
from ..modelio.quantio import (confidence_constants, float_range, model_io, packed_layout, pixels_to_input,
                               quantize_values)

# Human titles for the tutorial's class folders; printed by the sketch before each result ("Car: ...").
TITLES = {"target": "Car", "random": "Other object"}
ALIGNMENT = 16
# Without given inputs (MODEL= a .tflite and no DATA=), this many seeded random ones keep every stage working.
GENERATED_INPUTS = 2
QUANTIZED_TYPES = ("int8", "uint8")
# The tensor types every stage carries (the sketch's buffers are their bytes): bytes per value.
ITEMSIZE = {"int8": 1, "uint8": 1, "int16": 2, "float32": 4}
INPUT_TYPES = ("int8", "uint8", "int16", "float32")
OUTPUT_TYPES = tuple(ITEMSIZE)
# The largest input or output tensor embedded as C arrays (no MCU board has this much RAM; it bounds the time
# and the size of images.c for a model that declares a large input, board or no board).
EMBED_MAX_TENSOR_BYTES = 4 * 2**20
# A labels file is a few hundred bytes; this bounds what a wrong or hostile LABELS= file costs to read.
LABELS_MAX_BYTES = 4 * 2**20


# The C spellings of user text live in codegen.escape; these names stay for the callers that import them here.
c_string = escape.c_string


def c_identifier(text, taken=None):
    return escape.c_identifier(text, taken, fallback="image")


def _printable(text):
    """A name or label as one line of the printed results: no control characters or line breaks, no ": " (the
    separator), and a file name's bytes that are not UTF-8 as U+FFFD (what the host check and a serial monitor
    decode them to)."""
    # Line breaks of every kind (U+2028 too: Python's splitlines() and many terminals break lines there), and
    # the C1 controls (U+009B is a terminal's CSI: a label could drive the terminal printing the results).
    return escape.display_text(str(text).strip()).replace(": ", " ")


def _count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


# What an image input looks like: both sides at least this many pixels, and not a strip (aspect ratio at most 4).
MIN_IMAGE_SIDE = 16
MAX_IMAGE_ASPECT = 4


def looks_like_image(height, width):
    """True for an input (height, width) a picture can sensibly be resized into: 28x28 MNIST, 32x32, 96x96,
    320x240; not 49x10 MFCC frames or a 128x3 accelerometer window."""
    short, long = sorted((int(height), int(width)))
    return short >= MIN_IMAGE_SIDE and long <= MAX_IMAGE_ASPECT * short


def load_input(path, inp):
    """The raw input-tensor bytes for one test input file; PipelineError naming the file when it does not fit."""
    dtype, shape = inp["dtype"], inp["shape"]
    count = _count(shape)
    nbytes = count * ITEMSIZE[dtype]
    what = f"the model input {shape} takes {count} {dtype} values"
    ext = os.path.splitext(path)[1].lower()
    if ext == ".bin":
        raw = read_bounded(path, nbytes, hint=f"{what} ({nbytes} bytes); give exactly the raw input tensor")
        if len(raw) != nbytes:
            raise PipelineError(f"{path}: {len(raw)} bytes, but {what} ({nbytes} bytes); give exactly the raw input "
                                "tensor, or a .npy file")
        return raw
    if ext == ".npy":
        arr = load_npy(path, count * 16)        # any numeric type of `count` values, complex128 included
        return array_input(arr, inp, path)
    if ext == ".npz":
        return load_case(path, [inp])
    image = usermodel.image_input(shape)
    if image is None:
        raise PipelineError(f"{path}: an image, but {what} and is not an image (height, width, 1 or 3 channels); "
                            "give .npy or .bin test inputs")
    height, width, channels = image
    if not looks_like_image(height, width):
        # e.g. keyword spotting's [1, 49, 10, 1] MFCCs: an image stretched into it feeds the model nonsense.
        sys.stderr.write(f"warning: {path}: an image, but the model's input {shape} does not look like one "
                         f"({height}x{width}, {channels} channel{'s' if channels > 1 else ''}: audio or sensor "
                         "features?); it is stretched into it anyway; give .npy or .bin inputs if that is not "
                         "what you meant\n")
        sys.stderr.flush()
    pixels = imagesmod.load_image(path, (height, width), channels)
    return pixels_to_input(pixels, dtype, inp["scale"], inp["zero_point"]).tobytes()


def array_input(arr, inp, where):
    """The raw input-tensor bytes of one array (a .npy file, a member of a .npz): floats quantized with the input's
    scale (a float32 input takes them as they are), integers of the input's type as they are."""
    import numpy as np

    dtype, shape = inp["dtype"], inp["shape"]
    count = _count(shape)
    what = f"the model input {shape} takes {count} {dtype} values"
    if arr.size != count:
        raise PipelineError(f"{where}: {arr.size} values (shape {list(arr.shape)}), but {what}; give one input "
                            f"of shape {shape[1:] or shape} or {count} values")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise PipelineError(f"{where}: holds NaN or infinite values; give finite float inputs")
        return quantize_values(arr.reshape(-1), dtype, inp["scale"], inp["zero_point"]).tobytes()
    if dtype == "float32" and arr.dtype.kind in "iu":        # integers given to a float input: their values
        return arr.reshape(-1).astype(np.float32).tobytes()
    if arr.dtype.name in QUANTIZED_TYPES + ("int16",):
        if arr.dtype.name != dtype:
            raise PipelineError(f"{where}: {arr.dtype.name} values, but {what}; give {dtype} values (used as "
                                "they are) or float values (quantized with the input's scale)")
        return np.ascontiguousarray(arr).reshape(-1).tobytes()
    raise PipelineError(f"{where}: {arr.dtype.name} values, but {what}; give float values (quantized with the "
                        f"input's scale) or {dtype} values (used as they are)")


def load_case(path, inputs):
    """The packed bytes of every input for one test case of a model with several inputs (packed_layout): a .npz
    with one array per input, keyed by the input tensor's name or arr_0, arr_1, ... in input order; or a .bin of
    the packed bytes."""
    import zipfile

    import numpy as np

    offsets, total = packed_layout([_count(t["shape"]) * ITEMSIZE[t["dtype"]] for t in inputs])
    names = ", ".join(repr(t["name"]) for t in inputs)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".bin":
        raw = read_bounded(path, total, hint=f"the model's {len(inputs)} inputs packed take {total} bytes")
        if len(raw) != total:
            raise PipelineError(f"{path}: {len(raw)} bytes, but the model's {len(inputs)} inputs ({names}) packed "
                                f"at 16-byte aligned offsets take {total}; give one .npz per case instead")
        return raw
    if ext != ".npz":
        raise PipelineError(f"{path}: the model has {len(inputs)} inputs ({names}); give each test case as one .npz "
                            "with one array per input (keyed by the input's name, or arr_0, arr_1, ... in order)")
    limit = sum(_count(t["shape"]) for t in inputs) * 16 + 2**16
    try:
        with zipfile.ZipFile(path) as z:
            if sum(i.file_size for i in z.infolist()) > limit:
                raise PipelineError(f"{path}: holds more data than the model's inputs take; give one array per input")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except PipelineError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise PipelineError(f"{path}: not a readable .npz ({e}); save it with numpy.savez") from None
    raw = bytearray(total)
    for k, (t, off) in enumerate(zip(inputs, offsets)):
        arr = arrays.get(t["name"], arrays.get(f"arr_{k}"))
        if arr is None:
            raise PipelineError(f"{path}: no array for input {k} {t['name']!r} (it holds {sorted(arrays)}); key each "
                                f"array by its input's name ({names}) or save them in order with numpy.savez")
        data = array_input(arr, t, f"{path}[{t['name'] if t['name'] in arrays else f'arr_{k}'}]")
        raw[off:off + len(data)] = data
    return bytes(raw)


def _multi_inputs(inputs, input_paths, labels, generate, seed):
    """[(label, title, source, packed raw)] of the test cases of a model with several inputs: one .npz (or packed
    .bin) per case, else `generate` seeded ones (each input generated as one of a single-input model would be)."""
    if input_paths:
        names = labels or [None] * len(input_paths)
        return [(label or os.path.splitext(os.path.basename(path))[0], os.path.basename(path),
                 os.path.basename(path), load_case(path, inputs)) for path, label in zip(input_paths, names)]
    offsets, total = packed_layout([_count(t["shape"]) * ITEMSIZE[t["dtype"]] for t in inputs])
    cases = [bytearray(total) for _ in range(generate)]
    for k, (t, off) in enumerate(zip(inputs, offsets)):
        for case, (_, raw) in zip(cases, generated_inputs(t, generate, seed + 1000 * k)):
            case[off:off + len(raw)] = raw
    return [(f"input{i}", f"input{i}", "generated", bytes(case)) for i, case in enumerate(cases)]


def _demo_inputs(npz_path, inp, truths):
    """[(label, title, source, raw)] of the dataset's held-out demo images (`Car 1`, `Car 2`, ...); fills
    `truths` {label: true class index}."""
    import numpy as np

    image = usermodel.image_input(inp["shape"])
    with np.load(npz_path) as z:
        xs, ys, names = z["demo_x"], z["demo_y"], [str(c) for c in z["class_names"]]
    if image is None or tuple(xs.shape[1:]) != tuple(image):
        raise PipelineError(f"{npz_path}: held-out images of shape {list(xs.shape[1:])}, but the model input is "
                            f"{inp['shape']}; give test inputs with INPUTS=")
    raws, counts = [], {}
    # The tutorial's order: the car first, then the other classes.
    order = sorted(range(len(ys)), key=lambda i: (names[int(ys[i])] != "target", names[int(ys[i])], i))
    for x, y in ((xs[i], ys[i]) for i in order):
        cls = names[int(y)]
        counts[cls] = counts.get(cls, 0) + 1
        label = f"{cls}_{counts[cls]}"
        truths[label] = int(y)
        raws.append((label, f"{TITLES.get(cls, cls)} {counts[cls]}", f"held-out {cls} #{counts[cls]}",
                     pixels_to_input(x, inp["dtype"], inp["scale"], inp["zero_point"]).tobytes()))
    return raws


# The sketch's last line, `7/8 correct (87.5%)`: the result-line protocol's.
demo_summary_line = demo_line


def generated_inputs(inp, n, seed):
    """n deterministic random input tensors (uniform over the input type), named input0, input1, ..."""
    import numpy as np

    rng = np.random.RandomState(seed)
    if inp["dtype"] == "float32":
        # uniform over the floats the model's own QUANTIZE of its input can represent (else -1..1)
        q = inp.get("quantize") or {}
        lo, hi = (float_range(q["dtype"], q["scale"], q["zero_point"]) if q.get("scale", 0) > 0
                  and q.get("dtype") in ("int8", "uint8", "int16") else (-1.0, 1.0))
        return [(f"input{i}", rng.uniform(lo, hi, _count(inp["shape"])).astype(np.float32).tobytes())
                for i in range(n)]
    info = np.iinfo(inp["dtype"])
    return [(f"input{i}", rng.randint(int(info.min), int(info.max) + 1, _count(inp["shape"]))
             .astype(inp["dtype"]).tobytes()) for i in range(n)]


def class_labels_for(output_size, labels_file=None, class_labels=None, class_source="the dataset"):
    """The label of each output: LABELS= file lines, else the dataset's classes, else class0..classN-1."""
    if labels_file:
        raw = read_bounded(labels_file, LABELS_MAX_BYTES, f"LABELS={labels_file}",
                           "give a text file with one short label per line")
        try:
            # utf-8-sig: an editor's BOM belongs to the file, not to the first label.
            labels = [_printable(line) for line in io.StringIO(raw.decode("utf-8-sig"), newline=None)]
        except UnicodeDecodeError as e:
            raise PipelineError(f"LABELS={labels_file}: cannot read it as UTF-8 text ({e})") from None
        labels = [label for label in labels if label]
        if len(labels) != output_size:
            raise PipelineError(f"LABELS={labels_file}: {len(labels)} labels, but the model has {output_size} "
                                "outputs; give one label per line, one for each output, in output order")
        return labels
    if class_labels:
        if len(class_labels) != output_size:
            raise PipelineError(f"{class_source}: {len(class_labels)} classes ({', '.join(class_labels)}), but the "
                                f"model has {output_size} outputs; give LABELS=<file> with {output_size} labels")
        return [_printable(c) for c in class_labels]
    return [f"class{i}" for i in range(output_size)]


def output_meta(out):
    """The output's quantization and how its top score is printed (see quantio.confidence_text)."""
    if out["dtype"] in FLOAT_TYPES:     # a float probability's confidence comes from its bits (protocol.py)
        constants, softmax = None, bool(out["softmax"])
    else:
        constants = confidence_constants(out["scale"]) if out["softmax"] and out["scale"] > 0 else None
        softmax = constants is not None
    return {"dtype": out["dtype"], "shape": out["shape"], "size": _count(out["shape"]), "scale": out["scale"],
            "zero_point": out["zero_point"], "softmax": softmax, "itemsize": ITEMSIZE[out["dtype"]],
            "confidence_multiplier": constants[0] if constants else None,
            "confidence_shift": constants[1] if constants else None}


def embed(input_paths, tflite_path, out_c, out_h, out_json, *, labels=None, progmem=False, class_labels=None,
          labels_file=None, class_source="the dataset", generate=GENERATED_INPUTS, seed=0, board=None, demo_npz=None):
    """`labels`: a name per input (the tutorial's held-out class folders); `class_labels`/`labels_file`: the
    label of each model output. Without input files, `generate` seeded random inputs; with `demo_npz` (the
    dataset's .npz), its held-out images, each entry with its true class ("truth"). `board` ({"title",
    "ram_bytes"}): the model's input and output tensors must fit in its RAM."""
    io = model_io(tflite_path)
    inp, out = io["input"], io["output"]
    multi = len(io["inputs"]) > 1 or len(io["outputs"]) > 1
    for role, t in [("input", t) for t in io["inputs"]] + [("output", t) for t in io["outputs"]]:
        nbytes = _count(t["shape"]) * ITEMSIZE.get(t["dtype"], 4)
        if nbytes > EMBED_MAX_TENSOR_BYTES:
            raise PipelineError(f"{tflite_path}: the model {role} {t['shape']} takes {nbytes:,} bytes, more than "
                                f"the {EMBED_MAX_TENSOR_BYTES:,} bytes a sketch's test input or result may have; "
                                "use a model with a smaller input for a microcontroller")
        if board and board.get("ram_bytes") and nbytes > board["ram_bytes"]:
            raise PipelineError(f"{tflite_path}: the model {role} {t['shape']} takes {nbytes:,} bytes, more than "
                                f"the {board['ram_bytes']:,} bytes of RAM of {board.get('title') or 'the board'}; "
                                "use a model with a smaller input for this board, or a bigger BOARD=")
    for role, t, types in ([("input", t, INPUT_TYPES) for t in io["inputs"]]
                           + [("output", t, OUTPUT_TYPES) for t in io["outputs"]]):
        if t["dtype"] not in types:
            raise PipelineError(f"{tflite_path}: the model {role} is {t['dtype']}; the sketch takes "
                                f"{' or '.join(types)} {role}s (convert with inference_{role}_type tf.int8 or "
                                "tf.uint8)")
    output = output_meta(out)
    # the labels are for the (first) classifier output: with several outputs, the first short softmax
    heads = [output_meta(t) for t in io["outputs"]] if multi else [output]
    head = next((o for o in heads if o["softmax"] and o["size"] <= SUMMARY_MAX), heads[0])
    classes = class_labels_for(head["size"], labels_file, class_labels, class_source)
    dtype, shape, size = inp["dtype"], inp["shape"], _count(inp["shape"]) * ITEMSIZE[inp["dtype"]]
    truths = {}
    if multi:
        dtype, shape = "packed", [packed_layout([_count(t["shape"]) * ITEMSIZE[t["dtype"]] for t in io["inputs"]])[1]]
        size = shape[0]
        raws = _multi_inputs(io["inputs"], input_paths, labels, generate, seed)
    elif demo_npz:
        raws = _demo_inputs(demo_npz, inp, truths)
    elif input_paths:
        names = labels or [None] * len(input_paths)
        raws = []
        for path, label in zip(input_paths, names):
            title = TITLES.get(label, label) if label else os.path.basename(path)
            label = label or os.path.splitext(os.path.basename(path))[0]
            raws.append((label, title, os.path.basename(path), load_input(path, inp)))
    else:
        raws = [(name, name, "generated", raw) for name, raw in generated_inputs(inp, generate, seed)]
    entries, seen = [], set()
    for label, title, source, raw in raws:
        name = c_identifier("image_" + label, seen)
        entries.append({"name": name, "label": label, "title": _printable(title), "source": source,
                        "sha256": hashlib.sha256(raw).hexdigest(), "data": base64.b64encode(raw).decode()})
        if label in truths:
            entries[-1]["truth"] = truths[label]
    meta = {"shape": shape, "dtype": dtype, "scale": inp["scale"], "zero_point": inp["zero_point"],
            "size_bytes": size, "progmem": progmem, "labels": classes, "output": output, "images": entries,
            "demo": bool(entries) and all("truth" in e for e in entries)}
    if multi:
        # every input and output with its place in the packed buffers (codegen.modelio.quantio.packed_layout)
        offsets, _ = packed_layout([_count(t["shape"]) * ITEMSIZE[t["dtype"]] for t in io["inputs"]])
        meta["inputs"] = [{"name": _printable(t["name"]), "shape": t["shape"], "dtype": t["dtype"],
                           "scale": t["scale"], "zero_point": t["zero_point"], "offset": off,
                           "size_bytes": _count(t["shape"]) * ITEMSIZE[t["dtype"]]}
                          for t, off in zip(io["inputs"], offsets)]
        offsets, total = packed_layout([_count(t["shape"]) * ITEMSIZE[t["dtype"]] for t in io["outputs"]])
        meta["outputs"] = []
        for t, off in zip(io["outputs"], offsets):
            o = dict(output_meta(t), name=_printable(t["name"]), offset=off)
            # a short softmax prints as label and confidence (the labels when they are as many as its values)
            o["classifier"] = bool(o["softmax"]) and o["size"] <= SUMMARY_MAX
            o["labelled"] = o["classifier"] and len(classes) == o["size"]
            meta["outputs"].append(o)
        meta["output_size_bytes"] = total
    image = usermodel.image_input(shape)
    dims = "x".join(str(d) for d in shape[1:] or shape)

    header = [
        "/* Generated by codegen/emit/bin2c.py: test images as raw model-input bytes. Do not edit. */",
        "#ifndef SKETCH_IMAGES_H_", "#define SKETCH_IMAGES_H_", "", "#include <stdint.h>", "",
    ]
    if progmem:
        header += ["/* On AVR, const data lives in RAM unless placed in flash; read it with memcpy_P. Elsewhere",
                   "   (the host check, other CPUs) flash is directly addressable. */",
                   "#if defined(__AVR__)", "#include <avr/pgmspace.h>", "#define IMAGES_STORAGE PROGMEM", "#else",
                   "#define IMAGES_STORAGE", "#endif"]
    else:
        header += ["#define IMAGES_STORAGE"]
    header += ["", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
               f"/* model input {shape} */"]
    if image:
        header += [f"#define IMAGE_HEIGHT {image[0]}", f"#define IMAGE_WIDTH {image[1]}",
                   f"#define IMAGE_CHANNELS {image[2]}"]
    header += [f"#define IMAGE_SIZE_BYTES {size}",
               f"#define IMAGE_DTYPE_{dtype.upper()} 1  /* bytes are {dtype} values ("
               + ("every input at its 16-byte aligned offset" if dtype == "packed" else
                  "the model's float input, little-endian" if dtype == "float32" else
                  "little-endian" if dtype == "int16" else "quantized model input") + ") */",
               f"#define IMAGE_COUNT {len(entries)}", ""]
    for e in entries:
        header.append(f"/* {escape.c_comment(e['source'])} ({escape.c_comment(e['label'])}) */")
        header.append(f"extern const uint8_t {e['name']}[IMAGE_SIZE_BYTES];")
    header += ["", "#ifdef __cplusplus", "}", "#endif", "", "#endif  /* SKETCH_IMAGES_H_ */", ""]

    body = ["/* Generated by codegen/emit/bin2c.py from the images named below. Do not edit. */",
            '#include "images.h"', ""]
    for e in entries:
        raw = base64.b64decode(e["data"])
        body.append(f"/* {escape.c_comment(e['source'])}: {dims} {dtype}, sha256 {e['sha256'][:16]} */")
        body.append(f"const uint8_t {e['name']}[IMAGE_SIZE_BYTES] __attribute__((aligned({ALIGNMENT}))) "
                    "IMAGES_STORAGE = {")
        for i in range(0, len(raw), 16):
            body.append("  " + ", ".join(f"0x{b:02x}" for b in raw[i:i + 16]) + ",")
        body += ["};", ""]

    with atomic_open(out_h) as f:
        f.write("\n".join(header))
    with atomic_open(out_c) as f:
        f.write("\n".join(body))
    with atomic_open(out_json) as f:
        json.dump(meta, f, indent=1)
    return meta


def load_embedded(images_json):
    """(meta, [raw bytes per image]) from the sidecar JSON."""
    with open(images_json) as f:
        meta = json.load(f)
    return meta, [base64.b64decode(e["data"]) for e in meta["images"]]
