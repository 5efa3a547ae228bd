"""All C the project writes comes from templates under templates/, and the result lines they print are the ones
codegen.protocol formats and parses.

The first check reads every string literal of codegen/ (not docstrings, not patterns that recognise C, such as
re.sub's or str.startswith's argument) and fails on one that holds a C statement: a preprocessor line or a printf
call. The modules that still build C from Python are listed in NOT_YET, and that list may only shrink: a listed
module without C fails too, so it cannot go stale."""
import ast
import os
import re
import shutil
import subprocess

import pytest

from codegen import protocol
from codegen.emit import templating

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODEGEN = os.path.join(ROOT, "codegen")
# A preprocessor directive at the start of a line, or a call of printf & co.
C_STATEMENT = re.compile(r"(?m)^[ \t]*#[ \t]*(?:include|define|undef|ifn?def|if|elif|else|endif|pragma)\b"
                         r"|\b(?:printf|fprintf|puts|fputs|putchar)\s*\(")
# Calls whose string arguments describe C to look for, not C to write.
MATCHING_CALLS = {"startswith", "endswith", "sub", "subn", "match", "fullmatch", "search", "compile", "findall",
                  "finditer", "split"}
# Modules that still write C from Python strings (a transformation of a rendered file, or not converted yet).
NOT_YET = {
    "codegen/emit/bin2c.py": "images.c/.h from lists of lines",
    "codegen/emit/arduino_library.py": "the library header and the example's #include rewrite",
}


def _c_strings(path):
    """(line, text) of every string literal in the module that holds C, docstrings and patterns left out."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in MATCHING_CALLS:
                for arg in node.args:
                    skip.update(id(n) for n in ast.walk(arg))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if C_STATEMENT.search(node.value):
                found.append((node.lineno, node.value[:80]))
    return found


def _modules():
    for dirpath, dirnames, filenames in os.walk(CODEGEN):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield os.path.relpath(os.path.join(dirpath, f), ROOT)


def test_no_c_statement_in_a_python_string():
    offenders = {rel: _c_strings(os.path.join(ROOT, rel)) for rel in _modules()}
    written = {rel: hits for rel, hits in offenders.items() if hits and rel not in NOT_YET}
    assert not written, ("C written from Python strings; render it from a template under templates/ "
                         f"(codegen.emit.templating.render): {written}")
    converted = [rel for rel in NOT_YET if not offenders.get(rel)]
    assert not converted, f"{converted} no longer write C from Python: remove them from NOT_YET"


def test_the_check_sees_c_and_leaves_patterns_alone(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""#include <doc.h> is prose."""\nimport re\n'
                   'A = "#include <stdio.h>\\n"\nB = f"  printf(\\"{1}\\");"\n'
                   'C = re.sub(r"#ifdef X\\n", "", "")\nD = "x".startswith("#define")\nE = "the #include lines"\n')
    assert [line for line, _ in _c_strings(str(src))] == [3, 4]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("output", [
    {"dtype": "int8", "softmax": True, "scale": 0.00390625, "zero_point": -128, "confidence_multiplier": 4096000,
     "confidence_shift": 10},
    {"dtype": "uint8", "softmax": False}])
def test_stdio_macros_print_what_protocol_formats_and_parses(tmp_path, output):
    """The printf dialect of templates/protocol/results.j2, compiled and run on the host, prints exactly
    protocol.result_line's text for each output, and the error line parse_results reads as an error."""
    from codegen.escape import user_text

    labels = ["cat", 'say "hi"', "dog?"]
    cases = [[12, -5, 100], [-128, 127, 127], [0, 0, 0]]
    if output["dtype"] == "uint8":
        cases = [[12, 250, 100], [255, 3, 255], [0, 0, 0]]
    images = {"labels": user_text(labels), "output": output}
    env = templating.environment(str(tmp_path))
    (tmp_path / "t.c.j2").write_text(
        "#include <stdint.h>\n#include <stdio.h>\n#define MODEL_OUTPUT_SIZE 3\n"
        "static uint8_t result_data[MODEL_OUTPUT_SIZE];\n{{ protocol.stdio_printers(images) }}\n"
        "{{ protocol.stdio_print_result() }}\nint main(void) {\n"
        "{% for c in cases %}{% for v in c %}  result_data[{{ loop.index0 }}] = (uint8_t){{ v }};\n{% endfor %}"
        '  print_result({{ ("title " ~ loop.index) | c_string }}, 0);\n{% endfor %}'
        '  print_result("broken", -3);\n  return 0;\n}\n')
    (tmp_path / "t.c").write_text(env.get_template("t.c.j2").render(images=images, cases=cases))
    subprocess.run(["gcc", "-std=gnu99", "-Wall", "-Werror", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")],
                   check=True)
    printed = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout
    want = [protocol.result_line(f"title {i + 1}", c, labels, output) for i, c in enumerate(cases)]
    assert printed.splitlines() == want + ["broken: error: TVMExecute returned -3"]
    results = protocol.parse_results(printed)
    assert [r.line for r in results[:-1]] == want and [r.scores for r in results[:-1]] == cases
    assert results[-1].error == "TVMExecute returned -3" and results[-1].scores is None
