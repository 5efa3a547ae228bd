"""tinyml-scons' library: every stage as plain Python, no SCons import.

The map below is the layer order, lowest first: a module imports only from its own layer and the layers listed
before it, never from a later one (tests/test_layout.py reads this map, checks that it names every package and
module there is and nothing else, and checks every import against it, function-level ones too).

foundation, used by all:
    errors.py         the exceptions whose message is the user's one `error:` line
    suggest.py        did-you-mean for names a user types
    escape.py         user text written into each generated language (C, JSON, YAML, sh, CMake, ...)
    interrupt.py      stopping promptly on Ctrl-C / SIGTERM, whichever thread a stage runs in
    fsutil.py         atomic output files
    proc.py           every external program starts here (VERBOSE=1 echoes it)
    protocol.py       the result lines every program prints (sketch, harnesses) and their parser, defined once
    boards.py         the typed Board, loaded once from boards.json (every board fact as data; derived properties)
    inputfiles.py     the files a user hands the build: regular files only, reads bounded
    tflite_limits.py  what a .tflite may declare, checked before anything is allocated
    resources.py      where the templates and the host Arduino stand-in are (checkout or installed)
    quiet.py          silencing TensorFlow's banners per stage thread
    progress.py       tqdm / Keras progress bars, or one line in a log
    codeversion.py    the version of the project's own code a stage's output comes from
    plots.py          the report's matplotlib figures
model inputs and outputs:
    modelio/          image files to pixels, input quantization and score confidence, the user's model file,
                      TensorFlow and tf.lite's reference interpreter
the compiler (the frontend checks ops against the lowering's registry, the lowering takes its tensors):
    frontend/         read a .tflite and check it can become exact C
    lowering/         TFLite ops -> integer TE -> Relax memory plan -> plain C (one registry of ops by family)
emitters:
    emit/             MLF tar and its reader, bin2c, C library export, Jinja sketch, Arduino library
runners:
    runners/          host gcc, Cortex-M4F in QEMU, AVR in simavr; exactness against tf.lite; the M4 profile
devices:
    device/           serial ports, memory report and size gate, arduino-cli
the pipeline:
    stages/           dataset, download, train, quantize, report, reference scores, summary
    targets.py        the command-line targets, registered once (`scons -h`, capability checks)
backends and routes:
    backends/         the Backend interface (a backend's stages as Step data) and the backends behind it: tvm,
                      tflm, ...; the side-by-side table of several
    tflm/             TensorFlow Lite Micro as a second MCU backend (BACKEND=tflm)
    linux/            the Linux single-board route (LiteRT): bundle, runtime venv, check, report, ssh
the front door:
    config.py         build variables: defaults, help text, validation (against boards, MODEL=, TFLM_DIR=, ...)
    profiles.py       named profiles in tinyml.ini and where each variable's value comes from
    tune/             `scons tune`: search model settings for the most accurate one that fits a board
    stagetable.py     the stage table: the targets joined with every backend's steps (`python -m codegen.stagetable`)
    fuzz.py           `python -m codegen.fuzz`: a differential fuzzer of the code generator
"""
