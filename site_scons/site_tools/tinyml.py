"""SCons tool `tinyml`: loads every stage tool and adds `env.TinyMLPipeline(board, cfg)`, which wires the whole
dataset -> train -> quantize -> images -> TVM MLF -> sketch -> host check -> arduino-cli chain for one board.

Each stage is also usable alone (env.TinyTrain, env.TinyQuantize, env.TinyMLF, env.TinyImages, ...).
"""
import os

STAGE_TOOLS = ("tinyml_dataset", "tinyml_train", "tinyml_quantize", "tinyml_images", "tinyml_mlf",
               "tinyml_sketch", "tinyml_hostcheck", "tinyml_arduino", "tinyml_download", "tinyml_export", "tinyml_mcu")


def TinyMLPipeline(env, board_name, cfg):
    """Declares every stage for one board under <BUILD_DIR>/<board>/; returns {stage: nodes}."""
    from codegen import boards

    board = boards.get(board_name)
    out = os.path.join(cfg["build_dir"], board_name)
    npz, heldout = env.TinyDataset(out, data=cfg["data"], samples=cfg["samples"], seed=cfg["seed"],
                                   size=cfg["size"], channels=cfg["channels"],
                                   synthetic_dir=os.path.join(cfg["build_dir"], "dataset", "synthetic"))
    model, history = env.TinyTrain(out, npz, alpha=cfg["alpha"], epochs=cfg["epochs"], seed=cfg["seed"],
                                   batch=cfg["batch"], weights=cfg["weights"], lr=cfg["lr"], depth=cfg["depth"])
    tflite = env.TinyQuantize(out, model, npz, mode=cfg["quant"], io_type=cfg["io_type"],
                              rep_samples=cfg["rep_samples"])
    report = env.TinyReport(out, tflite, npz, history)
    if cfg["images"]:
        image_files, labels = cfg["images"], None
    else:
        # The tutorial prints the car first.
        labels = sorted(heldout, key=lambda c: (c != "target", c))
        image_files = [heldout[c] for c in labels]
    images = env.TinyImages(out, image_files, tflite, labels=labels, progmem=board["progmem"])
    expected = env.TinyExpected(out, tflite, images[2])
    mlf = env.TinyMLF(out, tflite, board=board)
    classes = list(heldout)
    sketch = env.TinySketch(out, mlf, images, sketch_name=cfg["sketch"], templates=cfg["templates"] or None,
                            context={"board": board, "classes": classes, "baud": 115200})
    library = env.TinyCLibrary(os.path.join(out, "c_library"), mlf)
    check = env.TinyHostCheck(out, sketch, expected, sketch_name=cfg["sketch"])
    memory = env.TinyMemoryReport(out, mlf, board)
    simulate = env.TinySimulate(out, mlf, images, expected, sketch, board, sketch_name=cfg["sketch"])
    compiled = env.TinyArduinoCompile(out, sketch, board, sketch_name=cfg["sketch"], cli=cfg["arduino_cli"],
                                      flags=cfg["arduino_flags"], memory=memory[0])
    upload = env.TinyArduinoUpload(out, compiled, board, sketch_name=cfg["sketch"], cli=cfg["arduino_cli"],
                                   port=cfg["port"], force=cfg["force"])
    monitor = env.TinyArduinoMonitor(expected, board, cli=cfg["arduino_cli"], port=cfg["port"],
                                     timeout=cfg["monitor_timeout"])
    return {"dataset": [npz, *heldout.values()], "train": [model, history], "quantize": tflite, "report": report,
            "images": images, "expected": expected, "mlf": mlf, "export": library, "sketch": sketch, "check": check,
            "compile": compiled, "upload": upload, "monitor": monitor, "memory": memory,
            "simulate": simulate}


def generate(env):
    from codegen import config

    # Every stage parameter is also a construction variable TINY_<NAME> with its default from the one table
    # in codegen/config.py (what `scons -h` prints); methods take explicit keyword arguments over them.
    env.SetDefault(**{"TINY_" + name.upper(): value for name, value in config.construction_defaults().items()})
    for tool in STAGE_TOOLS:
        env.Tool(tool)
    env.AddMethod(TinyMLPipeline)


def exists(env):
    return True
