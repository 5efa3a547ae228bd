"""SCons tool: compile the generated sketch with host gcc against an Arduino stand-in, run it, and compare the
printed results with TFLite's (env.TinyHostCheck; the step is codegen.backends.tvm.hostcheck_step); and the
compile_commands.json of that host build (`scons compiledb`, SCons' own compilation_db tool)."""
import os

import SCons.Defaults


def TinyHostCheck(env, build_dir, sketch_nodes, expected, *, sketch_name):
    """hostcheck.json: the sketch built with host gcc and run, its printed results against `expected`."""
    from codegen.backends import tvm

    expected = env.arg2nodes(expected)[0]
    step = tvm.hostcheck_step(build_dir, sketch_name, str(expected))
    return env.TinySteps([step], build_dir, {"step:sketch": sketch_nodes, "expected": expected})[1]["check"]


def TinyCompilationDatabase(env, build_dir, sketch_nodes, *, sketch_name):
    """build_dir/compile_commands.json for the host build of the sketch, written by SCons' compilation_db tool
    from Object nodes declared with the host check's own flags (codegen.runners.hostcheck): clangd finds it
    from any file of the sketch (it searches the parent folders). The objects are only declared, never built:
    the host check compiles in a scratch folder. Returns the database node."""
    from codegen.runners import hostcheck

    sketch_dir = os.path.join(build_dir, sketch_name)
    db_env = env.Clone()
    # A clone shares its parent's builder objects: with fresh object builders, compilation_db's emitters and
    # the .ino action below stay out of the caller's env (a firmware repo's own env.Object) and other boards'.
    for name in ("StaticObject", "SharedObject", "Object", "CompilationDatabase"):
        if name in db_env["BUILDERS"]:
            del db_env["BUILDERS"][name]
    for tool in ("gcc", "g++", "compilation_db"):
        db_env.Tool(tool)
    db_env.Replace(CC="gcc", CXX="g++", CCFLAGS=list(hostcheck.COMMON_FLAGS), CFLAGS=list(hostcheck.C_FLAGS),
                   CXXFLAGS=list(hostcheck.CXX_FLAGS), CPPPATH=hostcheck.include_dirs(sketch_dir),
                   COMPILATIONDB_USE_ABSPATH=True)
    static_obj = db_env["BUILDERS"]["StaticObject"]
    # The .ino compiles as C++ (hostcheck.INO_FLAGS): the C++ action, and the .cpp emitter, which carries
    # compilation_db's entry recorder.
    static_obj.add_action(".ino", SCons.Defaults.CXXAction)
    static_obj.add_emitter(".ino", static_obj.emitter[".cpp"])
    obj_dir = os.path.join(build_dir, "compiledb")
    files = [os.path.relpath(n.path, env.Dir(sketch_dir).path) for n in env.arg2nodes(sketch_nodes)]
    for kind, src in hostcheck.compile_units(sketch_dir, sketch_name, files=files):
        inside = os.path.normpath(src).startswith(os.path.normpath(sketch_dir) + os.sep)    # not the stub's main
        obj = os.path.join(obj_dir, os.path.relpath(src, sketch_dir) if inside else os.path.basename(src)) + ".o"
        extra = {"CXXFLAGS": [*hostcheck.CXX_FLAGS, *hostcheck.INO_FLAGS]} if kind == "ino" else {}
        db_env.StaticObject(obj, env.File(src), **extra)
    env.Clean(os.path.join(build_dir, "compile_commands.json"), env.Dir(obj_dir))    # if someone built them
    # compilation_db collects every Object of the run: this board's database lists only this board's.
    return db_env.CompilationDatabase(os.path.join(build_dir, "compile_commands.json"),
                                      COMPILATIONDB_PATH_FILTER=os.path.join(env.Dir(obj_dir).abspath, "*"))


def generate(env):
    env.Tool("tinyml_backends")     # env.TinySteps
    env.AddMethod(TinyHostCheck)
    env.AddMethod(TinyCompilationDatabase)


def exists(env):
    return True
