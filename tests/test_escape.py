"""Issue 19, "a user string never becomes code": every escaping function of codegen.escape round-trips every
hostile string (tests/hostile.py: seeded, with every atom alone) through the real reader of its language: gcc
and g++ (trigraphs on), ast.literal_eval, json, PyYAML, the profiles' configparser, sh, cmake, an Arduino-style
library.properties reader. Plus the template environment's refusal of raw user text. One compiler or
interpreter run per language for all strings: a few seconds."""
import ast
import json
import os
import re
import shutil
import subprocess

import pytest

from codegen import escape
from codegen.emit import sketch, templating
from codegen.errors import PipelineError
from helpers import ROOT, write_fake_sketch_inputs
from hostile import ATOMS, hostile_strings

STRINGS = hostile_strings(300, seed=19)


def _utf8(s):
    """The bytes a string stands for (what a C literal of it must hold)."""
    return escape._utf8(s)


def _need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, timeout=120, **kwargs)
    assert proc.returncode == 0, (proc.stderr or b"")[-3000:]
    return proc


# ------------------------------------------------------------------------------------------------------- C, C++
@pytest.mark.parametrize("compiler,flags", [("gcc", ["-x", "c", "-std=c99"]),          # ISO C: trigraphs on
                                            ("g++", ["-x", "c++", "-std=c++11"]),
                                            ("g++", ["-x", "c++", "-std=gnu++11", "-include", "Arduino.h"])])
def test_c_string_literal_holds_exactly_the_bytes(tmp_path, compiler, flags):
    _need(compiler)
    lines = ["#include <stdio.h>", "static const struct { const char *p; unsigned long n; } s[] = {"]
    for text in STRINGS:
        lit = escape.c_string(text)
        assert "\n" not in lit and all(0x20 <= ord(c) < 0x7f for c in lit), lit     # one ASCII line
        lines.append(f"  {{{lit}, sizeof({lit}) - 1}},")
    lines += ["};", "int main(void) {", "  unsigned i;",
              "  for (i = 0; i < sizeof s / sizeof s[0]; i++) { fwrite(s[i].p, 1, s[i].n, stdout); putchar(0xff); }",
              "  return 0;", "}"]
    src = tmp_path / "lit.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "lit"
    host = os.path.join(ROOT, "sketches", "host")
    if "Arduino.h" in flags:        # the way the sketch is compiled: the literals are valid there too
        _run([compiler, *flags, f"-I{host}", "-Wall", "-Werror", "-fsyntax-only", str(src)])
        return
    _run([compiler, *flags, "-Wall", "-Werror", "-o", str(exe), str(src)])
    # 0xff never occurs in UTF-8 (a surrogate-escaped byte may be one, but the order is fixed): one stream.
    assert _run([str(exe)]).stdout == b"".join(_utf8(t) + b"\xff" for t in STRINGS)


def test_c_string_octal_escapes_never_swallow_the_next_digit():
    # "\xff" followed by "1": as a hex escape \xff1 would be one (invalid) character; \3771 is \377 then '1'.
    assert escape.c_string(b"\xff1") == '"\\3771"'
    assert escape.c_string("\x001") == '"\\0001"'


@pytest.mark.parametrize("compiler,std", [("gcc", "-std=c99"), ("g++", "-std=c++11")])
def test_c_comment_cannot_end_or_continue_a_comment(tmp_path, compiler, std):
    _need(compiler)
    body = ["int main(void) {", "  int n = 0;"]
    for text in STRINGS:
        c = escape.c_comment(text)
        body += [f"  /* {c} */ n++;", f"  // {c}", "  n++;"]
    body += [f"  return n == {2 * len(STRINGS)} ? 0 : 1;", "}"]
    src = tmp_path / ("cm.c" if compiler == "gcc" else "cm.cpp")
    src.write_text("\n".join(body) + "\n")
    exe = tmp_path / "cm"
    _run([compiler, std, "-Wall", "-Werror", "-Wno-comment", "-o", str(exe), str(src)])
    _run([str(exe)])            # every n++ ran: no comment swallowed a line or closed early


def test_c_identifiers_are_valid_distinct_and_compile(tmp_path):
    _need("g++")
    taken = set()
    names = [escape.c_identifier(t, taken) for t in STRINGS + STRINGS]      # duplicates must get new names
    assert len(set(names)) == len(names)
    for n in names:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", n) and "__" not in n and n not in escape.C_KEYWORDS, n
    src = tmp_path / "ids.cpp"
    src.write_text("".join(f"static int {n} = 0;\n" for n in names) +
                   "int main(void) { return " + " + ".join(names[:50]) + "; }\n")
    _run(["g++", "-std=c++11", "-fsyntax-only", str(src)])


