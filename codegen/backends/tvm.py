"""BACKEND=tvm: the project's own route behind the Backend interface: the .tflite lowered to standalone C
(codegen/lowering -> Model Library Format), the sketch around it, the C library and Arduino library exports, the
host check, the memory report, the simulation on the board's emulated CPU and the per-layer profile.

Each step is made by one factory below; `TvmBackend.steps` lists them for the pipeline, and the SCons methods a
firmware repo calls alone (env.TinyMLF, env.TinySketch, env.TinyMemoryReport, ...) declare the same factories'
Steps: one declaration of each stage, whoever asks for it.
"""
import os

from .base import LIBRARY_BOARD_FIELDS, Backend, Step

MODEL_NAME = "default"


# ------------------------------------------------------------------------------------------------ the actions
def mlf(target, source, p):
    from ..emit import mlf as emit_mlf

    meta = emit_mlf.build_mlf(source[0], target[0], model_name=p["model_name"],
                              max_object_bytes=p["max_object_bytes"])
    for note in meta["notes"]:
        print(f"note: {source[0]}: {note}")


def sketch(target, source, p):
    from ..emit import sketch as emit_sketch

    mlf_tar, images_c, images_h, images_json = source[:4]
    emit_sketch.render(p["templates"], p["sketch_dir"], p["sketch_name"], mlf_tar, images_c, images_h, images_json,
                       p["context"], model_name=p["model_name"])


def c_library(target, source, p):
    from ..emit import export

    export.export_c_library(source[0], p["out_dir"], model_name=p["model_name"])


def arduino_library(target, source, p):
    import hashlib
    import json

    from ..emit import arduino_library as library
    from ..emit.mlf_archive import read_mlf

    metadata, _ = read_mlf(source[-1], p["model_name"])
    with open(source[-1], "rb") as f:
        model_sha256 = hashlib.sha256(f.read()).hexdigest()
    fields = library.library_fields(p["board"], p["classes"], metadata, model_sha256)
    images_meta = None
    if p.get("classify"):
        with open(source[-2]) as f:             # images.json: labels, input shape and quantization, output's
            images_meta = json.load(f)
    library.export_arduino_library(p["sketch_dir"], p["sketch_name"], p["sketch_files"], p["out_dir"],
                                   p["lib_name"], fields, target[0], images_meta=images_meta, metadata=metadata,
                                   images=p.get("images", True))
    print(f"  Arduino library {p['lib_name']}: {target[0]} "
          f"(arduino-cli lib install --zip-path {target[0]}; example {p['sketch_name']})")


def library_check(target, source, p):
    import json

    from ..emit import arduino_library as library
    from ..runners import hostcheck as host

    with open(source[0]) as f:
        images_meta = json.load(f)
    frame = library.frame_from_inputs(images_meta)
    summary = host.library_check(p["lib_dir"], library.CLASSIFY_EXAMPLE, source[1], target[0],
                                 frame_input=frame["input"], labels=images_meta.get("labels"))
    print(f"  {summary['printed']}")
    print("  classify() on the host: " + (f"the same line as TFLite for {frame['input']}" if summary["compared"]
                                          else "ran (a test pattern: no reference to compare with)"))


def hostcheck(target, source, p):
    from ..runners import hostcheck as host

    summary = host.host_check(p["sketch_dir"], p["sketch_name"], p["expected"], target[0])
    for row in summary["images"]:
        print(f"  {row['printed']}" + ("" if row["exact"] else f"   (TFLite: {row['expected_line']})"))
    if summary.get("demo"):
        print(f"  {summary['demo']['line']}")
    reference = summary.get("reference") or ""      # TFLite Micro when tf.lite refused the file (stages/expected.py)
    who = "TFLite" if reference.startswith("tf.lite") or not reference else f"{reference} (tf.lite refuses the file)"
    outputs = summary.get("outputs", 1)
    print(f"  {summary.get('inputs', len(summary['images']))} input(s)"
          + (f" x {outputs} outputs" if outputs > 1 else "") + f": same decisions as {who}, "
          + ("bytes identical" if summary["exact"] else f"max difference {summary['max_abs_diff']}"))


def memory(target, source, p):
    from .. import boards
    from ..device import memreport

    report = memreport.memory_report(source[0], boards.from_signature(p["board"]), target[0], target[1],
                                     origin=p.get("origin", "trained"))
    # The budget, not the 40-row layer table: that is in memory.txt, and the summary shows the bars.
    for line in memreport.budget_lines(report):
        print(f"  {line}")
    print(f"  per-layer table: {target[1]}")
    try:
        memreport.check_fits(report)
    except Exception as e:  # noqa: BLE001 - reported here, enforced before compile/upload
        print(f"warning: {e}")


