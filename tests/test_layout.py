"""codegen/'s layout: the package map in codegen/__init__.py is true, the former flat module names are gone,
imports run only downward (LAYERS), no module imports SCons, and the tests share helpers through tests/helpers.py."""
import importlib

import pytest

# The flat names the modules had before the subpackages (codegen.mlf is codegen.emit.mlf now, ...): gone, so that
# one module has one name.
FORMER = ["codegen.mlf", "codegen.tflite_model", "codegen.tvm_lower", "codegen.qemu", "codegen.train",
          "codegen.boards", "codegen.memreport", "codegen.hostcheck", "codegen.bin2c", "codegen.exactness",
          "codegen.arduino", "codegen.usermodel"]


@pytest.mark.parametrize("old", FORMER)
def test_former_module_names_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_codegen_installs_no_import_hook():
    import sys

    import codegen  # noqa: F401
    assert not [f for f in sys.meta_path if type(f).__module__.startswith("codegen")]


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


def test_no_test_file_imports_conftest():
    """Tests share plain helpers through tests/helpers.py and fixtures through conftest.py: a module that imports
    conftest gets a second copy of it (pytest loads conftest under its own name) and hides what it depends on."""
    import ast
    import os

    tests = os.path.dirname(os.path.abspath(__file__))
    offenders = []
    for name in sorted(os.listdir(tests)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(tests, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            imported = ([a.name for a in node.names] if isinstance(node, ast.Import)
                        else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "conftest" or m.startswith("conftest.") for m in imported):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, "import these from helpers.py instead of conftest: " + ", ".join(offenders)
