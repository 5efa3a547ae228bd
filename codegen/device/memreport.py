"""Memory report and size gate: does the generated model fit the board's flash and RAM?

Inputs are the MLF tar (metadata.json: workspace, constants, input/output sizes, per-op MACs; the entry file
kernel call list: which constant arrays each call reads, the bytes it writes) and a Board (boards.json).

Accounting:
  * flash = code (.text of the MLF sources compiled for the board's CPU, when the cross compiler is present)
            + constant data (weights, bias, requantization multipliers/shifts)
            + CORE_MARGINS' estimate for the Arduino core (startup, Serial, RTOS on mbed boards; boards.json).
  * RAM   = static workspace (all intermediate activations, planned by TVM) + input and output buffers
            + on AVR boards (`progmem: true`) the cost of reading constants: codegen/emit/mlf.py puts them in PROGMEM on
              AVR and copies each kernel's constants into free workspace bytes before the call, so the RAM
              workspace is metadata's flash_constants_workspace_size_bytes; an MLF without that (plain `const`
              arrays) has all constant data in .data, which avr-gcc's startup copies from flash into RAM
            + CORE_MARGINS' RAM estimate (core globals, Serial buffers, stack / RTOS heap).
Code is measured as the sum of `.text*` sections of the object files (`<cross>-size -A`), i.e. without libgcc
and libm helpers the linker may add; without the toolchain it is reported as "not measured" and left out.

Per-layer rows follow TinyMaix's model table: op type, output shape, parameter bytes, activation (output tensor)
bytes and MACs. Parameter bytes and MACs sum to the totals; the workspace is smaller than the sum of activations
because TVM reuses its storage, and at least as large as the biggest layer's input + output.
"""
import json
import os
import shutil
import tempfile

from .. import boards
from .. import proc as external
from ..errors import PipelineError
from ..fsutil import atomic_open
from ..emit.mlf_archive import read_mlf

# Estimated flash/RAM the Arduino core itself needs next to the model, per core family (a prefix of the board's
# "core"): boards.json's "core_margins" (Board.core_margin picks one), kept here by their former names.
CORE_MARGINS = {k: v for k, v in boards.core_margins().items() if k != "default"}
DEFAULT_CORE_MARGIN = boards.core_margins()["default"]
AVR_MAX_OBJECT_BYTES = boards.family("avr").max_object_bytes  # avr-gcc: "size of array is too large" above this
# Above this share of the board's RAM (or flash) the report warns, as the Arduino IDE does ("Low memory
# available, stability problems may occur" above 75 % of dynamic memory): the stack and heap need the rest.
LOW_MEMORY_PERCENT = 75.0

_DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "float32": 4}


def core_margin(board):
    """{"flash_bytes", "ram_bytes", "what", "family"} the board's Arduino core takes (Board.core_margin)."""
    return boards.board(board).core_margin


def _read_mlf(mlf_tar):
    meta, files = read_mlf(mlf_tar)
    if "calls" not in meta:
        raise PipelineError(f"{mlf_tar}: metadata.json has no kernel call list (an MLF from an older release); "
                            "rebuild it with `scons mlf`")
    return meta, files


