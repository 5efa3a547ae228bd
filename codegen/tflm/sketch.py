"""The TFLM backend's sketch: the same .ino (and any other template) as the TVM backend, with the backend files
(src/model.*) replaced by TFLM ones from templates/tflm, so the .ino stays backend-neutral.

    <name>/<name>.ino                 from <TEMPLATES>/sketch.ino.j2 (the same template as the TVM sketch)
    <name>/src/model.h                the TVMInitialize/TVMExecute API, MODEL_ARENA_SIZE from the measured arena
    <name>/src/model.cpp              MicroMutableOpResolver<N> with the model's ops, the interpreter, the arena
    <name>/src/model_data.cpp/.h      the .tflite as an alignas(16) array
    <name>/src/images.c/.h            the embedded test inputs

TFLM itself is not in the sketch: arduino-cli finds it as a library (src/model.cpp includes <TensorFlowLite.h>
under ARDUINO), the host check and the simulation link the library built from TFLM_DIR.
"""
import json
import os

from ..emit.sketch import (INO_TEMPLATE, output_name, project_file, template_files, user_context, user_images,
                           write_sketch)
from . import model


def _stem(rel):
    return os.path.splitext(rel)[0]


def _base_templates(templates_dir):
    """The base templates the TFLM backend keeps: all but those whose output a TFLM template replaces."""
    replaced = {_stem(rel[:-3] if rel.endswith(".j2") else rel) for rel in template_files(model.templates_dir())}
    return [rel for rel in template_files(templates_dir)
            if rel == INO_TEMPLATE or _stem(output_name(rel, "x")) not in replaced]


def sketch_outputs(templates_dir, sketch_name, board=None):
    outs = [output_name(rel, sketch_name) for rel in _base_templates(templates_dir)]
    outs += [rel[:-3] if rel.endswith(".j2") else rel for rel in template_files(model.templates_dir())]
    outs += [os.path.join("src", "images.c"), os.path.join("src", "images.h")]
    return outs + [f for f in project_file(board) if f not in outs]


def template_dependencies(templates_dir):
    return [os.path.join(templates_dir, rel) for rel in _base_templates(templates_dir)] + \
        [os.path.join(model.templates_dir(), rel) for rel in template_files(model.templates_dir())]


def render(templates_dir, sketch_dir, sketch_name, tflite_path, tflm_dir, arena_json, images_c, images_h,
           images_json, context):
    """Writes the sketch; returns the files actually (re)written."""
    with open(arena_json) as f:
        arena = json.load(f)
    files, ctx = model.model_sources(tflite_path, tflm_dir, arena)
    with open(images_json) as f:
        images_meta = json.load(f)
    # The same marking of user text as the TVM sketch's: the shared .ino may write it only through a filter.
    base_ctx = dict(user_context(context), sketch_name=sketch_name, images=user_images(images_meta),
                    input=ctx["input"], output=ctx["output"],
                    model={"workspace_size_bytes": arena["size_bytes"], "backend": "tflm", "ops": ctx["ops"]},
                    model_name="default", backend_description="a TensorFlow Lite Micro model")
    outputs = dict(files)
    keep = _base_templates(templates_dir)
    rendered = model.render_templates(templates_dir, base_ctx, only=keep)
    for rel in keep:
        outputs[output_name(rel, sketch_name)] = rendered[rel[:-3] if rel.endswith(".j2") else rel]
    for name, text in project_file(context.get("board")).items():
        outputs.setdefault(name, text.encode())     # arduino-cli's project file, as for the TVM sketch
    return write_sketch(sketch_dir, outputs, images_c, images_h)
