"""SCons tool: TVM codegen of a full-int8 .tflite into a standalone-C Model Library Format tar."""
import os

from codegen.emit.mlf_archive import MLF_VERSION
from tinyml_glue import add_builder, params_node, stage_action, tool_versions


def _mlf(target, source, p):
    from codegen.emit import mlf

    meta = mlf.build_mlf(source[0], target[0], model_name=p["model_name"], max_object_bytes=p["max_object_bytes"])
    for note in meta["notes"]:
        print(f"note: {source[0]}: {note}")


def TinyMLF(env, build_dir, tflite, *, model_name="default", board=None):
    """model_mlf.tar under build_dir; for a board whose compiler limits the size of one object (Board
    max_object_bytes: avr-gcc's 32,767), a larger array is a clear error here instead of a compiler error."""
    from codegen.device import boards

    limit = boards.board(board).max_object_bytes if board else None
    # TINYML_MICROKERNELS=0 (codegen.lowering.microkernels.enabled, not imported here: it loads numpy) makes
    # other C: part of the signature, present only when set so that existing MLFs keep theirs.
    switch = {"microkernels": False} if os.environ.get("TINYML_MICROKERNELS", "1") == "0" else {}
    return env.TinyModelLibrary(os.path.join(build_dir, "model_mlf.tar"),
                                [tflite, params_node(env, model_name=model_name, max_object_bytes=limit, format=MLF_VERSION,
                                                       versions=tool_versions("apache-tvm", "tflite"), **switch)])


def generate(env):
    add_builder(env, "TinyModelLibrary",
                stage_action(_mlf, "TINY_MLFCOMSTR", "TVM codegen (standalone C, MLF) -> $TARGET"))
    env.AddMethod(TinyMLF)


def exists(env):
    return True
