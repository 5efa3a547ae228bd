"""Hostile strings (not a test module): what a label file, a class folder, an input file name or a setting
from someone else may hold, for the escaping properties (tests/test_escape.py) and the end-to-end checks.

`ATOMS` are the pieces that broke or could break a generated file: comment ends, quotes, backslashes and line
continuations, trigraphs, format directives, NUL and control characters, Unicode line separators, direction
overrides, a BOM, shell and CMake metacharacters, non-UTF-8 bytes (as Python's surrogateescape code points,
which is how os.fsdecode hands them over).  `hostile_strings(n, seed)` combines them with ordinary text,
seeded, into `n` strings (a few very long), always starting with every atom on its own and LONG."""
import random

ATOMS = [
    "*/", "/*", "//", '"', "'", "\\", "\\\n", "??/", "??=", "??'", "\n", "\r", "\r\n", "\t", "\x00", "\x01", "\x1b",
    "\x7f", "%n", "%s", "%%", "%x", "#include <stdlib.h>", "#", "\u2028", "\u2029", "\u0085", "\u202e", "\ufeff",
    "\udcff", "\udc80", "$HOME", "$(touch pwned)", "`id`", ";", "&&", "|", ">", "<", "${X}", "${", "}", "]", "[",
    "=", ":", ": ", "-o", "--", "~", "*", "?", "!", "{{ 7*7 }}", "{%", "\\x41", "\\101", "\\u0041", "\\n", "é", "€",
    "\U0001f600", "\x0b", "\x0c", "a" * 300,
]
PLAIN = ["car", "no car", "dog", "A", "x1", "label", " ", "0", "Ünïcödé"]
# One very long string of the worst pieces (a label file line or a path can be this long).
LONG = "é*/\"\\??/%n\u2028\udcff\n" * 800


def hostile_strings(n=300, seed=0):
    rng = random.Random(seed)
    out = list(ATOMS) + [LONG]
    while len(out) < n:
        parts = [rng.choice(ATOMS if rng.random() < 0.6 else PLAIN) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.02:
            parts.append("z" * rng.randint(1000, 5000))
        out.append("".join(parts))
    return out[:n]


def injection(marker):
    """A label that, pasted raw into a C/C++ comment or string, compiles to code creating `marker`."""
    return (f'*/ extern "C" int system(const char*); static int pwn = system("touch {marker}"); /* '
            f'" ); static int pwn2 = system("touch {marker}"); //')
