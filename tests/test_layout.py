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
    """Importing every codegen module loads no SCons module. Checked in a fresh interpreter: in the test process,
    another test on the same worker may have imported SCons already (the site tools do)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import importlib, pkgutil, sys\n"
        "import codegen\n"
        "for info in pkgutil.walk_packages(codegen.__path__, 'codegen.'):\n"
        "    if not info.name.endswith('__main__'):     # (that one prints the op list)\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(n for n in sys.modules if n == 'SCons' or n.startswith('SCons.')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-2000:]
