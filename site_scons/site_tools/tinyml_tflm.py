"""SCons tool: the TensorFlow Lite Micro backend (BACKEND=tflm). The same sketch, host check, simulate and memory
stages as the TVM route, built on TFLM from TFLM_DIR (never copied: a static library per tree content lives in
TFLM_CACHE, codegen/tflm/library.py), and the side-by-side table of both backends (BACKEND=tvm,tflm)."""
import os

from tinyml_glue import add_builder, params_node, stage_action

# The board fields each stage's action uses (its parameter node: the board's name and these; the action gets the
# Board back by name). The M4 link and QEMU run use the emulator's CPU; memory.json shows title, cpu and the budget.
SIMULATE_FIELDS = ("emulator", "emulator_kind", "emulator_machine", "cpu", "gcc_flags", "clock_hz",
                   "flash_wait_states")
MEMORY_FIELDS = ("title", "cpu", "gcc_flags", "flash_bytes", "ram_bytes", "core_margin")


def _tree_params(env, tflm_dir, cache):
    """The tree is a parameter by its content hash: editing a TFLM source rebuilds what was built from it."""
    from codegen.tflm import library

    root = library.check_tree(tflm_dir)
    return {"tflm_dir": root, "tflm_cache": cache or "", "tree": library.tree_digest(root)}


def _arena(target, source, p):
    from codegen.tflm import runners

    rec = runners.measure_arena(source[0], p["tflm_dir"], target[0], cache_dir=p["tflm_cache"] or None)
    print(f"  TFLM arena: smallest that runs the model {rec['used_bytes']:,} B on {rec['measured_on']}; sketch arena "
          f"{rec['size_bytes']:,} B")


def _sketch(target, source, p):
    from codegen.tflm import sketch

    tflite, arena, images_c, images_h, images_json = source[:5]
    sketch.render(p["templates"], p["sketch_dir"], p["sketch_name"], tflite, p["tflm_dir"], arena, images_c,
                  images_h, images_json, p["context"])


def _hostcheck(target, source, p):
    import json

    from codegen.fsutil import atomic_open
    from codegen.runners import hostcheck
    from codegen.tflm import runners, yardstick

    with open(p["expected"]) as f:
        expected = json.load(f)
    options = runners.host_build_options(p["tflm_dir"], source[0], cache_dir=p["tflm_cache"] or None)
    # Fails (writing nothing) on a decision that differs from tf.lite's; the verdict is then added.
    summary = hostcheck.host_check(p["sketch_dir"], p["sketch_name"], p["expected"], target[0], options)
    verdict = yardstick.judge([row["scores"] for row in summary["images"]], expected, "on the host")
    summary.update(exact=verdict["resolver"] is not None, matches_resolver=verdict["resolver"],
                   max_diff=verdict["max_diff"], verdict=yardstick.describe(verdict))
    with atomic_open(target[0]) as f:
        json.dump(summary, f, indent=1)
    for row in summary["images"]:
        print(f"  {row['printed']}")
    print(f"  {len(summary['images'])} input(s) on TFLite Micro: {summary['verdict']}")


def _simulate(target, source, p):
    from codegen.device import boards
    from codegen.errors import PipelineError
    from codegen.tflm import runners

    board = boards.from_signature(p["board"])
    if not board.has_qemu:
        raise PipelineError(f"BACKEND=tflm simulates on the Cortex-M4 (QEMU) only; {board.title} has no "
                            "such emulator: use BOARD=nano33ble")
    r = runners.simulate_cortex_m4(p["sketch_dir"], source[0], source[1], source[2], target[0], p["tflm_dir"],
                                   work_dir=p["work_dir"], cache_dir=p["tflm_cache"] or None, board=board)
    print(f"  Cortex-M4 (QEMU mps2-an386), TFLM {r['kernels']} kernels: {r['instructions_per_inference']:,.0f} "
          f"instructions, ~{r['cycles_per_inference_estimate']:,.0f} cycles (estimate) per inference (TFLM reports "
          f"{r['arena_used_bytes_m4']:,} B of arena used); {r['verdict']}")


def _memory(target, source, p):
    from codegen.device import boards
    from codegen.tflm import memory

    report = memory.memory_report(source[0], source[1], boards.from_signature(p["board"]), p["tflm_dir"],
                                  target[0], target[1],
                                  work_dir=p["work_dir"], cache_dir=p["tflm_cache"] or None)
    print(memory.format_report(report))


