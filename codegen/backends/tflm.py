"""BACKEND=tflm: TensorFlow Lite Micro from TFLM_DIR behind the Backend interface. The same sketch, host check,
simulate and memory stages as the TVM route, built on TFLM (never copied: a static library per tree content lives in
TFLM_CACHE, codegen/tflm/library.py), under build/<BOARD>/tflm/."""
import os

from .base import Backend, Step

# The board fields each step's action uses (only these enter its signature). The M4 link and QEMU run use the
# emulator's CPU; memory.json shows title, cpu and the budget.
SIMULATE_FIELDS = ("emulator", "emulator_kind", "emulator_machine", "cpu", "gcc_flags", "clock_hz",
                   "flash_wait_states")
MEMORY_FIELDS = ("title", "cpu", "gcc_flags", "flash_bytes", "ram_bytes", "core_margin")


def _tree(tflm_dir):
    """The tree is a parameter by its content hash: editing a TFLM source rebuilds what was built from it."""
    from ..tflm import library

    root = library.check_tree(tflm_dir)
    return {"tflm_dir": root, "tree": library.tree_digest(root)}


def _generator_files():
    """The files the TFLM sources are generated and measured from: a change to them redoes those stages."""
    from ..emit.sketch import template_files
    from ..tflm import model, runners

    return tuple([os.path.join(model.templates_dir(), t) for t in template_files(model.templates_dir())] +
                 [os.path.join(runners.NATIVE_DIR, f) for f in sorted(os.listdir(runners.NATIVE_DIR))])


# ------------------------------------------------------------------------------------------------ the actions
def expected(target, source, p):
    from ..tflm import yardstick

    yardstick.expected_scores(source[0], source[1], target[0])


def arena(target, source, p):
    from ..tflm import runners

    rec = runners.measure_arena(source[0], p["tflm_dir"], target[0], cache_dir=p["tflm_cache"] or None)
    print(f"  TFLM arena: smallest that runs the model {rec['used_bytes']:,} B on {rec['measured_on']}; sketch arena "
          f"{rec['size_bytes']:,} B")


def sketch(target, source, p):
    from ..tflm import sketch as tflm_sketch

    tflite, arena_json, images_c, images_h, images_json = source[:5]
    tflm_sketch.render(p["templates"], p["sketch_dir"], p["sketch_name"], tflite, p["tflm_dir"], arena_json,
                       images_c, images_h, images_json, p["context"])


def hostcheck(target, source, p):
    import json

    from ..fsutil import atomic_open
    from ..runners import hostcheck as host
    from ..tflm import runners, yardstick

    with open(p["expected"]) as f:
        expected_scores = json.load(f)
    options = runners.host_build_options(p["tflm_dir"], source[0], cache_dir=p["tflm_cache"] or None)
    # Fails (writing nothing) on a decision that differs from tf.lite's; the verdict is then added.
    summary = host.host_check(p["sketch_dir"], p["sketch_name"], p["expected"], target[0], options)
    verdict = yardstick.judge([row["scores"] for row in summary["images"]], expected_scores, "on the host")
    summary.update(exact=verdict["resolver"] is not None, matches_resolver=verdict["resolver"],
                   max_diff=verdict["max_diff"], verdict=yardstick.describe(verdict))
    with atomic_open(target[0]) as f:
        json.dump(summary, f, indent=1)
    for row in summary["images"]:
        print(f"  {row['printed']}")
    print(f"  {len(summary['images'])} input(s) on TFLite Micro: {summary['verdict']}")


def simulate(target, source, p):
    from .. import boards
    from ..errors import PipelineError
    from ..tflm import runners

    board = boards.from_signature(p["board"])
    if not board.has_qemu:
        raise PipelineError(f"BACKEND=tflm simulates on the Cortex-M4 (QEMU) only; {board['title']} has no "
                            "such emulator: use BOARD=nano33ble")
    r = runners.simulate_cortex_m4(p["sketch_dir"], source[0], source[1], source[2], target[0], p["tflm_dir"],
                                   work_dir=p["work_dir"], cache_dir=p["tflm_cache"] or None, board=board)
    print(f"  Cortex-M4 (QEMU mps2-an386), TFLM {r['kernels']} kernels: {r['instructions_per_inference']:,.0f} "
          f"instructions, ~{r['cycles_per_inference_estimate']:,.0f} cycles (estimate) per inference (TFLM reports "
          f"{r['arena_used_bytes_m4']:,} B of arena used); {r['verdict']}")


def memory(target, source, p):
    from .. import boards
    from ..tflm import memory as tflm_memory

    report = tflm_memory.memory_report(source[0], source[1], boards.from_signature(p["board"]), p["tflm_dir"], target[0],
                                       target[1], work_dir=p["work_dir"], cache_dir=p["tflm_cache"] or None)
    print(tflm_memory.format_report(report))


def arduino_library(target, source, p):
    from ..tflm import arduino_library as library

    library.make_library(p["tflm_dir"], p["out_dir"])


