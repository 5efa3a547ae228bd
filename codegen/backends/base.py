"""The interface every backend implements, as data: a backend turns the quantized .tflite into a program a board
runs (TVM's generated C, TensorFlow Lite Micro, TinyMaix, ...) and declares its work as `Step`s; the SCons glue
(site_scons/site_tools/tinyml_backends.py) turns each Step into one builder call, with no backend-specific code.
Adding a backend is one module in codegen/backends/ (registered in codegen/backends/__init__.py) plus its templates.

A Step's `sources` name what it reads:
    "tflite", "images_c", "images_h", "images_json"   the model and the embedded inputs (the `images` stage)
    "expected"                                         tf.lite's scores for those inputs (expected.json)
    "inputs", "labels_file"                            the test input files themselves (INPUTS=, or the dataset's
                                                       held-out images), LABELS= (the Linux route's bundle)
    "step:<id>"                                        every output of an earlier step of the same backend
    an absolute path                                   a file of the project or of a user's tree (a template, a
                                                       runtime source): its content enters the signature
Its action is a plain function `fn(targets, sources, params)` (paths as strings, `params` the Step's params plus
`board`, the board's name, and `work_dir`); it raises codegen.errors.PipelineError for one `error:` line.
"""
from dataclasses import dataclass, field
from typing import Callable

INPUTS = ("tflite", "images_c", "images_h", "images_json", "expected", "inputs", "labels_file")


@dataclass(frozen=True)
class Step:
    """One file-producing step of a stage, as data."""
    id: str                         # unique within the backend: "convert", "sketch", "check", ...
    stage: object                   # the command-line target it belongs to (a stage of codegen.targets), or several
    action: Callable                # fn(targets, sources, params)
    title: str                      # what the build prints when it runs: "TinyMaix host check -> $TARGET"
    outputs: tuple                  # paths relative to the backend's folder, every file the action writes
    sources: tuple = ()             # see the module docstring
    params: dict = field(default_factory=dict)      # JSON values; each enters the signature
    board_fields: object = ()       # the board fields the action reads (params["board"]): only these enter the
                                    # signature; ALL_FIELDS: the whole board entry
    programs: tuple = ()            # external programs (gcc, qemu-system-arm) whose identity enters the signature
    versions: tuple = ()            # Python distributions (apache-tvm, tensorflow) whose version enters it
    work_dir: str = ""              # an undeclared scratch folder (relative to the backend's folder): `scons -c`
    precious: bool = False          # keep unchanged outputs' mtimes (arduino-cli's incremental build)
    comstr: str = ""                # the construction variable of its line (default TINY_<BACKEND>_<ID>COMSTR)

    ALL_FIELDS = "all"


@dataclass(frozen=True)
class Result:
    """Where a backend's result files are (relative to its folder), for the summary and the side-by-side table.
    memory.json has "flash_bytes" and "ram_bytes"; simulate.json "instructions_per_inference" and
    "cycles_per_inference_estimate"; check.json "max_diff" (largest score difference from tf.lite) and "exact"."""
    memory: str = "memory.json"
    check: str = "hostcheck.json"
    simulate: str = "simulate.json"


# The board fields a sketch's templates and its sketch.yaml read (templates/sketch, codegen/emit/sketch.py
# project_file): a board's USB ids or memory sizes do not re-render the sketch.
SKETCH_BOARD_FIELDS = ("title", "fqbn", "core", "core_version", "usb_cdc", "serial_wait_ms", "baud")
# ... and the Arduino library's library.properties (codegen/emit/arduino_library.py library_fields)
LIBRARY_BOARD_FIELDS = ("title", "core", "progmem")