def test_require_c_identifier():
    assert escape.require_c_identifier("tvm_model", "SKETCH") == "tvm_model"
    assert escape.require_c_identifier("default", "model_name") == "default"      # a part of tvmgen_default_run
    for bad in ["", "1a", "a-b", "caf\u00e9", "a b", "x\n", "a;b"]:
        with pytest.raises(ValueError, match="C identifier"):
            escape.require_c_identifier(bad, "SKETCH")


# -------------------------------------------------------------------------------------------- Python, JSON, YAML
def test_py_string_round_trips_and_is_ascii():
    for text in STRINGS:
        lit = escape.py_string(text)
        assert lit.isascii() and "\n" not in lit
        assert ast.literal_eval(lit) == text


def test_json_text_round_trips_and_is_one_ascii_line():
    for text in STRINGS:
        out = escape.json_text(text)
        assert out.isascii() and "\n" not in out
        assert json.loads(out) == text


def test_yaml_scalar_round_trips():
    yaml = pytest.importorskip("yaml")
    for text in STRINGS + ["arduino:avr:mega", "yes", "No", "null", "1:20", "0x1f", "1e5", "1_000", ".inf",
                           "nano33ble", "arduino:mbed_nano", "=", "~", "-", "- x"]:
        out = escape.yaml_scalar(text)
        assert out.isascii() and "\n" not in out
        want = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)   # YAML has no lone surrogates
        assert yaml.safe_load(f"key: {out}\n") == {"key": want}, out


# ----------------------------------------------------------------------------------------------- ini (profiles)
def test_ini_value_round_trips_through_the_profiles_reader_or_is_refused():
    from codegen import profiles

    kept = 0
    for text in STRINGS:
        try:
            value = escape.ini_value(text)
        except ValueError:
            continue
        kept += 1
        parser = profiles._parser()
        parser.read_string(f"[env:x]\nLABELS = {value}\n")
        assert parser["env:x"]["LABELS"] == text
    assert kept > 20                # not a function that refuses everything


def test_scons_save_keeps_a_value_exactly_or_refuses_it(tmp_path):
    """`scons save` writes tinyml.ini: each hostile value is read back identical, or refused with one
    ConfigError, and the file is then unchanged."""
    from codegen import profiles
    from codegen.errors import ConfigError

    path = tmp_path / "tinyml.ini"
    for i, text in enumerate(STRINGS[:150]):
        if "\x00" in text or escape._has_lone_surrogate(text):
            continue        # a command line cannot carry NUL or undecodable bytes into ARGUMENTS as such
        before = path.read_bytes() if path.exists() else None
        try:
            profiles.save(str(path), {"ENV": f"p{i}", "LABELS": text})
        except ConfigError as e:
            assert "\n" not in str(e), str(e)                  # one error line
            assert (path.read_bytes() if path.exists() else None) == before
            continue
        got = profiles.load(str(path)).sections[f"env:p{i}"]["LABELS"][0]
        assert got == text.strip(), (text, got)


# ------------------------------------------------------------------------------------------------------- shell
def test_shell_join_gives_exactly_the_words_to_sh(tmp_path):
    _need("sh")
    argv = [t for t in STRINGS if "\x00" not in t]
    cmd = "printf '%s\\0' " + escape.shell_join(argv)
    out = _run(["sh", "-c", cmd.encode("utf-8", "surrogateescape")]).stdout
    assert out.split(b"\0")[:-1] == [_utf8(a) for a in argv]
    import shlex
    assert shlex.split(escape.shell_join(argv)) == argv


# ------------------------------------------------------------------------------------------------------- CMake
def test_cmake_string_evaluates_to_the_text(tmp_path):
    _need("cmake")
    cases = [t for t in STRINGS if "\x00" not in t]
    script = []
    for i, text in enumerate(cases):
        script.append(f'file(WRITE "${{CMAKE_CURRENT_LIST_DIR}}/o{i}" {escape.cmake_string(text)})')
    (tmp_path / "s.cmake").write_bytes("\n".join(script).encode("utf-8", "surrogateescape") + b"\n")
    _run(["cmake", "-P", str(tmp_path / "s.cmake")])
    for i, text in enumerate(cases):
        assert (tmp_path / f"o{i}").read_bytes() == _utf8(text), text
    with pytest.raises(ValueError, match="NUL"):
        escape.cmake_string("a\0b")


