"""tinyml-scons' library: every stage as plain Python, no SCons import.

    frontend/   read a .tflite and check it can become exact C
    lowering/   TFLite ops -> integer TE -> Relax memory plan -> plain C (one registry of ops by family)
    emit/       MLF tar, bin2c, C library export, Jinja sketch
    runners/    host gcc, Cortex-M4F in QEMU, AVR in simavr; exactness against tf.lite
    stages/     dataset, download, train, quantize, report, reference scores, user models
    device/     boards (data), memory report, arduino-cli
    config.py, errors.py, fsutil.py, resources.py: shared by all
    inputfiles.py, tflite_limits.py, escape.py: untrusted input (files opened bounded, a .tflite's declared
        sizes checked before anything is allocated, user text escaped for each generated language)

"""
