"""Integer lowering of a full-int8 TFLite model to standalone C through Apache TVM (Relax + TIR).

    registry.py    one declaration per TFLite op (options, checks, rounding, lowering); the supported-op list
    ops/           the op families: conv, pool, elementwise, activation, reduce, shape, movement, quantize,
                   recurrent (the integer LSTM, whose time loop is the C of recurrent.h)
    context.py     the shared state an op lowers through (tensors, constants, kernels)
    quant.py       TFLite's fixed-point arithmetic, in Python and as TIR expressions
    schedules.py   s_tir schedules (register tiles) shared by the families
    pipeline.py    Relax module -> memory plan -> TIR -> plain C (`lower`)

Nothing here imports tvm at module level.
"""

from .pipeline import C_TYPES, Lowered, lower  # noqa: F401
from .registry import registry, supported_ops  # noqa: F401
