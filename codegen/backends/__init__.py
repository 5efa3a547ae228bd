"""The backends behind one interface (codegen/backends/base.py). Each is a module declaring a `BACKEND` object; this
table is the only place that lists them. BACKEND=<name> picks among the microcontroller backends; the Linux
boards' route (LiteRT) is chosen by the board itself."""
import importlib

MODULES = {"tvm": "tvm", "tflm": "tflm", "tinymaix": "tinymaix", "litert": "litert"}  # name -> module of BACKEND
BY_BOARD = {"linux": "litert"}      # board kind -> the backend such boards always use


def names():
    """The names BACKEND= accepts."""
    return tuple(n for n in MODULES if n not in BY_BOARD.values())


def get(name):
    """The Backend registered as `name`."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}").BACKEND
