"""SCons tools: the quantize stage (TFLite PTQ) and the accuracy report."""
import os

from tinyml_glue import add_builder, params_node, setting, stage_action, tool_versions


def _quantize(target, source, p):
    from codegen.stages import quantize

    quantize.quantize(source[0], source[1], target[0], mode=p["mode"], io_type=p["io_type"],
                      rep_samples=p["rep_samples"])


def _report(target, source, p):
    from codegen.stages import report

    report.evaluate(source[0], source[1], source[2], target[0], target[1])


def TinyQuantize(env, build_dir, model, dataset_npz, *, mode=None, io_type=None, rep_samples=None):
    """model.tflite under build_dir. Unset parameters: $TINY_QUANT, $TINY_IO_TYPE, $TINY_REP_SAMPLES."""
    mode, io_type = setting(env, mode, "QUANT"), setting(env, io_type, "IO_TYPE")
    rep_samples = setting(env, rep_samples, "REP_SAMPLES")
    return env.TinyQuantizeModel(os.path.join(build_dir, "model.tflite"),
                                 [model, dataset_npz,
                                  params_node(env, mode=mode, io_type=io_type, rep_samples=rep_samples,
                                              versions=tool_versions("tensorflow"))])


def TinyReport(env, build_dir, tflite, dataset_npz, history):
    """metrics.json (float vs quantized validation accuracy) and training_curve.png."""
    return env.TinyAccuracyReport([os.path.join(build_dir, "metrics.json"),
                                   os.path.join(build_dir, "training_curve.png")], [tflite, dataset_npz, history])


def generate(env):
    add_builder(env, "TinyQuantizeModel",
                stage_action(_quantize, "TINY_QUANTCOMSTR", "Quantizing (TFLite PTQ) -> $TARGET"))
    add_builder(env, "TinyAccuracyReport",
                stage_action(_report, "TINY_REPORTCOMSTR", "Evaluating float vs quantized accuracy -> $TARGET"))
    env.AddMethod(TinyQuantize)
    env.AddMethod(TinyReport)


def exists(env):
    return True
