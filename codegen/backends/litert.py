"""The Linux single-board route behind the Backend interface (BOARD=rpi4, rpi5, rpi_zero2: boards.json entries with
"kind": "linux"): LiteRT runs the quantized .tflite itself, so there is no generated C but a deployable bundle
(model, labels, run.py, requirements.txt, samples), checked in an isolated LiteRT venv against tf.lite, measured
(memory report), and deployed over ssh (the glue's `upload`/`monitor`, site_scons/site_tools/tinyml_linux.py).
The stages' work is in codegen/linux."""
import os

from .base import Backend, Step

BUNDLE_DIR = "bundle"


# ------------------------------------------------------------------------------------------------ the actions
def bundle(target, source, p):
    from ..linux import bundle as linux_bundle

    tflite, rest = source[0], source[1:]
    labels_file, rest = (rest[0], rest[1:]) if p["labels_file"] else (None, rest)
    inputs = rest[:p["inputs"]]         # the package's run.py and requirements.txt follow
    from .. import boards

    linux_bundle.make_bundle(tflite, inputs, p["bundle_dir"], names=p["names"], board=boards.from_signature(p["board"]),
                             quant=p["quant"],
                             class_labels=p["class_labels"], labels_file=labels_file, class_source=p["class_source"],
                             seed=p["seed"])


def check(target, source, p):
    from ..linux import check as linux_check

    linux_check.check_bundle(p["bundle_dir"], target[0], venv_root=p["runtime_venv"] or None)


def report(target, source, p):
    from ..linux import report as linux_report

    from .. import boards

    linux_report.linux_report(p["bundle_dir"], boards.from_signature(p["board"]), target[0], target[1],
                              venv_root=p["runtime_venv"] or None, runs=p["runs"])


# ------------------------------------------------------------------------------------------------ the steps
def bundle_step(bundle_dir, input_paths, *, quant, input_names=None, class_labels=None, labels_file=False,
                class_source="the dataset", seed=0, folder=BUNDLE_DIR):
    """<folder>/: model.tflite, labels.txt, run.py, requirements.txt, bundle.json, samples/<inputs>; `bundle_dir`
    is that folder's path. It reads the inputs "tflite", "inputs" (the test input files, whose paths are
    `input_paths`) and, with `labels_file`, "labels_file"."""
    from ..linux import bundle as linux_bundle

    names = linux_bundle.sample_names([str(i) for i in input_paths], input_names)
    static = [os.path.join(linux_bundle.BUNDLE_FILES_DIR, n) for n in linux_bundle.STATIC_FILES]
    return Step("bundle", "bundle", bundle, "Bundling for the Linux board -> $TARGET",
                tuple(os.path.join(folder, n) for n in linux_bundle.file_names(names)),
                ("tflite", *(["labels_file"] if labels_file else []), "inputs", *static),
                dict(bundle_dir=bundle_dir, names=names, quant=quant, class_labels=list(class_labels or []),
                     labels_file=bool(labels_file), class_source=class_source, seed=seed, inputs=len(input_paths),
                     format=linux_bundle.BUNDLE_FORMAT),
                board_fields=("title",), comstr="TINY_LINUXBUNDLECOMSTR")


def check_step(bundle_dir, *, runtime_venv=None):
    """linuxcheck.json: the bundle run by its run.py in the isolated runtime venv, scores equal to tf.lite's."""
    return Step("check", "check", check, "LiteRT check in the runtime venv -> $TARGET", ("linuxcheck.json",),
                ("step:bundle",), dict(bundle_dir=bundle_dir, runtime_venv=runtime_venv or ""),
                versions=("tensorflow",), comstr="TINY_LINUXCHECKCOMSTR")


def memory_step(bundle_dir, *, runtime_venv=None, runs=50):
    """memory.json / memory.txt for a Linux board: model size, parameters, activations, measured RSS and x86
    latency (a rough guide, labelled as such)."""
    return Step("memory", "memory", report, "Linux board memory/latency report -> $TARGET",
                ("memory.json", "memory.txt"), ("step:bundle",),
                dict(bundle_dir=bundle_dir, runtime_venv=runtime_venv or "", runs=runs),
                board_fields=("title", "cpu", "cores", "clock_hz", "ram_bytes", "ram_note"),
                comstr="TINY_LINUXREPORTCOMSTR")


# ------------------------------------------------------------------------------------------------ the backend
class LiteRTBackend(Backend):
    """Chosen by the board (a Linux board), not by BACKEND=: any QUANT= runs."""
    name = "litert"
    title = "LiteRT (Linux board)"
    folder = ""
    firmware = False
    deploy = "ssh"          # upload/monitor: the bundle over ssh (the glue's TinyLinuxUpload/TinyLinuxMonitor)

    def steps(self, ctx):
        cfg = ctx.cfg
        bundle_dir = os.path.join(ctx.out, BUNDLE_DIR)
        return [bundle_step(bundle_dir, ctx.input_paths, quant=cfg["quant"], input_names=ctx.input_names,
                            class_labels=ctx.classes, labels_file=bool(cfg["labels_file"]),
                            class_source=ctx.class_source, seed=cfg["seed"]),
                check_step(bundle_dir, runtime_venv=cfg["runtime_venv"]),
                memory_step(bundle_dir, runtime_venv=cfg["runtime_venv"], runs=cfg["bench_runs"])]


BACKEND = LiteRTBackend()
