"""Simulate stage: run the generated model C on an emulated Cortex-M4F and check it against TFLite.

The MLF tar's C sources, the embedded test images (bin2c's images.c/.h) and a bare-metal harness generated here
are built with codegen.runners.qemu.build_firmware (-O2, Cortex-M4F hard-float) and run on QEMU's mps2-an386 with
the instruction-count plugin. The harness runs every image once between insn_region_begin()/insn_region_end(), so
the counted instructions are exactly the inferences, and prints one result line per input ("<name>: <label>
<confidence> [<scores>]"), the same text the Arduino sketch prints: both print through the result-line
protocol's macros (templates/protocol/results.j2; parsed with codegen.protocol.parse_results).

The generated code is integer-exact with TFLite's reference kernels, so every printed line must equal
expected.json's byte for byte; any difference raises PipelineError naming the input.
"""
import json
import os

from . import qemu
from .. import escape
from .. import boards
from ..errors import PipelineError
from ..fsutil import atomic_open
from .hostcheck import compare_lines, parse_results
from ..emit import templating
from ..emit.mlf_archive import read_mlf
from ..emit.sketch import user_images

MLF_SRC_DIR = "codegen/host/src"
MLF_INCLUDE_DIR = "codegen/host/include"



def write_pgmspace_stub(stub_dir):
    """images.h from an AVR (progmem) build includes <avr/pgmspace.h>; on ARM PROGMEM means nothing: writes a
    stand-in stub_dir/avr/pgmspace.h (put stub_dir on the include path)."""
    os.makedirs(os.path.join(stub_dir, "avr"), exist_ok=True)
    with open(os.path.join(stub_dir, "avr", "pgmspace.h"), "w") as f:
        f.write(templating.render("harness/pgmspace.h.j2"))


def _load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise PipelineError(f"{what} {path} does not exist: build it first") from None
    except json.JSONDecodeError as e:
        raise PipelineError(f"{what} {path} is not valid JSON ({e}): delete it and rebuild") from None


