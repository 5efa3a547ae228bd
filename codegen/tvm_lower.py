"""Compatibility name of codegen.lowering (TFLite -> integer TE -> standalone C) for code written against
earlier releases."""
from .lowering import C_TYPES, Lowered, lower  # noqa: F401
from .lowering.quant import activation_range, quantize_multiplier, round_half_away  # noqa: F401
from .lowering.ops.reduce import softmax_params  # noqa: F401
