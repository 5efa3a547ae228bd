"""SCons tools: the quantize stage (TFLite PTQ) and the accuracy report."""
import os

from tinyml_glue import add_builder, file_names, params_node, setting, stage_action, tool_versions


def _quantize(target, source, p):
    from codegen.stages import quantize

    quantize.quantize(source[0], source[1], target[0], mode=p["mode"], io_type=p["io_type"],
                      rep_samples=p["rep_samples"])


REPORT_PLOTS = ("training_curve.png", "confusion_matrix.png")


def _report(target, source, p):
    from codegen.stages import report

    metrics = report.evaluate(source[0], source[1], source[2], target[0], target[1], target[2],
                              keras_path=p.get("keras_model"))
    folder = os.path.dirname(target[0])
    print("  plots: " + ", ".join(os.path.join(folder, f) for f in metrics["plots"].values()))


def _report_emitter(target, source, env):
    """The figures are targets beside metrics.json when the caller names only metrics.json (or not every
    figure): SCons then knows every file the step writes, removes them with `scons -c` and caches them."""
    target = list(target)
    for position, name in enumerate(REPORT_PLOTS, start=1):
        if len(target) <= position:
            target.append(target[0].dir.File(name))
    return target, source


def TinyQuantize(env, build_dir, model, dataset_npz, *, mode=None, io_type=None, rep_samples=None):
    """model.tflite under build_dir. Unset parameters: $TINY_QUANT, $TINY_IO_TYPE, $TINY_REP_SAMPLES."""
    mode, io_type = setting(env, mode, "QUANT"), setting(env, io_type, "IO_TYPE")
    rep_samples = setting(env, rep_samples, "REP_SAMPLES")
    return env.TinyQuantizeModel(os.path.join(build_dir, "model.tflite"),
                                 [model, dataset_npz,
                                  params_node(env, mode=mode, io_type=io_type, rep_samples=rep_samples,
                                              versions=tool_versions("tensorflow"),
                                              # how each file is read (.keras/.h5, .npz/.npy) goes by its suffix
                                              suffixes=[os.path.splitext(n)[1].lower()
                                                        for n in file_names([model, dataset_npz])])])


def TinyReport(env, build_dir, tflite, dataset_npz, history, model=None):
    """metrics.json (float vs quantized validation accuracy, confusion matrices), training_curve.png and
    confusion_matrix.png.

    The float model's predictions come from the history; `model` (the float model.keras) is read only for a
    history that lacks them (one written before they were recorded). It is an order-only prerequisite, not a
    source: a retrain that reproduces the same history (and .tflite) leaves the report alone, although the
    .keras file's bytes (a zip with timestamps) differ."""
    sources = [tflite, dataset_npz, history]
    if model is not None:
        model = env.Flatten([model])[0]
        sources.append(params_node(env, keras_model=env.File(model).get_abspath()))
    report = env.TinyAccuracyReport([os.path.join(build_dir, "metrics.json")] +
                                    [os.path.join(build_dir, name) for name in REPORT_PLOTS], sources)
    if model is not None:
        env.Requires(report, model)
    return report


def generate(env):
    add_builder(env, "TinyQuantizeModel",
                stage_action(_quantize, "TINY_QUANTCOMSTR", "Quantizing (TFLite PTQ) -> $TARGET"))
    add_builder(env, "TinyAccuracyReport",
                stage_action(_report, "TINY_REPORTCOMSTR", "Evaluating float vs quantized accuracy -> $TARGET"),
                emitter=_report_emitter)
    env.AddMethod(TinyQuantize)
    env.AddMethod(TinyReport)


def exists(env):
    return True
