"""The op registry is the one list of supported ops: the README and `scons -h` show it. That every registered op
has a case some op test found bit-exact is checked at the end of a full run (conftest.py, pytest_sessionfinish)."""
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from codegen.lowering.registry import markdown_op_list, registry  # noqa: E402


def test_readme_op_list_is_the_registry():
    readme = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- ops: python -m codegen.lowering -->\n(.*?)\n<!-- /ops -->", readme, re.S)
    assert m, "README.md lacks the generated op list between <!-- ops: ... --> and <!-- /ops -->"
    assert m.group(1).strip() == markdown_op_list().strip(), "README's op list is stale: paste python -m codegen.lowering"


def test_scons_help_lists_the_registry(tmp_path):
    from conftest import run_scons
    out = run_scons(tmp_path, "-h").stdout
    for name in registry():
        assert name in out, name
