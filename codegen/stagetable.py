"""The stage table, as the build sees it: each command-line target of codegen/targets.py joined with the Steps every
backend declares for it (what it writes under build/<BOARD>/, what it reads, which parameters and board fields
enter its signature, its action). `python -m codegen.stagetable [BOARD]` prints it; the docs' reference page
is generated from it. Nothing here is kept by hand: a new step or target shows up by itself.

The Linux route's steps (litert) are listed for the first Linux board. TFLM and TinyMaix list their steps only
with their trees (TFLM_DIR=, TINYMAIX_DIR=, or ../shared's).
"""
import os
import sys

from .backends import get, names

_SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")
_TREES = {"tflm_dir": ("TFLM_DIR", "tflm-tree"), "tinymaix_dir": ("TINYMAIX_DIR", "tinymaix-tree")}


def _cfg():
    from .config import parse

    raw = {}
    for key, (variable, shared) in _TREES.items():
        tree = os.environ.get(variable) or os.path.join(_SHARED, shared)
        if os.path.isdir(tree):
            raw[variable] = os.path.abspath(tree)
    return parse(raw)


def _short(path, out):
    """A source or output as the table shows it: under the board's folder, an input's name, or a project file."""
    if path.startswith("step:"):
        return "(" + path[5:] + ")"
    if not os.path.isabs(path) and not path.startswith(out):
        return path
    root = os.path.dirname(_SHARED)
    return os.path.relpath(path, root) if os.path.abspath(path).startswith(root) else os.path.basename(path)


def rows(board_name="nano33ble"):
    """[(target, backend, step, writes, reads, signature parameters, board fields, action)] in table order."""
    from . import boards, targets
    from .backends.base import Context
    from .resources import sketch_templates_dir

    board, cfg = boards.get(board_name), _cfg()
    out = os.path.join("build", board_name)
    ctx = Context(board=board, cfg=cfg, out=out, templates=os.path.relpath(sketch_templates_dir()),
                  expected_path=os.path.join(out, "expected.json"), classes=("target", "random"))
    from .backends import BY_BOARD

    linux = next(boards.get(n) for n in boards.all_boards() if boards.get(n).is_linux)
    linux_ctx = Context(board=linux, cfg=cfg, out=out, templates="", expected_path="", input_paths=("car.png",))
    steps = []
    for name in (*names(), *BY_BOARD.values()):
        backend = get(name)
        here, on = (linux_ctx, linux) if name in BY_BOARD.values() else (ctx, board)
        try:
            backend.check(cfg, on)
            declared = backend.steps(here)
        except Exception:           # noqa: BLE001 - a backend without its tree: listed as such
            steps.append((None, name, None))
            continue
        steps += [(s.stage, name, s) for s in declared]
    table = []
    for t in targets.TARGETS:
        if not any(step is not None and t.name in ((s,) if isinstance(s, str) else s) for s, _, step in steps):
            # a stage of the pipeline before the backends, the firmware's or a listing: declared by the glue
            table.append((t.name, "-", "-", [], [], [], [], "site_scons (" + (t.description or t.linux)[:60] +
                          ("..." if len(t.description or t.linux) > 60 else "") + ")"))
            continue
        for stage, name, step in steps:
            stages = (stage,) if isinstance(stage, str) else stage
            if step is not None and t.name in stages:
                folder = get(name).folder
                fields = ("(whole entry)",) if step.board_fields == step.ALL_FIELDS else step.board_fields
                table.append((t.name, name, step.id,
                              [os.path.join(folder, o) for o in step.outputs[:3]] + (["..."] if len(step.outputs) > 3
                                                                                     else []),
                              [_short(s, out) for s in step.sources[:5]] + (["..."] if len(step.sources) > 5 else []),
                              sorted(step.params) + [f"versions of {', '.join(step.versions)}"] * bool(step.versions) +
                              [f"identity of {', '.join(step.programs)}"] * bool(step.programs),
                              list(fields), f"{step.action.__module__}.{step.action.__name__}"))
    for stage, name, step in steps:
        if step is None:
            table.append(("(all)", name, "-", [f"(its steps need {name}'s tree: " +
                                                ", ".join(v for k, (v, _) in _TREES.items() if name in k) + "=)"],
                          [], [], [], "-"))
    return table


def markdown(board_name="nano33ble"):
    def cell(items):
        return "<br>".join(f"`{i}`" for i in items) if isinstance(items, list) else f"`{items}`"

    lines = ["| target | backend | step | writes (under build/<BOARD>/) | reads | in its signature | board fields | "
             "action |", "|---|---|---|---|---|---|---|---|"]
    for target, backend, step, writes, reads, params, fields, action in rows(board_name):
        lines.append(f"| `{target}` | {backend} | {step} | {cell(writes)} | {cell(reads)} | {cell(params)} | "
                     f"{cell(fields) if fields else '-'} | {cell(action)} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    board = argv[0] if argv else "nano33ble"
    for target, backend, step, writes, reads, params, fields, action in rows(board):
        print(f"{target:<16} {backend:<9} {step:<16} writes {', '.join(writes)}\n{'':<43}reads {', '.join(reads)}\n"
              f"{'':<43}signature: {', '.join(params)}; board: {', '.join(fields) or '-'}\n{'':<43}action {action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
