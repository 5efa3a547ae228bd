"""The one Jinja environment every template (templates/sketch, templates/tflm, a user's TEMPLATES=) renders
through: StrictUndefined, the escaping functions of codegen.escape as filters, and a `finalize` that refuses to
write a user string raw.

    {{ label | c_string }}      a C/C++ string literal        {{ name | c_comment }}     inside a comment (lossy)
    {{ name | c_identifier }}   a C identifier                {{ text | py_string }}     a Python literal
    {{ value | json_text }}     JSON                          {{ value | yaml_scalar }}  YAML
    {{ word | shell_quote }}    one sh word                   {{ path | cmake_string }}  a CMake argument
    {{ text | properties_value }}  a library.properties value

The renderers mark user text (labels, titles, input and model file names, board titles) with
codegen.escape.UserText.  `{{ x }}` of such a value, or of any string with characters that could end a comment
or a literal (`*`, `\\`, `"`, `?`, `#`, `%`, a line break, non-ASCII), raises UnescapedText, which names the
template's line: a template author cannot forget the filter, and a hostile value can never slip through one
that was forgotten.  Numbers and plain names (`uint8`, `[1, 64, 64, 3]`, `Arduino Nano 33 BLE`) pass as they are.
"""
import re

from .. import escape

# What `{{ x }}` may write without a filter: text that cannot end or start a comment, a string or a line.
_INERT = re.compile(r"[A-Za-z0-9 _.,:;+\-=()\[\]<>/@!&|^~{}]*")
# Jinja's own filters that make a string from a string (or from a list of them): their result stays user text.
_TEXT_FILTERS = ("join", "replace", "upper", "lower", "title", "capitalize", "trim", "truncate", "center",
                 "indent", "string", "format", "wordwrap", "striptags", "urlencode", "reverse")


class Escaped(str):
    """Text an escaping filter produced: written as it is."""
    __slots__ = ()


class UnescapedText(ValueError):
    """A template wrote a user string (or a string with unsafe characters) without an escaping filter."""


def _filter(fn):
    def apply(value, *args, **kwargs):
        return Escaped(fn(value, *args, **kwargs))
    apply.__name__ = fn.__name__
    apply.__doc__ = fn.__doc__
    return apply


FILTERS = {name: _filter(getattr(escape, name)) for name in (
    "c_string", "c_comment", "c_identifier", "py_string", "json_text", "yaml_scalar", "shell_quote",
    "cmake_string", "properties_value")}


def _finalize(value):
    if isinstance(value, Escaped) or value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, escape.UserText):
        raise UnescapedText(f"{str(value)[:60]!r} is user text and is written without an escaping filter; write "
                            "it with one: | c_string (a C string literal), | c_comment (a comment), ...")
    text = str(value)
    if not _INERT.fullmatch(text) or "//" in text or len(text) > 2000:
        raise UnescapedText(f"{text[:60]!r} is written without an escaping filter and holds characters that "
                            "could end a comment or a literal; write it with one: | c_string, | c_comment, ...")
    return value


def _tainted(value):
    if isinstance(value, escape.UserText):
        return True
    if isinstance(value, (list, tuple)):
        return any(_tainted(v) for v in value)
    if isinstance(value, dict):
        return any(_tainted(v) for v in value.values())
    return False


def _keep_taint(fn):
    def apply(*args, **kwargs):
        result = fn(*args, **kwargs)
        if isinstance(result, str) and any(_tainted(a) for a in args if not hasattr(a, "environment")):
            return escape.UserText(result)
        return result
    for attr in ("jinja_pass_arg",):      # @pass_environment / @pass_eval_context filters keep their marker
        if hasattr(fn, attr):
            setattr(apply, attr, getattr(fn, attr))
    return apply


def environment(directory):
    """A Jinja environment loading templates from `directory`, with the escaping filters and the check."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, finalize=_finalize,
                             autoescape=False)
    for name in _TEXT_FILTERS:
        if name in env.filters:
            env.filters[name] = _keep_taint(env.filters[name])
    env.filters.update(FILTERS)
    return env
