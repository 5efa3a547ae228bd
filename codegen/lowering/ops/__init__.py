"""The op families; importing them registers their ops (codegen.lowering.registry)."""

from . import quantize, conv, pool, elementwise, activation, reduce, shape, movement  # noqa: F401