def memory_plot(target, source, p):
    import json

    from .. import plots

    with open(source[0]) as f:
        report = json.load(f)
    plots.save_png(plots.memory_layers_figure(report), target[0])


def simulate(target, source, p):
    import json

    from .. import boards
    from ..device import memreport

    board = boards.from_signature(p["board"])
    for path in (str(s) for s in source if os.path.basename(str(s)) == "memory.json"):
        with open(path) as f:
            memreport.check_fits(json.load(f))      # "does not fit": said here, not by the linker's overflow
    if board.has_qemu:
        from ..runners import simulate as sim

        mlf_tar, images_c, images_h, images_json, expected = source[:5]
        result = sim.simulate_cortex_m4(mlf_tar, images_c, images_h, images_json, expected, target[0],
                                        work_dir=p["work_dir"], board=board)
        per_mac = result["instructions_per_mac"]      # None for a model without MACs (an int16 LEAKY_RELU alone)
        print(f"  Cortex-M4 (QEMU mps2-an386): {result['instructions_per_inference']:,.0f} instructions per "
              f"inference, " + (f"{per_mac:.2f} per MAC, " if per_mac is not None else "")
              + f"~{result['cycles_per_inference_estimate']:,.0f} cycles (estimate); scores identical to TFLite")
    elif board.has_simavr:
        from ..runners import avr_sim

        avr_sim.simulate_avr_sketch(p["sketch_dir"], p["sketch_name"], board, source[4], target[0],
                                    work_dir=p["work_dir"])
    else:
        from ..errors import PipelineError

        raise PipelineError(f"no emulator for {board['title']}; `scons simulate` supports boards whose "
                            "emulator is set in codegen/boards.json (e.g. BOARD=nano33ble, BOARD=mega)")


def profile(target, source, p):
    from .. import boards
    from ..runners import profile as prof

    mlf_tar, images_c, images_h, images_json = source[:4]
    report = prof.profile_cortex_m4(mlf_tar, target[0], target[1], work_dir=p["work_dir"],
                                    board=boards.from_signature(p["board"]),
                                    images_c=images_c, images_h=images_h, images_json=images_json)
    t = report["total"]
    slowest = sorted(report["layers"], key=lambda r: -r["cycles_estimate"])[:3]
    print(f"  Cortex-M4 (QEMU mps2-an386): {t['instructions']:,} instructions, ~{t['cycles_estimate']:,} cycles "
          f"(estimate) over {len(report['layers']) - 1} kernel calls; the slowest: "
          + ", ".join(f"{r['layer']} {r['share_cycles_percent']:.1f}%" for r in slowest))
    print(f"  per-layer table: {target[1]}")


def profile_plot(target, source, p):
    import json

    from .. import plots

    with open(source[0]) as f:
        report = json.load(f)
    plots.save_png(plots.profile_figure(report), target[0])


# ------------------------------------------------------------------------------------------------ the steps
def mlf_step(*, model_name=MODEL_NAME, max_object_bytes=None):
    """model_mlf.tar; for a board whose compiler limits the size of one object (boards.json `max_object_bytes`:
    avr-gcc's 32,767), a larger array is a clear error here instead of a compiler error."""
    from ..emit.mlf_archive import MLF_VERSION

    # TINYML_MICROKERNELS=0 (codegen.lowering.microkernels.enabled, not imported here: it loads numpy) makes
    # other C: part of the signature, present only when set so that existing MLFs keep theirs.
    switch = {"microkernels": False} if os.environ.get("TINYML_MICROKERNELS", "1") == "0" else {}
    return Step("mlf", "mlf", mlf, "TVM codegen (standalone C, MLF) -> $TARGET", ("model_mlf.tar",), ("tflite",),
                dict(model_name=model_name, max_object_bytes=max_object_bytes, format=MLF_VERSION, **switch),
                versions=("apache-tvm", "tflite"), comstr="TINY_MLFCOMSTR")


def sketch_step(out, templates, sketch_name, *, context, model_name=MODEL_NAME):
    """The sketch folder <out>/<sketch_name>/ (the .ino first); `templates` relative to the project when inside."""
    from ..emit import sketch as emit_sketch

    board = (context or {}).get("board")
    outputs = [os.path.join(sketch_name, f) for f in emit_sketch.sketch_outputs(templates, sketch_name, model_name,
                                                                                board=board)]
    names = emit_sketch.template_files(templates)
    return Step("sketch", "sketch", sketch, "Rendering sketch -> $TARGET", tuple(outputs),
                ("step:mlf", "images_c", "images_h", "images_json", *(os.path.join(templates, t) for t in names)),
                dict(templates=templates, sketch_dir=os.path.join(out, sketch_name), sketch_name=sketch_name,
                     model_name=model_name, context=context or {}, template_names=names),
                # not deleted before a rebuild: unchanged files keep their mtime (arduino-cli's incremental build)
                precious=True, comstr="TINY_SKETCHCOMSTR")


