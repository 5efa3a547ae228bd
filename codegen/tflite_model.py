"""Compatibility name of codegen.frontend (the TFLite model reader) for code written against earlier releases."""
from .frontend import *  # noqa: F401,F403
from .frontend import ModelError, load  # noqa: F401
from .frontend.reader import _parse, _validate  # noqa: F401
