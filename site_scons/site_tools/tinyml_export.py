"""SCons tool: export the MLF as a plain C library (headers, sources, CMake/Zephyr/PlatformIO manifests), and
the generated sketch as an Arduino library (library.properties, src/, examples/, a .zip): env.TinyCLibrary and
env.TinyArduinoLibrary, declaring the steps of codegen.backends.tvm (c_library_step, arduino_library_step)."""
import os


def TinyCLibrary(env, out_dir, mlf, *, model_name="default"):
    """Returns the library's file nodes; the .c nodes can go straight into env.Program/env.StaticLibrary."""
    from codegen.backends import tvm

    out_dir = env.Dir(out_dir).path if not os.path.isabs(str(out_dir)) else str(out_dir)
    step = tvm.c_library_step(out_dir, model_name=model_name, folder="")
    return env.TinySteps([step], out_dir, {"step:mlf": mlf})[1]["c_library"]


def TinyArduinoLibrary(env, out_dir, sketch_nodes, mlf, *, sketch_name, board, classes=(), model_name="default",
                       images_json=None, images=True):
    """<out_dir>/<sketch>_inferencing/ and <out_dir>/<sketch>_inferencing.zip from the rendered sketch folder;
    returns the nodes, the zip first. With `images_json` (the embed stage's images.json of an image model) the
    library has classify() and its example; `images` False leaves the embedded test inputs out."""
    from codegen.backends import tvm

    sketch_nodes = env.arg2nodes(sketch_nodes)
    step = tvm.arduino_library_step(out_dir, [n.path for n in sketch_nodes], sketch_name=sketch_name, board=board,
                                    classes=classes, model_name=model_name, folder="",
                                    classify=images_json is not None, images=images)
    sources = {"step:sketch": sketch_nodes, "step:mlf": mlf}
    if images_json is not None:
        sources["images_json"] = env.arg2nodes(images_json)
    return env.TinySteps([step], out_dir, sources)[1]["arduino_library"]


def generate(env):
    env.Tool("tinyml_backends")     # env.TinySteps
    env.AddMethod(TinyCLibrary)
    env.AddMethod(TinyArduinoLibrary)


def exists(env):
    return True
