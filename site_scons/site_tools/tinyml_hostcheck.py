"""SCons tool: compile the generated sketch with host gcc against an Arduino stand-in, run it, and compare the
printed results with TFLite's."""
import os

from tinyml_glue import add_builder, params_node, stage_action


def _hostcheck(target, source, p):
    from codegen.runners import hostcheck

    summary = hostcheck.host_check(p["sketch_dir"], p["sketch_name"], p["expected"], target[0])
    for row in summary["images"]:
        print(f"  {row['printed']}" + ("" if row["exact"] else f"   (TFLite: {row['expected_line']})"))
    print(f"  {len(summary['images'])} input(s): same decisions as TFLite, "
          + ("bytes identical" if summary["exact"] else f"max difference {summary['max_abs_diff']}"))


def TinyHostCheck(env, build_dir, sketch_nodes, expected, *, sketch_name):
    from codegen.runners import hostcheck

    expected = env.arg2nodes(expected)[0]
    stub = [env.File(os.path.join(hostcheck.HOST_STUB_DIR, f)) for f in ("Arduino.h", "main.cpp")]
    return env.TinyRunHostCheck(os.path.join(build_dir, "hostcheck.json"), list(sketch_nodes) + [expected] + stub + [
        params_node(env, sketch_dir=os.path.join(build_dir, sketch_name), sketch_name=sketch_name,
                    expected=str(expected))])


def generate(env):
    add_builder(env, "TinyRunHostCheck",
                stage_action(_hostcheck, "TINY_HOSTCHECKCOMSTR", "Host check (gcc build + run vs TFLite) -> $TARGET"))
    env.AddMethod(TinyHostCheck)


def exists(env):
    return True
