"""Reference results for the embedded inputs from TFLite's reference kernels: what the sketch must print.

Besides the raw scores, each input gets its top label and the exact result line (codegen.protocol.result_line)
that the sketch, the host check and the emulators print, so that they are compared byte for byte.

The reference is tf.lite's reference kernels (BUILTIN_REF). A file tf.lite refuses to load but TFLite Micro runs
(e.g. TFLM's person_detect.tflite: bias tensors with quantized_dimension 3, which TFLM ignores) takes its scores from
the `tflite-micro` Python interpreter instead: said once in the log, recorded as expected.json's "reference"."""
import json
import re

from ..emit.bin2c import demo_summary_line, load_embedded
from ..fsutil import atomic_open
from ..errors import PipelineError
from ..protocol import float_key, output_line, output_title
from ..runners.hostcheck import result_line, top_index

TFLITE = "tf.lite BUILTIN_REF"
TFLM = "TFLite Micro"
TFLM_MIN_ARENA = 16 << 20     # the tflite-micro default (10x the file) is too small for small models' activations


def _tflm_scores(tflite_path, raws):
    """The model's output for each raw input from the tflite-micro interpreter (TFLM's reference kernels)."""
    import numpy as np
    from tflite_micro import runtime

    with open(tflite_path, "rb") as f:
        data = f.read()
    interp = runtime.Interpreter.from_bytes(data, arena_size=max(10 * len(data), TFLM_MIN_ARENA))
    inp = interp.get_input_details(0)
    rows = []
    for r in raws:
        interp.set_input(np.frombuffer(r, dtype=inp["dtype"]).reshape(inp["shape"]), 0)
        interp.invoke()
        rows.append(np.array(interp.get_output(0)).reshape(-1).copy())
        interp.reset()
    return np.stack(rows)


def _one_line(e):
    """An interpreter's error as one line: tf.lite runs its messages together ("...Was 3.Tensor 2 has..."), each
    tensor's twice; every distinct sentence once."""
    parts = re.split(r"(?<=\.)(?=[A-Z])", " ".join(str(e).split()))
    text = " ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
    return text if len(text) <= 300 else text[:297] + "..."


def run_reference(tflite_path, raws):
    """(scores, reference, why): the outputs for the raw inputs from tf.lite's reference kernels, or, when tf.lite
    refuses the file, from TFLite Micro (`why`: tf.lite's reason). PipelineError when neither runs it."""
    import numpy as np

    from ..modelio.tf_env import reference_interpreter, run_interpreter
    from .. import tflite_limits as limits

    limits.open_graph(tflite_path)      # a damaged or hostile file is refused here, before either interpreter
    try:
        interp = reference_interpreter(tflite_path)
    except (ValueError, RuntimeError) as e:
        refused = _one_line(e)
    else:
        dtype = interp.get_input_details()[0]["dtype"]
        return run_interpreter(interp, np.stack([np.frombuffer(r, dtype=dtype) for r in raws])), TFLITE, None
    try:
        scores = _tflm_scores(tflite_path, raws)
    except ImportError:
        raise PipelineError(f"{tflite_path}: tf.lite cannot load this model ({refused}) and the tflite-micro "
                            "interpreter, the second reference (a dependency of tinyml-scons), is not installed in this "
                            "environment; install it (pip install tflite-micro) or fix the model so that tf.lite "
                            "loads it") from None
    except (ValueError, RuntimeError) as e:
        raise PipelineError(f"{tflite_path}: neither tf.lite ({refused}) nor TFLite Micro ({_one_line(e)}) can run "
                            "this model, so there are no reference scores; re-export it") from None
    print(f"note: {tflite_path}: tf.lite refuses this file ({refused}); the expected scores come from the "
          "TFLite Micro interpreter (tflite-micro) instead", flush=True)
    return scores, TFLM, refused


def score_values(row):
    """One output as the scores the result lines print: integers as they are, float32 values as their order keys
    (codegen.protocol.float_key of their bits)."""
    import numpy as np

    row = np.asarray(row).reshape(-1)
    if row.dtype.kind == "f":
        return [float_key(b) for b in row.astype(np.float32).view(np.uint32)]
    return [int(v) for v in row]


def _unpack(raw, tensors):
    """The arrays of a packed buffer (images.json's "inputs"/"outputs": dtype, shape, offset, size_bytes)."""
    import numpy as np

    return [np.frombuffer(raw[t["offset"]:t["offset"] + t["size_bytes"]], dtype=t["dtype"]).reshape(t["shape"])
            for t in tensors]


