"""SCons tool: export the MLF as a plain C library (headers, sources, CMake/Zephyr/PlatformIO manifests), and
the generated sketch as an Arduino library (library.properties, src/, examples/, a .zip)."""
import json
import os

from tinyml_glue import add_builder, params_node, stage_action


def _export(target, source, p):
    from codegen.emit import export

    export.export_c_library(source[0], p["out_dir"], model_name=p["model_name"])


def TinyCLibrary(env, out_dir, mlf, *, model_name="default"):
    """Returns the library's file nodes; the .c nodes can go straight into env.Program/env.StaticLibrary."""
    from codegen.emit import export

    out_dir = env.Dir(out_dir).path if not os.path.isabs(str(out_dir)) else str(out_dir)
    nodes = env.TinyExportCLibrary([os.path.join(out_dir, f) for f in export.library_files(model_name)],
                                   [mlf, params_node(env, out_dir=out_dir, model_name=model_name)])
    env.Precious(nodes)
    return nodes


def _arduino_library(target, source, p):
    from codegen.emit import arduino_library
    from codegen.emit.mlf_archive import read_mlf

    import hashlib

    metadata, _ = read_mlf(source[-1], p["model_name"])
    with open(source[-1], "rb") as f:
        model_sha256 = hashlib.sha256(f.read()).hexdigest()
    fields = arduino_library.library_fields(p["board"], p["classes"], metadata, model_sha256)
    arduino_library.export_arduino_library(p["sketch_dir"], p["sketch_name"], p["sketch_files"], p["out_dir"],
                                           p["lib_name"], fields, target[0])
    print(f"  Arduino library {p['lib_name']}: {target[0]} "
          f"(arduino-cli lib install --zip-path {target[0]}; example {p['sketch_name']})")


def _arduino_library_emitter(target, source, env):
    """The zip first, then every file of the library folder: all declared, so `scons -c` removes them and a
    deleted one is rebuilt."""
    from codegen.emit import arduino_library

    p = json.loads(source[-1].read())
    lib_dir = os.path.join(p["out_dir"], p["lib_name"])
    files = arduino_library.library_files(p["sketch_files"], p["sketch_name"], p["lib_name"])
    return target[:1] + [env.fs.File(os.path.join(lib_dir, f)) for f in files], source


def TinyArduinoLibrary(env, out_dir, sketch_nodes, mlf, *, sketch_name, board, classes=(), model_name="default"):
    """<out_dir>/<sketch>_inferencing/ and <out_dir>/<sketch>_inferencing.zip from the rendered sketch folder;
    returns the nodes, the zip first."""
    from codegen.emit import arduino_library

    sketch_nodes = env.arg2nodes(sketch_nodes)
    ino = next(n for n in sketch_nodes if os.path.basename(n.path) == sketch_name + ".ino")
    sketch_dir = os.path.dirname(ino.path)
    lib_name = arduino_library.library_name(sketch_name)
    sketch_files = sorted(os.path.relpath(n.path, sketch_dir) for n in sketch_nodes)
    nodes = env.TinyExportArduinoLibrary(os.path.join(out_dir, lib_name + ".zip"), [*sketch_nodes, mlf, params_node(
        env, sketch_dir=sketch_dir, sketch_name=sketch_name, sketch_files=sketch_files, out_dir=out_dir,
        lib_name=lib_name, board=board, classes=list(classes), model_name=model_name)])
    env.Precious(nodes[1:])      # unchanged files keep their mtime: the IDE's build cache stays valid
    return nodes


def generate(env):
    add_builder(env, "TinyExportCLibrary",
                stage_action(_export, "TINY_EXPORTCOMSTR", "Exporting the model as a C library -> $TARGET"))
    add_builder(env, "TinyExportArduinoLibrary",
                stage_action(_arduino_library, "TINY_ARDUINOLIBCOMSTR", "Exporting the Arduino library -> $TARGET"),
                emitter=_arduino_library_emitter)
    env.AddMethod(TinyCLibrary)
    env.AddMethod(TinyArduinoLibrary)


def exists(env):
    return True
