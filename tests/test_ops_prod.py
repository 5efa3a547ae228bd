"""REDUCE_PROD (codegen/lowering/ops/reduce.py, the loop of codegen/lowering/reduce_prod.h): int8 over one axis,
several (a negative one too), every axis and none, keep_dims or not, a requantization step that scales up (shift
> 0) and one that scales down, on hand-built flatbuffers compared byte for byte with tf.lite's reference kernels
(BUILTIN_REF) on every tensor; and what is refused with one error naming the op (uint8, which TFLite's kernel
refuses).  The converter-made models (tf.reduce_prod over random axes) run in the fuzzer (codegen/fuzz.py)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from hand_models import T, assert_refused, check_hand_built, flatbuffer, i32c  # noqa: E402

i8 = "int8"


def _prod(shape, axes, out_shape, qx, qo, keep, dtype=i8):
    tensors = [T(shape, dtype, qx), i32c(axes), T(out_shape, dtype, qo)]
    return flatbuffer(tensors, [("REDUCE_PROD", [0, 1], [2], "ReducerOptions", {"KeepDims": keep})], [0], [2])


def _cases():
    cases = {}
    # three factors of up to 2.5 in magnitude: the product fits the output scale, the step scales down
    cases["one_axis"] = _prod((1, 4, 3, 5), [2], (1, 4, 5), (0.02, 3), (0.1, -5), False)
    # twenty factors below 1.3: small products, many steps (the order of the steps matters)
    cases["two_axes_keep"] = _prod((1, 4, 3, 5), [1, -1], (1, 1, 3, 1), (0.01, 0), (0.002, 7), True)
    # an output scale far below the input's: the per-step multiplier is above 1 (a positive shift)
    cases["scale_up"] = _prod((1, 3, 2, 2), [3, 2], (1, 3), (0.05, -2), (0.0004, 1), False)
    # every axis, one output element
    cases["all_axes"] = _prod((2, 3, 2), [0, 1, 2], (), (0.015, -1), (0.001, 0), False)
    # the same axis twice (TFLite resolves it once)
    cases["repeated_axis"] = _prod((1, 6, 2), [1, 1], (1, 1, 2), (0.03, 4), (0.05, 2), True)
    return cases


CASES = _cases()


FAST = "two_axes_keep"     # the fast loop's representative; the others are heavy (CI runs them all)


@pytest.mark.parametrize("case", [c if c == FAST else pytest.param(c, marks=pytest.mark.heavy) for c in CASES])
def test_hand_built_model_bit_exact(case, tmp_path):
    meta, rep = check_hand_built(CASES[case], {"REDUCE_PROD"}, tmp_path, "prod_" + case)
    assert len(np.unique(rep.reference_outputs)) > 1


def _refused():
    cases = {}
    cases["uint8"] = (_prod((1, 4, 3), [1], (1, 3), (0.02, 128), (0.1, 130), False, dtype="uint8"),
                      "REDUCE_PROD (op #0)", "uint8 REDUCE_PROD is not supported")
    cases["output_shape"] = (_prod((1, 4, 3), [1], (1, 4), (0.02, 1), (0.1, 1), False),
                             "REDUCE_PROD (op #0)", "but the output tensor is [1, 4]")
    return cases


REFUSED = _refused()


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_configuration_is_refused(case, tmp_path):
    assert_refused(*REFUSED[case], tmp_path, case)
