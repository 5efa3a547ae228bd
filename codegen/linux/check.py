"""The Linux-board check: the bundle, run by its own run.py in the isolated runtime venv (LiteRT, numpy,
Pillow only), must give exactly tf.lite's scores on its samples.

The reference side runs in the build's venv: the samples become input tensors through the build's own
preprocessing (bundle.input_tensor: for quantized inputs the very bytes the MCU route embeds) and go through
TensorFlow's tf.lite interpreter with its default kernels, the ones LiteRT ships. Both the input tensor (its
sha256) and every output value must be equal: a difference in resizing, pixel range or rounding in run.py
shows up here, not on the board.
"""
import json
import os

from ..errors import PipelineError
from ..fsutil import atomic_open
from ..modelio.quantio import model_io
from . import bundle as bundlemod
from . import runtime_env


def load_spec(bundle_dir):
    with open(os.path.join(bundle_dir, "bundle.json")) as f:
        return json.load(f)


def reference_results(bundle_dir, spec=None):
    """[{"name", "scores", "input_sha256"}] of tf.lite (TensorFlow's interpreter, default kernels) per sample."""
    import hashlib

    import numpy as np

    from ..modelio.tf_env import import_tf, quiet

    spec = spec or load_spec(bundle_dir)
    tf, _ = import_tf()
    with quiet():
        interp = tf.lite.Interpreter(model_path=os.path.join(bundle_dir, spec["model"]))
        interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    # From the model itself, not bundle.json: a wrong pixel range written there must show up as a difference.
    model_input = model_io(os.path.join(bundle_dir, spec["model"]))["input"]
    pixels_in = bundlemod.pixel_range(model_input)
    rows = []
    for rel in spec["samples"]:
        tensor = bundlemod.input_tensor(os.path.join(bundle_dir, rel), model_input, pixels_in)
        interp.set_tensor(inp["index"], np.ascontiguousarray(tensor).reshape(inp["shape"]).astype(inp["dtype"]))
        interp.invoke()
        scores = interp.get_tensor(out["index"]).reshape(-1)
        values = [int(v) for v in scores] if scores.dtype.kind in "iu" else [float(v) for v in scores]
        rows.append({"name": os.path.basename(rel), "scores": values,
                     "input_sha256": hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest(),
                     "argmax": int(np.argmax(scores)), "top": spec["labels"][int(np.argmax(scores))]})
    return {"tensorflow": tf.__version__, "results": rows}


def compare(reference_rows, ran_rows):
    """One row per sample: both sides' scores, whether the input tensors and the scores are equal."""
    by_name = {r["name"]: r for r in ran_rows}
    rows = []
    for ref in reference_rows:
        got = by_name.get(ref["name"])
        if got is None:
            rows.append({"name": ref["name"], "exact": False, "missing": True, "expected": ref["scores"]})
            continue
        diff = max((abs(a - b) for a, b in zip(ref["scores"], got["scores"])), default=0)
        same_input = ref["input_sha256"] == got["input_sha256"]
        rows.append({"name": ref["name"], "top": got["top"], "confidence": got["confidence"],
                     "latency_ms": got["latency_ms"], "scores": got["scores"], "expected": ref["scores"],
                     "same_input": same_input, "input_sha256": ref["input_sha256"], "max_abs_diff": diff,
                     "exact": same_input and got["scores"] == ref["scores"]})
    return rows


def check_bundle(bundle_dir, out_json, *, venv_root=None):
    """Runs the bundle in the runtime venv and compares with tf.lite; writes out_json only when all are equal."""
    spec = load_spec(bundle_dir)
    python = runtime_env.runtime_python(os.path.join(bundle_dir, "requirements.txt"), venv_root)
    ran = runtime_env.run_bundle(python, bundle_dir, spec["samples"])
    reference = reference_results(bundle_dir, spec)
    rows = compare(reference["results"], ran["results"])
    for row in rows:
        if row.get("missing"):
            print(f"  {row['name']}: no result from run.py")
            continue
        note = "" if row["exact"] else (
            "   (input tensor differs from the build's)" if not row["same_input"]
            else f"   (tf.lite: {row['expected']})")
        print(f"  {row['name']}: {row['top']} {row['confidence']} {row['latency_ms']:.2f} ms {row['scores']}{note}")
    bad = [r["name"] for r in rows if not r["exact"]]
    if bad:
        raise PipelineError(f"{bundle_dir}: run.py in the runtime venv ({ran['runtime']}) does not give tf.lite's "
                            f"scores for {', '.join(bad)} (see the lines above); the bundle would not behave on "
                            "the board as it did here")
    print(f"  {len(rows)} sample(s): scores equal tf.lite {reference['tensorflow']}'s, run by {ran['runtime']} "
          f"(Python {ran['python']}, no TensorFlow)")
    result = {"board": spec["board"], "quant": spec["quant"], "runtime": ran["runtime"], "python": ran["python"],
              "venv": os.path.dirname(os.path.dirname(python)), "venv_packages": runtime_env.installed_packages(python),
              "tensorflow_in_venv": False, "reference": f"tf.lite (TensorFlow {reference['tensorflow']})",
              "exact": True, "samples": rows}
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result
