"""UNIDIRECTIONAL_SEQUENCE_LSTM, TFLite's fully-integer kernel (codegen/lowering/ops/recurrent.py + recurrent.h).

Fast: small LSTM models written by the fuzzer's lstm_model (the flatbuffer of a converted Keras 2 LSTM: Keras 3
no longer converts to the fused op) are bit-exact with tf.lite BUILTIN_REF on every configuration the kernel
takes (plain, CIFG, peephole, projection, time-major, batch > 1, cell and projection clipping, other cell scales, zero
points); what it does not take (peephole under a narrowing projection, int16 activations) is one error line; the intermediates'
empty float placeholders are not mistaken for float math; the reference runs each row from reset state.
(tf.lite's integer LSTM also takes layer normalization; a Keras LSTM has none and it is refused.)
Heavy: TFLite Micro's mnist_lstm example (../shared/models) through exactness and `scons check`."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from codegen import fuzz  # noqa: E402
from codegen.errors import ModelError  # noqa: E402
from helpers import run_scons  # noqa: E402
from tflite_helpers import check_exact  # noqa: E402

SHARED_LSTM = os.path.join(os.path.dirname(ROOT), "shared", "models", "tflm_mnist_lstm_int8.tflite")
OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"

BASE = {"op": OP, "units": 5, "cifg": False, "proj": 0, "time_major": False, "cell_clip": 0.0, "proj_clip": 0.0,
        "cell_log2": -12, "x_zp": -7, "h_zp": 0, "hidden_zp": 0, "gain": 1.0}
CONFIGS = {
    "plain": {},
    "cifg": {"cifg": True, "units": 8},
    "projection": {"proj": 3, "hidden_zp": 6, "h_zp": 11},
    "projection_wider": {"proj": 8, "units": 3, "proj_clip": 0.5},
    "time_major_batch3": {"time_major": True, "units": 4},
    "batch2_cell_clip": {"cell_clip": 0.5, "units": 7},
    "cell_scale_2^-9_hidden_zp": {"cell_log2": -9, "hidden_zp": -13, "gain": 4.0},
    "cell_scale_2^-15_saturating": {"cell_log2": -15, "gain": 9.0, "x_zp": 100},
    "peephole": {"peephole": True},
    "peephole_cifg_time_major": {"peephole": True, "cifg": True, "time_major": True, "units": 4},
    "peephole_square_projection": {"peephole": True, "proj": 5, "hidden_zp": 3},
}
SHAPES = {"time_major_batch3": [6, 3, 4], "batch2_cell_clip": [2, 5, 3], "peephole_cifg_time_major": [5, 2, 3]}


def _spec(name, seed=11):
    layer = dict(BASE, **CONFIGS[name])
    shape = SHAPES.get(name, [1, 6, 4])
    return {"input": shape, "in_type": "int8", "out_type": "int8", "per_channel": True, "uint8_kernels": False,
            "scale": 1.0, "offset": 0.0, "seed": seed, "layers": [layer]}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_lstm_bit_exact(name, tmp_path):
    from codegen.runners import exactness
    path = _write(tmp_path, fuzz.lstm_model(_spec(name)))
    meta, _ = check_exact(path, exactness.random_inputs(path, 5, seed=3), tmp_path, expected_ops=[OP])
    assert [o["type"] for o in meta["ops"]] == [OP]


def _write(tmp_path, buf, name="m.tflite"):
    path = tmp_path / name
    path.write_bytes(buf)
    return str(path)


def test_intermediate_placeholders_are_not_float_math(tmp_path):
    """The four empty float32 `*_intermediate` tensors are scales' placeholders: the model loads (they used to make
    it 'not fully integer-quantized', then 'empty shape')."""
    from codegen.frontend import load
    m = load(_write(tmp_path, fuzz.lstm_model(_spec("plain"))))
    op = m.ops[0]
    assert op.type == OP and len(op.intermediates) == 5
    assert [m.tensors[i].dtype for i in op.intermediates] == ["float32"] * 4 + ["int8"]


def test_peephole_changes_the_result(tmp_path):
    """The peephole cases above are not vacuous: tf.lite's outputs with and without the peephole weights differ."""
    from codegen.modelio.tf_env import reference_interpreter, run_interpreter
    x = np.random.RandomState(0).randint(-128, 128, (3, 1, 6, 4)).astype(np.int8)
    spec = _spec("peephole")
    with_p = run_interpreter(reference_interpreter(_write(tmp_path, fuzz.lstm_model(spec), "p.tflite")), x)
    spec["layers"][0]["peephole"] = False
    without = run_interpreter(reference_interpreter(_write(tmp_path, fuzz.lstm_model(spec), "n.tflite")), x)
    assert (with_p != without).any()


