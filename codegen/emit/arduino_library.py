"""The generated sketch repackaged as an Arduino library (specification 1.5 format), the form in which Edge
Impulse ships models to Arduino users:

    <out>/<LibName>/library.properties              name, version, author, ..., architectures, includes
    <out>/<LibName>/src/<LibName>.h                 the one header an example includes
    <out>/<LibName>/src/...                         the sketch's src/: model C and headers, embedded inputs
    <out>/<LibName>/src/tinyml_classify.c|h         classify(): a frame of any size -> label (with the model's
                                                    images.json: labels, shapes, quantization)
    <out>/<LibName>/examples/<sketch>/<sketch>.ino  the sketch, including <LibName.h> instead of "src/..."
    <out>/<LibName>/examples/classify/              classify() on a frame (classify.ino, frame.h)
    <out>/<LibName>.zip                             the same tree, for `arduino-cli lib install --zip-path`
                                                    or the IDE's Sketch > Include Library > Add .ZIP Library

The library is made from the rendered sketch folder (any TEMPLATES=), not from the MLF again: what the example
compiles is byte for byte what the host check and arduino-cli compiled as a sketch. Without the embedded test
inputs (LIBRARY_IMAGES=0) the library leaves out src/images.c|h and the sketch's example, which runs them; the
classify example stays. C comes from templates/arduino_library (codegen.emit.templating).
"""
import io
import os
import re
import zipfile

from .. import escape
from ..errors import PipelineError
from ..fsutil import atomic_path, write_if_changed
from . import templating
from .sketch import remove_stale, user_images

LIBRARY_SUFFIX = "_inferencing"      # Edge Impulse's convention: <project>_inferencing
# Library specification: letters, digits, spaces, underscores, dots and dashes, starting with a letter or digit.
_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
# The 1.5 format's required fields, in the order the specification lists them.
REQUIRED_PROPERTIES = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                       "architectures")
# Fixed zip entry time: the same library gives the same zip bytes (no spurious rebuilds, cacheable).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SRC_INCLUDE = re.compile(r'^\s*#\s*include\s*"src/(?P<path>[^"]+)"')
# classify(): its source and header in src/, its example (templates/arduino_library).
CLASSIFY_SOURCES = {os.path.join("src", "tinyml_classify.h"): "arduino_library/tinyml_classify.h.j2",
                    os.path.join("src", "tinyml_classify.c"): "arduino_library/tinyml_classify.c.j2"}
CLASSIFY_EXAMPLE = "classify"
CLASSIFY_EXAMPLE_FILES = {os.path.join("examples", CLASSIFY_EXAMPLE, "classify.ino"): "arduino_library/classify.ino.j2",
                          os.path.join("examples", CLASSIFY_EXAMPLE, "frame.h"): "arduino_library/frame.h.j2"}
HEADER_TEMPLATE = "arduino_library/library.h.j2"
# The embedded test inputs, left out with LIBRARY_IMAGES=0 (with the sketch's example, which runs them).
IMAGE_FILES = (os.path.join("src", "images.c"), os.path.join("src", "images.h"))


def library_name(sketch_name):
    return sketch_name + LIBRARY_SUFFIX


def properties_text(fields):
    """library.properties text from {field: value}; raises on a missing required field or a multi-line value
    (the format is one `key=value` per line: a newline would silently start a bogus field)."""
    missing = [k for k in REQUIRED_PROPERTIES if not str(fields.get(k, "")).strip()]
    if missing:
        raise ValueError(f"library.properties lacks {', '.join(missing)}")
    if not _VALID_NAME.match(fields["name"]):
        raise ValueError(f"library name {fields['name']!r} may hold only letters, digits, spaces, _ . - and must "
                         "start with a letter or digit")
    lines = []
    for key, value in fields.items():
        value = str(value)
        if "\n" in value or "\r" in value:
            raise ValueError(f"library.properties field {key} holds a line break")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def architecture(board):
    """The core's architecture (`arduino:avr` -> avr), the value library.properties and the IDE match boards
    by; `*` for a board without a core."""
    core = (board or {}).get("core") or ""
    return escape.properties_value(core.split(":", 1)[1] if ":" in core else "") or "*"


def _place(rel, sketch_name):
    """Where a sketch file goes in the library: src/ stays src/, the rest becomes the example."""
    parts = rel.split(os.sep)
    if parts[0] == "src":
        return rel
    return os.path.join("examples", sketch_name, rel)


def _kept(sketch_files, sketch_name, images):
    """The sketch files that go into the library: all, or (images False) all but the embedded inputs and the
    sketch's own example."""
    if images:
        return list(sketch_files)
    return [rel for rel in sketch_files if rel.split(os.sep)[0] == "src" and rel not in IMAGE_FILES]


