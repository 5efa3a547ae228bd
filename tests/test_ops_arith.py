"""Arithmetic ops published int8 models contain beyond issue 21's first set: ABS (activation.py: with and without a
rescale), SQUARED_DIFFERENCE (elementwise.py: two activations quantized apart, and a broadcast constant), on
hand-built flatbuffers
compared byte for byte with tf.lite's reference kernels (BUILTIN_REF) on every tensor; and the types TFLite has no
kernel for, refused with one error naming the op.  The converter-made models of the same ops run in the fuzzer
(codegen/fuzz.py)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from hand_models import T, assert_refused, check_hand_built, flatbuffer  # noqa: E402

i8, u8 = "int8", "uint8"


def i8c(values, q):
    a = np.asarray(values, np.int8)
    return T(a.shape, i8, q, data=a)


def _cases():
    cases = {}
    # ABS without a rescale (same scale), then with one (and another zero point)
    tensors = [T((1, 4, 5, 3), i8, (0.05, 3)), T((1, 4, 5, 3), i8, (0.05, -20)), T((1, 4, 5, 3), i8, (0.037, -100))]
    cases["abs"] = (flatbuffer(tensors, [("ABS", [0], [1], None, {}), ("ABS", [1], [2], None, {})], [0], [2]),
                    {"ABS"})
    # SQUARED_DIFFERENCE of the input and its RELU (quantized apart), then with a broadcast constant
    tensors = [T((1, 4, 5, 3), i8, (0.05, 3)), T((1, 4, 5, 3), i8, (0.03, -128)), T((1, 4, 5, 3), i8, (0.02, -90)),
               i8c([[-100, 7, 120]], (0.04, 5)), T((1, 4, 5, 3), i8, (0.05, -110))]
    ops = [("RELU", [0], [1], None, {}), ("SQUARED_DIFFERENCE", [0, 1], [2], None, {}),
           ("SQUARED_DIFFERENCE", [3, 2], [4], None, {})]
    cases["squared_difference"] = (flatbuffer(tensors, ops, [0], [4]), {"SQUARED_DIFFERENCE"})
    return cases


CASES = _cases()


@pytest.mark.heavy
@pytest.mark.parametrize("case", list(CASES))
def test_hand_built_model_bit_exact(case, tmp_path):
    buf, ops = CASES[case]
    meta, rep = check_hand_built(buf, ops, tmp_path, "ar_" + case)
    assert len(np.unique(rep.reference_outputs)) > 1


def _refused():
    q = (0.05, 131)
    cases = {}
    tensors = [T((1, 4, 5), u8, q), T((1, 4, 5), u8, q)]
    cases["abs_uint8"] = (flatbuffer(tensors, [("ABS", [0], [1], None, {})], [0], [1]), "ABS (op #0)", "no uint8")
    tensors = [T((1, 4, 5), u8, q), T((1, 4, 5), u8, q), T((1, 4, 5), u8, q)]
    cases["sqdiff_uint8"] = (flatbuffer(tensors, [("RELU", [0], [1], None, {}),
                                                  ("SQUARED_DIFFERENCE", [0, 1], [2], None, {})], [0], [2]),
                             "SQUARED_DIFFERENCE (op #1)", "int8 only")
    tensors = [T((1, 4, 5), i8, (0.5, 0)), T((1, 4, 5), i8, (0.5, 0)), T((1, 4, 5), i8, (1e-6, 0))]
    cases["sqdiff_output_scale"] = (flatbuffer(tensors, [("RELU", [0], [1], None, {}),
                                                         ("SQUARED_DIFFERENCE", [0, 1], [2], None, {})], [0], [2]),
                                    "SQUARED_DIFFERENCE (op #1)", "larger scale")
    return cases


REFUSED = _refused()


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_configuration_is_refused(case, tmp_path):
    assert_refused(*REFUSED[case], tmp_path, case)
