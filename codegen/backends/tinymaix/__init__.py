"""TinyMaix as a backend (BACKEND=tinymaix): a tiny int8 inference library with its own tflite->tmdl converter
and per-layer memory table (github.com/sipeed/TinyMaix). The model is converted by TinyMaix's converter and run by
its runtime, both from the user's checkout (TINYMAIX_DIR=, never copied), behind the sketch's model API, so the
shared .ino, the host stand-in and the QEMU harness serve it unchanged.

    convert   tflite -> model.tmdl, model.h (the converter's), layers.json (its per-layer table, flash, RAM)
    sketch    <SKETCH>/: the shared .ino + src/model.* on tm_load/tm_run + images
    check     host gcc build of the sketch with TinyMaix (TM_ARCH_CPU) -> hostcheck.json (difference from tf.lite)
    memory    memory.json/.txt: the per-layer table, flash and RAM measured on a Cortex-M4F link
    simulate  simulate.json: Cortex-M4F in QEMU (TM_ARCH_ARM_SIMD; TM_ARCH_CPU beside it), instructions, cycles

TinyMaix is not exact: its kernels round their own way; the check and simulate results say by how much.
"""
import os

from ..base import Backend, Result, Step

SKETCH = "tinymaix_model"
# The board facts the steps use (only these enter their signatures).
SKETCH_FIELDS = ("name", "title", "fqbn", "core", "core_version", "usb_cdc", "serial_wait_ms", "baud")
MEMORY_FIELDS = ("name", "title", "cpu", "core", "flash_bytes", "ram_bytes")
SIMULATE_FIELDS = ("emulator", "clock_hz", "flash_wait_states")


def _field(board, name, default=None):
    if isinstance(board, dict):
        return board.get(name, default)
    return getattr(board, name, default)


def _facts(board, names):
    return {n: _field(board, n) for n in names if _field(board, n) is not None}


def _is_avr(board):
    is_avr = _field(board, "is_avr")
    if is_avr is not None:
        return bool(is_avr)
    return str(_field(board, "cpu", "")).startswith(("atmega", "avr"))


def _tree_params(cfg):
    from .tree import check_tree, tree_digest

    root = check_tree(cfg.get("tinymaix_dir", ""))
    return {"tinymaix_dir": root, "tree": tree_digest(root)}


# ------------------------------------------------------------------------------------------------ actions
# Each action finds its files in `sources` and `targets` (in the order its Step lists them: a named input first,
# then an earlier step's outputs), never from the build folder's layout.

def _sketch_dir(paths, name):
    ino = [p for p in paths if os.path.basename(p) == f"{name}.ino"]
    return os.path.dirname(ino[0])


def _named(paths, basename):
    return next(p for p in paths if os.path.basename(p) == basename)


def convert_action(targets, sources, params):
    from .convert import convert

    r = convert(sources[0], params["tinymaix_dir"], targets[0], targets[1], targets[2])
    print(f"  TinyMaix model: {len(r['layers'])} layers, {r['tmdl_bytes']:,} B (flash), activation buffer "
          f"{r['buffer_bytes']:,} B (RAM)")


def sketch_action(targets, sources, params):
    from ... import boards
    from .sketch import render

    images_c, images_h, images_json = sources[:3]
    render(params["templates"], _sketch_dir(targets, params["sketch_name"]), params["sketch_name"],
           _named(sources, "model.tmdl"), _named(sources, "layers.json"), images_c, images_h, images_json,
           {"board": boards.entry_of(boards.from_signature(params["board"])), "classes": params["classes"],
            "baud": params["baud"]})


def check_action(targets, sources, params):
    from .runners import host_check

    summary = host_check(_sketch_dir(sources, params["sketch_name"]), params["sketch_name"], params["tinymaix_dir"],
                         sources[0], targets[0])
    for row in summary["images"]:
        print(f"  {row['printed']}")
    print(f"  {summary['inputs']} input(s) on TinyMaix (host): {summary['verdict']}")


def memory_action(targets, sources, params):
    from ... import boards
    from .runners import format_report, memory_report

    report = memory_report(_named(sources, "layers.json"), _sketch_dir(sources, params["sketch_name"]),
                           params["tinymaix_dir"], boards.from_signature(params["board"]), targets[0], targets[1],
                           work_dir=params["work_dir"])
    print(format_report(report))


