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

Modules moved into the subpackages keep their former names (codegen.mlf, codegen.qemu, codegen.tflite_model,
...) as aliases, so code written against earlier releases goes on importing them.
"""
import importlib
import importlib.abc
import importlib.util
import sys

_FORMER_NAMES = {
    "tflite_model": "frontend.reader", "tvm_lower": "lowering",
    **{m: "emit." + m for m in ("mlf", "mlf_archive", "bin2c", "export", "sketch")},
    **{m: "runners." + m for m in ("hostcheck", "qemu", "avr", "avr_sim", "simulate", "exactness")},
    **{m: "stages." + m for m in ("dataset", "download", "train", "quantize", "report", "expected", "images",
                                  "quantio", "tf_env", "usermodel")},
    **{m: "device." + m for m in ("arduino", "boards", "memreport")},
}


class _FormerNameFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import codegen.mlf` gives the very module codegen.emit.mlf (one module object, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head == __name__ and name in _FORMER_NAMES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(__name__ + "." + _FORMER_NAMES[spec.name.partition(".")[2]])

    def exec_module(self, module):
        pass


if not any(isinstance(f, _FormerNameFinder) for f in sys.meta_path):
    sys.meta_path.append(_FormerNameFinder())