def _prod(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def layer_rows(meta):
    """Per-op rows from metadata.json: parameter bytes are the constants each kernel call reads (first use
    counts), activation bytes its output tensor; ops without a kernel (RESHAPE) alias their input."""
    out_bytes = _DTYPE_BYTES.get(meta["outputs"][0]["dtype"], 1) if meta.get("outputs") else 1
    consts = {c["name"]: int(c["bytes"]) for c in meta.get("constants", [])}
    by_op = {c["op_index"]: c for c in meta["calls"]}
    seen = set()
    rows = []
    prev_bytes = meta["inputs"][0]["size_bytes"] if meta.get("inputs") else 0
    ops = meta.get("ops", [])
    for i, op in enumerate(ops):
        call = by_op.get(op.get("index", i))
        params = 0
        act = _prod(op["output_shape"]) * (out_bytes if i == len(ops) - 1 else 1)
        if call is not None:
            for a in call["inputs"]:
                if a["kind"] == "constant" and a["name"] not in seen:
                    seen.add(a["name"])
                    params += a["bytes"]
            act = call["output_bytes"]
        rows.append({"index": i, "type": op["type"], "kernel": call["kernel"] if call else None,
                     "output_shape": list(op["output_shape"]), "params_bytes": params, "activation_bytes": act,
                     "input_bytes": prev_bytes, "macs": int(op.get("macs", 0))})
        prev_bytes = act
    attributed = sum(r["params_bytes"] for r in rows)
    rest = int(meta.get("constants_size_bytes", 0)) - attributed
    if rest:
        rows.append({"index": None, "type": "(constants not attributed to a layer)", "kernel": None,
                     "output_shape": [], "params_bytes": rest, "activation_bytes": 0, "input_bytes": 0, "macs": 0})
    return rows, consts


def _compiler_for(board):
    """(compiler, size tool, CPU flags) of the board's toolchain; a board whose CPU boards.json does not list is
    measured as a Cortex-M4F."""
    if board.compiler is None:
        arm = boards.family("arm")
        return arm.compiler, arm.size_tool, tuple(boards.cpu("cortex-m4f").gcc_flags)
    return (*board.compiler, tuple(board.gcc_flags))


def measure_code(sources, board):
    """Compiles the MLF's kernel/entry sources for the board's CPU with -O2 and sums their .text sections.

    Returns (bytes or None, {file: bytes}, note). The constants file is skipped (no code; sized from metadata)."""
    cc, size, flags = _compiler_for(boards.board(board))
    if shutil.which(cc) is None or shutil.which(size) is None:
        return None, {}, (f"not measured: {cc}/{size} not found on PATH (the flash figure leaves the code out; "
                          "Debian/Ubuntu: `./dev setup` installs the toolchains)")
    c_files = sorted(n for n in sources if n.endswith(".c") and not n.endswith("_lib0.c"))
    per_file = {}
    with tempfile.TemporaryDirectory(prefix="memreport-") as tmp:
        for n, data in sources.items():
            path = os.path.join(tmp, n)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        inc = tmp                     # sources and header side by side
        for n in c_files:
            obj = os.path.join(tmp, os.path.basename(n) + ".o")
            proc = external.run([cc, *flags, "-O2", "-c", "-I", inc, os.path.join(tmp, n), "-o", obj],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                errors = [ln.replace(tmp + os.sep, "").strip() for ln in proc.stderr.splitlines()
                          if "error" in ln][:3]
                return None, per_file, (f"not measured: {cc} {' '.join(flags)} failed on {os.path.basename(n)}: "
                                        + "; ".join(errors))
            proc = external.run([size, "-A", obj], capture_output=True, text=True)
            if proc.returncode != 0:
                return None, per_file, f"not measured: {size} failed on {obj}: {proc.stderr.strip()[:200]}"
            text = 0
            for line in proc.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0].startswith(".text") and parts[1].isdigit():
                    text += int(parts[1])
            per_file[os.path.basename(n)] = text
    return sum(per_file.values()), per_file, f"measured: .text of {cc} {' '.join(flags)} -O2 -c objects"


def budget_status(budget):
    """"fits", "fits, but low memory ..." above LOW_MEMORY_PERCENT, or "OVER by N B" for a `_budget` dict."""
    if not budget["fits"]:
        return f"OVER by {budget['over_by']:,} B"
    if budget["percent"] is not None and budget["percent"] > LOW_MEMORY_PERCENT:
        return (f"fits, but over {LOW_MEMORY_PERCENT:g}%: low memory available, stability problems may occur "
                "(stack and heap need the rest)")
    return "fits"


def _budget(items, limit):
    total = sum(v for v in items.values() if v)
    return {"items": items, "total": total, "limit": int(limit),
            "percent": round(100.0 * total / limit, 1) if limit else None,
            "fits": total <= limit, "over_by": max(0, total - int(limit))}


def memory_report(mlf_tar, board, out_json, out_txt, *, code_bytes=None, origin="trained"):
    """Writes the memory report (JSON + text table) for the MLF on `board` (a boards.json entry); returns it.
    `origin`: "model" for a MODEL= file, "trained" for a model the build trained (check_fits' advice)."""
    board = boards.board(board)
    meta, sources = _read_mlf(mlf_tar)
    avr = board.is_avr
    rows, consts = layer_rows(meta)
    if code_bytes is not None:
        code, code_files, code_note = int(code_bytes), {}, "given by the caller"
    else:
        code, code_files, code_note = measure_code(sources, board)
    const_bytes = int(meta.get("constants_size_bytes", 0))
    workspace = int(meta.get("workspace_size_bytes", 0))
    in_bytes = sum(int(t["size_bytes"]) for t in meta.get("inputs", []))
    out_bytes = sum(int(t["size_bytes"]) for t in meta.get("outputs", []))
    margin = board.core_margin
    title = board.title or board.name or "board"

    lib0 = b"".join(data for n, data in sources.items() if n.endswith("_lib0.c"))
    # MLFs from codegen/emit/mlf.py put the constants in PROGMEM on AVR and stage each kernel's constants in a
    # (possibly larger) workspace; older MLFs leave plain `const` arrays, which avr-gcc copies into RAM.
    progmem_consts = avr and b"TVMGEN_CONST_STORAGE PROGMEM" in lib0 \
        and "flash_constants_workspace_size_bytes" in meta
    ram_workspace = int(meta["flash_constants_workspace_size_bytes"]) if progmem_consts else workspace

    flash_items = {"code": code, "constants": const_bytes, "core_margin": margin["flash_bytes"]}
    ram_items = {"workspace": ram_workspace, "input_buffer": in_bytes, "output_buffer": out_bytes}
    if avr and not progmem_consts:
        ram_items["constants_copied_to_ram"] = const_bytes
    ram_items["core_margin"] = margin["ram_bytes"]

    notes = []
    if code is None:
        notes.append(f"code size {code_note}; flash total excludes code")
    if progmem_consts:
        notes.append(f"AVR: the constants are PROGMEM (flash only); each kernel's constants are copied with "
                     f"memcpy_P into free workspace bytes before the call, so the workspace is "
                     f"{ram_workspace} B instead of {workspace} B")
    elif avr:
        notes.append("AVR: the model's const arrays are not PROGMEM, so avr-gcc places them in .data: they take "
                     "flash (initial values) and the same amount of RAM (copied at startup)")
        limit = board.max_object_bytes
        big = sorted((n for n, b in consts.items() if limit and b > limit), key=lambda n: -consts[n])
        if big:
            notes.append(f"AVR: {len(big)} constant array(s) exceed {limit} B, the largest object "
                         f"avr-gcc accepts (largest: {big[0]}, {consts[big[0]]} B)")
    else:
        notes.append("ARM: const data stays in flash (.rodata) and is read in place")
    notes.append(f"core margin: an estimated {margin['flash_bytes']} B flash and {margin['ram_bytes']} B RAM for "
                 f"{margin['what']} (codegen.device.memreport.CORE_MARGINS)")

    peak = max((r["input_bytes"] + r["activation_bytes"] for r in rows if r["index"] is not None), default=0)
    report = {
        "board": {"name": board.name, "title": title, "cpu": board.cpu, "core": board.core,
                  "progmem": bool(board.progmem), "flash_bytes": int(board.flash_bytes),
                  "ram_bytes": int(board.ram_bytes)},
        "model_name": meta.get("model_name", "default"),
        "origin": origin,
        "constants_bytes": const_bytes,
        "workspace_bytes": workspace,
        "ram_workspace_bytes": ram_workspace,
        "constants_in_ram": bool(avr and not progmem_consts),
        "input_bytes": in_bytes,
        "output_bytes": out_bytes,
        "code_bytes": code,
        "code_measured": code is not None,
        "code_note": code_note,
        "code_by_file": code_files,
        "core_margin": margin,
        "flash": _budget(flash_items, board.flash_bytes),
        "ram": _budget(ram_items, board.ram_bytes),
        "layers": rows,
        "totals": {"params_bytes": sum(r["params_bytes"] for r in rows),
                   "macs": sum(r["macs"] for r in rows),
                   "activation_bytes_sum": sum(r["activation_bytes"] for r in rows),
                   "peak_layer_in_out_bytes": peak},
        "total_macs": int(meta.get("total_macs", sum(r["macs"] for r in rows))),
        "notes": notes,
    }
    with atomic_open(out_json) as f:
        json.dump(report, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write(format_report(report))
    return report


def _fmt_items(items):
    return " + ".join(f"{k.replace('_', ' ')} {'not measured' if v is None else format(v, ',')}"
                      for k, v in items.items())


def format_report(report):
    b = report["board"]
    lines = [f"Memory report: model '{report['model_name']}' on {b['title']} ({b['cpu']}, "
             f"flash {b['flash_bytes']:,} B, RAM {b['ram_bytes']:,} B)", ""]
    hdr = f"{'#':>3}  {'op':<22} {'output shape':<16} {'params B':>10} {'act B':>9} {'MACs':>11}"
    lines += [hdr, "-" * len(hdr)]
    for r in report["layers"]:
        shape = "x".join(str(d) for d in r["output_shape"])
        idx = "" if r["index"] is None else str(r["index"])
        lines.append(f"{idx:>3}  {r['type']:<22} {shape:<16} {r['params_bytes']:>10,} {r['activation_bytes']:>9,} "
                     f"{r['macs']:>11,}")
    t = report["totals"]
    lines += ["-" * len(hdr),
              f"{'':>3}  {'total':<22} {'':<16} {t['params_bytes']:>10,} {'':>9} {t['macs']:>11,}",
              "",
              f"workspace {report['workspace_bytes']:,} B"
              + (f" ({report['ram_workspace_bytes']:,} B with flash constants staged in it)"
                 if report["ram_workspace_bytes"] != report["workspace_bytes"] else "")
              + f" (largest layer input+output {t['peak_layer_in_out_bytes']:,} B,"
              f" all activations {t['activation_bytes_sum']:,} B); input {report['input_bytes']:,} B, "
              f"output {report['output_bytes']:,} B",
              "code: " + (report["code_note"] if report["code_bytes"] is None
                          else f"{report['code_bytes']:,} B ({report['code_note']})"), ""]
    lines += budget_lines(report)
    lines += [""] + [f"note: {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def budget_lines(report):
    """The flash and RAM lines of the report (what the memory stage prints; the layer table is in memory.txt)."""
    lines = []
    for key, label in (("flash", "Flash"), ("ram", "RAM")):
        x = report[key]
        lines.append(f"{label}: {_fmt_items(x['items'])} = {x['total']:,} of {x['limit']:,} B "
                     f"({x['percent']}%) -> {budget_status(x)}")
    return lines


# What to do about a model that does not fit, by where it came from (memory.json's "origin"): a model trained here
# shrinks with the training variables; a MODEL= file does not, so its advice names what the build can change.
ADVICE = {
    "trained": "Make the trained model smaller (SIZE=, ALPHA=, DEPTH=, CHANNELS=1) or pick a bigger BOARD=",
    "model": "Quantize the MODEL= file smaller (fewer or narrower layers, a smaller input), pick a bigger BOARD= "
             "(`scons boards` lists them) or another BACKEND= (`scons memory BACKEND=tvm,tflm` compares them)",
}


def check_fits(report):
    """Raises PipelineError when the model (plus the core margin) exceeds the board's flash or RAM, with advice
    that fits how the model came (report["origin"]: "model" for a MODEL= file, else trained here)."""
    problems = []
    for key, label in (("flash", "flash"), ("ram", "RAM")):
        x = report[key]
        if not x["fits"]:
            problems.append(f"{label} needs {x['total']} B, has {x['limit']} B (over by {x['over_by']} B)")
    if problems:
        m = report["core_margin"]
        extra = (f"; totals include an estimated {m['flash_bytes']} B flash / {m['ram_bytes']} B RAM for "
                 f"{m['what']}")
        if report.get("constants_in_ram"):
            extra += " and, on AVR, the constant data copied to RAM"
        elif report["board"].get("progmem"):
            extra += " and, on AVR, the workspace that stages each kernel's flash constants"
        if report.get("code_bytes") is None:
            extra += "; code size not measured"
        advice = ADVICE["model" if report.get("origin") == "model" else "trained"]
        raise PipelineError(f"model does not fit {report['board']['title']}: " + "; ".join(problems) + extra
                            + f". {advice}.")
