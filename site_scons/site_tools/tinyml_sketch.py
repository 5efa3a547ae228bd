"""SCons tool: render the Arduino sketch folder from Jinja templates, the MLF and the embedded images."""
import os

from tinyml_glue import add_builder, literal_nodes, params_node, setting, stage_action


def _sketch(target, source, p):
    from codegen.emit import sketch

    mlf, images_c, images_h, images_json = source[:4]
    sketch.render(p["templates"], p["sketch_dir"], p["sketch_name"], mlf, images_c, images_h, images_json,
                  p["context"], model_name=p["model_name"])


def TinySketch(env, build_dir, mlf, images, *, sketch_name=None, templates=None, context=None,
               model_name="default"):
    """The sketch folder build_dir/<sketch_name>/; returns its file nodes (the .ino first)."""
    from codegen.emit import sketch

    sketch_name = setting(env, sketch_name, "SKETCH")
    # Relative to the top dir when inside it, so that the parameter (and a shared cache key) does not depend on
    # where the checkout lives.
    templates = env.fs.Dir(templates or env.subst("$TINY_TEMPLATES")).path
    sketch_dir = os.path.join(build_dir, sketch_name)
    outputs = [os.path.join(sketch_dir, f) for f in sketch.sketch_outputs(templates, sketch_name, model_name,
                                                                            board=(context or {}).get("board"))]
    template_nodes = literal_nodes(env, [os.path.join(templates, t) for t in sketch.template_files(templates)])
    nodes = env.TinyRenderSketch(outputs, [mlf, *images] + template_nodes + [params_node(
        env, templates=templates, sketch_dir=sketch_dir, sketch_name=sketch_name, model_name=model_name,
        context=context or {}, template_names=sketch.template_files(templates))])
    # Not deleted before a rebuild: unchanged files keep their mtime, so arduino-cli recompiles only what changed.
    env.Precious(nodes)
    return nodes


def generate(env):
    from codegen.resources import sketch_templates_dir

    env.SetDefault(TINY_TEMPLATES=sketch_templates_dir())
    add_builder(env, "TinyRenderSketch", stage_action(_sketch, "TINY_SKETCHCOMSTR", "Rendering sketch -> $TARGET"))
    env.AddMethod(TinySketch)


def exists(env):
    return True