def simulate_action(targets, sources, params):
    from ... import boards
    from ...errors import PipelineError
    from .runners import simulate

    board = boards.from_signature(params["board"])
    if not board.has_qemu:
        raise PipelineError(f"BACKEND=tinymaix simulates on the Cortex-M4 (QEMU) only; {board.get('title')} has no "
                            "such emulator: use BOARD=nano33ble")
    r = simulate(_sketch_dir(sources, params["sketch_name"]), sources[0], sources[1], targets[0],
                 params["tinymaix_dir"], work_dir=params["work_dir"], board=board)
    print(f"  Cortex-M4 (QEMU mps2-an386), TinyMaix {r['arch']}: {r['instructions_per_inference']:,.0f} instructions, "
          f"~{r['cycles_per_inference_estimate']:,.0f} cycles (estimate) per inference ({r['other_arch']['arch']}: "
          f"{r['other_arch']['instructions_per_inference']:,.0f}); {r['verdict']}")


# ------------------------------------------------------------------------------------------------ backend

class TinyMaixBackend(Backend):
    name = "tinymaix"
    title = "TinyMaix"
    folder = "tinymaix"
    result = Result()
    exact = False
    # Its runtime is no Arduino library (sources in src/, headers in include/): `scons compile` has no build of it
    firmware = False
    lacks = {stage: "TinyMaix has no Arduino build: its runtime is not an Arduino library"
             for stage in ("compile", "upload", "verify")}

    def check(self, cfg, board):
        from ...errors import ConfigError
        from .tree import check_tree

        from ..base import plain_io_refusal

        refusal = plain_io_refusal(cfg, "tinymaix")
        if refusal:
            raise ConfigError(refusal)
        check_tree(cfg.get("tinymaix_dir", ""))
        if _is_avr(board):
            raise ConfigError(f"BACKEND=tinymaix cannot target {_field(board, 'title') or 'this board'}: TinyMaix "
                              "needs a 32-bit CPU (32-bit sums, float scales, malloc-free but KB-sized static "
                              "buffers); use BACKEND=tvm for AVR boards, or a board such as nano33ble")

    def sketch_name(self, cfg):
        return cfg.get("tinymaix_sketch") or SKETCH

    def comparison_row(self, memory, simulate=None, check=None):
        simulate = simulate or {}
        return {"flash_bytes": memory.get("flash_bytes"), "constants_or_model_bytes": memory.get("model_bytes"),
                "code_bytes": memory.get("runtime_code_bytes"), "workspace_or_arena_bytes": memory.get("buffer_bytes"),
                "ram_bytes": memory.get("ram_bytes"),
                "m4_instructions_per_inference": simulate.get("instructions_per_inference"),
                "m4_cycles_estimate_per_inference": simulate.get("cycles_per_inference_estimate"),
                "max_diff": None if check is None else check.get("max_diff")}

    def steps(self, ctx):
        board, cfg = ctx.board, ctx.cfg
        from .convert import CONVERTER_MAIN
        from .runners import MEMORY_MAIN
        from .sketch import sketch_outputs, template_dependencies
        from .tree import port_header

        tree = _tree_params(cfg)
        name = self.sketch_name(cfg)
        templates = ctx.templates
        sketch_info = _facts(board, SKETCH_FIELDS)
        sketch_files = tuple(os.path.join(name, f) for f in sketch_outputs(templates, name, sketch_info))
        named = {**tree, "sketch_name": name}
        return [
            Step("convert", "sketch", convert_action, "TinyMaix converter (tflite2tmdl) -> $TARGET",
                 ("model.tmdl", "model.h", "layers.json"), sources=("tflite", CONVERTER_MAIN), params=dict(tree)),
            Step("sketch", "sketch", sketch_action, "Rendering TinyMaix sketch -> $TARGET", sketch_files,
                 sources=("images_c", "images_h", "images_json", "step:convert", *template_dependencies(templates)),
                 params={"templates": templates, "sketch_name": name, "classes": list(ctx.classes),
                         "baud": int(_field(board, "baud") or 115200)},
                 board_fields=SKETCH_FIELDS, precious=True),
            Step("check", "check", check_action, "Host check on TinyMaix (gcc + run vs TFLite) -> $TARGET",
                 ("hostcheck.json",), sources=("expected", "step:sketch", port_header()), params=named,
                 programs=("gcc", "g++")),
            Step("memory", "memory", memory_action, "TinyMaix memory report -> $TARGET", ("memory.json", "memory.txt"),
                 sources=("step:convert", "step:sketch", MEMORY_MAIN, port_header()),
                 params=named,
                 board_fields=MEMORY_FIELDS, programs=("arm-none-eabi-gcc",), work_dir="memory"),
            Step("simulate", "simulate", simulate_action, "Simulating TinyMaix on the Cortex-M4 -> $TARGET",
                 ("simulate.json",), sources=("images_json", "expected", "step:sketch", port_header()),
                 params=named,
                 board_fields=SIMULATE_FIELDS, programs=("arm-none-eabi-gcc", "qemu-system-arm"),
                 work_dir="simulate"),
        ]


BACKEND = TinyMaixBackend()