def _compare(target, source, p):
    from codegen.device import boards
    from codegen.tflm import memory

    table = memory.compare_backends(source, target[0], target[1], boards.from_signature(p["board"]))
    print(table)


def _generator_files(env):
    """The files the TFLM sources are generated and measured from: a change to them redoes those stages."""
    from codegen.emit.sketch import template_files
    from codegen.tflm import model, runners

    return [env.File(os.path.join(model.templates_dir(), t)) for t in template_files(model.templates_dir())] + \
        [env.File(os.path.join(runners.NATIVE_DIR, f)) for f in sorted(os.listdir(runners.NATIVE_DIR))]


def _expected(target, source, p):
    from codegen.tflm import yardstick

    yardstick.expected_scores(source[0], source[1], target[0])


def TinyTflmExpected(env, build_dir, tflite, images_json):
    """expected_tflm.json: tf.lite's BUILTIN_REF lines plus BUILTIN_WITHOUT_DEFAULT_DELEGATES scores."""
    return env.TinyTflmReferenceScores(os.path.join(build_dir, "expected_tflm.json"), [tflite, images_json])


def TinyTflmArena(env, build_dir, tflite, *, tflm_dir, tflm_cache=None):
    return env.TinyTflmMeasureArena(os.path.join(build_dir, "arena.json"), [tflite, *_generator_files(env),
                                    params_node(env, **_tree_params(env, tflm_dir, tflm_cache))])


def TinyTflmSketch(env, build_dir, tflite, arena, images, *, sketch_name, tflm_dir, templates=None, context=None):
    from codegen.tflm import sketch

    templates = env.Dir(templates or env.subst("$TINY_TEMPLATES")).path
    sketch_dir = os.path.join(build_dir, sketch_name)
    outputs = [os.path.join(sketch_dir, f) for f in sketch.sketch_outputs(templates, sketch_name,
                                                                            board=(context or {}).get("board"))]
    deps = [env.File(t) for t in sketch.template_dependencies(templates)]
    params = _tree_params(env, tflm_dir, None)
    nodes = env.TinyTflmRenderSketch(outputs, [tflite, arena, *images[:3], *deps, params_node(
        env, templates=templates, sketch_dir=sketch_dir, sketch_name=sketch_name, context=context or {},
        tflm_dir=params["tflm_dir"], tree=params["tree"])])
    env.Precious(nodes)        # unchanged files keep their mtime (arduino-cli's incremental build)
    return nodes


def TinyTflmHostCheck(env, build_dir, tflite, sketch_nodes, expected, *, sketch_name, tflm_dir, tflm_cache=None):
    from codegen.runners import hostcheck

    expected = env.arg2nodes(expected)[0]
    stub = [env.File(os.path.join(hostcheck.HOST_STUB_DIR, f)) for f in ("Arduino.h", "main.cpp")]
    return env.TinyTflmRunHostCheck(os.path.join(build_dir, "hostcheck.json"), [tflite, *sketch_nodes, expected, *stub,
        params_node(env, sketch_dir=os.path.join(build_dir, sketch_name), sketch_name=sketch_name,
                    expected=str(expected), **_tree_params(env, tflm_dir, tflm_cache))])


def TinyTflmSimulate(env, build_dir, tflite, sketch_nodes, images, expected, board, *, sketch_name, tflm_dir,
                     tflm_cache=None):
    from codegen.device import boards

    board = boards.stage_signature(board, SIMULATE_FIELDS)
    node = env.TinyTflmRunSimulation(os.path.join(build_dir, "simulate.json"), [tflite, images[2], expected,
                                                                                *sketch_nodes,
                                     params_node(env, board=board, work_dir=os.path.join(build_dir, "simulate"),
                                                 sketch_dir=os.path.join(build_dir, sketch_name),
                                                 **_tree_params(env, tflm_dir, tflm_cache))])
    env.Clean(node, env.Dir(os.path.join(build_dir, "simulate")))     # undeclared work files (`scons -c`)
    return node


