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

All C the project writes comes from templates under templates/: the sketch's (a folder, TEMPLATES=) and the C of
the code generator and the runners (render(): the MLF, the simulation and exactness harnesses). Every environment
also finds the project's templates/, and has the global `protocol`: the macros of PROTOCOL that print the result
lines (`{{ protocol.arduino_printers(images) }}`; codegen.protocol parses the lines), written as they are (every
user string in them went through its filter in the macro). Generated code that is not user text (TVM's kernels)
is passed in as code(text).
"""
import functools
import os
import re

from .. import escape
from ..resources import templates_dir

# The result-line macros (templates/protocol/results.j2): how every sketch and harness prints its results.
PROTOCOL = "protocol/results.j2"

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


def code(text):
    """Generated code (not user text) that a template writes as it is, e.g. the kernels TVM generated."""
    if isinstance(text, escape.UserText):
        raise UnescapedText(f"{str(text)[:60]!r} is user text, not code: write it with an escaping filter")
    return Escaped(text)


class _Macros:
    """`protocol` in a template: the macros of one template, their output written as it is."""

    def __init__(self, env, name):
        self._env, self._name = env, name

    def __getattr__(self, macro):
        fn = getattr(self._env.get_template(self._name).module, macro)
        return lambda *args, **kwargs: Escaped(fn(*args, **kwargs))


def environment(directory):
    """A Jinja environment loading templates from `directory`, then from the project's templates/, with the
    escaping filters and the check."""
    import jinja2

    search = [directory] if os.path.abspath(directory) == templates_dir() else [directory, templates_dir()]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(search), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, finalize=_finalize,
                             autoescape=False)
    for name in _TEXT_FILTERS:
        if name in env.filters:
            env.filters[name] = _keep_taint(env.filters[name])
    env.filters.update(FILTERS)
    env.globals["protocol"] = _Macros(env, PROTOCOL)
    return env


@functools.lru_cache(maxsize=None)
def _project_environment():
    return environment(templates_dir())


def render(template, /, **context):
    """The text of the project's template templates/<template> (e.g. mlf/lib2.c.j2) rendered with `context`."""
    return _project_environment().get_template(template).render(**context)
