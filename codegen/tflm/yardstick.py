"""What TFLM's scores are compared with. tf.lite's reference kernels (BUILTIN_REF) stay the yardstick, as for the
TVM backend; TFLM equals them on every op measured here except FULLY_CONNECTED: TF 2.21's reference FC
requantizes with a single rounding (see codegen/lowering/quant.py), TFLM's with the double rounding that tf.lite's
optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES) use. Measured (../shared/models, seeded inputs): VWW, KWS and
ResNet-8 equal BUILTIN_REF byte for byte; the FC autoencoder ad01 differs from BUILTIN_REF in ~40 % of its values
(by 1-2) and from BUILTIN_WITHOUT_DEFAULT_DELEGATES in ~0.4 % (by 1).

So expected_tflm.json holds both resolvers' scores; a TFLM run must take tf.lite's decisions and is reported as
equal to the resolver it matches byte for byte, or with its largest difference to each.

A file tf.lite refuses to load (codegen/stages/expected.py) has only the tflite-micro interpreter's scores: then
the yardstick is that one reference (expected.json's "reference" says so) and there is no ALTERNATIVE."""
import json

from ..errors import PipelineError
from ..fsutil import atomic_open

PRIMARY = "BUILTIN_REF"
ALTERNATIVE = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"


def expected_scores(tflite_path, images_json, out_json):
    """expected.json (BUILTIN_REF, the same lines as the TVM route's) plus each input's scores from ALTERNATIVE."""
    import numpy as np

    from ..emit.bin2c import load_embedded
    from ..stages.expected import TFLITE, reference_scores
    from ..modelio.tf_env import import_tf, quiet, run_interpreter

    result = reference_scores(tflite_path, images_json, out_json)
    if result.get("reference", TFLITE) != TFLITE:
        result["resolver"] = result["reference"]
        with atomic_open(out_json) as f:
            json.dump(result, f, indent=1)
        return result
    tf, _ = import_tf()
    with quiet():
        interp = tf.lite.Interpreter(model_path=tflite_path, experimental_op_resolver_type=getattr(
            tf.lite.experimental.OpResolverType, ALTERNATIVE))
        interp.allocate_tensors()
    _, raws = load_embedded(images_json)
    dtype = interp.get_input_details()[0]["dtype"]
    alt = run_interpreter(interp, np.stack([np.frombuffer(r, dtype=dtype) for r in raws]))
    for entry, scores in zip(result["images"], alt):
        entry["scores_" + ALTERNATIVE] = [int(v) for v in scores]
    result["resolver"] = PRIMARY
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result


def judge(printed_scores, expected, where):
    """{"resolver": the resolver matched byte for byte or None, "max_diff": {resolver: n}}; raises PipelineError
    when a top class differs from tf.lite's (BUILTIN_REF)."""
    from ..runners.hostcheck import top_index

    want = expected["images"]
    if len(printed_scores) != len(want):
        raise PipelineError(f"TFLM {where} printed {len(printed_scores)} result(s), expected {len(want)}")
    only = _only_reference(expected)
    resolvers = ((only, "scores"),) if only else ((PRIMARY, "scores"), (ALTERNATIVE, "scores_" + ALTERNATIVE))
    max_diff = {}
    for resolver, key in resolvers:
        max_diff[resolver] = max(max(abs(a - b) for a, b in zip(got, exp[key]))
                                 for got, exp in zip(printed_scores, want))
    source = f"the {only} interpreter" if only else "tf.lite"
    wrong = [f"{exp['title']}: TFLM {where} says class {top_index(got)} {got}, {source} says class "
             f"{exp['argmax']} {exp['scores']}" for got, exp in zip(printed_scores, want)
             if top_index(got) != exp["argmax"]]
    if wrong:
        raise PipelineError(f"check failed: TFLite Micro disagrees with {source}:\n  " + "\n  ".join(wrong))
    matched = next((r for r, _ in resolvers if max_diff[r] == 0), None)
    return {"resolver": matched, "max_diff": max_diff, **({"reference": only} if only else {})}


def _only_reference(expected):
    """The one reference of a file tf.lite refuses (its "reference", e.g. "TFLite Micro"), else None."""
    from ..stages.expected import TFLITE

    reference = expected.get("reference", TFLITE)
    return None if reference == TFLITE else reference


def describe(verdict):
    only = verdict.get("reference")
    if only:
        if verdict["resolver"] == only:
            return f"bytes identical to the {only} interpreter (tf.lite refuses this file)"
        return (f"same decisions as the {only} interpreter (tf.lite refuses this file); values differ by up to "
                f"{verdict['max_diff'][only]}")
    if verdict["resolver"] == PRIMARY:
        return "bytes identical to tf.lite (BUILTIN_REF)"
    if verdict["resolver"] == ALTERNATIVE:
        return (f"bytes identical to tf.lite {ALTERNATIVE} (its optimized kernels); BUILTIN_REF differs by up to "
                f"{verdict['max_diff'][PRIMARY]} (its FULLY_CONNECTED rounds once, TFLM's twice)")
    return (f"same decisions as tf.lite; values differ by up to {verdict['max_diff'][PRIMARY]} from BUILTIN_REF and "
            f"{verdict['max_diff'][ALTERNATIVE]} from {ALTERNATIVE} (FULLY_CONNECTED rounding, see "
            "codegen/tflm/yardstick.py)")
