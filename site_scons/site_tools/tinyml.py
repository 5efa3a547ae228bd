"""SCons tool `tinyml`: loads every stage tool and adds `env.TinyMLPipeline(board, cfg)`, which wires the whole
dataset -> train -> quantize -> images -> TVM MLF -> sketch -> host check -> arduino-cli chain for one board.

Each stage is also usable alone (env.TinyTrain, env.TinyQuantize, env.TinyMLF, env.TinyImages, ...).
"""
import os

from tinyml_glue import literal_nodes

STAGE_TOOLS = ("tinyml_state", "tinyml_dataset", "tinyml_train", "tinyml_quantize", "tinyml_images", "tinyml_mlf",
               "tinyml_sketch", "tinyml_hostcheck", "tinyml_arduino", "tinyml_download", "tinyml_export", "tinyml_mcu",
               "tinyml_linux", "tinyml_tflm", "tinyml_progress")


def TinyMLPipeline(env, board_name, cfg):
    """Declares every stage for one board under <BUILD_DIR>/<board>/; returns {stage: nodes}.

    With MODEL= a .tflite, that file is the model: no dataset (unless DATA= gives test images and class
    names), train, quantize or report. With MODEL= a Keras model, only the quantize stage makes the .tflite,
    calibrated on DATA=, the built-in dataset at the model's input size, or REP_DATA=."""
    from codegen.device import boards
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
    if boards.is_linux(board):      # LiteRT runs the .tflite itself: a bundle instead of generated C
        nodes.update(env.TinyLinuxStages(out, board, cfg, tflite, input_files, input_names, class_labels=classes,
                                         class_source=f"DATA={cfg['data']}" if cfg["data"] else "the dataset"))
        return nodes
    # A model trained here embeds the demo by default: a balanced handful of held-out images with their true
    # classes, and the sketch ends each round with "<correct>/<n> correct".
    demo = npz if (kind is None and not cfg["inputs"] and classes) else None
    images = env.TinyImages(out, [] if demo else input_files, tflite, labels=None if demo else input_names,
                            progmem=board["progmem"], class_labels=classes, labels_file=cfg["labels_file"] or None,
                            class_source=f"DATA={cfg['data']}" if cfg["data"] else "the dataset", seed=cfg["seed"],
                            demo=demo, board=board)
    expected = env.TinyExpected(out, tflite, images[2])
    mlf = env.TinyMLF(out, tflite, board=board)
    sketch = env.TinySketch(out, mlf, images, sketch_name=cfg["sketch"], templates=cfg["templates"] or None,
                            context={"board": board, "classes": classes, "baud": boards.serial_baud(board)})
    library = env.TinyCLibrary(os.path.join(out, "c_library"), mlf)
    arduino_library = env.TinyArduinoLibrary(os.path.join(out, "arduino_library"), sketch, mlf,
                                             sketch_name=cfg["sketch"], board=board, classes=classes)
    check = env.TinyHostCheck(out, sketch, expected, sketch_name=cfg["sketch"])
    compiledb = env.TinyCompilationDatabase(out, sketch, sketch_name=cfg["sketch"]) + list(sketch)
    memory = env.TinyMemoryReport(out, mlf, board)
    simulate = env.TinySimulate(out, mlf, images, expected, sketch, board, sketch_name=cfg["sketch"])
    profile = env.TinyProfile(out, mlf, images, board) if (board.get("emulator") or "").startswith("qemu") else []
    compiled = env.TinyArduinoCompile(out, sketch, board, sketch_name=cfg["sketch"], cli=cfg["arduino_cli"],
                                      flags=cfg["arduino_flags"], memory=memory[0])
    upload = verify = None      # one board runs one program: BACKEND=tflm alone uploads the TFLM sketch
    if "tvm" in cfg.get("backends", ("tvm",)):
        upload = env.TinyArduinoUpload(out, compiled, board, sketch_name=cfg["sketch"], cli=cfg["arduino_cli"],
                                       port=cfg["port"], force=cfg["force"])
        verify = env.TinyArduinoVerify(expected, board, cli=cfg["arduino_cli"], port=cfg["port"], baud=cfg["baud"],
                                       timeout=cfg["monitor_timeout"], tolerance=cfg["tolerance"])
    monitor = env.TinyArduinoMonitor(board, cli=cfg["arduino_cli"], port=cfg["port"], baud=cfg["baud"],
                                     timeout=cfg["monitor_timeout"])
    nodes.update(images=images, expected=expected, mlf=mlf, export=list(library) + list(arduino_library),
                 sketch=sketch, check=check, compiledb=compiledb, **{"arduino-library": arduino_library},
                 compile=compiled, upload=upload, monitor=monitor, verify=verify, memory=memory, simulate=simulate,
                 profile=profile)
    if "tflm" in cfg.get("backends", ()):
        _tflm_nodes(env, nodes, out, board, cfg, tflite, images, classes)
    return nodes


