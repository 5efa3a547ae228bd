"""Memory and latency report of a Linux board: what the model takes (file, parameters, activations), what the
runtime process took here, and its latency on this machine, labelled as the rough guide it is.

Nothing here is measured on the board: the latency and peak RSS come from run.py in the isolated runtime venv
on the build machine (x86_64, the board's thread count), the sizes from the .tflite itself.
"""
import json
import os
import platform
import statistics

from .. import proc as external
from .. import boards
from ..fsutil import atomic_open
from . import runtime_env

_BOARD_BENCH = "python3 run.py --benchmark 50 samples/*"
_TYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT8": 1, "INT64": 8, "INT16": 2, "BOOL": 1,
               "UINT32": 4, "FLOAT64": 8, "UINT16": 2}


def tensor_memory(tflite_path):
    """{"parameters_bytes", "activations_bytes", "tensors", "ops"} from the flatbuffer: constant tensors (with a
    buffer) are parameters, the rest activations (their sum bounds the interpreter's arena, which reuses
    buffers whose lifetimes do not overlap)."""
    import tflite

    with open(tflite_path, "rb") as f:
        buf = f.read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    types = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    params = activations = 0
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        count = 1
        for d in (t.ShapeAsNumpy() if t.ShapeLength() else []):
            count *= max(int(d), 1)
        size = count * _TYPE_BYTES.get(types.get(t.Type()), 4)
        b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        if b is not None and (b.DataLength() > 0 or b.Size() > 0):
            params += size
        else:
            activations += size
    return {"parameters_bytes": params, "activations_bytes": activations, "tensors": graph.TensorsLength(),
            "ops": graph.OperatorsLength()}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _runtime_baseline_rss(python):
    """Peak RSS of the venv's Python that only imports the runtime, numpy and Pillow: the share that is not
    the model."""
    code = ("import numpy, PIL.Image\n"
            "try:\n    import ai_edge_litert.interpreter\nexcept ImportError:\n    import tflite_runtime.interpreter\n"
            "print(next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    proc = external.run([python, "-I", "-c", code], capture_output=True, text=True, env=runtime_env.clean_env(),
                          timeout=120)
    return int(proc.stdout.strip()) if proc.returncode == 0 else None


def _mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def linux_report(bundle_dir, board, out_json, out_txt, *, venv_root=None, runs=50):
    board = boards.board(board)
    with open(os.path.join(bundle_dir, "bundle.json")) as f:
        spec = json.load(f)
    python = runtime_env.runtime_python(os.path.join(bundle_dir, "requirements.txt"), venv_root)
    threads = int(board.cores or 1)
    ran = runtime_env.run_bundle(python, bundle_dir, ["--benchmark", str(runs), "--threads", str(threads),
                                                      *spec["samples"]])
    latency = statistics.median(r["latency_ms"] for r in ran["results"])
    baseline = _runtime_baseline_rss(python)
    tensors = tensor_memory(os.path.join(bundle_dir, spec["model"]))
    bundle_bytes = sum(os.path.getsize(os.path.join(root, n)) for root, _, files in os.walk(bundle_dir) for n in files)
    ram = int(board.ram_bytes)
    host = {"machine": platform.machine(), "cpu": cpu_name(), "threads": threads, "runs_per_sample": runs}
    report = {
        "board": board.name, "title": board.title, "kind": "linux", "cpu": board.cpu,
        "cores": board.cores, "ram_bytes": ram, "ram_note": board.ram_note, "quant": spec["quant"],
        "model_bytes": spec["model_bytes"], "bundle_bytes": bundle_bytes, **tensors,
        "measured_here": {
            "note": "measured on the build machine, not on the board: a rough guide only",
            **host, "runtime": ran["runtime"], "latency_ms_median": round(latency, 3),
            "latency_ms_per_sample": {r["name"]: r["latency_ms"] for r in ran["results"]},
            "peak_rss_bytes": ran["peak_rss_bytes"], "runtime_only_rss_bytes": baseline,
        },
        "ram_share_percent": round(100.0 * ran["peak_rss_bytes"] / ram, 1),
    }
    lines = [
        f"{board.title} ({board.cpu}, {board.cores} cores, {board.clock_mhz} MHz; "
        f"RAM {_mib(ram)}: {board.ram_note or ''}), QUANT={spec['quant']}",
        f"  model.tflite       {spec['model_bytes']:>12,} B   (bundle {bundle_bytes:,} B with run.py and samples)",
        f"  parameters         {tensors['parameters_bytes']:>12,} B   constant tensors",
        f"  activations        {tensors['activations_bytes']:>12,} B   all intermediate tensors (the interpreter's "
        "arena reuses buffers: an upper bound)",
        f"  process peak RSS   {_mib(ran['peak_rss_bytes']):>14}   run.py with {ran['runtime']}"
        + (f" (runtime, numpy and Pillow alone: {_mib(baseline)})" if baseline else "")
        + f", {report['ram_share_percent']}% of the board's RAM",
        f"  latency            {latency:>11.2f} ms   ROUGH GUIDE ONLY: median invoke over {runs} runs x "
        f"{len(ran['results'])} sample(s), {threads} thread(s), on this {host['machine']} machine ({host['cpu']}),",
        f"                                   not on the {board.cpu}; on the board: `{_BOARD_BENCH}`",
    ]
    with atomic_open(out_json) as f:
        json.dump(report, f, indent=1)
    with atomic_open(out_txt) as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report
