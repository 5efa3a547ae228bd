"""The generated sketch repackaged as an Arduino library (specification 1.5 format), the form in which Edge
Impulse ships models to Arduino users:

    <out>/<LibName>/library.properties              name, version, author, ..., architectures, includes
    <out>/<LibName>/src/<LibName>.h                 the one header an example includes
    <out>/<LibName>/src/...                         the sketch's src/: model C and headers, embedded inputs
    <out>/<LibName>/examples/<sketch>/<sketch>.ino  the sketch, including <LibName.h> instead of "src/..."
    <out>/<LibName>.zip                             the same tree, for `arduino-cli lib install --zip-path`
                                                    or the IDE's Sketch > Include Library > Add .ZIP Library

The library is made from the rendered sketch folder (any TEMPLATES=), not from the MLF again: what the example
compiles is byte for byte what the host check and arduino-cli compiled as a sketch.
"""
import io
import os
import re
import zipfile

from .. import escape
from ..errors import PipelineError
from ..fsutil import atomic_path, write_if_changed
from .sketch import remove_stale

LIBRARY_SUFFIX = "_inferencing"      # Edge Impulse's convention: <project>_inferencing
# Library specification: letters, digits, spaces, underscores, dots and dashes, starting with a letter or digit.
_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
# The 1.5 format's required fields, in the order the specification lists them.
REQUIRED_PROPERTIES = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                       "architectures")
# Fixed zip entry time: the same library gives the same zip bytes (no spurious rebuilds, cacheable).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SRC_INCLUDE = re.compile(r'^\s*#\s*include\s*"src/(?P<path>[^"]+)"')


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


def library_files(sketch_files, sketch_name, lib_name):
    """Every path (relative to the library folder) the export writes, from the sketch's files (relative to
    the sketch folder)."""
    files = [_place(rel, sketch_name) for rel in sketch_files]
    header = os.path.join("src", lib_name + ".h")
    if header in files:
        raise PipelineError(f"the sketch already has {header}: it is the header the Arduino library {lib_name} "
                            "makes; rename that template or choose another SKETCH=")
    return sorted(files + ["library.properties", header])


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


def _umbrella_header(lib_name, included, src_headers):
    guard = re.sub(r"[^A-Za-z0-9]", "_", lib_name).upper() + "_H_"
    headers = included or sorted(h for h in src_headers if os.sep not in h)
    body = "".join(f'#include "{h}"\n' for h in headers)
    return (f"/* {lib_name}: the model and its embedded test inputs as an Arduino library. Generated by\n"
            f" * tinyml-scons; include this one header (Sketch > Include Library > {lib_name}). */\n"
            f"#ifndef {guard}\n#define {guard}\n\n{body}\n#endif  /* {guard} */\n")


def export_arduino_library(sketch_dir, sketch_name, sketch_files, out_dir, lib_name, fields, zip_path):
    """Writes <out_dir>/<lib_name>/ (unchanged files keep their mtime) and zip_path (atomically); returns the
    library's relative paths.  `fields`: library.properties beyond name/includes."""
    ino_rel = sketch_name + ".ino"
    if ino_rel not in sketch_files:
        raise PipelineError(f"{sketch_dir} has no {ino_rel}: the library's example is made from it")
    contents = {}
    for rel in sketch_files:
        with open(os.path.join(sketch_dir, rel), "rb") as f:
            contents[_place(rel, sketch_name)] = f.read()
    example = os.path.join("examples", sketch_name, ino_rel)
    ino, included = _example_ino(contents[example].decode(), lib_name)
    contents[example] = ino.encode()
    src_headers = [os.path.relpath(r, "src") for r in contents if r.startswith("src" + os.sep) and r.endswith(".h")]
    contents[os.path.join("src", lib_name + ".h")] = _umbrella_header(lib_name, included, src_headers).encode()
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
    title = (board or {}).get("title") or (board or {}).get("name") or "any board"
    return {
        "version": library_version(model_sha256),
        "author": "tinyml-scons (generated)",
        "maintainer": "tinyml-scons (generated)",
        # Labels and the board's title are user text: one line of it (the format has no escapes).
        "sentence": escape.properties_value(f"A TVM-compiled model ({labels}) as standalone C, generated for "
                                            f"{title}."),
        "paragraph": (f"Input {shape(inp)} {inp['dtype']}, output {shape(out)} {out['dtype']}; "
                      f"{metadata.get('workspace_size_bytes', 0):,} bytes of static activation memory, no runtime, "
                      "only libm. The example runs the model on the embedded test inputs and prints label, "
                      "confidence and scores."),
        "category": "Data Processing",
        "url": "https://tvm.apache.org",
        "architectures": library_architectures(board),
        "precompiled": "false",
    }
