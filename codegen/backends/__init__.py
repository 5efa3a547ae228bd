"""The backends behind one interface (codegen/backends/base.py): BACKEND=<name> picks them. Each is a module
declaring a `BACKEND` object; this table is the only place that lists them."""
import importlib

MODULES = {"tvm": "tvm", "tflm": "tflm", "tinymaix": "tinymaix"}   # BACKEND= name -> module defining BACKEND


def names():
    return tuple(MODULES)


def get(name):
    """The Backend registered as `name`."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}").BACKEND
