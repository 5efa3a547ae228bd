"""SCons tool: export the MLF as a plain C library (headers, sources, CMake/Zephyr/PlatformIO manifests)."""
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


def generate(env):
    add_builder(env, "TinyExportCLibrary",
                stage_action(_export, "TINY_EXPORTCOMSTR", "Exporting the model as a C library -> $TARGET"))
    env.AddMethod(TinyCLibrary)


def exists(env):
    return True