# ------------------------------------------------------------------------------------------------ the backend
class TflmBackend(Backend):
    name = "tflm"
    title = "TFLite Micro"
    folder = "tflm"
    # TFLM's per-op profiler hook (ScopedMicroProfiler) is compiled out of its release build (TF_LITE_STRIP_ERROR_
    # STRINGS), which is the build both the sketch and the benchmark use: there is no TFLM profile to make.
    lacks = {"profile": "TFLM's per-op profiler is compiled out of its release build"}

    def check(self, cfg, board):
        from ..errors import ConfigError
        from ..tflm.library import TflmError, check_tree

        from .base import plain_io_refusal

        # its sketch copies one input and one output tensor's bytes: any type, but one of each
        refusal = plain_io_refusal(cfg, "tflm", ("int8", "uint8", "int16", "float32"))
        if refusal:
            raise ConfigError(refusal)
        try:
            check_tree(cfg["tflm_dir"])
        except TflmError as e:
            raise ConfigError(str(e)) from None
        from .. import boards

        if board and boards.board(board).is_avr:
            raise ConfigError(f"BACKEND=tflm cannot target {board.get('title', 'this board')}: TensorFlow Lite Micro "
                              "needs a 32-bit CPU; use BACKEND=tvm for AVR boards, or a board such as nano33ble")

    def sketch_name(self, cfg):
        return cfg["tflm_sketch"]

    def steps(self, ctx):
        from ..runners import hostcheck as host

        cfg = ctx.cfg
        tree = _tree(cfg["tflm_dir"])
        cached = dict(tree, tflm_cache=cfg["tflm_cache"] or "")
        tdir = os.path.join(ctx.out, self.folder)
        name = self.sketch_name(cfg)
        sketch_dir = os.path.join(tdir, name)
        from ..tflm import sketch as tflm_sketch

        outputs = [os.path.join(name, f) for f in tflm_sketch.sketch_outputs(ctx.templates, name, board=ctx.board)]
        steps = [
            Step("expected", "expected", expected, "TFLite reference scores (two resolvers) -> $TARGET",
                 ("expected_tflm.json",), ("tflite", "images_json")),
            Step("arena", "tflm_arena", arena, "Measuring the TFLM tensor arena -> $TARGET", ("arena.json",),
                 ("tflite", *_generator_files()), cached),
            Step("sketch", "sketch", sketch, "Rendering TFLM sketch -> $TARGET", tuple(outputs),
                 ("tflite", "step:arena", "images_c", "images_h", "images_json",
                  *tflm_sketch.template_dependencies(ctx.templates)),
                 dict(templates=ctx.templates, sketch_dir=sketch_dir, sketch_name=name, context=ctx.sketch_context(),
                      **tree), precious=True),
            Step("check", "check", hostcheck, "Host check on TFLM (gcc + run vs TFLite) -> $TARGET",
                 ("hostcheck.json",),
                 ("tflite", "step:sketch", "step:expected",
                  *(os.path.join(host.HOST_STUB_DIR, f) for f in ("Arduino.h", "main.cpp"))),
                 dict(sketch_dir=sketch_dir, sketch_name=name, expected=os.path.join(tdir, "expected_tflm.json"),
                      **cached)),
            Step("memory", "memory", memory, "TFLM memory report -> $TARGET", ("memory.json", "memory.txt"),
                 ("tflite", "step:arena", *_generator_files()), cached,
                 board_fields=MEMORY_FIELDS, work_dir="memory"),
            Step("simulate", "simulate", simulate, "Simulating TFLM on the Cortex-M4 -> $TARGET", ("simulate.json",),
                 ("tflite", "images_json", "step:expected", "step:sketch"), dict(cached, sketch_dir=sketch_dir),
                 board_fields=SIMULATE_FIELDS, work_dir="simulate"),
        ]
        library_step = self._library_step(cfg, tree, tdir)
        return steps + ([library_step] if library_step else [])

    def _library_step(self, cfg, tree, tdir):
        from ..tflm import arduino_library as library

        if library.existing_library(cfg["tflm_dir"]):
            return None
        lib = os.path.join("arduino_library", library.LIBRARY_NAME)
        # The links into TFLM_DIR and the tree record are undeclared: `scons -c` removes the folder (the links
        # themselves, never what they point to).
        return Step("arduino_library", "compile", arduino_library, "TFLM as an Arduino library -> $TARGET",
                    (os.path.join(lib, "library.properties"), os.path.join(lib, "src", library.ANCHOR_HEADER)),
                    params=dict(tree, out_dir=os.path.join(tdir, "arduino_library")), work_dir=lib)

    def arduino_libraries(self, ctx):
        """TFLM_DIR itself when it is an Arduino library, else a library folder made around the tree under the
        backend's folder (symbolic links, nothing copied)."""
        from ..tflm import arduino_library as library

        existing = library.existing_library(ctx.cfg["tflm_dir"])
        if existing:
            return [existing], None
        return [os.path.abspath(os.path.join(ctx.out, self.folder, "arduino_library", library.LIBRARY_NAME))], \
            "arduino_library"

    def comparison_row(self, memory, simulate=None, check=None):
        return {"flash_bytes": memory["flash_added_bytes"], "constants_or_model_bytes": memory["model_bytes"],
                "code_bytes": memory["runtime_code_bytes"], "workspace_or_arena_bytes": memory["arena_bytes"],
                "ram_bytes": memory["ram_added_bytes"],
                "m4_instructions_per_inference": (simulate or {}).get("instructions_per_inference"),
                "m4_cycles_estimate_per_inference": (simulate or {}).get("cycles_per_inference_estimate"),
                # from BUILTIN_REF, the yardstick of every backend (codegen/tflm/yardstick.py)
                "max_diff": ((check or {}).get("max_diff") or {}).get("BUILTIN_REF"), "kernels": memory.get("kernels")}


BACKEND = TflmBackend()
