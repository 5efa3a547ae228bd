"""The interface every backend implements, as data: a backend turns the quantized .tflite into a program a board
runs (TVM's generated C, TensorFlow Lite Micro, TinyMaix, ...) and declares its work as `Step`s; the SCons glue
(site_scons/site_tools/tinyml_backends.py) turns each Step into one builder call, with no backend-specific code.
Adding a backend is one module in codegen/backends/ (registered in codegen/backends/__init__.py) plus its templates.

A Step's `sources` name what it reads:
    "tflite", "images_c", "images_h", "images_json"   the model and the embedded inputs (the `images` stage)
    "expected"                                         tf.lite's scores for those inputs (expected.json)
    "step:<id>"                                        every output of an earlier step of the same backend
    an absolute path                                   a file of the project or of a user's tree (a template, a
                                                       runtime source): its content enters the signature
Its action is a plain function `fn(targets, sources, params)` (paths as strings, `params` the Step's params plus
`board`, the board's name, and `work_dir`); it raises codegen.errors.PipelineError for one `error:` line.
"""
from dataclasses import dataclass, field
from typing import Callable

INPUTS = ("tflite", "images_c", "images_h", "images_json", "expected")


@dataclass(frozen=True)
class Variable:
    """A command-line variable a backend adds (TFLM_DIR=, TINYMAIX_DIR=): listed by `scons -h`, stored in profiles."""
    name: str
    default: str
    help: str


@dataclass(frozen=True)
class Step:
    """One file-producing step of a stage, as data."""
    id: str                         # unique within the backend: "convert", "sketch", "check", ...
    stage: str                      # the command-line target it belongs to (a stage of codegen.targets)
    action: Callable                # fn(targets, sources, params)
    title: str                      # what the build prints when it runs: "TinyMaix host check -> $TARGET"
    outputs: tuple                  # paths relative to the backend's folder, every file the action writes
    sources: tuple = ()             # see the module docstring
    params: dict = field(default_factory=dict)      # JSON values; each enters the signature
    board_fields: tuple = ()        # the Board fields the action uses: only these enter the signature
    programs: tuple = ()            # external programs (gcc, qemu-system-arm) whose identity enters the signature
    work_dir: str = ""              # an undeclared scratch folder (relative to the backend's folder): `scons -c`
    precious: bool = False          # keep unchanged outputs' mtimes (arduino-cli's incremental build)


@dataclass(frozen=True)
class Result:
    """Where a backend's result files are (relative to its folder), for the summary and the side-by-side table.
    memory.json has "flash_bytes" and "ram_bytes"; simulate.json "instructions_per_inference" and
    "cycles_per_inference_estimate"; check.json "max_diff" (largest score difference from tf.lite) and "exact"."""
    memory: str = "memory.json"
    check: str = "hostcheck.json"
    simulate: str = "simulate.json"


class Backend:
    """A backend: its name (BACKEND=<name>), a title for reports, its folder under build/<BOARD>/, the variables it
    adds, a config check, and its steps for one board."""
    name = ""
    title = ""
    folder = ""                     # under build/<BOARD>/ ("" = the board's folder itself)
    variables = ()                  # Variable(...) tuple
    result = Result()
    exact = True                    # its scores must equal tf.lite's (TinyMaix: reported, not required)

    def check(self, cfg, board):
        """Raises codegen.errors.ConfigError when this backend cannot build for `board` with `cfg` (before any
        stage runs)."""

    def steps(self, board, cfg):
        """The Steps for one board (a codegen.device.boards board) under the parsed configuration `cfg`."""
        raise NotImplementedError
