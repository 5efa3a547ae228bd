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


def templates_dir():
    """The project's templates/: the sketch's (sketch/, tflm/, user-replaceable with TEMPLATES=) and the C the
    code generator and the runners write (mlf/, harness/, ...), with the result-line macros (protocol/)."""
    return _first(os.path.join(_CHECKOUT, "templates"), os.path.join(_HERE, "_templates"))


def sketch_templates_dir():
    return os.path.join(templates_dir(), "sketch")


def host_stub_dir():
    return _first(os.path.join(_CHECKOUT, "sketches", "host"), os.path.join(_HERE, "_host"))