def library_files(sketch_files, sketch_name, lib_name, classify=False, images=True):
    """Every path (relative to the library folder) the export writes, from the sketch's files (relative to
    the sketch folder). `classify`: with classify() and its example; `images`: with the embedded test inputs."""
    files = [_place(rel, sketch_name) for rel in _kept(sketch_files, sketch_name, images)]
    header = os.path.join("src", lib_name + ".h")
    added = [header, *(CLASSIFY_SOURCES if classify else ()), *(CLASSIFY_EXAMPLE_FILES if classify else ())]
    for path in added:
        if path in files:
            raise PipelineError(f"the sketch already has {path}: it is a file the Arduino library {lib_name} "
                                "makes; rename that template or choose another SKETCH=")
    return sorted(files + ["library.properties", *added])


def _example_ino(ino_text, lib_name):
    """The sketch's .ino for the library's example: its `#include "src/..."` lines (files that now live in the
    library) become one `#include <LibName.h>`, which includes them in the same order; line numbers stay."""
    included, lines = [], []
    for line in ino_text.splitlines(keepends=True):
        m = _SRC_INCLUDE.match(line)
        if not m:
            lines.append(line)
            continue
        ending = "\n" if line.endswith("\n") else ""
        lines.append(f"#include <{lib_name}.h>{ending}" if not included else
                     f"// {m['path']}: included by {lib_name}.h{ending}")
        included.append(m["path"])
    if not included:        # the builder links the library only when the sketch includes its header
        lines.insert(0, f"#include <{lib_name}.h>\n")
    return "".join(lines), included


def _umbrella_header(lib_name, included, src_headers, images=True, classify=False):
    guard = re.sub(r"[^A-Za-z0-9]", "_", lib_name).upper() + "_H_"
    headers = included or sorted(h for h in src_headers if os.sep not in h)
    if not images:
        headers = [h for h in headers if os.path.join("src", h) not in IMAGE_FILES]
    if classify and "tinyml_classify.h" not in headers:
        headers.append("tinyml_classify.h")
    return templating.render(HEADER_TEMPLATE, lib_name=escape.user_text(lib_name), guard=guard, headers=headers,
                             images_included=images)


def frame_from_inputs(images_meta):
    """The classify example's frame: the first embedded input as the pixels it was made from (at the model's
    size, so its result line is the sketch's first one), when the input's quantization maps pixels onto all
    its bytes; else a test pattern of 1.5 times the model's size (any frame size works)."""
    import base64

    import numpy as np

    from ..modelio import usermodel

    height, width, channels = usermodel.image_input(images_meta["shape"])
    table = quantization_table(images_meta)
    inverse = {}
    for pixel in range(255, -1, -1):
        inverse[table[pixel]] = pixel            # (the smallest pixel of each byte)
    fmt = "CLASSIFY_RGB888" if channels == 3 else "CLASSIFY_GRAY8"
    for entry in images_meta["images"][:1]:
        raw = base64.b64decode(entry.get("data", ""))
        if len(raw) == height * width * channels and all(b in inverse for b in raw):
            return {"what": f"the library's first test input ({entry['source']}) as pixels",
                    "title": entry["title"], "width": width, "height": height, "format": fmt,
                    "data": [inverse[b] for b in raw], "input": entry["name"]}
    h, w = height + height // 2, width + width // 2
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(xx * 255) // max(w - 1, 1), (yy * 255) // max(h - 1, 1), ((xx + yy) * 255) // max(w + h - 2, 1)]
    pixels = np.stack(planes[:channels], axis=-1).astype(np.uint8)
    return {"what": f"a test pattern of {w}x{h} pixels (the library has no image input to show)",
            "title": "test pattern", "width": w, "height": h, "format": fmt,
            "data": [int(v) for v in pixels.reshape(-1)], "input": None}


def quantization_table(images_meta):
    """[the model's input byte for pixel value p, p = 0..255]: the build's own pixels_to_input, so classify()
    quantizes every pixel exactly as the host-side preprocessing does."""
    import numpy as np

    from ..modelio.quantio import pixels_to_input

    q = pixels_to_input(np.arange(256, dtype=np.uint8), images_meta["dtype"], images_meta["scale"],
                        images_meta["zero_point"])
    return [int(b) for b in np.ascontiguousarray(q).view(np.uint8)]


def classify_files(lib_name, images_meta, metadata, baud=115200):
    """{library path: bytes} of classify() and its example, from images.json's content (`images_meta`: labels,
    the input's shape and quantization, the output's) and the MLF's metadata."""
    from ..modelio import usermodel

    image = usermodel.image_input(images_meta.get("shape"))
    if image is None:
        raise PipelineError(f"the Arduino library's classify() needs an image model (height, width, 1 or 3 "
                            f"channels); this model's input is {images_meta.get('shape')}")
    images = user_images(images_meta)
    frame = frame_from_inputs(images_meta)
    frame = dict(frame, what=escape.user_text(frame["what"]), title=escape.user_text(frame["title"]))
    ctx = dict(lib_name=escape.user_text(lib_name), images=images, frame_images=dict(images, progmem=False),
               input=metadata["inputs"][0], output=metadata["outputs"][0], image=image,
               quant_table=quantization_table(images_meta), frame=frame, baud=baud)
    files = {**CLASSIFY_SOURCES, **CLASSIFY_EXAMPLE_FILES}
    return {path: templating.render(template, **ctx).encode() for path, template in files.items()}


