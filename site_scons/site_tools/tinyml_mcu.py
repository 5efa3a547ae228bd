"""SCons tool: the memory report (flash/RAM per board, per layer), `simulate`, the generated code run on an
emulator of the board's CPU (Cortex-M4F under QEMU, AVR under simavr) with its scores checked byte for byte, and
`profile`, its per-layer cost on the emulated Cortex-M4F."""
def TinyProfile(env, build_dir, mlf, images, board):
    """profile.json, profile.txt (per kernel call on the emulated Cortex-M4F) and profile.png (drawn from the json)."""
    from codegen.backends import tvm

    images = env.Flatten([images])
    by_stage, _ = env.TinySteps(tvm.profile_steps(), build_dir, {"step:mlf": mlf, "images_c": images[0],
                                                                 "images_h": images[1], "images_json": images[2]},
                                board)
    return by_stage["profile"]


def TinyMemoryReport(env, build_dir, mlf, board):
    """memory.json, memory.txt and memory_layers.png (per-layer flash/RAM bars, drawn from memory.json)."""
    from codegen.backends import tvm

    return env.TinySteps(tvm.memory_steps(), build_dir, {"step:mlf": mlf}, board)[0]["memory"]


def TinySimulate(env, build_dir, mlf, images, expected, sketch_nodes, board, *, sketch_name):
    from codegen.backends import tvm

    images = env.Flatten([images])
    step = tvm.simulate_step(build_dir, sketch_name, board)
    return env.TinySteps([step], build_dir, {"step:mlf": mlf, "images_c": images[0], "images_h": images[1],
                                             "images_json": images[2], "expected": expected,
                                             "step:sketch": sketch_nodes}, board)[1]["simulate"]


def generate(env):
    env.Tool("tinyml_backends")     # env.TinySteps
    env.AddMethod(TinyMemoryReport)
    env.AddMethod(TinyProfile)
    env.AddMethod(TinySimulate)


def exists(env):
    return True
