"""`pip install` of this project gives everything its stages import.

- The imports of codegen/ and site_scons/ (module level and inside functions: TensorFlow, TVM, matplotlib are
  imported only in the actions that need them) are derived with an AST walk and compared, both ways, with
  pyproject's dependencies; requirements.txt pins the same versions.
- A heavy test builds the wheel and installs it into a fresh venv WITHOUT the dev extras, then runs a firmware
  repo's SConstruct through `memory check`. Downloading TensorFlow (600 MB) per run is not affordable, so the
  venv gets exactly the distributions pyproject declares plus what they require (their metadata's closure,
  extras and markers evaluated), each linked file by file from this venv; `pip check` in the fresh venv proves
  the closure is complete, and nothing else (matplotlib, when it was undeclared) is there.
"""
import ast
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest

from helpers import ROOT, TINY

# Files that do not run in the build's Python: run.py runs on the Raspberry Pi, with its own requirements.txt.
NOT_THE_BUILDS = {os.path.join("codegen", "linux", "bundle_files")}
# Our own top-level modules (site_scons' tools import each other by plain name, SCons' toolpath).
OWN = {"codegen", "tinyml_scons"}


def _project():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _name(requirement):
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(roots=("codegen", "site_scons")):
    """Top-level module name -> files importing it, for every import statement at any depth of the tree."""
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(os.path.join(ROOT, root)):
            if os.path.relpath(folder, ROOT) in NOT_THE_BUILDS:
                dirs[:] = []
                continue
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                with open(path) as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        modules = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        modules = [node.module]
                    else:
                        continue
                    for module in modules:
                        found.setdefault(module.split(".")[0], set()).add(os.path.relpath(path, ROOT))
    return found


def third_party(found):
    """Of imported top-level modules, those neither in the standard library nor ours nor our tools' siblings."""
    tools = {n[:-3] for n in os.listdir(os.path.join(ROOT, "site_scons", "site_tools")) if n.endswith(".py")}
    return {m: files for m, files in found.items()
            if m not in sys.stdlib_module_names and m not in OWN and m not in tools}


def distributions_of(modules):
    """Top-level module -> the distribution that provides it (as installed here)."""
    provides = metadata.packages_distributions()
    out = {}
    for module in modules:
        dists = provides.get(module)
        assert dists, f"`{module}` is imported but no installed distribution provides it"
        out[module] = _norm(dists[0])
    return out


def test_ast_walk_sees_function_level_imports():
    """The walk must see what the stages import lazily, or the comparison below would prove nothing."""
    found = third_party(imported_modules())
    assert "matplotlib" in found and "tensorflow" in found and "tvm" in found, sorted(found)
    assert not any(f.startswith(os.path.join("codegen", "linux", "bundle_files")) for fs in found.values() for f in fs)


def test_dependencies_equal_what_the_stages_import():
    found = third_party(imported_modules())
    needed = {}
    for module, dist in distributions_of(found).items():
        needed.setdefault(dist, set()).update(found[module])
    declared = {_norm(_name(r)) for r in _project()["dependencies"]}
    missing = {d: sorted(files)[:3] for d, files in needed.items() if d not in declared}
    assert not missing, f"imported but not in pyproject's dependencies: {missing}"
    unused = declared - set(needed)
    assert not unused, f"in pyproject's dependencies but imported nowhere in codegen/ or site_scons/: {unused}"


def test_requirements_pin_the_same_versions():
    pins = {}
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                pins[_norm(_name(line))] = line.replace(" ", "")
    project = _project()
    for requirement in [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]:
        assert "==" in requirement, f"{requirement}: pin it (reproducible training and codegen)"
        assert pins.get(_norm(_name(requirement))) == requirement.replace(" ", ""), \
            f"requirements.txt does not pin {requirement} (it has {pins.get(_norm(_name(requirement)))})"


# ---- the wheel in a fresh venv ---------------------------------------------------------------------------------

def _closure(requirements):
    """The installed distributions `requirements` need, transitively (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    seen, todo = {}, [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = _norm(req.name)
        if key in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[key] = dist
        for sub in dist.requires or []:
            sub = Requirement(sub)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


def _link_distribution(dist, site):
    """Symlinks a distribution's top-level entries (package folders, modules, .dist-info) into `site`."""
    base = str(dist.locate_file(""))
    for entry in {str(f).split("/")[0] for f in dist.files or [] if not str(f).startswith("..")}:
        src, dst = os.path.join(base, entry), os.path.join(site, entry)
        if os.path.exists(src) and not os.path.lexists(dst):
            os.symlink(src, dst)


