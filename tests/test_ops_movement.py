"""Issue 21's ops (codegen/lowering/ops/movement.py, reduce.py) and static-shape folding (codegen/frontend/fold.py),
on hand-built flatbuffers compared byte for byte with tf.lite's reference kernels (BUILTIN_REF) on the output and
every traced tensor -- every output of SPLIT, SPLIT_V and UNPACK included, used or not -- plus the configurations
that must be refused with one error naming the op.

The edges of each op's options: PACK / UNPACK / SPLIT_V along negative and inner axes, SPLIT_V with an inferred -1
size, GATHER with a scalar, a vector and a matrix of indices, TILE of every dimension, REDUCE_MAX / REDUCE_MIN with
and without keep_dims and over a single-element axis, uint8 SUM with a scale ratio below and above 1,
RESIZE_BILINEAR plain, align_corners and half_pixel_centers, up and down (1x1 -> 2x2 as in SSD heads).  The
converter-made models of the same ops run in the fuzzer (codegen/fuzz.py, tests/test_fuzz.py)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen import frontend  # noqa: E402
from codegen.lowering.ops.movement import bilinear_taps  # noqa: E402
from hand_models import T, assert_refused, every_value_rows, flatbuffer, i32c  # noqa: E402
from tflite_helpers import check_exact  # noqa: E402

pytestmark = pytest.mark.heavy      # each case lowers with TVM and compiles with gcc

u8, i8 = "uint8", "int8"


def _q(dtype, scale=0.05, zp=3):
    return (scale, zp if dtype == i8 else zp + 128)


def _cases():
    """name: (flatbuffer bytes, ops that must be traced)."""
    cases = {}
    # SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE (Keras' Flatten as converted): folded, only GATHER is a kernel
    q = _q(i8)
    tensors = [T((1, 2, 3, 4), i8, q), T((4,), "int32"), i32c([0]), i32c([1]), i32c([1]), T((), "int32"),
               i32c(24), T((2,), "int32"), T((1, 24), i8, q), i32c([5, 0, 23, 5, 11]), T((1, 5), i8, q)]
    ops = [("SHAPE", [0], [1], "ShapeOptions", {"OutType": 2}),
           ("STRIDED_SLICE", [1, 2, 3, 4], [5], "StridedSliceOptions", {"ShrinkAxisMask": 1}),
           ("PACK", [5, 6], [7], "PackOptions", {"ValuesCount": 2, "Axis": 0}),
           ("RESHAPE", [0, 7], [8], None, {}),
           ("GATHER", [8, 9], [10], "GatherOptions", {"Axis": 1})]
    cases["fold_flatten_gather"] = (flatbuffer(tensors, ops, [0], [10]), {"GATHER"})
    for dt in (u8, i8):
        q = _q(dt)
        # SPLIT into 3 along H; UNPACK the middle part along C; PACK two of its outputs in reverse along axis -1
        tensors = [T((1, 6, 4, 3), dt, q), i32c([1])] + [T((1, 2, 4, 3), dt, q) for _ in range(3)] + \
                  [T((1, 2, 4), dt, q) for _ in range(3)] + [T((1, 2, 4, 2), dt, q)]
        ops = [("SPLIT", [1, 0], [2, 3, 4], "SplitOptions", {"NumSplits": 3}),
               ("UNPACK", [3], [5, 6, 7], "UnpackOptions", {"Num": 3, "Axis": -1}),
               ("PACK", [7, 5], [8], "PackOptions", {"ValuesCount": 2, "Axis": -1})]
        cases["split_unpack_pack_" + dt] = (flatbuffer(tensors, ops, [0], [8]), {"SPLIT", "UNPACK", "PACK"})
        # SPLIT_V with an inferred size along axis -2, concatenated back in another order
        tensors = [T((1, 5, 7, 2), dt, q), i32c([2, -1, 1]), i32c([-2]), T((1, 5, 2, 2), dt, q),
                   T((1, 5, 4, 2), dt, q), T((1, 5, 1, 2), dt, q), T((1, 5, 7, 2), dt, q)]
        ops = [("SPLIT_V", [0, 1, 2], [3, 4, 5], "SplitVOptions", {"NumSplits": 3}),
               ("CONCATENATION", [5, 3, 4], [6], "ConcatenationOptions", {"Axis": 2})]
        cases["split_v_" + dt] = (flatbuffer(tensors, ops, [0], [6]), {"SPLIT_V", "CONCATENATION"})
        # TILE of every dimension but the batch, then GATHER a matrix of indices along W and a scalar along C
        tensors = [T((1, 2, 3, 2), dt, q), i32c([1, 3, 1, 2]), T((1, 6, 3, 4), dt, q), i32c([[2, 0], [1, 1]]),
                   T((1, 6, 2, 2, 4), dt, q), i32c(3), T((1, 6, 2, 2), dt, q)]
        ops = [("TILE", [0, 1], [2], None, {}), ("GATHER", [2, 3], [4], "GatherOptions", {"Axis": 2}),
               ("GATHER", [4, 5], [6], "GatherOptions", {"Axis": -1})]
        cases["tile_gather_" + dt] = (flatbuffer(tensors, ops, [0], [6]), {"TILE", "GATHER"})
        # REDUCE_MAX over H and W (keep_dims), REDUCE_MIN over an axis of one element and the last one
        tensors = [T((1, 4, 5, 3), dt, q), i32c([1, 2]), T((1, 1, 1, 3), dt, q), i32c([0, -1]), T((1, 1), dt, q),
                   i32c([-1, 2]), T((1, 4), dt, q)]
        ops = [("REDUCE_MAX", [0, 1], [2], "ReducerOptions", {"KeepDims": True}),
               ("REDUCE_MIN", [2, 3], [4], "ReducerOptions", {"KeepDims": False}),
               ("REDUCE_MIN", [0, 5], [6], "ReducerOptions", {"KeepDims": False})]
        cases["reduce_max_min_" + dt] = (flatbuffer(tensors, ops, [0], [6]), {"REDUCE_MAX", "REDUCE_MIN"})
    # uint8 SUM: a ratio in_scale / out_scale below 1 (the usual), and above 1 (a left shift)
    for name, qi, qo, axes, keep, oshape in (("sum_u8_down", (0.02, 130), (0.3, 10), [1, 2], True, (1, 1, 1, 3)),
                                             ("sum_u8_up", (0.5, 128), (0.2, 100), [-1], False, (1, 4, 5))):
        tensors = [T((1, 4, 5, 3), u8, qi), i32c(axes), T(oshape, u8, qo)]
        cases[name] = (flatbuffer(tensors, [("SUM", [0, 1], [2], "ReducerOptions", {"KeepDims": keep})],
                                  [0], [2]), {"SUM"})
    # int8 RESIZE_BILINEAR: up, down, 1x1 -> 2x2, with align_corners and half_pixel_centers
    for name, (ih, iw), (oh, ow), opts in (
            ("bilinear_up", (3, 5), (7, 4), {}), ("bilinear_align", (3, 5), (8, 9), {"AlignCorners": True}),
            ("bilinear_half", (4, 3), (9, 2), {"HalfPixelCenters": True}),
            ("bilinear_down_half", (7, 8), (3, 5), {"HalfPixelCenters": True}),
            ("bilinear_1x1", (1, 1), (2, 2), {})):
        tensors = [T((1, ih, iw, 3), i8, _q(i8)), i32c([oh, ow]), T((1, oh, ow, 3), i8, (0.07, -4))]
        cases[name] = (flatbuffer(tensors, [("RESIZE_BILINEAR", [0, 1], [2], "ResizeBilinearOptions", opts)],
                                  [0], [2]), {"RESIZE_BILINEAR"})
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_hand_built_model_bit_exact(case, tmp_path):
    buf, ops = CASES[case]
    path = str(tmp_path / ("%s.tflite" % case))
    with open(path, "wb") as f:
        f.write(buf)
    meta, rep = check_exact(path, every_value_rows(path, 30), tmp_path, ops, model_name="mv_" + case)
    traced = [t for _, t in rep.checked_ops]
    if case.startswith("split_unpack"):        # every output of SPLIT and UNPACK, used or not
        assert traced.count("SPLIT") == 3 and traced.count("UNPACK") == 3, traced
    if case == "fold_flatten_gather":          # the shape chain became constants: no SHAPE/PACK/slice kernel
        assert [o["type"] for o in meta["ops"]] == ["RESHAPE", "GATHER"], meta["ops"]
    assert len(np.unique(rep.reference_outputs)) > 1


def test_folding_leaves_no_shape_op():
    buf, _ = CASES["fold_flatten_gather"]
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.tflite")
        open(p, "wb").write(buf)
        m = frontend.load(p)
    assert [op.type for op in m.ops] == ["RESHAPE", "GATHER"]
    assert m.tensors[7].data.tolist() == [1, 24]


def test_bilinear_taps_follow_the_integer_kernel():
    """ComputeInterpolationValuesInteger by hand for 3 -> 7 rows: scale_10 = (3072 + 3) // 7 = 439."""
    taps = bilinear_taps(7, 3, False, False)
    assert taps[0] == (0, 0, 0) and taps[1] == (0, 1, 439) and taps[6] == (2, 2, 2634 - 2048)
    # half-pixel centers: a negative scaled value keeps lower = upper = 0 and a negative weight, as in TFLite
    assert bilinear_taps(9, 4, False, True)[0] == (0, 0, 455 // 2 - 512)


def _refused():
    q = _q(i8)
    cases = {}
    tensors = [T((1, 4, 5, 3), i8, q), i32c([1]), T((1, 5, 3), i8, (0.5, 0))]
    cases["sum_int8"] = (flatbuffer(tensors, [("SUM", [0, 1], [2], "ReducerOptions", {})], [0], [2]),
                         "SUM (op #0)", "reads int8 SUM tensors as uint8")
    tensors = [T((1, 4, 5, 3), u8, _q(u8)), i32c([8, 10]), T((1, 8, 10, 3), u8, _q(u8))]
    cases["bilinear_uint8"] = (flatbuffer(tensors, [("RESIZE_BILINEAR", [0, 1], [2], None, {})], [0], [2]),
                               "RESIZE_BILINEAR (op #0)", "float arithmetic")
    tensors = [T((1, 4, 5, 3), i8, q), i32c([8, 10]), T((1, 8, 10, 3), i8, q)]
    cases["bilinear_both_modes"] = (flatbuffer(tensors, [("RESIZE_BILINEAR", [0, 1], [2], "ResizeBilinearOptions",
                                                          {"AlignCorners": True, "HalfPixelCenters": True})],
                                               [0], [2]), "RESIZE_BILINEAR (op #0)", "at most one")
    tensors = [T((1, 4, 5, 3), i8, q), i32c([1]), T((1, 5, 3), i8, (0.06, 3))]
    cases["max_requantizes"] = (flatbuffer(tensors, [("REDUCE_MAX", [0, 1], [2], "ReducerOptions", {})], [0], [2]),
                                "REDUCE_MAX (op #0)", "quantization differ")
    tensors = [T((1, 4, 3), i8, q), T((1, 4, 3), i8, (0.1, 0)), T((1, 2, 4, 3), i8, q)]
    cases["pack_requantizes"] = (flatbuffer(tensors, [("QUANTIZE", [0], [1], None, {}),
                                                      ("PACK", [0, 1], [2], "PackOptions",
                                                       {"ValuesCount": 2, "Axis": 1})], [0], [2]),
                                 "PACK (op #1)", "quantization differ")
    tensors = [T((1, 4, 5, 3), i8, q), i32c([0, 5]), T((1, 4, 2, 3), i8, q)]
    cases["gather_out_of_range"] = (flatbuffer(tensors, [("GATHER", [0, 1], [2], "GatherOptions", {"Axis": 2})],
                                               [0], [2]), "GATHER (op #0)", "out of range")
    # a shape computed from a tensor nobody writes (here: the slice's begin has no data): really dynamic
    tensors = [T((1, 2, 3, 4), i8, q), T((4,), "int32"), T((1,), "int32"), i32c([2]), i32c([1]), T((), "int32"),
               i32c(24), T((2,), "int32"), T((1, 24), i8, q)]
    ops = [("SHAPE", [0], [1], "ShapeOptions", {"OutType": 2}),
           ("STRIDED_SLICE", [1, 2, 3, 4], [5], "StridedSliceOptions", {"ShrinkAxisMask": 1}),
           ("PACK", [5, 6], [7], "PackOptions", {"ValuesCount": 2, "Axis": 0}), ("RESHAPE", [0, 7], [8], None, {})]
    cases["shape_really_dynamic"] = (flatbuffer(tensors, ops, [0], [8]), "STRIDED_SLICE (op #1)", "at run time")
    return cases


REFUSED = _refused()


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_configuration_is_refused(case, tmp_path):
    assert_refused(*REFUSED[case], tmp_path, case)
