"""The data-movement ops published int8 models contain beyond issue 21's first set (codegen/lowering/ops/movement.py):
EXPAND_DIMS, DEPTH_TO_SPACE / SPACE_TO_DEPTH (every block size), MIRROR_PAD (REFLECT and SYMMETRIC up to the widest
padding each allows, any rank), SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (4-D and 3-D, uneven blocks, paddings and
crops, a model input whose batch is split), on hand-built flatbuffers compared byte for byte with tf.lite's
reference kernels (BUILTIN_REF) on the output and every traced tensor, int8 and uint8; and the configurations TFLite
refuses, refused with one error naming the op.  The converter-made models of the same ops run in the fuzzer
(codegen/fuzz.py)."""

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


def _q(dtype, scale=0.05, zp=3):
    return (scale, zp if dtype == i8 else zp + 128)


def _cases():
    cases = {}
    for dt in (u8, i8):
        q = _q(dt)
        # EXPAND_DIMS at -1, SPACE_TO_DEPTH by 2, DEPTH_TO_SPACE by 2 back, then by 3 after a SPACE_TO_DEPTH by 3
        tensors = [T((1, 6, 12), dt, q), i32c([-1]), T((1, 6, 12, 1), dt, q), T((1, 3, 6, 4), dt, q),
                   T((1, 6, 12, 1), dt, q), T((1, 2, 4, 9), dt, q), T((1, 6, 12, 1), dt, q)]
        ops = [("EXPAND_DIMS", [0, 1], [2], None, {}),
               ("SPACE_TO_DEPTH", [2], [3], "SpaceToDepthOptions", {"BlockSize": 2}),
               ("DEPTH_TO_SPACE", [3], [4], "DepthToSpaceOptions", {"BlockSize": 2}),
               ("SPACE_TO_DEPTH", [4], [5], "SpaceToDepthOptions", {"BlockSize": 3}),
               ("DEPTH_TO_SPACE", [5], [6], "DepthToSpaceOptions", {"BlockSize": 3})]
        cases["expand_depth_space_" + dt] = (flatbuffer(tensors, ops, [0], [6]),
                                             {"SPACE_TO_DEPTH", "DEPTH_TO_SPACE"})
        # DEPTH_TO_SPACE of several output channels, block 1 (a copy)
        tensors = [T((1, 2, 3, 18), dt, q), T((1, 2, 3, 18), dt, q), T((1, 6, 9, 2), dt, q)]
        ops = [("SPACE_TO_DEPTH", [0], [1], "SpaceToDepthOptions", {"BlockSize": 1}),
               ("DEPTH_TO_SPACE", [1], [2], "DepthToSpaceOptions", {"BlockSize": 3})]
        cases["depth_to_space_channels_" + dt] = (flatbuffer(tensors, ops, [0], [2]), {"DEPTH_TO_SPACE"})
        # MIRROR_PAD: REFLECT and SYMMETRIC with the widest paddings each allows, on every dimension but the batch
        tensors = [T((1, 4, 5, 3), dt, q), i32c([[0, 0], [3, 1], [0, 4], [1, 2]]), T((1, 8, 9, 6), dt, q),
                   i32c([[0, 0], [8, 0], [2, 9], [0, 6]]), T((1, 16, 20, 12), dt, q)]
        ops = [("MIRROR_PAD", [0, 1], [2], "MirrorPadOptions", {"Mode": 0}),
               ("MIRROR_PAD", [2, 3], [4], "MirrorPadOptions", {"Mode": 1})]
        cases["mirror_pad_" + dt] = (flatbuffer(tensors, ops, [0], [4]), {"MIRROR_PAD"})
        # 2-D REFLECT (an audio frame)
        tensors = [T((1, 7), dt, q), i32c([[0, 0], [6, 6]]), T((1, 19), dt, q)]
        cases["mirror_pad_2d_" + dt] = (flatbuffer(tensors, [("MIRROR_PAD", [0, 1], [2], "MirrorPadOptions",
                                                              {"Mode": 0})], [0], [2]), {"MIRROR_PAD"})
        # SPACE_TO_BATCH_ND with uneven blocks and paddings (padded with the zero point), back with crops
        qo = _q(dt, 0.05, -7)
        tensors = [T((1, 5, 6, 2), dt, qo), i32c([2, 3]), i32c([[1, 0], [2, 1]]), T((6, 3, 3, 2), dt, qo),
                   i32c([[1, 0], [0, 2]]), T((1, 5, 7, 2), dt, qo)]
        ops = [("SPACE_TO_BATCH_ND", [0, 1, 2], [3], None, {}), ("BATCH_TO_SPACE_ND", [3, 1, 4], [5], None, {})]
        cases["space_batch_" + dt] = (flatbuffer(tensors, ops, [0], [5]), {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"})
        # the model input's batch of 4 is the space, 3-D after a reshape
        tensors = [T((4, 3, 2, 1), dt, q), i32c([2, 2]), i32c([[0, 1], [1, 0]]), T((1, 5, 3, 1), dt, q),
                   i32c([1, 5, 3]), T((1, 5, 3), dt, q), i32c([3]), i32c([[2, 2]]), T((3, 3, 3), dt, q),
                   i32c([[1, 3]]), T((1, 5, 3), dt, q)]
        ops = [("BATCH_TO_SPACE_ND", [0, 1, 2], [3], None, {}), ("RESHAPE", [3, 4], [5], None, {}),
               ("SPACE_TO_BATCH_ND", [5, 6, 7], [8], None, {}), ("BATCH_TO_SPACE_ND", [8, 6, 9], [10], None, {})]
        cases["batch_space_3d_" + dt] = (flatbuffer(tensors, ops, [0], [10]),
                                         {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"})
    return cases


CASES = _cases()


@pytest.mark.heavy
@pytest.mark.parametrize("case", list(CASES))
def test_hand_built_model_bit_exact(case, tmp_path):
    buf, ops = CASES[case]
    meta, rep = check_hand_built(buf, ops, tmp_path, "sp_" + case)
    assert len(np.unique(rep.reference_outputs)) > 1
    if case.startswith("expand"):
        assert meta["ops"][0]["type"] == "EXPAND_DIMS"


def _refused():
    q = _q(i8)
    cases = {}
    # a batch above 1 (SPACE_TO_BATCH_ND's output) reaching the ops whose kernels compute one image
    # (registry batch_one): each refused by name, where they computed the first image only
    stb = [T((1, 4, 4, 2), i8, q), i32c([2, 2]), i32c([[0, 0], [0, 0]]), T((4, 2, 2, 2), i8, q)]
    window = {"Padding": 1, "StrideW": 1, "StrideH": 1, "FilterWidth": 1, "FilterHeight": 1}
    w = np.arange(-3, 3, dtype=np.int8)
    after = {
        "AVERAGE_POOL_2D": ([T((4, 2, 2, 2), i8, q)], [4], "Pool2DOptions", window),
        "MAX_POOL_2D": ([T((4, 2, 2, 2), i8, q)], [4], "Pool2DOptions", window),
        "CONV_2D": ([T((3, 1, 1, 2), i8, (0.02, 0), w), T((3,), "int32", (0.001, 0), [1, 2, 3]),
                     T((4, 2, 2, 3), i8, q)], [4, 5], "Conv2DOptions", {"Padding": 1, "StrideW": 1, "StrideH": 1}),
        "DEPTHWISE_CONV_2D": ([T((1, 1, 1, 2), i8, (0.02, 0), w[:2]), T((2,), "int32", (0.001, 0), [1, 2]),
                               T((4, 2, 2, 2), i8, q)], [4, 5], "DepthwiseConv2DOptions",
                              {"Padding": 1, "StrideW": 1, "StrideH": 1, "DepthMultiplier": 1}),
    }
    for name, (more, extra_inputs, table, fields) in after.items():
        out = len(stb) + len(more) - 1
        ops = [("SPACE_TO_BATCH_ND", [0, 1, 2], [3], None, {}), (name, [3, *extra_inputs], [out], table, fields)]
        cases["batch_into_" + name.lower()] = (flatbuffer(stb + more, ops, [0], [out]), "%s (op #1)" % name,
                                               "batch 4")
    tensors = [T((1, 4, 5, 6), i8, q), T((1, 8, 10, 1), i8, q)]
    cases["depth_to_space_channels"] = (
        flatbuffer(tensors, [("DEPTH_TO_SPACE", [0], [1], "DepthToSpaceOptions", {"BlockSize": 2})], [0], [1]),
        "DEPTH_TO_SPACE (op #0)", "do not divide")
    tensors = [T((1, 5, 6, 2), i8, q), T((1, 2, 3, 8), i8, q)]
    cases["space_to_depth_odd"] = (
        flatbuffer(tensors, [("SPACE_TO_DEPTH", [0], [1], "SpaceToDepthOptions", {"BlockSize": 2})], [0], [1]),
        "SPACE_TO_DEPTH (op #0)", "multiples of the block size")
    tensors = [T((1, 4, 5, 3), i8, q), i32c([[0, 0], [4, 0], [0, 0], [0, 0]]), T((1, 8, 5, 3), i8, q)]
    cases["mirror_reflect_too_wide"] = (
        flatbuffer(tensors, [("MIRROR_PAD", [0, 1], [2], "MirrorPadOptions", {"Mode": 0})], [0], [2]),
        "MIRROR_PAD (op #0)", "outside 0..3")
    tensors = [T((1, 5, 6, 2), i8, q), i32c([2, 3]), i32c([[0, 0], [0, 0]]), T((6, 2, 2, 2), i8, q)]
    cases["space_to_batch_uneven"] = (flatbuffer(tensors, [("SPACE_TO_BATCH_ND", [0, 1, 2], [3], None, {})], [0], [3]),
                                      "SPACE_TO_BATCH_ND (op #0)", "multiples of the block shape")
    tensors = [T((1, 4, 6, 2), i8, q), i32c([2, 2]), i32c([[0, 0], [0, 0]]), T((4, 2, 3, 2), i8, (0.05, 4))]
    cases["space_to_batch_requantizes"] = (
        flatbuffer(tensors, [("SPACE_TO_BATCH_ND", [0, 1, 2], [3], None, {})], [0], [3]),
        "SPACE_TO_BATCH_ND (op #0)", "quantization differ")
    x = T((1, 4, 5, 3), i8, q)
    cases["expand_dims_computed_axis"] = (
        flatbuffer([x, T((1,), "int32"), T((1, 4, 5, 3, 1), i8, q)],
                   [("EXPAND_DIMS", [0, 1], [2], None, {})], [0], [2]), "EXPAND_DIMS (op #0)", "constant")
    return cases


REFUSED = _refused()


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_configuration_is_refused(case, tmp_path):
    assert_refused(*REFUSED[case], tmp_path, case)
