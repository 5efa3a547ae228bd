"""Reference scores for the embedded images from TFLite's reference kernels: what the sketch must print."""
import json

from .bin2c import load_embedded
from .fsutil import atomic_open


def reference_scores(tflite_path, images_json, out_json):
    import numpy as np

    from .tf_env import reference_interpreter, run_interpreter

    meta, raws = load_embedded(images_json)
    interp = reference_interpreter(tflite_path)
    dtype = interp.get_input_details()[0]["dtype"]
    x = np.stack([np.frombuffer(r, dtype=dtype) for r in raws])
    scores = run_interpreter(interp, x)
    result = {"output_dtype": scores.dtype.name, "images": [
        {"name": e["name"], "title": e["title"], "scores": [int(v) for v in s], "argmax": int(np.argmax(s))}
        for e, s in zip(meta["images"], scores)]}
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result
