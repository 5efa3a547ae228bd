"""codegen.codeversion: which of the project's modules and libraries a stage's output comes from (its part of
the stage signature), and that every stage action has one."""
import glob
import importlib
import inspect
import os
import re
import sys

from codegen import codeversion

from helpers import ROOT

TOOLS = os.path.join(ROOT, "site_scons", "site_tools")


def test_imports_resolve_relative_absolute_and_function_level():
    text = ("from . import images as imagesmod\nfrom ..errors import PipelineError\n"
            "def f():\n    from .tf_env import import_tf, quiet\n    from .. import plots\n"
            "    import codegen.boards\n    import numpy as np\n")
    found = codeversion.imports_in(text, "codegen.modelio")
    assert {"codegen.modelio.images", "codegen.errors", "codegen.modelio.tf_env", "codegen.plots",
            "codegen.boards"} <= found
    assert not any(m.startswith("numpy") for m in found)


def test_closure_follows_imports_and_leaves_runtime_out():
    mlf = codeversion.closure(["codegen.emit.mlf"])
    assert {"codegen.lowering.ops.pool", "codegen.lowering.pipeline", "codegen.frontend"} <= mlf
    assert not mlf & codeversion.RUNTIME
    assert "codegen.stages.train" not in mlf and "codegen.emit.bin2c" not in mlf
    assert codeversion.library_versions(["codegen.emit.mlf"]).get("apache-tvm")
    assert "tensorflow" in codeversion.library_versions(["codegen.stages.train"])
    assert "tensorflow" not in codeversion.library_versions(["codegen.emit.mlf"])


def _stage_functions():
    sys.path.insert(0, TOOLS)
    for path in sorted(glob.glob(os.path.join(TOOLS, "tinyml_*.py"))):
        module = importlib.import_module(os.path.basename(path)[:-3])
        with open(path) as f:
            for name in re.findall(r"stage_action\(\s*(\w+)", f.read()):
                if name not in ("fn", "step"):        # the generic loops: their functions are the steps' below
                    yield f"{module.__name__}.{name}", getattr(module, name)
            for name in re.findall(r'\(\s*"\w+",\s*(_\w+),\s*"', open(path).read()):   # tables of aliases
                yield f"{module.__name__}.{name}", getattr(module, name)


def _step_functions():
    """Every backend's step actions (codegen/backends), as the glue makes them stages."""
    from codegen import backends

    for name in backends.MODULES:
        module = importlib.import_module(f"codegen.backends.{backends.MODULES[name]}")
        for attr, fn in vars(module).items():
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and \
                    inspect.signature(fn).parameters.keys() == {"target", "source", "p"}:
                yield f"{module.__name__}.{attr}", fn


def test_every_stage_action_has_a_code_version():
    """A stage whose function imports no codegen module would get no code version: a change in the code that
    makes its output would not rebuild it."""
    functions = {**dict(_stage_functions()), **dict(_step_functions())}
    assert len(functions) > 25
    lacking = [name for name, fn in functions.items()
               if not codeversion.modules_of_function(inspect.getsource(fn), fn.__module__.rpartition(".")[0]
                                                      if fn.__module__.startswith("codegen.") else "codegen")]
    assert not lacking, f"stage actions that import no codegen module: {lacking}"
