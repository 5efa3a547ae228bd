"""The op families; importing them registers their ops (codegen.lowering.registry)."""

from . import quantize, conv, pool, elementwise, activation, reduce, shape, movement  # noqa: F401
from . import transpose_conv, int16  # noqa: F401,E402  (16x8 kernels: after the int8 entries they extend)
from . import recurrent  # noqa: F401,E402
