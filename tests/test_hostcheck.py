import pytest

from codegen import hostcheck
from codegen.errors import PipelineError

OUT = "Car results:\r\n12, 243\r\nOther object results:\r\n250, 5\r\n"
EXPECTED = {"images": [{"title": "Car", "scores": [12, 243], "argmax": 1},
                       {"title": "Other object", "scores": [251, 4], "argmax": 0}]}


def test_parse_results_reads_the_tutorial_format():
    assert hostcheck.parse_results(OUT) == [("Car", [12, 243]), ("Other object", [250, 5])]


def test_compare_accepts_same_decisions_and_reports_difference():
    summary = hostcheck.compare(hostcheck.parse_results(OUT), EXPECTED)
    assert summary["max_abs_diff"] == 1 and not summary["exact"]


def test_compare_rejects_a_wrong_decision():
    wrong = "Car results:\n200, 100\nOther object results:\n250, 5\n"
    with pytest.raises(PipelineError, match="Car: generated C says class 0"):
        hostcheck.compare(hostcheck.parse_results(wrong), EXPECTED)


def test_compare_rejects_missing_results():
    with pytest.raises(PipelineError, match="printed 1 result"):
        hostcheck.compare(hostcheck.parse_results("Car results:\n1, 2\n"), EXPECTED)