# -------------------------------------------------------------------------------------------- library.properties
def _read_properties(text):
    """Arduino's reader (go-properties-orderedmap / the IDE's PreferencesMap): lines, key=value, trimmed."""
    out = {}
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def test_properties_value_is_one_field():
    from codegen.emit.arduino_library import properties_text

    for text in STRINGS:
        value = escape.properties_value(text)
        if not value:
            assert not re.sub(f"[\\s\\x00-\\x1f\\x7f{escape.LINE_BREAKS}]", "", text)   # nothing but spaces
            continue
        fields = {"name": "x_inferencing", "version": "1", "author": "a", "maintainer": "m", "sentence": value,
                  "paragraph": "p", "category": "Data Processing", "url": "u", "architectures": "*"}
        assert _read_properties(properties_text(fields)) == {**fields, "sentence": value}
        clean = text.strip()
        if not re.search(f"[\\x00-\\x1f\\x7f{escape.LINE_BREAKS}\\ud800-\\udfff]", text):
            assert value == clean


# ----------------------------------------------------------------------------------------------- the templates
def test_raw_user_text_in_a_template_is_refused_with_its_line(tmp_path):
    tpl = tmp_path / "tpl"
    shutil.copytree(os.path.join(ROOT, "templates", "sketch"), tpl)
    ino = tpl / "sketch.ino.j2"
    original = ino.read_text()
    fake = write_fake_sketch_inputs(tmp_path, labels=("cat", "dog"))     # harmless labels: refused all the same
    for body in ["// {{ images.labels | join(', ') }}", "// {{ images.labels[0] }}", "// {{ image_title }}",
                 "// {{ images.labels[0] | upper }}"]:
        ino.write_text("// line 1\n" + body.replace("image_title", "images.images[0].title") + "\n" + original)
        with pytest.raises(PipelineError) as err:
            sketch.render(str(tpl), str(tmp_path / "out"), "demo", *fake, {"baud": 9600, "board": {}})
        assert f"{ino}:2:" in str(err.value) and "escaping filter" in str(err.value), str(err.value)
    # Not user text, but a string that could end a comment: refused too.
    env_dir = tmp_path / "e"
    env_dir.mkdir()
    (env_dir / "t.j2").write_text("/* {{ x }} */")
    with pytest.raises(templating.UnescapedText):
        templating.environment(str(env_dir)).get_template("t.j2").render(x="a */ b")
    assert templating.environment(str(env_dir)).get_template("t.j2").render(x="uint8 [1, 2]") == "/* uint8 [1, 2] */"


def test_stock_templates_render_hostile_labels_only_inside_literals(tmp_path):
    """Every hostile string as a label of the stock sketch: the .ino's code (comments and string literals
    removed) is the same as with plain labels, apart from the case lines, and it compiles."""
    def code_of(text):
        text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)            # string literals (escapes included)
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        return re.sub(r"//[^\n]*", "", text)

    labels = [t for t in STRINGS[:120]]
    plain = [f"l{i}" for i in range(len(labels))]
    outs = {}
    for name, ls in (("hostile", labels), ("plain", plain)):
        fake = write_fake_sketch_inputs(tmp_path / name, labels=ls) if (tmp_path / name).mkdir() is None else None
        sketch.render(os.path.join(ROOT, "templates", "sketch"), str(tmp_path / name / "out"), "demo", *fake,
                      {"baud": 9600, "board": {"title": "*/ evil \u2028 ??/", "usb_cdc": True}})
        outs[name] = (tmp_path / name / "out" / "demo.ino").read_text()
    assert code_of(outs["hostile"]) == code_of(outs["plain"])
    for line in outs["hostile"].splitlines():
        assert line.isascii(), line


def test_labels_file_with_a_bom(tmp_path):
    from codegen.emit import bin2c

    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffcat\r\ndog\r\n".encode())
    assert bin2c.class_labels_for(2, str(path)) == ["cat", "dog"]


def test_hostile_generator_is_seeded_and_covers_every_atom():
    assert hostile_strings(50, seed=1) == hostile_strings(50, seed=1)
    assert set(ATOMS) <= set(STRINGS)
    assert any(len(s) > 1000 for s in hostile_strings(2000, seed=3))


