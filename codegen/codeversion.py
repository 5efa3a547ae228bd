"""What version of the project's own code a stage's output comes from: a hash of the codegen modules (and the
data files beside them: microkernels.h, boards.json, the bare-metal runner's C) that a stage's action imports,
followed through their imports within codegen.

A fix in the code generator (a lowering, bin2c, a runner) then rebuilds what that code made, and only that:
editing the TVM lowering redoes the MLF and what depends on it, not the training. Found by reading the sources
(a regular expression over import lines, no import: `scons` reads its build files in well under a second), so a
function-level import counts too. The modules in RUNTIME decide how a stage runs (its errors, atomic writes,
progress lines, signal handling), not what it writes; they and their imports are left out.

The templates under templates/ that those modules name ("mlf/lib2.c.j2", the result-line macros that
codegen.emit.templating names) are part of it too, with the templates they include, import or extend.

The libraries those modules import are part of it too: the installed version of each one in DISTRIBUTIONS (a
TensorFlow or Pillow upgrade redoes the stages whose modules use it). Read from package metadata, no import.
"""
import hashlib
import os
import re

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
RUNTIME = frozenset({"codegen.errors", "codegen.fsutil", "codegen.quiet", "codegen.interrupt", "codegen.progress",
                     "codegen.proc"})
_DATA_SUFFIXES = (".h", ".c", ".ld", ".json", ".j2", ".txt", ".cc", ".cpp")
# Data files that are not code: boards.json's facts enter a stage's signature as the board fields that stage
# uses (codegen.boards.stage_signature), so editing one board's USB ids reruns no stage that ignores them.
NOT_CODE = frozenset({"boards.json"})
# import name -> distribution, for the libraries whose version can change what a stage writes
DISTRIBUTIONS = {"tensorflow": "tensorflow", "keras": "keras", "tvm": "apache-tvm", "tflite": "tflite",
                 "numpy": "numpy", "PIL": "pillow", "jinja2": "jinja2", "matplotlib": "matplotlib",
                 "tflite_micro": "tflite-micro", "ai_edge_litert": "ai-edge-litert"}
_LIBRARY = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.M)
_FROM = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+import\s+\(?([^)#\n]*)", re.M)
_IMPORT = re.compile(r"^\s*import\s+(codegen[\w.]*)", re.M)
# A template a module names (a quoted path under templates/ with a folder), and one a template uses.
_TEMPLATE_NAME = re.compile(r"""["']([\w-]+/[\w./-]+\.j2)["']""")
_TEMPLATE_USE = re.compile(r"""\{%-?\s*(?:include|import|extends|from)\s+["']([^"']+)["']""")
_memo = {}
_imports_memo = {}
_digest_memo = {}


def _file_of(module):
    """The source file of a dotted codegen module (a package's __init__.py), or None."""
    parts = module.split(".")
    if parts[0] != "codegen":
        return None
    base = os.path.join(PACKAGE_DIR, *parts[1:])
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _package_of(module, path):
    return module if path.endswith("__init__.py") else module.rpartition(".")[0]


def imports_in(text, package):
    """Dotted codegen modules a source text imports (relative ones resolved against `package`)."""
    found = set(_IMPORT.findall(text))
    for dots, name, names in _FROM.findall(text):
        if dots:
            base = package.split(".")
            base = base[:len(base) - (len(dots) - 1)] if len(dots) > 1 else base
            module = ".".join(base + ([name] if name else []))
        elif name == "codegen" or name.startswith("codegen."):
            module = name
        else:
            continue
        found.add(module)
        for item in names.split(","):
            item = item.strip().split(" as ")[0].strip()
            if item.isidentifier():
                found.add(f"{module}.{item}")       # `from .. import plots`: a module, if such a file exists
    return {m for m in found if _file_of(m)}


_libraries_memo = {}


def _imports_of(module):
    if module not in _imports_memo:
        path = _file_of(module)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        _imports_memo[module] = imports_in(text, _package_of(module, path))
        _libraries_memo[module] = {name for name in _LIBRARY.findall(text) if name in DISTRIBUTIONS}
    return _imports_memo[module]


def library_versions(modules):
    """{distribution: installed version or None} of the DISTRIBUTIONS the closure of `modules` imports."""
    from importlib import metadata

    versions = {}
    for module in closure(modules):
        for name in _libraries_memo.get(module, ()):
            dist = DISTRIBUTIONS[name]
            if dist not in versions:
                try:
                    versions[dist] = metadata.version(dist)
                except metadata.PackageNotFoundError:
                    versions[dist] = None
    return versions


def _digest(path):
    if path not in _digest_memo:
        with open(path, "rb") as f:
            _digest_memo[path] = hashlib.sha256(f.read()).digest()
    return _digest_memo[path]


def _templates_named(path):
    """The files under templates/ that the module at `path` names, and those they include, import or extend."""
    from .resources import templates_dir

    root = templates_dir()
    with open(path, encoding="utf-8") as f:
        todo = _TEMPLATE_NAME.findall(f.read())
    found = set()
    while todo:
        name = todo.pop()
        full = os.path.join(root, *name.split("/"))
        if full in found or not os.path.isfile(full):
            continue
        found.add(full)
        with open(full, encoding="utf-8") as f:
            todo += _TEMPLATE_USE.findall(f.read())
    return found


def closure(modules):
    """The codegen modules `modules` are made of (themselves included), without RUNTIME."""
    seen, todo = set(), [m for m in modules if m not in RUNTIME]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = module.split(".")
        for i in range(2, len(parents)):            # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parents[:i]))
        todo += [m for m in _imports_of(module) if m not in RUNTIME and m not in seen]
    return {m for m in seen if _file_of(m)}


def files_of(modules):
    """The files a version covers: those of closure(modules) and the data files in their folders (not NOT_CODE)."""
    files = set()
    for module in closure(modules):
        path = _file_of(module)
        files.add(path)
        folder = os.path.dirname(path)
        files.update(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(_DATA_SUFFIXES))
        files.update(_templates_named(path))
    return {f for f in files if os.path.relpath(f, PACKAGE_DIR) not in NOT_CODE}


def version(modules):
    """16 hex digits over the files of closure(modules), the data files in their folders and the versions of
    the libraries they import."""
    key = tuple(sorted(modules))
    if key in _memo:
        return _memo[key]
    files = files_of(modules)
    digest = hashlib.sha256()
    digest.update(repr(sorted(library_versions(modules).items())).encode())
    for path in sorted(files):
        digest.update(os.path.relpath(path, PACKAGE_DIR).encode() + b"\0")
        digest.update(_digest(path))
    _memo[key] = digest.hexdigest()[:16]
    return _memo[key]


def modules_of_function(source_text, package="codegen"):
    """The codegen modules a stage function's source imports (`from codegen.x import y`, `import codegen.x`, and
    relative ones for a function of a codegen module in `package`, e.g. codegen.backends)."""
    return sorted(imports_in(source_text, package))
