"""Sketch stage: renders the Arduino sketch folder from Jinja templates, the MLF and the embedded images.

Layout (arduino-cli compiles `src/` recursively):
    <name>/<name>.ino          from <templates>/sketch.ino.j2
    <name>/src/...             every other template (`x.j2` rendered to `x`, other files copied)
    <name>/src/model/...       the MLF's codegen/host/src/*.c and codegen/host/include/*.h
    <name>/src/images.c/.h     from the embed stage
File names depend only on the model name and the templates, never on content, and unchanged files are not
rewritten: arduino-cli's incremental build then recompiles only what really changed.
"""
import json
import traceback
import os

from .bin2c import c_string
from ..errors import PipelineError
from ..fsutil import write_if_changed
from .mlf_archive import model_files, read_mlf

INO_TEMPLATE = "sketch.ino.j2"


def template_files(templates_dir):
    """Relative paths of all template files (sorted), for dependency declaration."""
    found = []
    for dirpath, dirnames, filenames in os.walk(templates_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and not f.endswith("~"):
                found.append(os.path.relpath(os.path.join(dirpath, f), templates_dir))
    return found


def output_name(rel_template, sketch_name):
    if rel_template == INO_TEMPLATE:
        return f"{sketch_name}.ino"
    return rel_template[:-3] if rel_template.endswith(".j2") else rel_template


def sketch_outputs(templates_dir, sketch_name, model_name="default"):
    """Every file the sketch stage writes, relative to the sketch folder."""
    outs = [output_name(t, sketch_name) for t in template_files(templates_dir)]
    if f"{sketch_name}.ino" not in outs:
        raise PipelineError(f"TEMPLATES={templates_dir}: no {INO_TEMPLATE}; a template folder needs at least "
                            "sketch.ino.j2 (copy templates/sketch and edit it)")
    outs += [os.path.join("src", "model", f) for f in model_files(model_name)]
    outs += [os.path.join("src", "images.c"), os.path.join("src", "images.h")]
    return outs


def render(templates_dir, sketch_dir, sketch_name, mlf_tar, images_c, images_h, images_json, context,
           model_name="default"):
    """Writes the sketch; returns the list of files actually (re)written."""
    import jinja2

    metadata, model_sources = read_mlf(mlf_tar, model_name)
    with open(images_json) as f:
        images_meta = json.load(f)
    for e in images_meta["images"]:
        e.pop("data", None)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["c_string"] = c_string      # labels and input names are user text: quote them for C
    ctx = dict(context, sketch_name=sketch_name, model=metadata, model_name=model_name, images=images_meta,
               input=metadata["inputs"][0], output=metadata["outputs"][0])
    outputs = {}
    for rel in template_files(templates_dir):
        src = os.path.join(templates_dir, rel)
        if rel.endswith(".j2"):
            try:
                text = env.get_template(rel.replace(os.sep, "/")).render(**ctx)
            except jinja2.TemplateSyntaxError as e:
                raise PipelineError(f"{e.filename or src}:{e.lineno}: template syntax error: {e.message}") from None
            except jinja2.TemplateNotFound as e:
                raise PipelineError(f"{_template_line(e, templates_dir, src)}: includes {e.name!r}, which "
                                    f"{templates_dir} does not have; add it or remove the include") from None
            except jinja2.UndefinedError as e:
                raise PipelineError(f"{_template_line(e, templates_dir, src)}: {e.message}; the variables a "
                                    f"template can use are: {', '.join(sorted(ctx))}") from None
            except Exception as e:  # noqa: BLE001 - a template's own code (a filter, a division) failed
                raise PipelineError(f"{_template_line(e, templates_dir, src)}: the template failed: "
                                    f"{type(e).__name__}: {e}") from None
            outputs[output_name(rel, sketch_name)] = text.encode()
        else:
            with open(src, "rb") as f:
                outputs[rel] = f.read()
    for name, data in model_sources.items():
        outputs[os.path.join("src", "model", name)] = data
    return write_sketch(sketch_dir, outputs, images_c, images_h)


def write_sketch(sketch_dir, outputs, images_c, images_h):
    """Writes `outputs` ({path in the sketch: bytes}) plus the embedded inputs into `sketch_dir`, each file only
    when its bytes changed (arduino-cli's cache survives), and removes what an earlier render left; returns the
    files actually (re)written.  Shared by every backend's sketch."""
    outputs = dict(outputs)
    for path in (images_c, images_h):
        with open(path, "rb") as f:
            outputs[os.path.join("src", os.path.basename(path))] = f.read()
    written = []
    for rel, data in sorted(outputs.items()):
        path = os.path.join(sketch_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if write_if_changed(path, data):
            written.append(rel)
    _remove_stale(sketch_dir, set(outputs))
    return written


def _template_line(error, templates_dir, fallback):
    """`file:line` of the innermost template frame of an error raised while rendering (Jinja puts the
    template's own file and line into the traceback)."""
    root = os.path.abspath(templates_dir)
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename and os.path.abspath(frame.filename).startswith(root + os.sep):
            return f"{frame.filename}:{frame.lineno}"
    return fallback


def _remove_stale(sketch_dir, keep):
    """Files an earlier render wrote that this one does not (a template removed from TEMPLATES=): left in
    place, arduino-cli and the host check would compile them as if they were current."""
    for dirpath, dirnames, filenames in os.walk(sketch_dir, topdown=False):
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), sketch_dir)
            if rel not in keep and not any(part.startswith(".") for part in rel.split(os.sep)):
                os.remove(os.path.join(dirpath, f))
        if dirpath != sketch_dir and not os.listdir(dirpath):
            os.rmdir(dirpath)