def extract_mlf(mlf_tar, dest):
    """Writes the MLF's C sources and header under dest in the MLF layout; returns (metadata dict, [C sources],
    include dir)."""
    meta, files = read_mlf(mlf_tar)
    src_dir, include_dir = os.path.join(dest, MLF_SRC_DIR), os.path.join(dest, MLF_INCLUDE_DIR)
    sources = []
    for name, data in sorted(files.items()):
        path = os.path.join(include_dir if name.endswith(".h") else src_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        if name.endswith(".c"):
            sources.append(path)
    return meta, sources, include_dir


def harness_source(model_name, images, output_dtype, labels=None, output=None, sketch_api=False,
                   template="harness/m4_main.c.j2", outputs=None):
    """C source of the bare-metal main (templates/harness/m4_main.c.j2): runs each input once inside an
    instruction-count region and prints its result line like the sketch does (the result-line protocol's macros,
    templates/protocol/results.j2), with integer arithmetic only.

    `sketch_api`: call the sketch's backend-neutral src/model.h (TVMInitialize once, TVMExecute per input, as
    the TFLM backend provides) instead of the MLF's tvmgen_<model>_run. `template`: a backend's harness, which
    may extend the default one (templates/harness/m4_tflm_main.c.j2).

    `labels`/`output`: images.json's class labels and output quantization; without them the labels are
    class0..classN-1 and the confidence is the raw top score."""
    escape.require_c_identifier(model_name, "model_name")
    output = output or {}
    quant = {"dtype": output_dtype, "softmax": bool(output.get("softmax"))}
    if quant["softmax"] and output_dtype != "float32":     # a float probability's confidence needs no constants
        quant.update({k: int(output[k]) for k in ("zero_point", "confidence_multiplier", "confidence_shift")},
                     scale=output.get("scale"))
    outs = {"outputs": outputs} if outputs else {}       # several outputs: a line each (images.json's "outputs")
    context = {"images": user_images({"images": images, "labels": labels or [], "output": quant, **outs}),
               "model_name": model_name, "sketch_api": sketch_api,
               "run": "TVMExecute" if sketch_api else f"tvmgen_{model_name}_run"}
    return templating.render(template, **context)


def compare_exact(printed, expected, source):
    """Raises PipelineError unless printed results equal expected.json's exactly (titles, scores, lines)."""
    compare_lines(printed, expected, source, "on the emulated Cortex-M4")


def simulate_cortex_m4(mlf_tar, images_c, images_h, images_json, expected_json, out_json, *, work_dir,
                       timeout_s=120, board=None):
    """Builds the model + images + harness for the mps2-an386 Cortex-M4F, runs it under QEMU with instruction
    counting, checks the scores against expected.json byte for byte and writes out_json. Returns its dict.

    `board` (a Board, or a mapping of its fields) gives the clock for the estimated milliseconds and its
    flash_wait_states (default 0) for the estimated cycles."""
    board = boards.board(board or {})
    ws = int(board.flash_wait_states or 0)
    work_dir = os.path.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    images_meta = _load_json(images_json, "images sidecar")
    expected = _load_json(expected_json, "expected scores")
    images = images_meta.get("images", [])
    if not images:
        raise PipelineError(f"{images_json} lists no images: embed at least one test image")
    # (a model with several outputs has an entry per input and output)
    exp_names = list(dict.fromkeys(e["name"] for e in expected.get("images", [])))
    if exp_names != [e["name"] for e in images]:
        raise PipelineError(f"{expected_json} covers images {exp_names}, but {images_json} embeds "
                            f"{[e['name'] for e in images]}: regenerate the expected scores")

    mlf_dir = os.path.join(work_dir, "mlf")
    meta, sources, include_dir = extract_mlf(mlf_tar, mlf_dir)
    model_name = meta.get("model_name", "default")
    out_dtype = meta["outputs"][0]["dtype"] if meta.get("outputs") else "uint8"
    in_size = meta["inputs"][0]["size_bytes"] if meta.get("inputs") and not images_meta.get("outputs") else None
    if in_size is not None and images_meta.get("size_bytes") not in (None, in_size):
        raise PipelineError(f"{images_json} holds {images_meta['size_bytes']}-byte images but the model in "
                            f"{mlf_tar} takes {in_size} bytes: re-embed the images for this model")

    stub_dir = os.path.join(work_dir, "stub")
    write_pgmspace_stub(stub_dir)
    main_c = os.path.join(work_dir, "sim_main.c")
    with open(main_c, "w") as f:
        f.write(harness_source(model_name, images, out_dtype, labels=images_meta.get("labels"),
                               output=images_meta.get("output"), outputs=images_meta.get("outputs")))

    elf = qemu.build_firmware([*sources, os.path.abspath(images_c)],
                              [include_dir, os.path.dirname(os.path.abspath(images_h)), stub_dir],
                              main_c, os.path.join(work_dir, "sim.elf"), cflags=("-O2",))
    res = qemu.run_firmware(elf, timeout_s=timeout_s, count_instructions=True, flash_wait_states=ws)
    if res["exit_code"] != 0:
        raise qemu.QemuError(f"firmware {elf} exited with code {res['exit_code']} under QEMU; "
                             f"output: {res['stdout'][-500:]!r}")
    printed = parse_results(res["stdout"])
    compare_exact(printed, expected, f"simulated {model_name} model ({elf})")

    region = res["region"]
    if region is None or region["count"] != len(images):
        raise qemu.QemuError(f"firmware {elf} completed {0 if region is None else region['count']} "
                             f"instruction-count region(s) for {len(images)} image(s); the markers were not "
                             "counted (does this QEMU support -plugin?)")
    cost = qemu.per_inference(region, clock_hz=board.clock_hz, flash_wait_states=ws)
    per_inference = cost["instructions_per_inference"]
    total_macs = meta.get("total_macs")
    if total_macs is None and meta.get("ops"):
        total_macs = sum(int(o.get("macs", 0)) for o in meta["ops"])
    result = {
        "emulator": f"qemu-system-arm -M {qemu.MACHINE}",
        "cpu": qemu.CPU,
        "cflags": [*qemu.ARCH_FLAGS, "-O2"],
        "model_name": model_name,
        "exact": True,
        "images": [{"name": exp["name"], "title": exp["title"], "scores": scores, "tflite": exp["scores"],
                    "argmax": max(range(len(scores)), key=lambda k: scores[k])}
                   for scores, exp in zip((r.scores for r in printed), expected["images"])],
        "inferences": region["count"],
        **cost,
        "instructions_total_run": res["instructions"],
        "total_macs": total_macs,
        "instructions_per_mac": round(per_inference / total_macs, 3) if total_macs else None,
        "exit_code": res["exit_code"],
        "output": res["stdout"],
    }
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    return result
