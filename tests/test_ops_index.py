"""ARG_MAX / ARG_MIN (codegen/lowering/ops/reduce.py) and GATHER with the indices they compute at run time
(movement.py): int32 and int64 indices, every axis (negative too, and one of a single element), int8 and uint8, and
ties (after a RELU most values equal the zero point: TFLite's kernel takes the FIRST extreme element), on
hand-built flatbuffers compared byte for byte with tf.lite's reference kernels (BUILTIN_REF) on every tensor -- the
int32/int64 index tensors included; and what is refused with one error naming the op.  The converter-made models of
the same ops (ARG_MAX -> GATHER along the axis) run in the fuzzer (codegen/fuzz.py)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from hand_models import T, assert_refused, check_hand_built, flatbuffer, i32c  # noqa: E402

u8, i8 = "uint8", "int8"
INT32, INT64 = 2, 4     # TensorType values of ArgMaxOptions.OutputType


def _q(dtype, scale=0.05, zp=3):
    return (scale, zp if dtype == i8 else zp + 128)


def _cases():
    cases = {}
    for dt in (u8, i8):
        q = _q(dt)
        # ARG_MAX over the last axis (int32), GATHER along it; ARG_MIN over H of that (int64), GATHER along H
        tensors = [T((1, 2, 3, 2), dt, q), i32c([-1]), T((1, 2, 3), "int32"), T((1, 2, 3, 1, 2, 3), dt, q),
                   i32c([1, 2, 18]), T((1, 2, 18), dt, q), i32c(1), T((1, 18), "int64"), T((1, 1, 18, 18), dt, q)]
        ops = [("ARG_MAX", [0, 1], [2], "ArgMaxOptions", {"OutputType": INT32}),
               ("GATHER", [0, 2], [3], "GatherOptions", {"Axis": 3}),
               ("RESHAPE", [3, 4], [5], None, {}),
               ("ARG_MIN", [5, 6], [7], "ArgMinOptions", {"OutputType": INT64}),
               ("GATHER", [5, 7], [8], "GatherOptions", {"Axis": 1})]
        cases["arg_gather_" + dt] = (flatbuffer(tensors, ops, [0], [8]), {"ARG_MAX", "ARG_MIN", "GATHER"})
        # ties: after a RELU every negative value is the zero point
        tensors = [T((1, 6, 4), dt, q), T((1, 6, 4), dt, q), i32c([2]), T((1, 6), "int32"), T((1, 6, 1, 6), dt, q),
                   i32c(-3), T((1, 1, 6), "int64"), T((1, 1, 1, 6, 1, 6), dt, q)]
        ops = [("RELU", [0], [1], None, {}),
               ("ARG_MAX", [1, 2], [3], "ArgMaxOptions", {"OutputType": INT32}),
               ("GATHER", [1, 3], [4], "GatherOptions", {"Axis": 2}),
               ("ARG_MIN", [4, 5], [6], "ArgMinOptions", {"OutputType": INT64}),
               ("GATHER", [4, 6], [7], "GatherOptions", {"Axis": 1})]
        cases["arg_ties_" + dt] = (flatbuffer(tensors, ops, [0], [7]), {"RELU", "ARG_MAX", "ARG_MIN", "GATHER"})
    # an axis of one element: index 0 everywhere; a scalar index from a 1-D input's ARG_MAX
    q = _q(i8)
    tensors = [T((1, 1, 7), i8, q), i32c([1]), T((1, 7), "int32"), T((1, 1, 7, 7), i8, q), T((1, 1, 7, 7), i8, q)]
    ops = [("ARG_MAX", [0, 1], [2], "ArgMaxOptions", {"OutputType": INT32}),
           ("GATHER", [0, 2], [3], "GatherOptions", {"Axis": 1}), ("RELU", [3], [4], None, {})]
    cases["arg_single_element"] = (flatbuffer(tensors, ops, [0], [4]), {"ARG_MAX", "GATHER"})
    tensors = [T((1, 9), i8, q), T((9,), i8, q), i32c([0]), T((), "int32"), T((), i8, q), T((1,), i8, q),
               i32c([1]), i32c([9])]
    ops = [("RESHAPE", [0, 7], [1], None, {}), ("ARG_MAX", [1, 2], [3], "ArgMaxOptions", {"OutputType": INT32}),
           ("GATHER", [1, 3], [4], "GatherOptions", {"Axis": 0}), ("RESHAPE", [4, 6], [5], None, {})]
    cases["arg_scalar_index"] = (flatbuffer(tensors, ops, [0], [5]), {"ARG_MAX"})
    return cases


CASES = _cases()


@pytest.mark.heavy
@pytest.mark.parametrize("case", list(CASES))
def test_hand_built_model_bit_exact(case, tmp_path):
    buf, ops = CASES[case]
    meta, rep = check_hand_built(buf, ops, tmp_path, "ix_" + case)
    assert len(np.unique(rep.reference_outputs)) > 1 or case == "arg_single_element"


def _refused():
    q = _q(i8)
    cases = {}
    tensors = [T((1, 10), i8, q), i32c([1]), T((1,), "int32")]
    cases["index_as_model_output"] = (
        flatbuffer(tensors, [("ARG_MAX", [0, 1], [2], "ArgMaxOptions", {"OutputType": INT32})], [0], [2]),
        "ARG_MAX writes (op #0)", "end the model before the ARG_MAX")
    tensors = [T((1, 4, 5), i8, q), i32c([1]), T((1, 5), "int64"), T((1, 1, 5, 5), i8, q)]
    cases["output_type_disagrees"] = (
        flatbuffer(tensors, [("ARG_MAX", [0, 1], [2], "ArgMaxOptions", {"OutputType": INT32}),
                             ("GATHER", [0, 2], [3], "GatherOptions", {"Axis": 1})], [0], [3]),
        "ARG_MAX (op #0)", "output_type int32 but the output tensor is int64")
    tensors = [T((1, 4, 5), i8, q), T((1, 4, 5), i8, q), T((1, 4, 1, 4, 5), i8, q)]
    cases["gather_int8_indices"] = (
        flatbuffer(tensors, [("RELU", [0], [1], None, {}), ("GATHER", [0, 1], [2], "GatherOptions", {"Axis": 1})],
                   [0], [2]), "GATHER (op #1)", "int32 or int64 indices")
    tensors = [T((1, 4, 5), i8, q), i32c([3]), T((1, 4, 5), "int32"), T((1, 4, 5), i8, q)]
    cases["arg_axis_out_of_range"] = (
        flatbuffer(tensors, [("ARG_MIN", [0, 1], [2], "ArgMinOptions", {"OutputType": INT32}),
                             ("RELU", [0], [3], None, {})], [0], [3]), "ARG_MIN (op #0)", "out of range")
    return cases


REFUSED = _refused()


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_configuration_is_refused(case, tmp_path):
    assert_refused(*REFUSED[case], tmp_path, case)
