"""The backends behind one interface (codegen/backends/base.py): BACKEND=<name> picks them. Each is a module
declaring a `BACKEND` object; this table is the only place that lists them."""
import importlib

MODULES = {}        # name -> module under codegen.backends that defines BACKEND (filled as backends move here)
MODULES["tinymaix"] = "tinymaix"


def names():
    return tuple(MODULES)


def get(name):
    """The Backend registered as `name`."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}").BACKEND