def export_arduino_library(sketch_dir, sketch_name, sketch_files, out_dir, lib_name, fields, zip_path, *,
                           images_meta=None, metadata=None, images=True, baud=115200):
    """Writes <out_dir>/<lib_name>/ (unchanged files keep their mtime) and zip_path (atomically); returns the
    library's relative paths.  `fields`: library.properties beyond name/includes. With `images_meta` (images.json's
    content) and `metadata` (the MLF's), the library has classify() and its example; `images` False leaves the
    embedded test inputs (and the sketch's example that runs them) out."""
    ino_rel = sketch_name + ".ino"
    if ino_rel not in sketch_files:
        raise PipelineError(f"{sketch_dir} has no {ino_rel}: the library's example is made from it")
    classify = images_meta is not None
    contents = {}
    for rel in sketch_files:
        with open(os.path.join(sketch_dir, rel), "rb") as f:
            contents[_place(rel, sketch_name)] = f.read()
    example = os.path.join("examples", sketch_name, ino_rel)
    ino, included = _example_ino(contents[example].decode(), lib_name)
    contents[example] = ino.encode()
    src_headers = [os.path.relpath(r, "src") for r in contents if r.startswith("src" + os.sep) and r.endswith(".h")]
    kept = {_place(rel, sketch_name) for rel in _kept(sketch_files, sketch_name, images)}
    contents = {rel: data for rel, data in contents.items() if rel in kept}
    contents[os.path.join("src", lib_name + ".h")] = _umbrella_header(lib_name, included, src_headers, images,
                                                                      classify).encode()
    if classify:
        contents.update(classify_files(lib_name, images_meta, metadata, baud))
    try:
        props = properties_text({"name": lib_name, **fields, "includes": lib_name + ".h"})
    except ValueError as e:
        raise PipelineError(f"cannot write the Arduino library {lib_name}: {e}") from None
    contents["library.properties"] = props.encode()

    lib_dir = os.path.join(out_dir, lib_name)
    for rel, data in contents.items():
        path = os.path.join(lib_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_if_changed(path, data)
    remove_stale(lib_dir, set(contents))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        # The top-level folder is the library: arduino-cli installs it under libraries/<that folder>.
        for rel in sorted(contents):
            info = zipfile.ZipInfo(f"{lib_name}/{rel.replace(os.sep, '/')}", _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, contents[rel])
    with atomic_path(zip_path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
    return sorted(contents)



def library_version(model_sha256):
    """`1.0.0+<12 hex digits of the model's hash>`: semver build metadata, so a library made from another model
    shows another version (it was 1.0.0 for every model) while version ordering stays 1.0.0."""
    return f"1.0.0+{model_sha256[:12]}" if model_sha256 else "1.0.0"


def library_architectures(board):
    """`*` when the generated C and the example are portable; the board's architecture when the example keeps its
    inputs in PROGMEM (AVR's memcpy_P), which other cores need not have."""
    return architecture(board) if (board or {}).get("progmem") else "*"


def library_fields(board, classes, metadata, model_sha256=None):
    """library.properties fields (beyond name and includes) for a model generated for `board`."""
    inp, out = metadata["inputs"][0], metadata["outputs"][0]
    def shape(t):
        return "x".join(str(d) for d in t["shape"])

    labels = ", ".join(classes) if classes else f"{out['size_bytes']} outputs"
    ins, outs = metadata["inputs"], metadata["outputs"]
    if len(ins) == 1 and len(outs) == 1:
        io_text = f"Input {shape(inp)} {inp['dtype']}, output {shape(out)} {out['dtype']}"
    else:       # every tensor (src/model/tvmgen_*.h has each one's macros and the typed invoke API)
        io_text = (f"Inputs {', '.join(shape(t) + ' ' + t['dtype'] for t in ins)}, outputs "
                   f"{', '.join(shape(t) + ' ' + t['dtype'] for t in outs)}")
    title = (board or {}).get("title") or (board or {}).get("name") or "any board"
    return {
        "version": library_version(model_sha256),
        "author": "tinyml-scons (generated)",
        "maintainer": "tinyml-scons (generated)",
        # Labels and the board's title are user text: one line of it (the format has no escapes).
        "sentence": escape.properties_value(f"A TVM-compiled model ({labels}) as standalone C, generated for "
                                            f"{title}."),
        "paragraph": (io_text + "; "
                      f"{metadata.get('workspace_size_bytes', 0):,} bytes of static activation memory, no runtime, "
                      "only libm. The example runs the model on the embedded test inputs and prints "
                      + ("label, confidence and scores." if len(ins) == 1 and len(outs) == 1 else "each output.")),
        "category": "Data Processing",
        "url": "https://tvm.apache.org",
        "architectures": library_architectures(board),
        "precompiled": "false",
    }
