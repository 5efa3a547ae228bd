"""SCons tool: arduino-cli compile (only when a sketch file or a flag changed) and upload (always asked for,
after compile)."""
import os

from tinyml_glue import add_builder, params_node, stage_action


def _compile(target, source, p):
    from codegen import arduino

    arduino.compile_sketch(p["cli"], p["sketch_dir"], p["board"], p["build_path"], p["output_dir"], target[0],
                           extra_flags=p["flags"])


def _upload(target, source, p):
    from codegen import arduino

    arduino.upload(p["cli"], p["board"], p["port"], p["output_dir"], p["sketch_dir"])


def TinyArduinoCompile(env, build_dir, sketch_nodes, board, *, sketch_name, cli="arduino-cli", flags=()):
    sketch_dir = os.path.join(build_dir, sketch_name)
    # Firmware files are written beside compile.json by arduino-cli, undeclared: never take it from a cache.
    return env.NoCache(env.TinyArduinoCompileSketch(
        os.path.join(build_dir, "firmware", "compile.json"),
        list(sketch_nodes) + [params_node(env, cli=cli, board=board, sketch_dir=sketch_dir, flags=list(flags),
                                          build_path=os.path.join(build_dir, "arduino-build"),
                                          output_dir=os.path.join(build_dir, "firmware"))]))


def TinyArduinoUpload(env, build_dir, compiled, board, *, sketch_name, cli="arduino-cli", port=""):
    """An always-built alias: `upload` runs after compile every time it is asked for."""
    params = params_node(env, cli=cli, board=board, port=port, sketch_dir=os.path.join(build_dir, sketch_name),
                         output_dir=os.path.join(build_dir, "firmware"))
    alias = env.Alias(f"upload-{board['name']}", [compiled, params], env["TINY_UPLOAD_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def generate(env):
    add_builder(env, "TinyArduinoCompileSketch",
                stage_action(_compile, "TINY_COMPILECOMSTR", "arduino-cli compile -> $TARGET"))
    comstr_var, default, action = stage_action(_upload, "TINY_UPLOADCOMSTR", "arduino-cli upload $SOURCE")
    env.SetDefault(**{comstr_var: default})
    env["TINY_UPLOAD_ACTION"] = action
    env.AddMethod(TinyArduinoCompile)
    env.AddMethod(TinyArduinoUpload)


def exists(env):
    return True
