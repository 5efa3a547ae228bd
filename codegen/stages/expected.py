"""Reference results for the embedded inputs from TFLite's reference kernels: what the sketch must print.

Besides the raw scores, each input gets its top label and the exact result line (codegen.protocol.result_line)
that the sketch, the host check and the emulators print, so that they are compared byte for byte."""
import json

from ..emit.bin2c import demo_summary_line, load_embedded
from ..fsutil import atomic_open
from ..runners.hostcheck import result_line, top_index


def reference_scores(tflite_path, images_json, out_json):
    import numpy as np

    from ..modelio.tf_env import reference_interpreter, run_interpreter

    meta, raws = load_embedded(images_json)
    interp = reference_interpreter(tflite_path)
    dtype = interp.get_input_details()[0]["dtype"]
    x = np.stack([np.frombuffer(r, dtype=dtype) for r in raws])
    scores = run_interpreter(interp, x)
    output = meta.get("output") or {}
    labels = meta.get("labels") or [f"class{i}" for i in range(scores.shape[1])]
    images = []
    for e, s in zip(meta["images"], scores):
        values = [int(v) for v in s]
        top = top_index(values)
        images.append({"name": e["name"], "title": e["title"], "scores": values, "argmax": top, "top": labels[top],
                       "line": result_line(e["title"], values, labels, output)})
    result = {"output_dtype": scores.dtype.name, "labels": labels, "softmax": bool(output.get("softmax")),
              "images": images}
    if meta.get("demo"):
        # The held-out demo: each input's true class, and the sketch's last line as TFLite's decisions give it.
        for entry, e in zip(images, meta["images"]):
            entry["truth"] = e["truth"]
        correct = sum(1 for entry in images if entry["argmax"] == entry["truth"])
        result["demo"] = {"correct": correct, "total": len(images), "line": demo_summary_line(correct, len(images))}
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result
