"""codegen/ is organised in subpackages; code written against the former flat module names keeps working."""
import importlib

import pytest

FORMER = {"codegen.mlf": "codegen.emit.mlf", "codegen.tflite_model": "codegen.frontend.reader",
          "codegen.tvm_lower": "codegen.lowering", "codegen.qemu": "codegen.runners.qemu",
          "codegen.train": "codegen.stages.train", "codegen.boards": "codegen.device.boards",
          "codegen.memreport": "codegen.device.memreport", "codegen.hostcheck": "codegen.runners.hostcheck"}


@pytest.mark.parametrize("old,new", list(FORMER.items()))
def test_former_module_names_are_the_moved_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_former_public_functions_import():
    from codegen.mlf import build_mlf  # noqa: F401
    from codegen.tflite_model import ModelError, load  # noqa: F401
    from codegen.tvm_lower import lower  # noqa: F401
    from codegen import mlf, boards
    assert callable(mlf.build_mlf) and boards.get("nano33ble")["fqbn"]


def test_no_subpackage_imports_scons():
    import pkgutil
    import sys

    import codegen
    for info in pkgutil.walk_packages(codegen.__path__, "codegen."):
        if not info.name.endswith("__main__"):     # (that one prints the op list)
            importlib.import_module(info.name)
    assert not any(name == "SCons" or name.startswith("SCons.") for name in sys.modules)