def _tflm_nodes(env, nodes, out, board, cfg, tflite, images, classes):
    """BACKEND=tflm: the TFLM sketch, host check, simulate and memory under <out>/tflm/. Alone, they replace
    the TVM stages' targets; with BACKEND=tvm,tflm both are built and `memory`/`simulate` add the comparison."""
    from codegen.device import boards

    both = "tvm" in cfg["backends"]
    tdir, tflm_dir, cache = os.path.join(out, "tflm"), cfg["tflm_dir"], cfg["tflm_cache"]
    name = cfg["tflm_sketch"]
    expected = env.TinyTflmExpected(tdir, tflite, images[2])
    arena = env.TinyTflmArena(tdir, tflite, tflm_dir=tflm_dir, tflm_cache=cache)
    sketch = env.TinyTflmSketch(tdir, tflite, arena, images, sketch_name=name, tflm_dir=tflm_dir,
                                templates=cfg["templates"] or None,
                                context={"board": board, "classes": classes, "baud": boards.serial_baud(board)})
    check = env.TinyTflmHostCheck(tdir, tflite, sketch, expected, sketch_name=name, tflm_dir=tflm_dir, tflm_cache=cache)
    memory = env.TinyTflmMemoryReport(tdir, tflite, arena, board, tflm_dir=tflm_dir, tflm_cache=cache)
    simulate = env.TinyTflmSimulate(tdir, tflite, sketch, images, expected, board, sketch_name=name, tflm_dir=tflm_dir,
                                    tflm_cache=cache)
    lib_dir, lib_nodes = env.TinyTflmArduinoLibrary(os.path.join(tdir, "arduino_library"), tflm_dir=tflm_dir)
    compiled = env.TinyArduinoCompile(tdir, list(sketch) + list(lib_nodes), board, sketch_name=name,
                                      cli=cfg["arduino_cli"], flags=[*cfg["arduino_flags"], "--library", lib_dir],
                                      memory=memory[0])
    staged = {"expected": expected, "sketch": sketch, "check": check, "memory": memory, "simulate": simulate,
              "compile": compiled, "tflm_arena": arena}
    if not both:        # one board runs one program: with both backends, upload/verify stay TVM's
        staged["upload"] = env.TinyArduinoUpload(tdir, compiled, board, sketch_name=name, cli=cfg["arduino_cli"],
                                                 port=cfg["port"], force=cfg["force"])
        staged["verify"] = env.TinyArduinoVerify(expected, board, cli=cfg["arduino_cli"], port=cfg["port"],
                                                 baud=cfg["baud"], timeout=cfg["monitor_timeout"],
                                                 tolerance=cfg["tolerance"])
    if both:
        on_qemu = (board.get("emulator") or "").startswith("qemu")
        compare = env.TinyBackendComparison(out, nodes["memory"][0], memory[0], board,
                                            *((nodes["simulate"], simulate) if on_qemu else ()))
        for stage in ("expected", "sketch", "check", "memory", "simulate", "compile"):
            staged[stage] = list(env.Flatten([nodes[stage]])) + list(env.Flatten([staged[stage]]))
        staged["memory"] += list(compare)
        if on_qemu:
            staged["simulate"] += list(compare)
    nodes.update(staged)


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
