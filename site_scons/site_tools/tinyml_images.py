"""SCons tool: embed test inputs as C arrays (bin2c) and compute TFLite's reference results for them."""
import os

from tinyml_glue import add_builder, file_names, literal_nodes, params_node, stage_action

# Bumped when images.json gains fields the later stages read: an older one is then re-embedded.
IMAGES_FORMAT = 3      # 3: the demo's held-out images with their true class ("truth")


def _embed(target, source, p):
    from codegen import boards
    from codegen.emit import bin2c

    tflite, rest = source[0], source[1:]
    demo_npz, rest = (rest[-1], rest[:-1]) if p.get("demo") else (None, rest)
    labels_file, inputs = (rest[0], rest[1:]) if p["labels_file"] else (None, rest)
    bin2c.embed(inputs, tflite, target[0], target[1], target[2], labels=p["labels"], progmem=p["progmem"],
                class_labels=p["class_labels"], labels_file=labels_file, class_source=p["class_source"],
                generate=p["generate"], seed=p["seed"], board=boards.from_signature(p.get("board")),
                demo_npz=demo_npz)


def _expected(target, source, p):
    from codegen.stages import expected

    expected.reference_scores(source[0], source[1], target[0])


def TinyImages(env, build_dir, images, tflite, *, labels=None, progmem=False, class_labels=None, labels_file=None,
               class_source="the dataset", generate=None, seed=0, board=None, demo=None):
    """images.c/.h/.json under build_dir from test input files (images, .npy, .bin; quantized with the model's
    input parameters), or `generate` seeded random inputs when there are none (default 2).

    `labels`: a name per input file (default: from its file name); `class_labels` (e.g. the dataset's classes, named by `class_source` in
    errors) or `labels_file` (one label per line): the label of each model output, else class0..classN-1.
    `board` (a Board or its name): the model's input and output must fit in its RAM (only ram_bytes is in the
    signature; the title, for the message, is read afresh).
    `demo`: the dataset's .npz instead of input files: its held-out images (demo_x, demo_y), each with its true
    class, so that the sketch prints how many it got right."""
    from codegen import boards
    from codegen.emit import bin2c

    images = literal_nodes(env, images)
    sources = [tflite] + (literal_nodes(env, labels_file) if labels_file else []) + images
    if demo is not None:
        sources += env.arg2nodes(demo)[:1]
    return env.TinyEmbedImages([os.path.join(build_dir, n) for n in ("images.c", "images.h", "images.json")],
                               sources + [params_node(env, labels=labels, progmem=progmem,
                                                      class_labels=list(class_labels or []),
                                                      class_source=class_source, labels_file=bool(labels_file),
                                                      generate=bin2c.GENERATED_INPUTS if generate is None else generate,
                                                      seed=seed, format=IMAGES_FORMAT,
                                                      # the titles the sketch prints come from the names
                                                      input_names=file_names(images),
                                                      **({"board": boards.stage_signature(board, ("ram_bytes",))}
                                                         if board else {}),
                                                      **({"demo": True} if demo is not None else {}))])


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