# ------------------------------------------------------------------------------- ssh command lines (Linux boards)
def test_remote_command_line_carries_hostile_arguments_exactly(tmp_path):
    """run.py's arguments (RUN_ARGS=, sample names) reach the board's shell as words, never as code: a stand-in
    ssh runs the remote command with the local sh; the stand-in Python prints the words it got."""
    from codegen.linux import remote

    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text('#!/bin/sh\nfor last in "$@"; do :; done\nexec sh -c "$last"\n')
    printer = tmp_path / "py thon's"
    printer.write_text("#!/bin/sh\nprintf '%s\\0' \"$@\"\n")
    for f in (fake_ssh, printer):
        f.chmod(0o755)
    args = [t for t in STRINGS[:100] if "\x00" not in t and not escape._has_lone_surrogate(t)]
    marker = tmp_path / "pwned"
    args.append(f"$(touch {marker})")
    proc = remote.run_remote(remote.Remote("board", ssh=str(fake_ssh)), str(tmp_path), str(printer), args)
    # Remote.run reads text with universal newlines: a \r arrives as \n (the reading, not the shell).
    assert proc.stdout.split("\0")[:-1] == ["run.py", *(a.replace("\r\n", "\n").replace("\r", "\n") for a in args)]
    assert not marker.exists()


@pytest.mark.parametrize("value,ok", [("tinyml/mega", True), ("~/models/x-1.2", True), ("~", True),
                                      ("/opt/t+@x", True), ("a b", False), ("x;touch y", False), ("$(id)", False),
                                      ("`id`", False), ("x'y", False), ("~root/x", False), ("a\u2028b", False)])
def test_remote_dir_the_boards_shell_would_interpret_is_refused(value, ok):
    from codegen.errors import ConfigError
    from codegen.linux import settings

    raw = {k: d for k, (d, _) in settings.VARIABLES.items()}
    raw["REMOTE_DIR"] = value
    if ok:
        assert settings.parse(raw)["remote_dir"] == value
    else:
        with pytest.raises(ConfigError, match="REMOTE_DIR=.*shell would interpret"):
            settings.parse(raw)


@pytest.mark.parametrize("name", ["caf\u00e9", "x\u00b2", "a-b", "1x", "tvm model", "x\ny"])
def test_sketch_name_must_be_an_ascii_identifier(name):
    from codegen import config
    from codegen.errors import ConfigError

    with pytest.raises(ConfigError, match="SKETCH=.*C-identifier-like"):
        config.parse({"SKETCH": name})


def test_printed_names_are_one_line_without_terminal_controls():
    """A label or input name is printed by the sketch and echoed by scons: no line break of any kind (the
    results parser splits with str.splitlines()), no C0/C1 control (U+009B is CSI), never the ': ' separator."""
    from codegen.emit.bin2c import _printable

    for text in STRINGS:
        p = _printable(text)
        assert p.splitlines() in ([p], []) and not re.search("[\x00-\x1f\x7f-\x9f]", p) and ": " not in p, repr(p)


