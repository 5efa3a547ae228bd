"""How a user string (a label, a class folder or input file name, a model file name, a board or profile value,
a path) is written into a generated file: one function per target language, and nothing else may do it.

A user string never becomes code. Each function returns text that the target's reader turns back into exactly
the given string, or raises ValueError when the target cannot hold it (an ini value with a line break):

    c_string          C/C++ string literal: printable ASCII as is, `"` `\\` `?` escaped (`?` against trigraphs
                      such as `??/`), everything else (control characters, NUL, non-ASCII as UTF-8, non-UTF-8
                      bytes) as 3-digit octal escapes, which never swallow a following digit as hex ones would
    c_comment         lossy, for a comment a human reads: only characters that cannot end or continue a C, C++
                      comment (no `*`, `/`, `\\`, `?`, line breaks, non-ASCII); generated code carries user text
                      exactly only in string literals
    c_identifier      a C identifier made from any text (unique against `taken`, never a keyword or reserved)
    py_string         Python string literal (ascii(): every non-ASCII character escaped)
    json_text         JSON (ASCII only, so also a YAML double-quoted scalar for BMP text)
    yaml_scalar       YAML scalar: plain when it obviously is one, else double-quoted with escapes
    ini_value         a configparser value (profiles' reader: no interpolation, `;`/`#` inline comments)
    shell_quote/shell_join   POSIX sh words (shlex); local commands take a list argv, never a string
    cmake_string      a CMake quoted argument (`\\`, `"`, `$` and line breaks escaped)
    properties_value  a library.properties value (one line; Arduino's readers have no escapes: lossy)

Templates get them as Jinja filters (codegen.emit.templating), whose environment refuses a user string that
was not passed through one of them.  This module imports nothing of the project: every layer may use it.
"""
import json
import re
import shlex

# Characters str.splitlines() (and so many readers) treats as line breaks, beyond \r and \n.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _text(value):
    """`value` as str: bytes (a file name as the OS gives it) through surrogateescape, like os.fsdecode."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def _utf8(value):
    """The bytes a string stands for: its UTF-8, with a surrogate-escaped byte (U+DC80..U+DCFF, how os.fsdecode
    hands over a non-UTF-8 file name) as that byte and any other lone surrogate as U+FFFD."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" and not "\udc80" <= ch <= "\udcff" else ch
                   for ch in str(value))
    return text.encode("utf-8", "surrogateescape")


def _has_lone_surrogate(text):
    return any("\ud800" <= ch <= "\udfff" for ch in str(text))


# --------------------------------------------------------------------------------------------------- C and C++
_C_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("?"): "\\?", ord("\n"): "\\n", ord("\t"): "\\t",
              ord("\r"): "\\r"}


def c_string(value):
    """A C/C++ string literal whose bytes are exactly the UTF-8 of `value` (bytes: those bytes)."""
    out = []
    for b in _utf8(value):
        if b in _C_ESCAPES:
            out.append(_C_ESCAPES[b])
        elif 0x20 <= b < 0x7f:
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:;=+\-()\[\]{}<>'\"!@#$%^&|~`]")
COMMENT_MAX = 120


