"""SCons tool `tinyml`: loads every stage tool and adds `env.TinyMLPipeline(board, cfg)`, which wires the whole
dataset -> train -> quantize -> images -> TVM MLF -> sketch -> host check -> arduino-cli chain for one board.

Each stage is also usable alone (env.TinyTrain, env.TinyQuantize, env.TinyMLF, env.TinyImages, ...).
"""
import os

from tinyml_glue import literal_nodes

STAGE_TOOLS = ("tinyml_state", "tinyml_dataset", "tinyml_train", "tinyml_quantize", "tinyml_images", "tinyml_mlf",
               "tinyml_sketch", "tinyml_hostcheck", "tinyml_arduino", "tinyml_download", "tinyml_export", "tinyml_mcu",
               "tinyml_linux", "tinyml_backends", "tinyml_progress")


def TinyMLPipeline(env, board_name, cfg):
    """Declares every stage for one board under <BUILD_DIR>/<board>/; returns {stage: nodes}.

    With MODEL= a .tflite, that file is the model: no dataset (unless DATA= gives test images and class
    names), train, quantize or report. With MODEL= a Keras model, only the quantize stage makes the .tflite,
    calibrated on DATA=, the built-in dataset at the model's input size, or REP_DATA=."""
    from codegen.backends import BY_BOARD, base
    from codegen import boards
    from codegen.modelio import usermodel

    from tinyml_progress import register_board

    board = boards.get(board_name)
    out = os.path.join(cfg["build_dir"], board_name)
    register_board(board, out)          # the summary at the end of the build reads its result files
    kind = cfg["model_kind"]
    nodes = {"dataset": [], "train": [], "quantize": [], "report": []}
    npz, heldout = None, {}
    size, channels = cfg["size"], cfg["channels"]
    calibrate_keras_on_images = kind == "keras" and not cfg["rep_data"]
    if calibrate_keras_on_images:       # at the model's input size (config checked that it is an image)
        height, width, channels = usermodel.image_input(cfg["model_input_shape"])
        size = height if height == width else [height, width]
    if kind is None or cfg["data"] or calibrate_keras_on_images:
        npz, heldout = env.TinyDataset(out, data=cfg["data"], samples=cfg["samples"], seed=cfg["seed"],
                                       size=size, channels=channels,
                                       synthetic_dir=os.path.join(cfg["build_dir"], "dataset", "synthetic"))
        nodes["dataset"] = [npz, *heldout.values()]
    calibration = literal_nodes(env, cfg["rep_data"])[0] if cfg["rep_data"] else npz
    if kind == "tflite":
        tflite = literal_nodes(env, cfg["model"])[0]
    elif kind == "keras":
        tflite = env.TinyQuantize(out, literal_nodes(env, cfg["model"])[0], calibration, mode=cfg["quant"],
                                  io_type=cfg["io_type"], rep_samples=cfg["rep_samples"])
        nodes["quantize"] = tflite
    else:
        model, history = env.TinyTrain(out, npz, arch=cfg["arch"], alpha=cfg["alpha"], epochs=cfg["epochs"],
                                       seed=cfg["seed"], batch=cfg["batch"], weights=cfg["weights"], lr=cfg["lr"],
                                       depth=cfg["depth"])
        tflite = env.TinyQuantize(out, model, calibration, mode=cfg["quant"], io_type=cfg["io_type"],
                                  rep_samples=cfg["rep_samples"])
        nodes.update(train=[model, history], quantize=tflite, report=env.TinyReport(out, tflite, npz, history, model))

    # The dataset's classes label the outputs only when the model was trained on them (here or, with DATA=,
    # presumably by the user); the synthetic set that merely calibrates a Keras MODEL= says nothing about it.
    classes = list(heldout) if (kind is None or cfg["data"]) else []
    if cfg["inputs"]:
        input_files, input_names = cfg["inputs"], None
    elif classes:
        # The tutorial prints the car first.
        input_names = sorted(heldout, key=lambda c: (c != "target", c))
        input_files = [heldout[c] for c in input_names]
    else:
        input_files, input_names = [], None      # seeded random inputs
    class_source = f"DATA={cfg['data']}" if cfg["data"] else "the dataset"
    if boards.is_linux(board):      # LiteRT runs the .tflite itself: a bundle instead of generated C
        input_nodes = literal_nodes(env, input_files)
        ctx = base.Context(board=board, cfg=cfg, out=out, templates="", expected_path="", classes=tuple(classes),
                           class_source=class_source, input_paths=tuple(str(n) for n in input_nodes),
                           input_names=input_names)
        _backend_nodes(env, nodes, ctx, [BY_BOARD["linux"]], {"tflite": tflite, "inputs": input_nodes,
                                                     "labels_file": literal_nodes(env, cfg["labels_file"] or [])})
        return nodes
    # A model trained here embeds the demo by default: a balanced handful of held-out images with their true
    # classes, and the sketch ends each round with "<correct>/<n> correct".
    demo = npz if (kind is None and not cfg["inputs"] and classes) else None
    images = env.TinyImages(out, [] if demo else input_files, tflite, labels=None if demo else input_names,
                            progmem=board["progmem"], class_labels=classes, labels_file=cfg["labels_file"] or None,
                            class_source=class_source, seed=cfg["seed"], demo=demo, board=board)
    expected = env.TinyExpected(out, tflite, images[2])
    monitor = env.TinyArduinoMonitor(board, cli=cfg["arduino_cli"], port=cfg["port"], baud=cfg["baud"],
                                     timeout=cfg["monitor_timeout"])
    nodes.update(images=images, expected=expected, monitor=monitor)
    inputs = {"tflite": tflite, "images_c": images[0], "images_h": images[1], "images_json": images[2],
              "expected": env.arg2nodes(expected)[0]}
    templates = env.fs.Dir(cfg["templates"] or env.subst("$TINY_TEMPLATES")).path
    ctx = base.Context(board=board, cfg=cfg, out=out, templates=templates, expected_path=str(inputs["expected"]),
                       classes=tuple(classes), class_source=class_source)
    _backend_nodes(env, nodes, ctx, cfg.get("backends", ["tvm"]), inputs)
    return nodes


