"""SCons tool: embed test images as C arrays (bin2c) and compute TFLite's reference scores for them."""
import os

from tinyml_glue import add_builder, params_node, stage_action


def _embed(target, source, p):
    from codegen import bin2c

    bin2c.embed(source[:-1], source[-1], target[0], target[1], target[2], labels=p["labels"],
                progmem=p["progmem"])


def _expected(target, source, p):
    from codegen import expected

    expected.reference_scores(source[0], source[1], target[0])


def TinyImages(env, build_dir, images, tflite, *, labels=None, progmem=False):
    """images.c/.h/.json under build_dir from image files (quantized with the model's input parameters)."""
    images = [env.File(i) if isinstance(i, str) else i for i in images]
    labels = labels or [os.path.splitext(os.path.basename(str(i)))[0] for i in images]
    return env.TinyEmbedImages([os.path.join(build_dir, n) for n in ("images.c", "images.h", "images.json")],
                               images + [tflite, params_node(env, labels=labels, progmem=progmem)])


def TinyExpected(env, build_dir, tflite, images_json):
    return env.TinyReferenceScores(os.path.join(build_dir, "expected.json"), [tflite, images_json])


def generate(env):
    add_builder(env, "TinyEmbedImages", stage_action(_embed, "TINY_BIN2CCOMSTR", "Embedding images -> $TARGET"))
    add_builder(env, "TinyReferenceScores",
                stage_action(_expected, "TINY_EXPECTEDCOMSTR", "TFLite reference scores -> $TARGET"))
    env.AddMethod(TinyImages)
    env.AddMethod(TinyExpected)


def exists(env):
    return True