def _with_peephole(buf):
    from tensorflow.lite.python import schema_py_generated as fb

    def fn(model):
        g = model.subgraphs[0]
        op = g.operators[0]
        n_cell = g.tensors[op.inputs[4]].shape[0]
        for k in (9, 10, 11):
            t = fb.TensorT()
            t.name, t.shape, t.type = b"peephole%d" % k, [n_cell], fb.TensorType.INT16
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [0.001], [0]
            b = fb.BufferT()
            b.data = np.ones(n_cell, np.int16).view(np.uint8)
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
            g.tensors.append(t)
            op.inputs[k] = len(g.tensors) - 1
    return fuzz.edit_flatbuffer(buf, fn)


@pytest.mark.parametrize("edit,words", [
    (_with_peephole, ("UNIDIRECTIONAL_SEQUENCE_LSTM", "peephole", "projection")),
    (fuzz.as_int16_activations, ("UNIDIRECTIONAL_SEQUENCE_LSTM",)),
], ids=["peephole_narrowing_projection", "int16"])
def test_unsupported_lstm_is_one_error_line(edit, words, tmp_path):
    from codegen.frontend import load
    spec = _spec("plain")
    spec["layers"][0]["proj"] = 3           # 5 cells -> 3 outputs
    path = _write(tmp_path, edit(fuzz.lstm_model(spec)))
    with pytest.raises(ModelError) as e:
        load(path)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_reference_rows_start_from_reset_state(tmp_path):
    """TFLite keeps an LSTM's hidden and cell state across invocations; the reference runs every row from the reset
    state (as the generated C does), so a row's expected scores do not depend on the rows before it."""
    from codegen.modelio.tf_env import reference_interpreter, run_interpreter
    path = _write(tmp_path, fuzz.lstm_model(_spec("projection")))
    rs = np.random.RandomState(0)
    x = rs.randint(-128, 128, (3, 1, 6, 4)).astype(np.int8)
    both = run_interpreter(reference_interpreter(path), x)
    alone = run_interpreter(reference_interpreter(path), x[2:])
    assert (both[2] == alone[0]).all()


@pytest.mark.heavy
def test_shared_mnist_lstm_bit_exact(tmp_path):
    if not os.path.exists(SHARED_LSTM):
        pytest.skip("%s is absent (../shared/models comes with the project's CI, not with a user's clone)"
                    % SHARED_LSTM)
    from codegen.emit import mlf
    from codegen.runners import exactness
    tar = str(tmp_path / "m.tar")
    mlf.build_mlf(SHARED_LSTM, tar, model_name="lstm")
    x = exactness.random_inputs(SHARED_LSTM, 12, seed=21)
    rep = exactness.compare(SHARED_LSTM, tar, x, str(tmp_path))
    assert rep.exact and (0, OP) in rep.checked_ops, rep


@pytest.mark.heavy
def test_shared_mnist_lstm_scons_check(tmp_path):
    if not os.path.exists(SHARED_LSTM):
        pytest.skip("%s is absent (../shared/models comes with the project's CI, not with a user's clone)"
                    % SHARED_LSTM)
    proc = run_scons(tmp_path / "build", "check", MODEL=SHARED_LSTM)
    assert "scores match TFLite byte for byte" in proc.stdout, proc.stdout[-3000:]