def _backend_nodes(env, nodes, ctx, names, inputs):
    """The backends `names` (codegen/backends), each in its folder under the board's, in order: each stage builds
    all of them; upload/verify belong to the board's one program (TVM's if built, else the first backend's);
    with several, `memory`/`simulate` add the side-by-side table."""
    from codegen.backends import get

    board, cfg, out = ctx.board, ctx.cfg, ctx.out
    uploader = "tvm" if "tvm" in names else names[0]
    staged, results = {}, []
    for name in names:
        backend = get(name)
        by_stage, by_step = env.TinyBackendSteps(backend, ctx, inputs)
        memory = by_step.get("memory", [None])[0]
        if backend.deploy == "arduino" and "sketch" in by_step and backend.firmware:
            by_stage.update(env.TinyBackendFirmware(backend, ctx, by_step, memory, inputs["expected"],
                                                    upload=name == uploader))
        elif backend.deploy == "ssh":
            by_stage.update(env.TinyLinuxDeploy(by_stage["bundle"], by_stage["check"], board, cfg))
        for stage, stage_nodes in by_stage.items():
            staged.setdefault(stage, []).extend(env.Flatten([stage_nodes]))
        results.append((name, memory, by_step.get("simulate", [None])[0], by_step.get("check", [None])[0]))
    if len(results) > 1:
        on_qemu = _on_qemu(board)
        compare = env.TinyBackendComparison(out, board, [
            (name, memory, simulate if on_qemu else None, check) for name, memory, simulate, check in results])
        staged["memory"] = staged.get("memory", []) + list(compare)
        if on_qemu:
            staged["simulate"] = staged.get("simulate", []) + list(compare)
    for stage, stage_nodes in staged.items():
        nodes[stage] = (list(env.Flatten([nodes[stage]])) if nodes.get(stage) else []) + stage_nodes


def _on_qemu(board):
    return board.has_qemu


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
