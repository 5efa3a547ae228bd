"""The README is a landing page and the documentation site (mkdocs, docs/) builds strictly: a broken link fails
the build, and the reference pages are generated from the registries (targets, variables, boards, ops) when it is
built, so they cannot go stale. Neither names a path of one machine or an internal work item."""
import html
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

MKDOCS = [sys.executable, "-m", "mkdocs"]


def _build(config_dir, site):
    # not -q: mkdocs counts warnings for --strict through its log, and -q drops them (a broken link then passed)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([*MKDOCS, "build", "--strict", "-f", str(config_dir / "mkdocs.yml"), "-d",
                           str(site)], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = _build(__import__("pathlib").Path(ROOT), out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _copy_project_docs(tmp_path):
    """docs/ and mkdocs.yml copied to tmp_path (to break them), the hook still read from the checkout."""
    shutil.copytree(os.path.join(ROOT, "docs"), tmp_path / "docs")
    with open(os.path.join(ROOT, "mkdocs.yml")) as f:
        config = f.read()
    assert "  - docs/hooks.py\n" in config
    (tmp_path / "mkdocs.yml").write_text(config.replace("  - docs/hooks.py\n",
                                                        f"  - {os.path.join(ROOT, 'docs', 'hooks.py')}\n"))


def _text(site, page):
    raw = (site / page / "index.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The same build on a copy of docs/ with one broken link must fail (else --strict proves nothing)."""
    _copy_project_docs(tmp_path)
    with open(tmp_path / "docs" / "board.md", "a") as f:
        f.write("\nSee [the missing page](no-such-page.md).\n")
    proc = _build(tmp_path, tmp_path / "site")
    assert proc.returncode != 0 and "no-such-page.md" in proc.stdout + proc.stderr


def test_reference_pages_are_the_registries(site):
    from codegen import config, targets
    from codegen import boards
    from codegen.lowering.registry import registry

    words = lambda page: set(re.findall(r"[\w<>=.-]+", _text(site, page)))   # noqa: E731
    assert {t.name for t in targets.TARGETS if t.listed} <= words("reference/targets")
    assert {t.name for t in targets.TARGETS if not t.listed}.isdisjoint(words("reference/targets"))
    assert {f"{v}=" for v in config.VARIABLES} <= words("reference/variables")
    board_words = words("reference/boards")
    for name, entry in boards.all_boards().items():
        assert name in board_words and all(f"{v}:{p}" in _text(site, "reference/boards") for v, p in entry.get("usb_ids", [])), name
    assert set(registry()) <= words("reference/ops")
    errors = _text(site, "reference/errors")
    errors = re.sub(r"\s+", " ", errors)
    for message in ("<name> is not a target, a board or a file;", "is not a known board; <hint>use one of",
                    "no <board['title']> found on any serial port"):
        assert message in errors, message
    # a page's marker that no generator knows fails the build instead of showing the marker
    for page in ("reference/targets", "reference/variables", "reference/boards", "reference/ops", "reference/errors",
                 "generated-c"):
        assert "generated:" not in (site / page / "index.html").read_text(), page


def test_error_messages_page_lists_every_raised_message():
    """The generator must see messages raised anywhere (f-strings, concatenations), and only user errors."""
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    import hooks

    found = hooks.error_messages()
    files = {path for path, _, _ in found}
    assert {"SConstruct", "codegen/boards.py", "codegen/device/ports.py", "codegen/config.py"} <= files
    assert len(found) > 150
    assert not [m for _, _, m in found if re.fullmatch(r"<[^>]*>", m)]      # bare re-raises are not messages


def test_unknown_generated_marker_fails_the_build(tmp_path):
    _copy_project_docs(tmp_path)
    (tmp_path / "docs" / "reference" / "ops.md").write_text("# Ops\n\n<!-- generated: opz -->\n")
    proc = _build(tmp_path, tmp_path / "site")
    assert proc.returncode != 0 and "unknown generated section 'opz'" in proc.stdout + proc.stderr


MACHINE_OR_INTERNAL = re.compile(r"\.\./shared|/work/|\bissue \d+|\bissues? #\d+|MIRROR=/")


def test_readme_and_docs_name_no_machine_path_or_internal_work_item():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "mkdocs.yml")]
    for folder, _, names in os.walk(os.path.join(ROOT, "docs")):
        files += [os.path.join(folder, n) for n in names if n.endswith((".md", ".py"))]
    for path in files:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                assert not MACHINE_OR_INTERNAL.search(line), f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}"


def test_readme_is_a_landing_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    lines = text.splitlines()
    assert len(lines) <= 80, f"README.md has {len(lines)} lines: move the details into docs/"
    # the two commands stay the README's first lines (.ci/run calls ./dev test)
    commands = [line.split("#")[0].strip() for line in lines[:6] if line.startswith("./dev ")]
    assert commands == ["./dev scons", "./dev test"], lines[:6]
    for must in ("Prerequisites", "Python", "GB", "macOS", "Windows", "scons devices", "docs/"):
        assert must in text, must
    # every relative link of the README points at a file of the repository
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert os.path.exists(os.path.join(ROOT, target)), target


def test_verify_exit_status_stated_is_the_real_one():
    """The docs said exit status 1; a failed `verify` is a failed SCons build: 2 (tests/test_monitor.py runs it)."""
    from codegen import targets

    assert "exit status 2" in targets.BY_NAME["verify"].description
    for page in ("board.md", "pipeline.md"):
        with open(os.path.join(ROOT, "docs", page)) as f:
            text = f.read()
        assert "exit status 1" not in text and "exit status 2" in text, page
