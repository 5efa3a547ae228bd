"""The backends side by side (BACKEND=tvm,tflm,tinymaix): flash, RAM, Cortex-M4 instructions and estimated cycles,
and the largest score difference from tf.lite, one column per backend, each read from that backend's own result
files through its `comparison_row` (codegen/backends/base.py)."""
import json

from ..fsutil import atomic_open

LABELS = {"flash_bytes": "flash (code + weights), B", "constants_or_model_bytes": "  weights / model array, B",
          "code_bytes": "  code, B", "workspace_or_arena_bytes": "workspace / arena, B",
          "ram_bytes": "RAM total (incl. buffers), B",
          "m4_instructions_per_inference": "Cortex-M4 instructions / inference",
          "m4_cycles_estimate_per_inference": "Cortex-M4 cycles / inference (est.)",
          "max_diff": "largest score difference vs tf.lite"}
# Rows shown only when every backend has a value (a simulation of each, a check of each).
ALL_OR_NOTHING = ("m4_instructions_per_inference", "m4_cycles_estimate_per_inference", "max_diff")


def _load(path):
    if path is None:
        return None
    with open(str(path)) as f:
        return json.load(f)


def table(columns, board_title):
    """(result dict, text) of {backend name: comparison row} in BACKEND= order; ratios against the first."""
    from . import get

    names = list(columns)
    rows = {}
    for key in LABELS:      # "kernels" is not a row: the title names them
        values = [columns[n].get(key) for n in names]
        if key in ALL_OR_NOTHING and any(v is None for v in values):
            continue
        rows[key] = dict(zip(names, values))
    first, others = names[0], names[1:]
    kernels = {n: columns[n].get("kernels") for n in names}
    title = f"Backends on {board_title}: " + " vs ".join(
        get(n).title + (f" ({kernels[n]} kernels)" if kernels[n] else "") for n in names)
    lines = [title, f"{'':<36} " + " ".join(f"{n:>14}" for n in names) + " " +
             " ".join(f"{n + '/' + first:>9}" for n in others)]
    for key, values in rows.items():
        a = values[first]
        cells = ["n/a" if values[n] is None else f"{values[n]:,.0f}" for n in names]
        ratios = [f"{values[n] / a:.2f}" if a and values[n] else "" for n in others]
        lines.append(f"{LABELS[key]:<36} " + " ".join(f"{c:>14}" for c in cells) + " " +
                     " ".join(f"{r:>9}" for r in ratios))
    if "m4_instructions_per_inference" not in rows:
        lines.append(f"(instructions: run `scons simulate BACKEND={','.join(names)}` on a board with QEMU, e.g. "
                     "nano33ble)")
    result = {"board": None, "backends": names, "rows": rows,
              **{f"{n}_kernels": kernels[n] for n in names if kernels[n]}}
    return result, "\n".join(lines) + "\n"


def write_table(layout, sources, out_json, out_txt, board_name):
    """`layout`: [[backend, index of memory.json, of simulate.json or None, of check.json or None]] into
    `sources` (paths)."""
    from .. import boards
    from . import get

    board = boards.get(board_name)
    columns = {}
    for name, *at in layout:
        memory, simulate, check = (_load(None if i is None else sources[i]) for i in at)
        columns[name] = get(name).comparison_row(memory, simulate, check)
    result, text = table(columns, board["title"])
    result["board"] = board_name
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write(text)
    return text


def compare_backends(sources, out_json, out_txt, board, names=("tvm", "tflm")):
    """The table from plain files: sources = the memory.json of each of `names`, then (optionally) the simulate.json
    of each; `board`: {"name", "title"}."""
    from . import get

    n = len(names)
    sims = sources[n:2 * n] if len(sources) >= 2 * n else [None] * n
    columns = {name: get(name).comparison_row(_load(sources[i]), _load(sims[i])) for i, name in enumerate(names)}
    result, text = table(columns, board.get("title"))
    result["board"] = board.get("name")
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write(text)
    return text
