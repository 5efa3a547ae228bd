import math

import pytest

from codegen.runners import hostcheck
from codegen.errors import PipelineError
from codegen.modelio.quantio import confidence_constants, confidence_text

SOFTMAX_U8 = {"softmax": True, "zero_point": 0, "scale": 1 / 256, "confidence_multiplier": 4096000,
              "confidence_shift": 20}
LABELS = ["random", "target"]
OUT = "boot banner\r\nCar: target 94.9% [12, 243]\r\nOther object: random 97.7% [250, 5]\r\n"
EXPECTED = {"images": [
    {"name": "image_target", "title": "Car", "scores": [12, 243], "argmax": 1, "top": "target", "line": "Car: target 94.9% [12, 243]"},
    {"name": "image_random", "title": "Other object", "scores": [251, 4], "argmax": 0, "top": "random",
     "line": "Other object: random 98.0% [251, 4]"}]}


def test_parse_results_reads_one_line_per_input():
    got = hostcheck.parse_results(OUT)
    assert [(r.title, r.label, r.confidence, r.scores) for r in got] == [
        ("Car", "target", "94.9%", [12, 243]), ("Other object", "random", "97.7%", [250, 5])]
    assert got[0].line == "Car: target 94.9% [12, 243]"
    # names with colons, labels with spaces, raw (non-softmax) confidences, negative scores
    (r,) = hostcheck.parse_results("kws:yes.npy: no person -3 [-128, -3, 7]\n")
    assert (r.title, r.label, r.confidence, r.scores) == ("kws:yes.npy", "no person", "-3", [-128, -3, 7])
    assert hostcheck.parse_results("Car results:\n12, 243\n") == []      # the former format is not a result


def test_result_line_is_what_expected_json_holds():
    for exp in EXPECTED["images"]:
        assert hostcheck.result_line(exp["title"], exp["scores"], LABELS, SOFTMAX_U8) == exp["line"]
    assert hostcheck.result_line("x.bin", [3, 9, 9], ["a", "b", "c"], {"softmax": False}) == "x.bin: b 9 [3, 9, 9]"
    int8 = {"softmax": True, "zero_point": -128, "confidence_multiplier": 4096000, "confidence_shift": 20}
    assert hostcheck.result_line("p.png", [96, -96], ["person", "other"], int8) == "p.png: person 87.5% [96, -96]"


def test_integer_confidence_is_the_rounded_probability():
    multiplier, shift = confidence_constants(1 / 256)
    assert (multiplier, shift) == (4096000, 20)
    for q in range(-128, 128):
        tenths = math.floor((q + 128) / 256 * 1000 + 0.5)       # exact: 1/256 is a power of two
        assert confidence_text(q, -128, multiplier, shift) == f"{tenths // 10}.{tenths % 10}%"
    # any scale: within a tenth of a percent of the float value, and int32-safe for |q - zp| <= 255
    for scale in (1 / 255, 0.0037, 0.01, 1e-5):
        multiplier, shift = confidence_constants(scale)
        assert 255 * multiplier + (1 << (shift - 1)) < 2 ** 31
        for v in (1, 100, 255):
            assert abs(int(confidence_text(v, 0, multiplier, shift)[:-1].replace(".", "")) - v * scale * 1000) <= 1
    assert confidence_constants(1e4) is None


def test_compare_accepts_same_decisions_and_reports_difference():
    summary = hostcheck.compare(hostcheck.parse_results(OUT), EXPECTED)
    assert summary["max_abs_diff"] == 1 and not summary["exact"]
    assert [r["exact"] for r in summary["images"]] == [True, False]


def test_compare_rejects_a_wrong_decision():
    wrong = "Car: random 78.1% [200, 100]\nOther object: random 97.7% [250, 5]\n"
    with pytest.raises(PipelineError, match=r"Car: generated C says class 0 \(random\)"):
        hostcheck.compare(hostcheck.parse_results(wrong), EXPECTED)


def test_compare_rejects_a_wrong_line_with_the_right_scores():
    misprinted = "Car: target 94.8% [12, 243]\nOther object: random 98.0% [251, 4]\n"
    with pytest.raises(PipelineError, match=r"Car: generated C prints 'Car: target 94.8% \[12, 243\]', "
                                            r"expected 'Car: target 94.9% \[12, 243\]'"):
        hostcheck.compare(hostcheck.parse_results(misprinted), EXPECTED)
    mislabelled = "Car: random 94.9% [12, 243]\nOther object: random 98.0% [251, 4]\n"
    with pytest.raises(PipelineError, match=r"Car: generated C says class 1 \(random\)"):
        hostcheck.compare(hostcheck.parse_results(mislabelled), EXPECTED)


def test_compare_rejects_missing_results():
    with pytest.raises(PipelineError, match="printed 1 result"):
        hostcheck.compare(hostcheck.parse_results("Car: target 94.9% [12, 243]\n"), EXPECTED)


def test_compare_lines_is_byte_exact():
    exact = "Car: target 94.9% [12, 243]\nOther object: random 98.0% [251, 4]\n"
    hostcheck.compare_lines(hostcheck.parse_results(exact), EXPECTED, "sim", "on simavr")
    with pytest.raises(PipelineError, match=r"image_random \(Other object\): printed \[250, 5\] on simavr, "
                                            r"TFLite reference expects \[251, 4\]"):
        hostcheck.compare_lines(hostcheck.parse_results(OUT), EXPECTED, "sim", "on simavr")


def test_first_round_starts_at_the_first_input():
    text = "Other object: random 98.0% [251, 4]\r\nCar: target 94.9% [12, 243]\r\nOther object: random 98.0% [251, 4]\r\n"
    got = hostcheck.first_round(text, EXPECTED)
    assert [r.title for r in got] == ["Car", "Other object"]
    assert hostcheck.first_round(text[:-2], EXPECTED) is None        # the last line is not complete yet
    assert hostcheck.first_round("Car: target 94.9% [12, 243]\n", EXPECTED) is None
