import os

import pytest

from codegen.emit import sketch
from codegen.errors import PipelineError
from codegen.fsutil import write_if_changed
from helpers import write_fake_sketch_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "templates", "sketch")


def _render(tmp_path, templates=TEMPLATES, context=None):
    mlf, c, h, j = write_fake_sketch_inputs(tmp_path, labels=("random", 'say "hi"'))
    ctx = context if context is not None else {"classes": ["random", "target"], "baud": 115200, "board": {}}
    return sketch.render(templates, str(tmp_path / "out" / "demo"), "demo", mlf, c, h, j, ctx)


def test_renders_declared_files_and_keeps_unchanged_ones(tmp_path):
    written = _render(tmp_path)
    out = tmp_path / "out" / "demo"
    declared = sketch.sketch_outputs(TEMPLATES, "demo")
    assert sorted(written) == sorted(declared)
    ino = (out / "demo.ino").read_text()
    assert 'print_results(F("Car"), image_target);' in ino
    # labels are user text: quoted for C; the confidence uses the output's quantization, in integers
    assert 'case 1: Serial.print(F("say \\"hi\\"")); break;' in ino
    assert "#define CONFIDENCE_MULTIPLIER 4096000L" in ino and "#define OUTPUT_ZERO_POINT 0" in ino
    assert "float" not in ino and "double" not in ino
    assert "TVMInitialize();" in ino
    assert "#define MODEL_INPUT_SIZE 192" in (out / "src" / "model.h").read_text()
    mtime = os.stat(out / "src" / "model" / "default_lib1.c").st_mtime_ns
    assert _render(tmp_path) == []          # nothing changed: nothing rewritten
    assert os.stat(out / "src" / "model" / "default_lib1.c").st_mtime_ns == mtime


def test_template_errors_are_clear(tmp_path):
    bad = tmp_path / "tpl"
    bad.mkdir()
    (bad / "sketch.ino.j2").write_text("{% for x in %}\n")
    with pytest.raises(PipelineError, match="template syntax error"):
        _render(tmp_path, templates=str(bad))
    (bad / "sketch.ino.j2").write_text("{{ no_such_variable }}\n")
    with pytest.raises(PipelineError, match="'no_such_variable' is undefined"):
        _render(tmp_path, templates=str(bad))


def test_template_folder_needs_an_ino(tmp_path):
    with pytest.raises(PipelineError, match="no sketch.ino.j2"):
        sketch.sketch_outputs(str(tmp_path), "demo")


def test_write_if_changed(tmp_path):
    p = tmp_path / "f"
    assert write_if_changed(str(p), "a") and not write_if_changed(str(p), "a") and write_if_changed(str(p), b"b")
    assert p.read_bytes() == b"b"


def test_damaged_or_foreign_mlf_is_one_clear_error(tmp_path):
    from codegen.emit.mlf_archive import read_mlf

    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all")
    with pytest.raises(PipelineError, match="cannot read the MLF tar .*scons mlf"):
        read_mlf(str(bad))
    mlf = write_fake_sketch_inputs(tmp_path)[0]
    with pytest.raises(PipelineError, match=r"expected exactly \['other_lib0.c'"):
        read_mlf(mlf, "other")
