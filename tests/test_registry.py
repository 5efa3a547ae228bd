"""The op registry is the one list of supported ops: the README shows it, and every registered op has a case
that some op test found bit-exact in this session (so an op cannot be registered without a test)."""
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from codegen.lowering.registry import markdown_op_list, registry  # noqa: E402
import tflite_helpers  # noqa: E402


def test_readme_op_list_is_the_registry():
    readme = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- ops: python -m codegen.lowering -->\n(.*?)\n<!-- /ops -->", readme, re.S)
    assert m, "README.md lacks the generated op list between <!-- ops: ... --> and <!-- /ops -->"
    assert m.group(1).strip() == markdown_op_list().strip(), "README's op list is stale: paste python -m codegen.lowering"


@pytest.mark.registry_coverage
def test_every_registered_op_has_a_bit_exact_case(request):
    # Meaningful only when every op test module ran before (conftest puts this test last).
    op_modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "tests")) if re.match(r"test_ops\w*\.py$", f)}
    op_modules.add("test_mlf")
    collected = {item.module.__name__ for item in request.session.items}
    if not op_modules <= collected:
        pytest.skip("run together with all op tests (%s)" % ", ".join(sorted(op_modules - collected)))
    missing = sorted(set(registry()) - tflite_helpers.EXACT_OPS)
    assert not missing, "registered ops without a bit-exact test case: %s" % missing


def test_scons_help_lists_the_registry(tmp_path):
    from conftest import run_scons
    out = run_scons(tmp_path, "-h").stdout
    for name in registry():
        assert name in out, name