def TinyTflmMemoryReport(env, build_dir, tflite, arena, board, *, tflm_dir, tflm_cache=None):
    from codegen.device import boards

    board = boards.stage_signature(board, MEMORY_FIELDS)
    nodes = env.TinyTflmMemoryTable([os.path.join(build_dir, "memory.json"), os.path.join(build_dir, "memory.txt")],
                                    [tflite, arena, *_generator_files(env), params_node(env, board=board,
                                                               work_dir=os.path.join(build_dir, "memory"),
                                                               **_tree_params(env, tflm_dir, tflm_cache))])
    env.Clean(nodes, env.Dir(os.path.join(build_dir, "memory")))      # undeclared work files (`scons -c`)
    return nodes


def _arduino_library(target, source, p):
    from codegen.tflm import arduino_library

    arduino_library.make_library(p["tflm_dir"], p["out_dir"])


def TinyTflmArduinoLibrary(env, build_dir, *, tflm_dir):
    """(folder for `arduino-cli compile --library`, its nodes): TFLM_DIR itself when it is an Arduino library,
    else a library folder made around the tree under build_dir (symbolic links, nothing copied)."""
    from codegen.tflm import arduino_library

    existing = arduino_library.existing_library(tflm_dir)
    if existing:
        return existing, []
    params = _tree_params(env, tflm_dir, None)
    lib = os.path.join(build_dir, arduino_library.LIBRARY_NAME)
    nodes = env.TinyTflmMakeArduinoLibrary(
        [os.path.join(lib, "library.properties"), os.path.join(lib, "src", arduino_library.ANCHOR_HEADER)],
        [params_node(env, out_dir=build_dir, **params)])
    # The links into TFLM_DIR and the tree record are undeclared: `scons -c` removes the folder (the links
    # themselves, never what they point to).
    env.Clean(nodes, env.Dir(lib))
    return os.path.abspath(lib), nodes


def TinyBackendComparison(env, build_dir, tvm_memory, tflm_memory, board, tvm_simulate=None, tflm_simulate=None):
    """backends.json/.txt: both backends side by side (flash, arena/workspace, M4 instructions when simulated)."""
    from codegen.device import boards

    sources = [tvm_memory, tflm_memory] + ([tvm_simulate, tflm_simulate] if tvm_simulate and tflm_simulate else [])
    return env.TinyCompareBackends([os.path.join(build_dir, "backends.json"), os.path.join(build_dir, "backends.txt")],
                                   sources + [params_node(env, board=boards.stage_signature(board, ("title",)))])


def generate(env):
    add_builder(env, "TinyTflmReferenceScores",
                stage_action(_expected, "TINY_TFLMEXPECTEDCOMSTR",
                             "TFLite reference scores (two resolvers) -> $TARGET"))
    add_builder(env, "TinyTflmMeasureArena",
                stage_action(_arena, "TINY_TFLMARENACOMSTR", "Measuring the TFLM tensor arena -> $TARGET"))
    add_builder(env, "TinyTflmRenderSketch",
                stage_action(_sketch, "TINY_TFLMSKETCHCOMSTR", "Rendering TFLM sketch -> $TARGET"))
    add_builder(env, "TinyTflmRunHostCheck",
                stage_action(_hostcheck, "TINY_TFLMHOSTCHECKCOMSTR",
                             "Host check on TFLM (gcc + run vs TFLite) -> $TARGET"))
    add_builder(env, "TinyTflmRunSimulation",
                stage_action(_simulate, "TINY_TFLMSIMULATECOMSTR", "Simulating TFLM on the Cortex-M4 -> $TARGET"))
    add_builder(env, "TinyTflmMemoryTable",
                stage_action(_memory, "TINY_TFLMMEMORYCOMSTR", "TFLM memory report -> $TARGET"))
    add_builder(env, "TinyCompareBackends",
                stage_action(_compare, "TINY_COMPARECOMSTR", "Comparing backends -> $TARGET"))
    add_builder(env, "TinyTflmMakeArduinoLibrary",
                stage_action(_arduino_library, "TINY_TFLMLIBCOMSTR", "TFLM as an Arduino library -> $TARGET"))
    for method in (TinyTflmArduinoLibrary, TinyTflmExpected, TinyTflmArena, TinyTflmSketch, TinyTflmHostCheck,
                   TinyTflmSimulate, TinyTflmMemoryReport, TinyBackendComparison):
        env.AddMethod(method)


def exists(env):
    return True
