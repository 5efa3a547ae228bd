"""SCons tool: render the Arduino sketch folder from Jinja templates, the MLF and the embedded images
(env.TinySketch; the step is codegen.backends.tvm.sketch_step, the pipeline's too)."""
from tinyml_glue import setting


def TinySketch(env, build_dir, mlf, images, *, sketch_name=None, templates=None, context=None,
               model_name="default"):
    """The sketch folder build_dir/<sketch_name>/; returns its file nodes (the .ino first)."""
    from codegen.backends import tvm

    sketch_name = setting(env, sketch_name, "SKETCH")
    # Relative to the top dir when inside it, so that the parameter (and a shared cache key) does not depend on
    # where the checkout lives.
    templates = env.fs.Dir(templates or env.subst("$TINY_TEMPLATES")).path
    images = env.Flatten([images])
    step = tvm.sketch_step(build_dir, templates, sketch_name, context=context, model_name=model_name)
    return env.TinySteps([step], build_dir, {"step:mlf": mlf, "images_c": images[0], "images_h": images[1],
                                             "images_json": images[2:]})[1]["sketch"]


def generate(env):
    env.Tool("tinyml_backends")     # env.TinySteps
    from codegen.resources import sketch_templates_dir

    env.SetDefault(TINY_TEMPLATES=sketch_templates_dir())
    env.AddMethod(TinySketch)


def exists(env):
    return True
