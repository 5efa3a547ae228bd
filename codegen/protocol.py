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

A float32 output prints each value exactly, as the hex of its IEEE-754 bits (`0x3f7fbe77`), so that the compared
line is bit for bit; a softmax's confidence comes from those bits in integer arithmetic (float_confidence_text).
In Python such a score is an int, its order key (float_key): keys sort as the floats do (-0.0 just below +0.0,
NaNs beyond the infinities), so argmax and differences (in units in the last place) need no special case, and
the key gives the bits back (key_bits).

A model with several outputs prints one line per output and input, titled `<name> #<k>` (output k), with the
output's values, or for a long one (more than SUMMARY_MAX values, e.g. an SSD's 6825 boxes) its five largest
with their index and the FNV-1a hash of all its bytes, so that the whole output is compared without sending
tens of thousands of values over a serial line:

    <name> #<k>: values [<score>, ...]                                   (OUTPUT_LINE)
    <name> #<k>: top5 [<index>=<score>, ...] fnv1a 0x<8 hex digits>
"""
import collections
import re

_SCORE = r"(?:0x[0-9a-f]{8}|-?\d+)"
RESULT_LINE = re.compile(r"^(?P<title>.+?): (?P<label>.+) (?P<confidence>-?\d+\.\d%|0x[0-9a-f]{8}|-?\d+) "
                         r"\[(?P<scores>" + _SCORE + r"(?:, " + _SCORE + r")*)\](?: (?P<ms>\d+\.\d{3}) ms)?$")
ERROR_LINE = re.compile(r"^(?P<title>.+?): error: (?P<error>\S+ returned -?\d+)$")
_INDEXED = r"\d+=" + _SCORE
OUTPUT_LINE = re.compile(r"^(?P<title>.+?): (?:values \[(?P<values>" + _SCORE + r"(?:, " + _SCORE + r")*)\]"
                         r"|top5 \[(?P<top>" + _INDEXED + r"(?:, " + _INDEXED + r")*)\] fnv1a (?P<digest>0x[0-9a-f]{8}))"
                         r"(?: (?P<ms>\d+\.\d{3}) ms)?$")
# Outputs with more values than this print as their top five and a hash of all their bytes.
SUMMARY_MAX = 32
SUMMARY_TOP = 5
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


FLOAT_TYPES = ("float32",)


def float_key(bits):
    """The order key of a float32 given as its IEEE-754 bits (an unsigned 32-bit int): keys compare as the floats
    do, -0.0 (key -1) just below +0.0 (key 0), so that key_bits gives the very bits back."""
    bits = int(bits) & 0xFFFFFFFF
    return -(bits & 0x7FFFFFFF) - 1 if bits & 0x80000000 else bits


def key_bits(key):
    """The IEEE-754 bits of the float32 whose order key (float_key) is `key`."""
    key = int(key)
    return 0x80000000 | (-key - 1) if key < 0 else key


def score_text(score, dtype=None):
    """How a score is printed: an integer output's value in decimal, a float32's bits in hex (0x3f800000)."""
    return "0x%08x" % key_bits(score) if dtype in FLOAT_TYPES else str(int(score))


def parse_score(token):
    """A printed score token back to its score (a float32's hex bits to their order key)."""
    return float_key(int(token, 16)) if token.startswith("0x") else int(token)


def float_value(key):
    """The float a float32 score's key stands for (for people reading a report)."""
    import struct
    return struct.unpack("<f", struct.pack("<I", key_bits(key)))[0]


def float_confidence_text(key):
    """The confidence printed for a float32 softmax probability (given by its order key): tenths of a percent,
    round(p * 1000) half up, computed from the IEEE bits in integer arithmetic as the C does (no FPU needed):
    p = m * 2^-s with the 24-bit significand m; saturated at 99999999 tenths."""
    bits = key_bits(key)
    sign = "-" if bits >> 31 else ""
    e, m = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if e:
        m |= 0x800000
    s = 150 - (e if e else 1)
    if e == 0xFF or s <= 0:
        tenths = 99999999
    elif s >= 64:
        tenths = 0
    else:
        tenths = min((m * 1000 + (1 << (s - 1))) >> s, 99999999)
    return f"{sign}{tenths // 10}.{tenths % 10}%"


def top_index(scores):
    """The first index of the largest score (what the sketch's strict `>` loop picks)."""
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def result_line(title, scores, labels, output):
    """The exact line a runner prints for raw output `scores`, given images.json's labels and output."""
    top = top_index(scores)
    dtype = output.get("dtype")
    if output.get("softmax") and dtype in FLOAT_TYPES:
        confidence = float_confidence_text(scores[top])
    elif output.get("softmax"):
        confidence = confidence_text(scores[top], output["zero_point"], output["confidence_multiplier"],
                                     output["confidence_shift"])
    else:
        confidence = score_text(scores[top], dtype)
    return f"{title}: {labels[top]} {confidence} [{', '.join(score_text(v, dtype) for v in scores)}]"


def fnv1a(data):
    """The 32-bit FNV-1a hash of bytes (what the C prints for a long output)."""
    h = 0x811C9DC5
    for b in bytes(data):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def output_title(title, k):
    """The title of output k's line for an input of a model with several outputs."""
    return f"{title} #{k}"


def summary_indices(scores):
    """The indices of a long output's SUMMARY_TOP largest scores, largest first, the lower index first among equal
    ones (the C's repeated strict `>` scan over the not yet chosen values)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:SUMMARY_TOP]


def output_line(title, scores, dtype, data):
    """(line, printed scores) for one output of a model with several outputs: its values, or, with more than
    SUMMARY_MAX, the top five with their indices and the FNV-1a of the output's bytes `data`."""
    if len(scores) <= SUMMARY_MAX:
        return f"{title}: values [{', '.join(score_text(v, dtype) for v in scores)}]", list(scores)
    top = summary_indices(scores)
    return (f"{title}: top5 [{', '.join(f'{i}={score_text(scores[i], dtype)}' for i in top)}] "
            f"fnv1a 0x{fnv1a(data):08x}", [scores[i] for i in top])


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
                                  [parse_score(n) for n in m["scores"].split(", ")], line[:m.end("scores") + 1],
                                  float(m["ms"]) if m["ms"] else None, None, line))
            continue
        m = OUTPUT_LINE.match(line)
        if m:
            if m["values"]:
                kind, scores = "values", [parse_score(n) for n in m["values"].split(", ")]
            else:
                kind, scores = "top5", [parse_score(n.split("=")[1]) for n in m["top"].split(", ")]
            end = m.start("ms") - 1 if m["ms"] else len(line)
            results.append(Result(m["title"], kind, "", scores, line[:end], float(m["ms"]) if m["ms"] else None,
                                  None, line))
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
