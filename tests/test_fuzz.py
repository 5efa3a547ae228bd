"""The differential fuzzer (codegen/fuzz.py): its kept regression cases, a fixed-seed budget in the fast loop and a
bigger one (with a Cortex-M4 sample in QEMU) in the heavy set, and the refusal property: every option value an
op's @register does not accept is refused with one error line, never lowered.

tests/fuzz_cases.json holds the minimized findings as generator parameters (reviewable): each is rebuilt with the
TFLite converter and must now be bit-exact with tf.lite BUILTIN_REF on every tensor, with and without the
microkernels (TINYML_MICROKERNELS)."""
import json
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from codegen import fuzz  # noqa: E402
from helpers import run_scons  # noqa: E402

CASES = json.load(open(os.path.join(ROOT, "tests", "fuzz_cases.json")))
HAVE_QEMU = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


@pytest.fixture(autouse=True)
def _restore_microkernels():
    before = os.environ.get("TINYML_MICROKERNELS")
    yield
    if before is None:
        os.environ.pop("TINYML_MICROKERNELS", None)
    else:
        os.environ["TINYML_MICROKERNELS"] = before


def test_every_registered_op_has_a_generator():
    covered, missing = fuzz.coverage()
    assert not missing, "registered ops the fuzzer cannot build (add a generator in codegen/fuzz.py): %s" % missing
    assert set(covered) == set(fuzz.registered_ops())


@pytest.mark.parametrize("microkernels", [True, False], ids=["mk", "te"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kept_case_is_bit_exact(case, microkernels, tmp_path):
    spec = dict(case["spec"], microkernels=microkernels)
    o = fuzz.check(spec, str(tmp_path))
    assert o.built, "the converter no longer writes %s for this case: %s" % ([la["op"] for la in spec["layers"]], o.ops)
    if case.get("expect") == "refused":     # TFLite's own result is undefined there: one error line, no C
        assert o.kind == "refused" and "\n" not in o.detail, o
        assert all(n in o.detail for n in case["names"]), o
        return
    assert o.kind == "exact", "%s (%s): %s" % (case["name"], case["class"], o)


def test_fast_budget_finds_nothing(tmp_path):
    """A fixed-seed budget over every op with a generator (~20 s): nothing differs, nothing breaks.  The budget
    includes a 1x1 pooling window, the class issue 18 found on a real model."""
    s = fuzz.run(seed=2, count=36, chains=0.15, log=print, minimize_budget=0, workdir=str(tmp_path),
                 record_specs=True)
    pools = [la for spec in s["specs"] for la in spec["layers"] if la["op"].endswith("POOL_2D")]
    assert any(la["k"] == [1, 1] for la in pools), "the fast budget no longer tries a 1x1 pooling window"
    assert s["models"] == 36 and s["outcomes"].get("exact", 0) >= 28, s["outcomes"]
    assert not s["findings"], json.dumps(s["findings"], indent=1)


@pytest.mark.heavy      # ~10 s of converter runs; the reader's own refusal tests stay fast
def test_refusals_every_declared_option(tmp_path):
    """For every registered op, every option value its declaration does not accept (stride 0, dilation 0, window 0,
    an unknown padding or activation enum, softmax beta <= 0, ...) and int16 activations, written into a converted
    model of the op: build_mlf (what the mlf stage runs) refuses it with one error line naming op and option."""
    checks, failures = fuzz.refusals(seed=0, workdir=str(tmp_path), log=print)
    assert checks >= 60
    assert not failures, "\n".join(failures)


@pytest.mark.heavy
def test_bigger_budget_with_cortex_m4_sample(tmp_path):
    """A few minutes of random models and chains, every 8th on the Cortex-M4 in QEMU (DSP paths)."""
    s = fuzz.run(seed=2026, count=160, chains=0.35, qemu_every=8 if HAVE_QEMU else 0, log=print,
                 workdir=str(tmp_path))
    if HAVE_QEMU:
        assert s["qemu"] == 20
    assert not s["findings"], json.dumps(s["findings"], indent=1)


@pytest.mark.heavy
def test_malformed_option_is_one_error_line_through_scons(tmp_path):
    """The seen case: a CONV_2D with stride 0 went through codegen and then crashed tf.lite.  Through scons (the
    mlf stage) it is one `error:` line naming the op and the option, exit status 1, no traceback, no MLF."""
    import random
    r = random.Random(3)
    for _ in range(10):
        spec = fuzz.random_spec(r, "CONV_2D")
        buf = fuzz.build(spec)
        if fuzz._has_op(buf, "CONV_2D"):
            break
    bad = tmp_path / "stride0.tflite"
    bad.write_bytes(fuzz.with_option(buf, "CONV_2D", "StrideH", 0))
    build = tmp_path / "build"
    proc = run_scons(build, "mlf", check=False, MODEL=str(bad))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0
    assert len(errors) == 1 and "CONV_2D" in errors[0] and "stride_h" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(build.rglob("model_mlf.tar"))


@pytest.mark.parametrize("ratio_log2", [20, 23, 24, 26, 30])
def test_requantization_left_shift_wraps_like_tflite(ratio_log2, tmp_path):
    """QUANTIZE and RELU whose output scale is 2^k times smaller than the input's: TFLite's int32 (x - zp) * 2^shift
    wraps around from k = 24 on (the fuzzer found a RELU after all-negative calibration data); the C must give
    tf.lite's bytes, not C's undefined overflow (gcc kept the product in 64 bits: 0 instead of 127)."""
    from codegen.emit import mlf
    from codegen.frontend import reader
    from codegen.runners import exactness

    spec = {"input": [1, 4, 4, 8], "in_type": "uint8", "out_type": "int8", "per_channel": True, "uint8_kernels": False,
            "scale": 1.0, "offset": 0.2, "seed": 5, "layers": [{"op": "RELU"}]}
    buf = fuzz.build(spec)
    path = tmp_path / "m.tflite"
    path.write_bytes(buf)
    m = reader._parse(str(path), buf)
    assert [op.type for op in m.ops] == ["QUANTIZE", "RELU"]

    def shrink(model):
        g = model.subgraphs[0]
        for op in g.operators:          # each op's output scale 2^-k of its input's (in graph order)
            q_in, q_out = g.tensors[op.inputs[0]].quantization, g.tensors[op.outputs[0]].quantization
            q_out.scale = [float(q_in.scale[0]) / 2 ** ratio_log2]
    path.write_bytes(fuzz.edit_flatbuffer(buf, shrink))
    tar = str(tmp_path / "m.tar")
    mlf.build_mlf(str(path), tar, model_name="wrap")
    x = exactness.random_inputs(str(path), 6, seed=ratio_log2)
    rep = exactness.compare(str(path), tar, x, str(tmp_path))
    assert rep.exact, rep
