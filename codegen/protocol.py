"""The result-line protocol: what every program that runs a model prints (the Arduino sketch on a board, on the
host and on simavr; the bare-metal harness on the emulated Cortex-M4), and how the build reads it back.

The C that prints these lines is written once, as Jinja macros in templates/protocol/results.j2, which every
sketch and harness template imports (codegen.emit.templating.PROTOCOL; `arduino_*` macros print with Serial,
`stdio_*` ones with printf). This module is the Python side of the same formats: the exact text
(result_line, demo_line) and the parsers (parse_results, first_round, DEMO_LINE, BUILD_ID_LINE).

    <name>: <top label> <confidence> [<score>, ...]            one line per input (RESULT_LINE)
    <name>: <top label> <confidence> [<score>, ...] 4.123 ms   the same from a runner with a clock (the sketch)
    <name>: error: TVMExecute returned <code>                  a failed model run: no scores (ERROR_LINE)
    7/8 correct (87.5%)                                        after a round of the held-out demo (DEMO_LINE)
    build id: 0123456789abcdef                                 the firmware's build, before every round

The confidence is the top output's probability in tenths of a percent for a softmax output ("87.5%", integer
arithmetic only: confidence_text), else its raw score; the scores are the raw quantized outputs. The time is
not part of the compared line. This module imports nothing of the project: every layer may use it.
"""
import collections
import re

RESULT_LINE = re.compile(r"^(?P<title>.+?): (?P<label>.+) (?P<confidence>-?\d+\.\d%|-?\d+) "
                         r"\[(?P<scores>-?\d+(?:, -?\d+)*)\](?: (?P<ms>\d+\.\d{3}) ms)?$")
ERROR_LINE = re.compile(r"^(?P<title>.+?): error: (?P<error>\S+ returned -?\d+)$")
# The demo's last line, e.g. "7/8 correct (87.5%)" (a complete line).
DEMO_LINE = re.compile(r"^(\d+/\d+ correct \(\d+\.\d%\))\r?$", re.M)
BUILD_ID_LINE = re.compile(r"build id: ([0-9a-f]{16})\b")

# line: the compared text (without the time); text: the line as printed; ms: the inference time or None;
# error: "TVMExecute returned <code>" for a failed run (then label, confidence and scores are None).
Result = collections.namedtuple("Result", "title label confidence scores line ms error text")


def confidence_text(q, zero_point, multiplier, shift):
    """The confidence the sketch prints for quantized output value q: "87.5%" (integer arithmetic only)."""
    v = int(q) - int(zero_point)
    sign = "-" if v < 0 else ""
    tenths = (abs(v) * multiplier + (1 << (shift - 1))) >> shift
    return f"{sign}{tenths // 10}.{tenths % 10}%"


def top_index(scores):
    """The first index of the largest score (what the sketch's strict `>` loop picks)."""
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def result_line(title, scores, labels, output):
    """The exact line a runner prints for raw output `scores`, given images.json's labels and output."""
    top = top_index(scores)
    if output.get("softmax"):
        confidence = confidence_text(scores[top], output["zero_point"], output["confidence_multiplier"],
                                     output["confidence_shift"])
    else:
        confidence = str(scores[top])
    return f"{title}: {labels[top]} {confidence} [{', '.join(str(v) for v in scores)}]"


def demo_line(correct, total):
    """The demo's last line, `7/8 correct (87.5%)`, in the integer arithmetic the sketch uses."""
    tenths = (correct * 1000 + total // 2) // total
    return f"{correct}/{total} correct ({tenths // 10}.{tenths % 10}%)"


def parse_results(text):
    """[Result] for every result or error line in a runner's output (other lines, e.g. boot messages, are
    skipped)."""
    results = []
    for line in text.splitlines():
        line = line.strip()
        m = RESULT_LINE.match(line)
        if m:
            results.append(Result(m["title"], m["label"], m["confidence"],
                                  [int(n) for n in m["scores"].split(", ")], line[:m.end("scores") + 1],
                                  float(m["ms"]) if m["ms"] else None, None, line))
            continue
        m = ERROR_LINE.match(line)
        if m:
            results.append(Result(m["title"], None, None, None, line, None, m["error"], line))
    return results


def first_round(text, expected):
    """The first complete round of results in the output of a sketch that repeats them in loop(): `want`
    results from the first line of the first expected input on (a board may be caught mid-round), or None
    while the round is incomplete (or its last line unterminated). Error lines count as results: a failing
    run is reported, not waited for."""
    want = expected["images"]
    printed = parse_results(text)
    first = next((i for i, r in enumerate(printed) if r.title == want[0]["title"]), None)
    if first is None or len(printed) - first < len(want) or not text.endswith("\n"):
        return None
    return printed[first:first + len(want)]
