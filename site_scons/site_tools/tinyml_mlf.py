"""SCons tool: TVM codegen of a full-int8 .tflite into a standalone-C Model Library Format tar (env.TinyMLF, for a
firmware repo's own SConstruct; the step is codegen.backends.tvm.mlf_step, the pipeline's too)."""


def TinyMLF(env, build_dir, tflite, *, model_name="default", board=None):
    """model_mlf.tar under build_dir; for a board whose compiler limits the size of one object (boards.json
    `max_object_bytes`: avr-gcc's 32,767), a larger array is a clear error here instead of a compiler error."""
    from codegen.backends import tvm

    from codegen import boards

    step = tvm.mlf_step(model_name=model_name, max_object_bytes=boards.board(board).max_object_bytes if board else None)
    return env.TinySteps([step], build_dir, {"tflite": tflite})[1]["mlf"]


def generate(env):
    env.Tool("tinyml_backends")     # env.TinySteps
    env.AddMethod(TinyMLF)


def exists(env):
    return True