@dataclass(frozen=True)
class Context:
    """What the glue knows when it asks a backend for its steps."""
    board: object                   # the board (codegen.boards)
    cfg: dict                       # the parsed configuration (codegen.config.parse), its variables included
    out: str                        # the board's build folder, build/<BOARD>
    templates: str                  # the sketch templates folder (relative to the project when inside it)
    expected_path: str              # expected.json: tf.lite's scores for the embedded inputs (the "expected" input)
    classes: tuple = ()             # class names of the outputs, when known (the dataset's)
    class_source: str = "the dataset"   # where they come from, for messages (DATA=..., the dataset)
    input_paths: tuple = ()         # the test input files' paths ("inputs")
    input_names: object = None      # a name per input file (the dataset's classes), else from the file names

    def sketch_context(self):
        """What every sketch template is rendered with besides the model: the board (the fields the templates and
        sketch.yaml read, so that only those enter the sketch's signature), the classes, the baud rate."""
        from ..boards import serial_baud

        board = {k: self.board.get(k) for k in SKETCH_BOARD_FIELDS if self.board.get(k) is not None}
        return {"board": dict(board, name=self.board["name"]), "classes": list(self.classes),
                "baud": serial_baud(self.board)}


class Backend:
    """A backend: its name (BACKEND=<name>), a title for reports, its folder under build/<BOARD>/, a config check,
    and its steps for one board. Its command-line variables (TFLM_DIR=, TINYMAIX_DIR=) are rows of the one
    variable table, codegen/config.py."""
    name = ""
    title = ""
    folder = ""                     # under build/<BOARD>/ ("" = the board's folder itself)
    result = Result()
    firmware = True                 # its sketch builds with arduino-cli (compile, upload, verify)
    lacks = {}                      # {stage it does not have: why}, for the error when it is asked for
    deploy = "arduino"              # how upload/monitor/verify reach the board: "arduino" (serial), "ssh" (Linux)
    compilation_database = False    # `scons compiledb` makes the host build's compile_commands.json of its sketch
    exact = True                    # its scores must equal tf.lite's (TinyMaix: reported, not required)

    def check(self, cfg, board):
        """Raises codegen.errors.ConfigError when this backend cannot build for `board` with `cfg`; the glue asks
        before any stage runs."""

    def steps(self, ctx):
        """The Steps for one board (`ctx`: a Context)."""
        raise NotImplementedError

    def sketch_name(self, cfg):
        """The name of its sketch folder and .ino (SKETCH=)."""
        return cfg["sketch"]

    def arduino_libraries(self, ctx):
        """Folders `arduino-cli compile` gets as --library for this backend's sketch (the runtime the sketch
        links), and the id of the step that makes them, if one does: ([folders], step id or None)."""
        return [], None

    def comparison_row(self, memory, simulate=None, check=None):
        """This backend's column of the side-by-side table (BACKEND=a,b,...), from its result files (parsed JSON):
        {"flash_bytes", "constants_or_model_bytes", "code_bytes", "workspace_or_arena_bytes", "ram_bytes",
        "m4_instructions_per_inference", "m4_cycles_estimate_per_inference", "max_diff"}; None where unknown."""
        raise NotImplementedError


PLAIN_IO_TYPES = ("int8", "uint8")


def plain_io_refusal(cfg, backend_title, types=PLAIN_IO_TYPES):
    """The ConfigError message for a MODEL= .tflite a backend whose sketch passes one input and one output buffer
    (TFLite Micro's, TinyMaix's) cannot run: several inputs or outputs, or one of a type not in `types`; None when
    it can (or no MODEL= .tflite is given)."""
    path = (cfg or {}).get("model")
    if not path or not str(path).lower().endswith(".tflite"):
        return None
    from ..errors import ModelError
    from ..modelio.quantio import model_io

    try:
        io = model_io(path)
    except (ModelError, OSError, ValueError):
        return None                 # the config's own checks name a damaged file
    ins, outs = io["inputs"], io["outputs"]
    odd = [f"{role} {t['name']!r} is {t['dtype']}" for role, ts in (("input", ins), ("output", outs)) for t in ts
           if t["dtype"] not in types]
    if len(ins) == 1 and len(outs) == 1 and not odd:
        return None
    what = f"{len(ins)} input(s) and {len(outs)} output(s)" + (f"; {', '.join(odd)}" if odd else "")
    return (f"BACKEND={backend_title} takes models with one {'/'.join(types)} input and one output; {path} has "
            f"{what}. Use BACKEND=tvm (every stage handles several int8/uint8/int16/float32 inputs and outputs)")
