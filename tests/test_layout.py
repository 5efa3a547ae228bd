"""codegen/'s layout: the package map in codegen/__init__.py names every package and module, imports only go down
its layers, the former flat module names are gone and no mention names one, no module imports SCons, and the tests
share plain helpers through tests/helpers.py, not conftest."""
import importlib
import os
import re

import pytest

# The flat names the modules had before the subpackages (codegen.mlf is codegen.emit.mlf now, ...): gone, so that
# one module has one name.
FORMER = ["codegen.mlf", "codegen.tflite_model", "codegen.tvm_lower", "codegen.qemu", "codegen.train",
          "codegen.memreport", "codegen.hostcheck", "codegen.bin2c", "codegen.exactness",
          "codegen.arduino", "codegen.usermodel"]


@pytest.mark.parametrize("old", FORMER)
def test_former_module_names_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_codegen_installs_no_import_hook():
    import sys

    import codegen  # noqa: F401
    assert not [f for f in sys.meta_path if type(f).__module__.startswith("codegen")]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODEGEN = os.path.join(ROOT, "codegen")
_HEADING = re.compile(r"^(\S[^:]*):$")                 # "the compiler (...):" at the start of a line
_ENTRY = re.compile(r"^    ([a-z_][a-z0-9_]*)(/|\.py)\s")   # "    frontend/   what it is for"


def layers():
    """The layer order that codegen/__init__.py's docstring maps, lowest first: [(heading, {unit, ...}), ...],
    a unit being a subpackage or a top-level module's name."""
    import codegen

    found = []
    for line in codegen.__doc__.split("\n\n", 2)[2].splitlines():
        heading, entry = _HEADING.match(line), _ENTRY.match(line + " ")
        if heading:
            found.append((heading.group(1), set()))
        elif entry:
            assert found, f"codegen/__init__.py: {line.strip()!r} comes before any layer heading"
            found[-1][1].add(entry.group(1))
    return found


def units_on_disk():
    """codegen's subpackages and top-level modules, from the folder."""
    units = set()
    for name in os.listdir(CODEGEN):
        if name.endswith(".py") and name != "__init__.py":
            units.add(name[:-3])
        elif os.path.isfile(os.path.join(CODEGEN, name, "__init__.py")):
            units.add(name)
    return units


def test_the_package_map_names_every_package_and_module_and_only_those():
    mapped = [u for _, units in layers() for u in units]
    assert len(mapped) == len(set(mapped)), f"named in two layers: {sorted(u for u in mapped if mapped.count(u) > 1)}"
    on_disk = units_on_disk()
    assert not on_disk - set(mapped), f"codegen/__init__.py's map misses {sorted(on_disk - set(mapped))}"
    assert not set(mapped) - on_disk, f"codegen/__init__.py's map names {sorted(set(mapped) - on_disk)}, not there"


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def _is_module(dotted):
    base = os.path.join(ROOT, *dotted.split("."))
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def imports_of(path):
    """(line, imported codegen module) for every import in a source file, at any depth (function-level ones
    too); `from X import name` counts as X.name when that is a module, else as X."""
    import ast

    module = _module_name(path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "codegen":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "codegen":
                continue
            for alias in node.names:
                yield node.lineno, (f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base)


def test_imports_only_go_down_the_layers():
    """No codegen module imports one of a later layer of codegen/__init__.py's map: a shared thing lives in the
    lowest layer that needs it (e.g. codegen.modelio, below the stages, emitters and runners that use it)."""
    rank = {unit: i for i, (_, units) in enumerate(layers()) for unit in units}
    names = [heading for heading, _ in layers()]
    upward = []
    for folder, _, files in os.walk(CODEGEN):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = _module_name(path).split(".")
            if len(parts) < 2 or parts[1] not in rank:
                continue        # codegen/__init__.py; a unit missing from the map fails the map's own test
            unit = parts[1]
            for line, target in imports_of(path):
                parts = target.split(".")
                if len(parts) > 1 and parts[1] in rank and rank[parts[1]] > rank[unit]:
                    upward.append(f"{os.path.relpath(path, ROOT)}:{line} imports {target} "
                                  f"({names[rank[unit]]} -> {names[rank[parts[1]]]})")
    assert not upward, "imports up the layers of codegen/__init__.py:\n" + "\n".join(upward)


def test_the_import_check_sees_function_level_and_relative_imports():
    path = os.path.join(CODEGEN, "emit", "bin2c.py")
    found = {target for _, target in imports_of(path)}
    assert {"codegen.escape", "codegen.modelio.images", "codegen.modelio.quantio", "codegen.errors"} <= found
    tflm_runners = {target for _, target in imports_of(os.path.join(CODEGEN, "tflm", "runners.py"))}
    assert "codegen.runners.qemu" in tflm_runners      # imported inside a function


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


_DOTTED = re.compile(r"(?<![\w./])codegen\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_PATH = re.compile(r"(?<![\w./])codegen/[\w/]+\.py\b")


def _defines(module, name):
    base = os.path.join(ROOT, *module.split("."))
    path = base + ".py" if os.path.isfile(base + ".py") else os.path.join(base, "__init__.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.search(rf"^\s*(def|class)\s+{name}\b|^{name}\s*[:=]|^\s*from\s.*\bimport\b.*\b{name}\b", text, re.M)


def _mention_files():
    yield from (os.path.join(ROOT, n) for n in ("README.md", "SConstruct") if os.path.isfile(os.path.join(ROOT, n)))
    for top in ("codegen", "site_scons", "tests", "docs", "bench", "examples"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
            yield from (os.path.join(folder, n) for n in sorted(files) if n.endswith((".py", ".md", ".j2")))


def test_mentions_of_codegen_modules_name_real_ones():
    """Docstrings, comments and docs that name a module (`codegen.runners.qemu.build_firmware`,
    `codegen/emit/bin2c.py`) name one that exists, and a name in it: not a former or moved one (codegen.qemu)."""
    wrong = []
    for path in _mention_files():
        if os.path.samefile(path, __file__):
            continue                # FORMER above names the gone ones on purpose
        with open(path, encoding="utf-8") as f:
            text = f.read()
        where = os.path.relpath(path, ROOT)
        for m in _DOTTED.finditer(text):
            parts = m.group(0).split(".")
            i = len(parts)
            while i > 1 and not _is_module(".".join(parts[:i])):
                i -= 1
            rest = parts[i] if i < len(parts) else None
            if rest and len(rest) > 1 and not rest.startswith("__") and not _defines(".".join(parts[:i]), rest):
                wrong.append(f"{where}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}")
        for m in _PATH.finditer(text):
            if not os.path.isfile(os.path.join(ROOT, m.group(0))):
                wrong.append(f"{where}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}")
    assert not wrong, "mentions of codegen modules that do not exist:\n" + "\n".join(wrong)
