"""Where the project's non-Python files are: in a checkout (templates/, sketches/ beside codegen/) or, for an
installed copy, inside the package (pyproject maps them to codegen/_templates and codegen/_host)."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_HERE)


def _first(*candidates):
    for c in candidates:
        if os.path.isdir(c):
            return c
    return candidates[0]


def sketch_templates_dir():
    return _first(os.path.join(_CHECKOUT, "templates", "sketch"), os.path.join(_HERE, "_templates", "sketch"))


def host_stub_dir():
    return _first(os.path.join(_CHECKOUT, "sketches", "host"), os.path.join(_HERE, "_host"))