def test_every_jinja_environment_is_the_checking_one():
    """Only codegen/emit/templating.py builds a Jinja environment: a second one would have no escaping filters
    and no refusal of raw user text."""
    found = []
    for folder in ("codegen", "site_scons", "bench"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    with open(path, encoding="utf-8") as fh:
                        text = fh.read()
                    if re.search(r"jinja2\.(Environment|Template)\s*\(|from jinja2 import|\.from_string\s*\(", text):
                        found.append(os.path.relpath(path, ROOT))
    assert found == [os.path.join("codegen", "emit", "templating.py")]


def _code_of(text):
    """C/C++ text without its string literals' contents and its comments: what the compiler treats as code."""
    text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_tflm_templates_keep_the_model_file_and_op_names_out_of_the_code():
    """templates/tflm write the MODEL= file name and the model's op names (a custom op's name comes from the
    file) into comments: hostile ones change no code."""
    from codegen.tflm import model

    def render(model_file, ops):
        ctx = {"model_file": escape.UserText(model_file), "model_size": 4, "model_sha256": "ab" * 32,
               "model_bytes": templating.Escaped("  0x01, 0x02, 0x03, 0x04,"), "ops": escape.user_text(ops),
               "resolver_calls": ["AddFullyConnected"], "arena": model.arena_record(100, "test"),
               "input": {"shape": [1, 4], "dtype": "int8", "size_bytes": 4},
               "output": {"shape": [1, 2], "dtype": "int8", "size_bytes": 2}}
        return model.render_templates(model.templates_dir(), ctx)

    plain = render("model.tflite", ["FULLY_CONNECTED", "CUSTOM(x)"])
    for text in STRINGS[:60]:
        hostile = render(text, ["FULLY_CONNECTED", f"CUSTOM({text})"])
        assert sorted(hostile) == sorted(plain)
        for name in plain:
            assert _code_of(hostile[name].decode()) == _code_of(plain[name].decode()), (name, text)


def test_sketch_yaml_and_library_properties_hold_hostile_board_and_label_text():
    """Board entries (boards.json is anyone's to extend) reach sketch.yaml; labels and the board's title reach
    library.properties: each file keeps its structure and the values come back (YAML exactly)."""
    yaml = pytest.importorskip("yaml")
    from codegen.emit.arduino_library import library_fields, properties_text

    meta = {"inputs": [{"shape": [1, 4], "dtype": "int8"}], "outputs": [{"shape": [1, 2], "dtype": "int8",
                                                                        "size_bytes": 2}]}
    for i, text in enumerate(STRINGS[:120]):
        if escape._has_lone_surrogate(text):
            continue
        board = {"fqbn": text or "x", "core": text or "c", "name": f"b{i}{text}", "title": text}
        (name, content), = sketch.project_file(board).items()
        doc = yaml.safe_load(content)
        assert doc["default_fqbn"] == board["fqbn"]
        assert list(doc["profiles"]) == [board["name"]]
        profile = doc["profiles"][board["name"]]
        assert profile["fqbn"] == board["fqbn"] and profile["platforms"] == [{"platform": board["core"]}]
        assert profile.get("notes", "") == (text if text else "")
        fields = library_fields(board, [text, "b"], meta)
        props = _read_properties(properties_text({"name": "x_inferencing", **fields}))
        assert set(props) == {"name", *fields}                  # no field injected by a line break


def test_external_commands_are_argument_lists_never_shell_strings():
    from codegen import proc

    for bad in ("true", b"true", "echo $(id)"):
        with pytest.raises(TypeError, match="argument list"):
            proc.run(bad)
        with pytest.raises(TypeError, match="argument list"):
            proc.popen(bad)
    with pytest.raises(TypeError, match="argument list"):
        proc.run(["true"], shell=True)
    assert proc.run(["true"]).returncode == 0


def test_plots_draw_hostile_class_names_and_board_titles_as_text(tmp_path):
    """Class names (DATA= folders) label the confusion matrix: '$...$' is not mathtext (a '$\\frac$' folder
    crashed the report stage with a parse error), a non-UTF-8 byte is not handed to the font renderer."""
    import numpy as np

    from codegen import plots

    names = ["$\\frac$", "a$x$b", "\udcff", "\x00\u2028\x9b", "*/", "\ufeff\u202e"] + STRINGS[66:72]   # folder-sized
    fig = plots.confusion_figure([("float", np.eye(len(names), dtype=int))], names)
    plots.save_png(fig, str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").stat().st_size > 0
    for text in STRINGS:
        shown = escape.display_text(text)
        assert shown.splitlines() in ([shown], []) and not escape._has_lone_surrogate(shown)
        assert not re.search("[\x00-\x1f\x7f-\x9f]", shown)


def test_tflm_sketch_refuses_raw_user_text_like_the_tvm_one(tmp_path):
    """The TFLM backend renders the same .ino with its own context: the labels are marked there too."""
    from tflite_helpers import SHARED_MODELS, SHARED_TFLM_REF

    from codegen.emit import bin2c
    from codegen.tflm import model, sketch as tflm_sketch
    from codegen.tflm.library import TflmError

    ad01 = os.path.join(SHARED_MODELS, "ad01_int8.tflite")
    for p in (ad01, SHARED_TFLM_REF):
        if not os.path.exists(p):
            pytest.skip(f"{p} is absent (../shared comes with the project's CI)")
    imgs = [str(tmp_path / n) for n in ("images.c", "images.h", "images.json")]
    bin2c.embed([], ad01, *imgs)
    arena = tmp_path / "arena.json"
    arena.write_text(json.dumps(model.arena_record(5000, "test")))
    tpl = tmp_path / "tpl"
    shutil.copytree(os.path.join(ROOT, "templates", "sketch"), tpl)
    ino = tpl / "sketch.ino.j2"
    ino.write_text("// {{ images.labels[0] }}\n" + ino.read_text())
    with pytest.raises(TflmError, match=f"{ino}:1: .*escaping filter"):
        tflm_sketch.render(str(tpl), str(tmp_path / "sk"), "sk", ad01, SHARED_TFLM_REF, str(arena), *imgs,
                           {"board": {}, "classes": [], "baud": 115200})