def c_comment(value, limit=COMMENT_MAX):
    """Text safe inside /* */ and after //: every other character becomes `_` (lossy, for humans only)."""
    text = _COMMENT_UNSAFE.sub("_", _text(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    alignas alignof and and_eq asm bitand bitor bool catch char8_t char16_t char32_t class compl concept consteval
    constexpr constinit const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export false
    friend mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    reinterpret_cast requires static_assert static_cast template this thread_local throw true try typeid typename
    using virtual wchar_t xor xor_eq main setup loop NULL""".split())


def c_identifier(value, taken=None, fallback="x"):
    """A C/C++ identifier for any text: runs of other characters become one `_`, lower case, no leading or
    trailing `_` (reserved names), a leading digit prefixed, a keyword suffixed; unique against the set `taken`
    (which it is then added to) by a `_2`, `_3`... suffix."""
    ident = re.sub(r"[^0-9a-z]+", "_", _text(value).lower()).strip("_") or fallback
    if ident[0].isdigit():
        ident = f"{fallback}_{ident}"
    if ident in C_KEYWORDS:
        ident += "_"
    if taken is not None:
        base, n = ident, 1
        while ident in taken:
            n += 1
            ident = f"{base}_{n}"
        taken.add(ident)
    return ident


_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def require_c_identifier(value, what):
    """`value` unchanged when it is a plain ASCII C identifier, else ValueError naming `what`. For a name that
    is pasted into identifiers (tvmgen_<model_name>_run), so a keyword such as `default` is fine."""
    text = _text(value)
    if not _C_IDENT.fullmatch(text):
        raise ValueError(f"{what}={text!r} must be a C identifier: ASCII letters, digits and _, not starting with "
                         "a digit")
    return text


# ------------------------------------------------------------------------------------------ Python, JSON, YAML
def py_string(value):
    """A Python string literal (ASCII only) that ast.literal_eval turns back into `value`."""
    return ascii(_text(value))


def json_text(value, **kwargs):
    """JSON for any JSON-able value; strings ASCII-escaped (a U+2028 cannot break a line of the file)."""
    return json.dumps(value, ensure_ascii=True, **kwargs)


_PLAIN_YAML = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=,/-]*(?::[A-Za-z0-9_.=,/-]+)*")
_YAML_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def yaml_scalar(value):
    """A YAML scalar for `value`: plain when it is unmistakably a string (an fqbn such as arduino:avr:mega),
    else double-quoted with escapes. A lone surrogate (a non-UTF-8 byte) cannot be in YAML: it becomes U+FFFD."""
    text = _text(value)
    if _PLAIN_YAML.fullmatch(text) and text.lower() not in _YAML_SPECIAL and not _looks_numeric(text):
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7f:
            out.append(ch)
        elif 0xd800 <= o <= 0xdfff:
            out.append("\\ufffd")
        elif o <= 0xff:
            out.append("\\x%02x" % o)
        elif o <= 0xffff:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    return '"' + "".join(out) + '"'


def _looks_numeric(text):
    try:
        float(text.replace("_", ""))
        return True
    except ValueError:
        return bool(re.fullmatch(r"0[xob][0-9a-fA-F_]+|[0-9:]+|\.(inf|nan|Inf|NaN|INF|NAN)", text))


# ------------------------------------------------------------------------------------------------- ini, shell
def ini_value(value):
    """`value` as a tinyml.ini value (configparser, no interpolation, `;`/`#` comments after whitespace): ini
    has no escapes, so the text is returned as it is, or ValueError says why it cannot be kept there."""
    text = _text(value)
    if text != text.strip():
        raise ValueError("leading or trailing spaces are lost in an ini file")
    bad = [ch for ch in text if ch in LINE_BREAKS or ord(ch) < 0x20 or ord(ch) == 0x7f]
    if bad:
        raise ValueError(f"holds a line break or control character ({bad[0]!r}), which ends a value in an ini file")
    if _has_lone_surrogate(text):
        raise ValueError("holds bytes that are not UTF-8")
    if text[:1] in (";", "#") or re.search(r"\s[;#]", text):
        raise ValueError("holds ' ;' or ' #' (or starts with ; or #), which start a comment in an ini file")
    return text


def shell_quote(value):
    """One POSIX shell word (for a command line run by a remote shell, e.g. over ssh)."""
    return shlex.quote(_text(value))


def shell_join(argv):
    """A POSIX shell command line whose words are exactly `argv`."""
    return " ".join(shell_quote(a) for a in argv)


# ------------------------------------------------------------------------------------ CMake, library.properties
# `;` needs none in a quoted argument (and `\;` would stay two characters there).
_CMAKE_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def cmake_string(value):
    """A CMake quoted argument that evaluates to `value` (no variable reference). NUL cannot be in a CMake
    file: ValueError. A `;` stays a list separator for commands that take lists: keep it out of names."""
    text = _text(value)
    if "\0" in text:
        raise ValueError("a NUL character cannot be written into a CMake file")
    return '"' + "".join(_CMAKE_ESCAPES.get(ch, ch) for ch in text) + '"'


def properties_value(value):
    """A library.properties value: one line (Arduino's readers have no escapes), so line breaks and control
    characters become spaces and a non-UTF-8 byte U+FFFD; the surrounding spaces a reader strips go too."""
    text = _utf8(value).decode("utf-8", "replace")
    return re.sub(f"[{LINE_BREAKS}\\x00-\\x1f\\x7f]", " ", text).strip()


# ---------------------------------------------------------------------------------------- text shown to humans
def display_text(value):
    """User text for a renderer or a terminal line (a plot's labels, a printed result): one line, no C0/C1
    control character (U+009B is a terminal's CSI) or line break of any kind (each becomes `?`), a non-UTF-8
    byte as U+FFFD (what a serial monitor shows; a font renderer refuses lone surrogates). Lossy."""
    text = _utf8(value).decode("utf-8", "replace")
    return re.sub(f"[\\x00-\\x1f\\x7f-\\x9f{LINE_BREAKS}]", "?", text)


# --------------------------------------------------------------------------------------------- marking user text
class UserText(str):
    """A str that came from the user (a label, a file name, a setting): a template may emit it only through an
    escaping filter (codegen.emit.templating refuses it raw)."""
    __slots__ = ()


def user_text(value):
    """`value` marked as user text, recursively through lists, tuples and dicts (their keys stay as they are)."""
    if isinstance(value, str):
        return UserText(value)
    if isinstance(value, (list, tuple)):
        return type(value)(user_text(v) for v in value)
    if isinstance(value, dict):
        return {k: user_text(v) for k, v in value.items()}
    return value
