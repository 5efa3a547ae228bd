"""The sketch of BACKEND=tinymaix: the same .ino (and any other base template) as the TVM sketch, with the
backend files (src/model.*) replaced by TinyMaix ones from templates/tinymaix, so the .ino stays backend-neutral.

    <name>/<name>.ino                 from <TEMPLATES>/sketch.ino.j2 (the same template as the TVM sketch)
    <name>/src/model.h, model.c       the TVMInitialize/TVMExecute API on tm_load/tm_run, the static buffer
    <name>/src/model_data.c/.h        the .tmdl as an 8-byte aligned array
    <name>/src/tinymaix_port.h        the build's TinyMaix configuration over the checkout's tm_port.h
    <name>/src/images.c/.h            the embedded test inputs

TinyMaix's runtime is not in the sketch: the host check and the simulation compile it from TINYMAIX_DIR.
"""
import hashlib
import json
import os

from ...emit.sketch import (INO_TEMPLATE, output_name, project_file, template_files, user_context, user_images,
                            write_sketch)
from ...emit.templating import Escaped
from ...errors import PipelineError
from ... import escape

TEMPLATES_DIR = "tinymaix"       # under the project's templates/


def templates_dir():
    from ...resources import sketch_templates_dir

    return os.path.join(os.path.dirname(sketch_templates_dir()), TEMPLATES_DIR)


def _stem(rel):
    return os.path.splitext(rel[:-3] if rel.endswith(".j2") else rel)[0]


def backend_templates():
    return template_files(templates_dir())


def _base_templates(base_dir):
    """The base templates kept: all but those whose output a TinyMaix template replaces."""
    replaced = {_stem(rel) for rel in backend_templates()}
    return [rel for rel in template_files(base_dir, warn=lambda msg: None)
            if rel == INO_TEMPLATE or _stem(output_name(rel, "x")) not in replaced]


def sketch_outputs(base_dir, sketch_name, board=None):
    """Every file the sketch step writes, relative to the sketch folder."""
    outs = [output_name(rel, sketch_name) for rel in _base_templates(base_dir)]
    outs += [rel[:-3] if rel.endswith(".j2") else rel for rel in backend_templates()]
    outs += [os.path.join("src", "images.c"), os.path.join("src", "images.h")]
    return outs + [f for f in project_file(board) if f not in outs]


def template_dependencies(base_dir):
    return [os.path.join(base_dir, rel) for rel in _base_templates(base_dir)] + \
        [os.path.join(templates_dir(), rel) for rel in backend_templates()]


def render_templates(directory, ctx, only):
    """{output path: bytes} of the templates `only` under directory (x.j2 rendered to x, others copied)."""
    from ...emit.sketch import render_files

    return render_files(directory, ctx, only)


def _hex_lines(data, per_line=16):
    return "\n".join("  " + ", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ","
                     for i in range(0, len(data), per_line))


def _tensor(t):
    n = 1
    for d in t["shape"]:
        n *= d
    return {"shape": t["shape"], "dtype": t["dtype"], "size_bytes": n}


def model_context(tmdl_path, layers):
    """Template variables of the TinyMaix model sources, from model.tmdl and layers.json."""
    with open(tmdl_path, "rb") as f:
        data = f.read()
    return {"model_file": escape.UserText(layers["model"]), "tmdl_size": len(data),
            "tmdl_sha256": hashlib.sha256(data).hexdigest(), "tmdl_bytes": Escaped(_hex_lines(data)),
            "ops": [row["op"] for row in layers["layers"]] or layers["ops"],
            "buffer": {"total_bytes": layers["buffer_bytes"],
                       "pingpong_bytes": layers["buffer_bytes"] - (layers.get("keep_bytes") or 0),
                       "keep_bytes": layers.get("keep_bytes") or 0},
            "input": _tensor(layers["input"]), "output": _tensor(layers["output"])}


def model_sources(tmdl_path, layers):
    """{path in the sketch (src/...): bytes} of the TinyMaix model sources, and their context."""
    ctx = model_context(tmdl_path, layers)
    return render_templates(templates_dir(), ctx, backend_templates()), ctx


def render(base_dir, sketch_dir, sketch_name, tmdl_path, layers_json, images_c, images_h, images_json, context):
    """Writes the sketch; returns the files actually (re)written."""
    with open(layers_json) as f:
        layers = json.load(f)
    files, ctx = model_sources(tmdl_path, layers)
    with open(images_json) as f:
        images_meta = json.load(f)
    if images_meta.get("size_bytes") not in (None, ctx["input"]["size_bytes"]):
        raise PipelineError(f"{images_json} holds {images_meta['size_bytes']}-byte inputs but the TinyMaix model "
                            f"takes {ctx['input']['size_bytes']} bytes: re-embed the inputs for this model")
    # The same marking of user text as the TVM sketch's: the shared .ino may write it only through a filter.
    base_ctx = dict(user_context(context), sketch_name=sketch_name, images=user_images(images_meta),
                    input=ctx["input"], output=ctx["output"],
                    model={"workspace_size_bytes": ctx["buffer"]["total_bytes"], "backend": "tinymaix",
                           "ops": ctx["ops"]},
                    model_name="default", backend_description="a TinyMaix model")
    outputs = dict(files)
    keep = _base_templates(base_dir)
    rendered = render_templates(base_dir, base_ctx, keep)
    for rel in keep:
        outputs[output_name(rel, sketch_name)] = rendered[rel[:-3] if rel.endswith(".j2") else rel]
    for name, text in project_file(context.get("board")).items():
        outputs.setdefault(name, text.encode())     # arduino-cli's project file, as for the TVM sketch
    return write_sketch(sketch_dir, outputs, images_c, images_h)
