"""codegen/lowering/memplan.py: the in-place-aware workspace placement on top of Relax's plan.

The unit cases drive `replan` with hand-written call lists (what pipeline._plan produces); the model case lowers
a residual block (the shape of ResNet-8's, where Relax keeps three 16 KB tensors live) and checks that the
generated C is still bit-exact with tf.lite while its workspace is smaller than Relax's."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen.lowering import memplan  # noqa: E402
from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402


def test_add_writes_over_its_dying_input():
    # a -> k1 -> t1 (ws 0); a -> k2 -> t2 (ws 1024); add(t1, t2) -> t3 (Relax: ws 2048); t3 -> output
    calls = [("k1", [("input",), ("ws", 0)], 1024),
             ("k2", [("input",), ("ws", 1024)], 1024),
             ("add", [("ws", 0), ("ws", 1024), ("ws", 2048)], 1024),
             ("k3", [("ws", 2048), ("output",)], 16)]
    calls2, copies, size = memplan.replan(calls, [], {"add": [(0, 0), (1, 0)]}, 3072)
    assert size == 2048
    assert calls2[2][1][2] == ("ws", 0) and calls2[3][1][0] == ("ws", 0)


def test_negative_delta_gets_a_margin_and_never_overlaps_live_tensors():
    # t0 stays live (read by the last call); t1 -> conv (delta -256) -> t2; t2 + t0 -> output
    calls = [("k0", [("input",), ("ws", 0)], 4096),
             ("k1", [("ws", 0), ("ws", 4096)], 4096),
             ("conv", [("ws", 4096), ("scratch", 12288, 64), ("ws", 8192)], 4096),
             ("add", [("ws", 8192), ("ws", 0), ("output",)], 4096)]
    calls2, _, size = memplan.replan(calls, [], {"conv": [(0, -256)]}, 12288 + 64)
    offs = {c[0]: c[1] for c in calls2}
    t1, t2 = offs["k1"][-1][1], offs["conv"][-1][1]
    assert t2 == t1 - 256                       # the output starts one margin below its input
    assert t2 >= 4096                           # and clear of t0, still live
    sc = offs["conv"][1]
    assert sc[0] == "scratch" and (sc[1] + 64 <= min(t1, t2) or sc[1] >= max(t1, t2) + 4096)
    assert size <= 4096 + 256 + 4096 + 64 + 16


def test_no_gain_keeps_relax_plan():
    calls = [("k1", [("input",), ("ws", 0)], 1024), ("k2", [("ws", 0), ("output",)], 16)]
    assert memplan.replan(calls, [], {}, 1024) is None


def test_conv_delta_lets_a_3x3_conv_overlap_all_but_a_row():
    d = memplan.inplace_delta_conv(32, 32, 16, 32, 32, 16, 1, 1, 1, 1)
    assert -2 * 33 * 16 <= d < 0                 # about one row (+ the two-pixel block) of margin
    # a pointwise expansion ends where its input ends
    # a pointwise expansion ends about where its input ends (the last two-pixel block reads before it writes)
    assert memplan.inplace_delta_conv(8, 8, 8, 8, 8, 16, 1, 1, 0, 0) == -(8 * 8 - 2) * (16 - 8)


@pytest.mark.heavy      # trains and compiles a residual model (~50 s on 2 shared cores)
def test_residual_block_is_exact_with_a_smaller_workspace(tmp_path):
    import keras
    from codegen.frontend import reader
    from codegen.lowering import pipeline
    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    y = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(16, 3, padding="same")(y)
    y = L.ReLU()(L.Add()([x, y]))
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.Conv2D(16, 1)(y)                      # pointwise, same size
    out = L.Dense(4)(L.GlobalAveragePooling2D()(y))
    model = keras.Model(inp, out)
    X = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    fit_briefly(model, X)
    path = str(tmp_path / "res.tflite")
    with open(path, "wb") as f:
        f.write(convert_int8(model, X))
    m = reader.load(path)
    tensor = 16 * 16 * 16
    assert pipeline.lower(m).workspace_size < 3 * tensor    # Relax alone keeps three such tensors live
    check_exact(path, as_input_dtype(X[:4], m.inputs[0].dtype), tmp_path, expected_ops={"CONV_2D", "ADD"})