def c_library_step(out_dir, *, model_name=MODEL_NAME, folder="c_library"):
    """The model as a plain C library (CMake, Zephyr, PlatformIO) in <out>/<folder>, whose path is `out_dir`."""
    from ..emit import export

    return Step("c_library", "export", c_library, "Exporting the model as a C library -> $TARGET",
                tuple(os.path.join(folder, f) for f in export.library_files(model_name)), ("step:mlf",),
                dict(out_dir=out_dir, model_name=model_name), precious=True, comstr="TINY_EXPORTCOMSTR")


def arduino_library_step(out_dir, sketch_outputs, *, sketch_name, board, classes=(), model_name=MODEL_NAME,
                         folder="arduino_library", classify=False, images=True):
    """<out>/<folder>/<sketch>_inferencing/ and its .zip (first) from the rendered sketch, whose files are
    `sketch_outputs` (paths); `out_dir` is <out>/<folder>'s path. `classify`: with classify() and its example
    (reads images.json); `images` False: without the embedded test inputs (LIBRARY_IMAGES=0)."""
    from ..emit import arduino_library as library

    ino = next(p for p in sketch_outputs if os.path.basename(p) == sketch_name + ".ino")
    sketch_dir = os.path.dirname(ino)
    lib_name = library.library_name(sketch_name)
    sketch_files = sorted(os.path.relpath(p, sketch_dir) for p in sketch_outputs)
    files = library.library_files(sketch_files, sketch_name, lib_name, classify=classify, images=images)
    extra = dict(classify=True, images=images) if classify else {}
    return Step("arduino_library", ("arduino-library", "export"), arduino_library, "Exporting the Arduino library -> $TARGET",
                (os.path.join(folder, lib_name + ".zip"), *(os.path.join(folder, lib_name, f) for f in files)),
                ("step:sketch", *(("images_json",) if classify else ()), "step:mlf"),
                dict(sketch_dir=sketch_dir, sketch_name=sketch_name, sketch_files=sketch_files, out_dir=out_dir,
                     lib_name=lib_name, board=board, classes=list(classes), model_name=model_name, **extra),
                precious=True, comstr="TINY_ARDUINOLIBCOMSTR")


def library_check_step(out_dir, sketch_name, *, folder="arduino_library"):
    """The host check of the Arduino library: its classify example built with host gcc against the Arduino
    stand-in and run (the same line as TFLite when its frame is an embedded input) -> <folder>/librarycheck.json."""
    from ..emit import arduino_library as library
    from ..runners import hostcheck as host

    lib_name = library.library_name(sketch_name)
    return Step("library_check", ("arduino-library", "export"), library_check,
                "Host check of the Arduino library (classify example) -> $TARGET",
                (os.path.join(folder, "librarycheck.json"),),
                ("images_json", "expected", "step:arduino_library",
                 *(os.path.join(host.HOST_STUB_DIR, f) for f in ("Arduino.h", "main.cpp"))),
                dict(lib_dir=os.path.join(out_dir, lib_name)), programs=("gcc", "g++"),
                comstr="TINY_LIBRARYCHECKCOMSTR")


def hostcheck_step(out, sketch_name, expected_path):
    from ..runners import hostcheck as host

    return Step("check", "check", hostcheck, "Host check (gcc build + run vs TFLite) -> $TARGET", ("hostcheck.json",),
                ("step:sketch", "expected", *(os.path.join(host.HOST_STUB_DIR, f) for f in ("Arduino.h", "main.cpp"))),
                dict(sketch_dir=os.path.join(out, sketch_name), sketch_name=sketch_name, expected=expected_path),
                programs=("gcc", "g++"), comstr="TINY_HOSTCHECKCOMSTR")


# The board fields that decide each step's output: only these enter its signature (title, cpu, core, progmem: shown
# in memory.json; the rest decide the numbers). The action gets the whole Board back (boards.from_signature): a
# field it reads only for a message (a title in an error) is not among them.
MEMORY_FIELDS = ("title", "cpu", "core", "progmem", "flash_bytes", "ram_bytes", "family", "compiler", "gcc_flags",
                 "max_object_bytes", "core_margin")
QEMU_FIELDS = ("emulator", "emulator_kind", "emulator_machine", "cpu", "gcc_flags", "clock_hz", "flash_wait_states")
SIMAVR_FIELDS = ("emulator", "emulator_kind", "emulator_machine", "cpu", "fqbn", "flash_bytes", "ram_bytes")