def run_reference_multi(tflite_path, meta, raws):
    """([[output array per output] per input case], reference, why) for a model with several inputs or outputs:
    each input unpacked from the case's packed bytes, set by name (else in order), each output read by name."""
    from ..modelio.quantio import model_io
    from ..modelio.tf_env import reference_interpreter
    from .. import tflite_limits as limits

    limits.open_graph(tflite_path)
    io = model_io(tflite_path)
    try:
        interp = reference_interpreter(tflite_path)
    except (ValueError, RuntimeError) as e:
        refused = _one_line(e)
    else:
        ins, outs = interp.get_input_details(), interp.get_output_details()
        by_name = {d["name"]: d for d in ins}
        in_details = [by_name.get(t["name"], d) for t, d in zip(io["inputs"], ins)]
        by_name = {d["name"]: d for d in outs}
        out_details = [by_name.get(t["name"], d) for t, d in zip(io["outputs"], outs)]
        rows = []
        for raw in raws:
            for d, arr in zip(in_details, _unpack(raw, meta["inputs"])):
                interp.set_tensor(d["index"], arr.reshape(d["shape"]))
            interp.reset_all_variables()        # each case from the reset state (a recurrent model's state)
            interp.invoke()
            rows.append([interp.get_tensor(d["index"]).copy() for d in out_details])
        return rows, TFLITE, None
    try:
        import numpy as np
        from tflite_micro import runtime

        with open(tflite_path, "rb") as f:
            data = f.read()
        tflm = runtime.Interpreter.from_bytes(data, arena_size=max(10 * len(data), TFLM_MIN_ARENA))
        rows = []
        for raw in raws:
            for k, arr in enumerate(_unpack(raw, meta["inputs"])):
                tflm.set_input(arr, k)
            tflm.invoke()
            rows.append([np.array(tflm.get_output(k)).copy() for k in range(len(meta["outputs"]))])
            tflm.reset()
    except ImportError:
        raise PipelineError(f"{tflite_path}: tf.lite cannot load this model ({refused}) and the tflite-micro "
                            "interpreter is not installed; install it (pip install tflite-micro)") from None
    except (ValueError, RuntimeError) as e:
        raise PipelineError(f"{tflite_path}: neither tf.lite ({refused}) nor TFLite Micro ({_one_line(e)}) can run "
                            "this model, so there are no reference scores; re-export it") from None
    print(f"note: {tflite_path}: tf.lite refuses this file ({refused}); the expected scores come from the "
          "TFLite Micro interpreter (tflite-micro) instead", flush=True)
    return rows, TFLM, refused


def _multi_entries(meta, rows):
    """expected.json's entries of a model with several inputs or outputs: one per input case and output, titled
    `<name> #<k>`, with the printed scores and the exact line (codegen.protocol.output_line)."""
    entries = []
    for e, outs in zip(meta["images"], rows):
        for k, (t, arr) in enumerate(zip(meta["outputs"], outs)):
            arr = arr.astype(t["dtype"])
            title = output_title(e["title"], k)
            if t.get("classifier"):     # a short softmax: label and confidence, as a one-output model prints
                labels = meta["labels"] if t.get("labelled") else [f"class{i}" for i in range(t["size"])]
                scores = score_values(arr)
                top = top_index(scores)
                entries.append({"name": e["name"], "title": title, "output": k, "scores": scores, "argmax": top,
                                "top": labels[top], "line": result_line(title, scores, labels, t)})
                continue
            line, scores = output_line(title, score_values(arr), t["dtype"], arr.tobytes())
            top = top_index(scores)
            entries.append({"name": e["name"], "title": title, "output": k, "scores": scores, "argmax": top,
                            "top": "values" if line.split(": ", 1)[1].startswith("values") else "top5",
                            "line": line})
    return entries


def reference_scores(tflite_path, images_json, out_json):
    meta, raws = load_embedded(images_json)
    if meta.get("outputs"):         # several inputs or outputs: a line per input and output
        rows, reference, refused = run_reference_multi(tflite_path, meta, raws)
        result = {"output_dtype": [t["dtype"] for t in meta["outputs"]], "labels": [], "softmax": False,
                  "images": _multi_entries(meta, rows), "reference": reference}
        if refused:
            result["tflite_refused"] = refused
        with atomic_open(out_json) as f:
            json.dump(result, f, indent=1)
        return result
    scores, reference, refused = run_reference(tflite_path, raws)
    output = meta.get("output") or {}
    labels = meta.get("labels") or [f"class{i}" for i in range(scores.shape[1])]
    images = []
    for e, s in zip(meta["images"], scores):
        values = score_values(s)
        top = top_index(values)
        images.append({"name": e["name"], "title": e["title"], "scores": values, "argmax": top, "top": labels[top],
                       "line": result_line(e["title"], values, labels, output)})
        if s.dtype.kind == "f":     # the scores are the floats' order keys (codegen.protocol); their values:
            images[-1]["values"] = [float(v) for v in s]
    result = {"output_dtype": scores.dtype.name, "labels": labels, "softmax": bool(output.get("softmax")),
              "images": images, "reference": reference}
    if refused:
        result["tflite_refused"] = refused
    if meta.get("demo"):
        # The held-out demo: each input's true class, and the sketch's last line as TFLite's decisions give it.
        for entry, e in zip(images, meta["images"]):
            entry["truth"] = e["truth"]
        correct = sum(1 for entry in images if entry["argmax"] == entry["truth"])
        result["demo"] = {"correct": correct, "total": len(images), "line": demo_summary_line(correct, len(images))}
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result