FIRMWARE_SCONSTRUCT = """
# A firmware repo's build file: the tool comes from the installed package, nothing from the checkout.
import tinyml_scons
from codegen import config

env = Environment(tools=["default", "tinyml"], toolpath=[tinyml_scons.TOOLPATH])
cfg = config.parse(ARGUMENTS)
nodes = env.TinyMLPipeline("nano33ble", cfg)
env.Alias("memory", nodes["memory"])
env.Alias("check", nodes["check"])
"""


@pytest.mark.heavy
def test_wheel_in_a_fresh_venv_runs_memory_check(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), ROOT], check=True, capture_output=True, timeout=300)
    # setuptools leaves its scratch in the checkout's build/ (our build output dir): remove only its part
    import shutil

    for scratch in ("lib", "bdist.linux-x86_64"):
        shutil.rmtree(os.path.join(ROOT, "build", scratch), ignore_errors=True)
    (wheel,) = wheels.glob("tinyml_scons-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = _closure(_project()["dependencies"])
    for dist in deps.values():
        _link_distribution(dist, site)
    _link_distribution(metadata.distribution("pip"), site)      # only to install the wheel and `pip check`
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, f"the declared dependencies' closure is incomplete:\n{check.stdout}"
    for absent in ("pytest", "optuna_dashboard"):                 # dev extras / tools not declared are not there
        probe = subprocess.run([str(python), "-c", f"import {absent}"], capture_output=True)
        assert probe.returncode != 0, f"{absent} leaked into the fresh venv"
    # tflite-micro is declared (the second reference for files tf.lite refuses): it must be there
    probe = subprocess.run([str(python), "-c", "import tflite_micro"], capture_output=True)
    assert probe.returncode == 0, "tflite-micro, a declared dependency, is missing from the fresh venv"

    repo = tmp_path / "firmware"
    repo.mkdir()
    (repo / "SConstruct").write_text(FIRMWARE_SCONSTRUCT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONNOUSERSITE"] = "1"
    proc = subprocess.run([str(python), "-m", "SCons", "-C", str(repo), *[f"{k}={v}" for k, v in TINY.items()],
                           "BUILD_DIR=build", "memory", "check"],
                          capture_output=True, text=True, env=env, cwd=str(repo), timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out and "ModuleNotFoundError" not in out, out[-4000:]
    assert (repo / "build" / "nano33ble" / "memory.json").is_file()
    assert (repo / "build" / "nano33ble" / "hostcheck.json").is_file()
    # the installed copy served the build, not this checkout
    where = subprocess.run([str(python), "-c", "import codegen; print(codegen.__file__)"], capture_output=True,
                           text=True, env=env, cwd=str(repo)).stdout
    assert where.startswith(site), where


def test_every_package_and_data_folder_is_in_the_wheel():
    """The installed copy has every codegen package and every folder of files the stages read (templates, the host
    stand-in, native sources): a package added to the tree and not to pyproject's list is a ModuleNotFoundError in
    a firmware repo only (the heavy wheel test finds it after minutes; this finds it at once)."""
    import fnmatch
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        setup = tomllib.load(f)["tool"]["setuptools"]
    listed, data = set(setup["packages"]), setup["package-data"]
    dirs = {name: os.path.join(ROOT, *path.split("/")) for name, path in setup["package-dir"].items()}

    def folder_of(package):
        for name, path in sorted(dirs.items(), key=lambda kv: -len(kv[0])):
            if package == name or package.startswith(name + "."):
                return os.path.join(path, *package[len(name):].split(".")[1:])
        return os.path.join(ROOT, *package.split("."))

    templates = next(name for name, path in setup["package-dir"].items() if path == "templates")
    missing = []
    for top, root in (("codegen", os.path.join(ROOT, "codegen")), (templates, dirs[templates])):
        for here, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.startswith(".")]
            rel = os.path.relpath(here, root)
            package = top if rel == "." else top + "." + rel.replace(os.sep, ".")
            if not files or package.startswith(templates) and top == "codegen":
                continue
            if package not in listed:
                missing.append(package)
                continue
            for f in files:
                if f.endswith((".py", ".pyc")):
                    continue
                if not any(fnmatch.fnmatch(f, pattern) for pattern in data.get(package, ())):
                    missing.append(f"{package}: {f}")
    assert all(os.path.isdir(folder_of(p)) for p in listed), [p for p in listed if not os.path.isdir(folder_of(p))]
    assert not missing, f"not in pyproject's packages / package-data: {missing}"
