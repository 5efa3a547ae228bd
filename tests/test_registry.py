"""The op registry is the one list of supported ops: the docs' ops page and `scons -h` show it. That every registered op
has a case some op test found bit-exact is checked at the end of a full run (conftest.py, pytest_sessionfinish)."""
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from codegen.lowering.registry import markdown_op_list, registry  # noqa: E402


def test_docs_op_list_is_the_registry():
    """The ops page (docs/reference/ops.md) is generated from the registry when the site is built: its marker
    must be there, and the hook must produce exactly the registry's list (tests/test_docs.py builds the site)."""
    page = open(os.path.join(ROOT, "docs", "reference", "ops.md")).read()
    assert "<!-- generated: ops -->" in page, "docs/reference/ops.md lacks the generated op list marker"
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    import hooks

    assert hooks.generate("ops") == markdown_op_list().strip()
    for name in registry():
        assert name in hooks.generate("ops"), name


def test_scons_help_lists_the_registry(tmp_path):
    from helpers import run_scons
    out = run_scons(tmp_path, "-h").stdout
    for name in registry():
        assert name in out, name
