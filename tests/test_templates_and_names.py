"""Templates: missing files, runtime errors and stale outputs; names that are hard for C and for SCons
(issue 11, items 6-8). Fast: the library functions the sketch and images stages call."""
import os
import shutil

import pytest

from codegen.emit import sketch
from codegen.emit.bin2c import _printable, c_string
from codegen.errors import PipelineError
from helpers import ROOT

CONTEXT = {"classes": ["random", "target"], "baud": 115200, "board": {}}


def _copy_templates(tmp_path):
    tpl = tmp_path / "tpl"
    shutil.copytree(os.path.join(ROOT, "templates", "sketch"), tpl)
    return tpl


def test_a_template_removed_from_templates_leaves_no_stale_file(tmp_path, fake_sketch_inputs):
    tpl = _copy_templates(tmp_path)
    out = tmp_path / "out" / "demo"
    sketch.render(str(tpl), str(out), "demo", *fake_sketch_inputs, CONTEXT)
    assert (out / "src" / "model.h").is_file()
    (tpl / "src" / "model.h.j2").unlink()
    sketch.render(str(tpl), str(out), "demo", *fake_sketch_inputs, CONTEXT)
    # Before, the model.h of the earlier render stayed and the host check compiled it as if it were current.
    assert not (out / "src" / "model.h").exists()
    assert (out / "src" / "model.c").is_file() and (out / "demo.ino").is_file()


@pytest.mark.parametrize("body,needle", [
    ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ("{{ 'abc' % 5 }}", "the template failed: TypeError"),
    ("{% include 'nowhere.h.j2' %}", "includes 'nowhere.h.j2'"),
    ("{{ no_such_thing }}", "'no_such_thing' is undefined"),
])
def test_template_errors_name_the_file_and_line(tmp_path, fake_sketch_inputs, body, needle):
    tpl = _copy_templates(tmp_path)
    ino = tpl / "sketch.ino.j2"
    ino.write_text("// line 1\n// line 2\n" + body + "\n" + ino.read_text())
    with pytest.raises(PipelineError) as err:
        sketch.render(str(tpl), str(tmp_path / "out"), "demo", *fake_sketch_inputs, CONTEXT)
    assert f"{ino}:3:" in str(err.value) and needle in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "dollar $HOME", "tri??graph", "caf\u00e9",
                                  "bad\udcffbyte"])
def test_any_name_is_a_valid_c_string_with_the_printed_text(name):
    import subprocess

    text = _printable(name)
    literal = c_string(text)
    assert "\udcff" not in text                               # a non-UTF-8 byte becomes U+FFFD, as printed
    # The C compiler's idea of the literal is exactly the text's UTF-8 bytes (no traceback, no mangling).
    prog = f'#include <stdio.h>\nint main(void){{fputs({literal}, stdout);return 0;}}\n'
    exe = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"cstr_{os.getpid()}")
    proc = subprocess.run(["gcc", "-x", "c", "-o", exe, "-"], input=prog, text=True, capture_output=True)
    if proc.returncode != 0 and "not found" in proc.stderr:
        pytest.skip("no gcc")
    assert proc.returncode == 0, proc.stderr
    try:
        assert subprocess.run([exe], capture_output=True).stdout == text.encode("utf-8")
    finally:
        os.remove(exe)


def _odd_data(root):
    """Class folders and files whose names SCons, C and UTF-8 find hard."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(3)
    names = {b"ca$HOME": [b"im$1.png", b"im${X}.png", b"plain.png"],
             b'q"uo\\te': [b"a'b.png", b"c d.png", b"e\xff.png"]}           # \xff: not UTF-8
    for cls, files in names.items():
        os.makedirs(os.path.join(os.fsencode(root), cls))
        for f in files:
            Image.fromarray(rng.randint(0, 255, (12, 12, 3), dtype=np.uint8)).save(
                os.path.join(os.fsencode(root), cls, f), format="PNG")
    return sorted(os.fsdecode(c) for c in names)


def test_odd_names_reach_the_dataset_unsubstituted(tmp_path):
    from helpers import run_scons

    data = tmp_path / "da$ta"
    classes = _odd_data(data)
    build = tmp_path / "b$uild"
    proc = run_scons(build, "dataset", DATA=str(data))
    assert "Traceback" not in proc.stderr
    held = sorted(os.listdir(build / "nano33ble" / "heldout"))
    assert held == sorted(f"{c}.png" for c in classes)
    assert "Packing dataset" in proc.stdout
    assert "Packing dataset" not in run_scons(build, "dataset", DATA=str(data)).stdout      # then a no-op


@pytest.mark.heavy
def test_odd_names_through_the_host_check(tmp_path):
    """The printed titles and labels (C strings) equal expected.json's, for names SCons and C find hard."""
    from helpers import run_scons

    data = tmp_path / "da$ta"
    _odd_data(data)
    odd_input = tmp_path / 'in"put\\$x\xe9.png'
    shutil.copy(os.path.join(os.fsencode(data), b"ca$HOME", b"plain.png"), odd_input)
    build = tmp_path / "b"
    proc = run_scons(build, "check", DATA=str(data))
    assert "same decisions as TFLite, bytes identical" in proc.stdout, proc.stdout[-2000:]
    proc = run_scons(build, "check", DATA=str(data), INPUTS=str(odd_input))
    assert "same decisions as TFLite, bytes identical" in proc.stdout, proc.stdout[-2000:]