def memory_steps(user_model=False):
    """memory.json, memory.txt and memory_layers.png (per-layer flash/RAM bars, drawn from memory.json);
    `user_model`: the model is a MODEL= file (the advice of "does not fit" differs)."""
    return [Step("memory", "memory", memory, "Memory report -> $TARGET", ("memory.json", "memory.txt"), ("step:mlf",),
                 {"origin": "model"} if user_model else {}, board_fields=MEMORY_FIELDS, comstr="TINY_MEMORYCOMSTR"),
            Step("memory_plot", "memory", memory_plot, "Per-layer memory plot -> $TARGET", ("memory_layers.png",),
                 ("step:memory",), comstr="TINY_MEMORYPLOTCOMSTR")]


def simulate_step(out, sketch_name, board, gated=False):
    """simulate.json; `gated`: the memory report (step:memory) is a source, and a model that does not fit the
    board stops here with its one error line, before any compile or link (not with the linker's overflow)."""
    from .. import boards

    on_avr = boards.board(board).has_simavr
    programs = (("arduino-builder", "avr-gcc", "avr-size", "simavr") if on_avr else
                ("arm-none-eabi-gcc", "qemu-system-arm"))
    # the firmware and arduino-builder's cache: kept between runs, undeclared (work_dir)
    return Step("simulate", "simulate", simulate, "Simulating -> $TARGET", ("simulate.json",),
                ("step:mlf", "images_c", "images_h", "images_json", "expected", "step:sketch")
                + (("step:memory",) if gated else ()),
                dict(sketch_dir=os.path.join(out, sketch_name), sketch_name=sketch_name),
                board_fields=SIMAVR_FIELDS if on_avr else QEMU_FIELDS, programs=programs,
                work_dir="simulate", comstr="TINY_SIMULATECOMSTR")


def profile_steps():
    """profile.json, profile.txt (per kernel call on the emulated Cortex-M4F) and profile.png (from the json)."""
    return [Step("profile", "profile", profile, "Profiling per layer -> $TARGET", ("profile.json", "profile.txt"),
                 ("step:mlf", "images_c", "images_h", "images_json"), board_fields=QEMU_FIELDS, work_dir="profile",
                 comstr="TINY_PROFILECOMSTR"),
            Step("profile_plot", "profile", profile_plot, "Per-layer profile plot -> $TARGET", ("profile.png",),
                 ("step:profile",), comstr="TINY_PROFILEPLOTCOMSTR")]


# ------------------------------------------------------------------------------------------------ the backend
class TvmBackend(Backend):
    name = "tvm"
    title = "TVM standalone C"
    folder = ""
    compilation_database = True     # `scons compiledb`: the host build's compile_commands.json

    def steps(self, ctx):
        from ..modelio import usermodel

        cfg, board, out = ctx.cfg, ctx.board, ctx.out
        name = self.sketch_name(cfg)
        # classify() and its example: for a model whose input is an image (the library has them then)
        image_model = cfg.get("model_kind") is None or usermodel.image_input(cfg.get("model_input_shape")) is not None
        rendered = sketch_step(out, ctx.templates, name, context=ctx.sketch_context())
        steps = [mlf_step(max_object_bytes=board.max_object_bytes), rendered,
                 c_library_step(os.path.join(out, "c_library")),
                 arduino_library_step(os.path.join(out, "arduino_library"),
                                      [os.path.join(out, o) for o in rendered.outputs], sketch_name=name,
                                      board={"name": board["name"], **{k: board.get(k) for k in LIBRARY_BOARD_FIELDS
                                                                       if board.get(k) is not None}},
                                      classes=ctx.classes, classify=image_model,
                                      images=cfg.get("library_images", True)),
                 *([library_check_step(os.path.join(out, "arduino_library"), name)] if image_model else []),
                 hostcheck_step(out, name, ctx.expected_path),
                 *memory_steps(user_model=bool(cfg.get("model"))), simulate_step(out, name, board, gated=True)]
        if board.has_qemu:
            steps += profile_steps()
        return steps

    def comparison_row(self, memory, simulate=None, check=None):
        simulate = simulate or {}
        return {"flash_bytes": (memory.get("code_bytes") or 0) + memory["constants_bytes"],
                "constants_or_model_bytes": memory["constants_bytes"], "code_bytes": memory.get("code_bytes"),
                "workspace_or_arena_bytes": memory["ram_workspace_bytes"],
                "ram_bytes": memory["ram_workspace_bytes"] + memory["input_bytes"] + memory["output_bytes"],
                "m4_instructions_per_inference": simulate.get("instructions_per_inference"),
                "m4_cycles_estimate_per_inference": simulate.get("cycles_per_inference_estimate"),
                # exact by construction: its host check fails on any difference
                "max_diff": None if check is None else check.get("max_abs_diff", 0)}


BACKEND = TvmBackend()
