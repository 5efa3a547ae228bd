"""Malformed and hostile files (issue 19): a model, Keras archive, labels file, profile or image folder from someone
else never crashes, hangs or exhausts the build. Each run ends in success or exactly one `error:` line (in-process: a
PipelineError whose message is one line), within a time limit, with no traceback and nothing written outside the
build folder.

Two kinds of tests: the cases seen in the issue (each failed on the code before the fix), and a seeded fuzzer that
throws generated files of every kind at the stages that read them -- in-process where that is much cheaper (the
frontend, the embed stage, the SConstruct-time config and profile readers, the dataset stage), plus a few real
`scons` runs for what happens while the SConstruct is read. The fast loop runs a small budget; `heavy` a bigger one.
TINYML_FUZZ_SEED=<n> reruns another seed; every failure names its seed and case.
"""
import contextlib
import io
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from helpers import ROOT, scons_exe
from hand_models import T, flatbuffer

from codegen import config, profiles
from codegen.emit import bin2c
from codegen.errors import PipelineError
from codegen.frontend import reader
from codegen.modelio import usermodel
from codegen.modelio.quantio import model_io
from codegen.stages import dataset

SEED = int(os.environ.get("TINYML_FUZZ_SEED", "19"))
CASE_SECONDS = 10          # one stage call on one generated file; a hang is a failure, not a stuck suite


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so that no `except Exception` in the code under test can swallow it."""


@contextlib.contextmanager
def time_limit(seconds, what):
    def alarm(*_):
        raise Hang(f"{what}: still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(what, fn, *args, **kwargs):
    """"ok" or the one-line error message; anything else (another exception, a hang, a multi-line message) fails
    the test naming `what` (the seed and case, to reproduce it)."""
    try:
        with time_limit(CASE_SECONDS, what):
            fn(*args, **kwargs)
    except PipelineError as e:
        message = str(e)
        assert message.strip() and "\n" not in message, f"{what}: error message is not one line: {message!r}"
        assert "Traceback" not in message, what
        return message
    except Hang as e:
        pytest.fail(str(e))
    except BaseException as e:  # noqa: BLE001 - the point: nothing but a PipelineError may escape
        import traceback

        pytest.fail(f"{what}: {type(e).__name__} escaped instead of one error line:\n{traceback.format_exc()[-3000:]}")
    return "ok"


def tree(folder):
    """Every path under `folder` (files and folders, not following links), to see what a stage wrote."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        found.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return found


# ---------------------------------------------------------------------------------------------------------------
# Generators: a small valid file of each kind, and mutations of it


def conv_model(in_shape=(1, 4, 4, 2), out_shape=(1, 2, 2, 3)):
    """A full-int8 CONV_2D model the frontend accepts (hand-built flatbuffer, no TensorFlow)."""
    w = (np.arange(3 * 3 * 3 * 2).reshape(3, 3, 3, 2) % 7 - 3).astype(np.int8)
    tensors = [T(in_shape, "int8", (0.05, -3)), T((3, 3, 3, 2), "int8", (0.02, 0), data=w),
               T((3,), "int32", (0.001, 0), data=[1, -2, 3]), T(out_shape, "int8", (0.1, 2))]
    options = {"Padding": 1, "StrideW": 1, "StrideH": 1, "DilationWFactor": 1, "DilationHFactor": 1}
    return flatbuffer(tensors, [("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", options)], [0], [3])


INT32_VALUES = (0, -1, -2, 1, 2, 3, 7, 255, 256, 65535, 60000, 2**31 - 1, -2**31, 2**24)
# Conv2DOptions fields (schema.fbs): vtable slot, struct format
CONV_OPTIONS = ((4, "<b"), (6, "<i"), (8, "<i"), (10, "<b"), (12, "<i"), (14, "<i"))


def _slot(table, slot):
    o = table._tab.Offset(slot)
    return table._tab.Pos + o if o else None


def _vector(table, slot):
    o = table._tab.Offset(slot)
    return (table._tab.Vector(o), table._tab.VectorLen(o)) if o else (None, 0)


def _int32(rng):
    return rng.choice(INT32_VALUES) if rng.random() < 0.7 else rng.randint(-2**31, 2**31 - 1)


def mutate_model(base, rng):
    """(what was done, mutated bytes): bit flips, truncation, or one field changed through the flatbuffer schema
    (tensor shapes, types, buffer indices, quantization, op tensor indices, opcode index, op options, graph I/O)."""
    import tflite

    buf = bytearray(base)
    kind = rng.choice(("flip", "flip", "truncate", "shape", "shape", "huge", "type", "buffer", "quant", "op_io",
                       "opcode", "options", "options", "graph_io", "signature"))
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return kind, bytes(buf)
    if kind == "truncate":
        return kind, bytes(buf[:rng.randrange(len(buf))])
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    tensor = graph.Tensors(rng.randrange(graph.TensorsLength()))
    op = graph.Operators(0)

    def put_int32(pos, value):
        struct.pack_into("<i", buf, pos, value)

    if kind in ("shape", "huge", "signature"):
        start, n = _vector(tensor, 18 if kind == "signature" else 4)
        if n:
            k = rng.randrange(n)
            value = rng.choice((60000, 2**31 - 1, 2**20, 65536)) if kind == "huge" else _int32(rng)
            put_int32(start + 4 * k, value)
            return f"{kind}[{k}]={value}", bytes(buf)
    elif kind == "type":
        pos = _slot(tensor, 6)
        if pos is not None:
            buf[pos] = rng.randrange(256)
            return f"type={buf[pos]}", bytes(buf)
    elif kind == "buffer":
        pos = _slot(tensor, 8)
        if pos is not None:
            value = _int32(rng)
            put_int32(pos, value)
            return f"buffer={value}", bytes(buf)
    elif kind == "quant":
        q = tensor.Quantization()
        if q is not None:
            start, n = _vector(q, rng.choice((8, 10)))
            if n:
                struct.pack_into("<i", buf, start, _int32(rng))
                return "quantization", bytes(buf)
    elif kind == "op_io":
        start, n = _vector(op, rng.choice((6, 8)))
        if n:
            k, value = rng.randrange(n), _int32(rng)
            put_int32(start + 4 * k, value)
            return f"op tensor[{k}]={value}", bytes(buf)
    elif kind == "opcode":
        pos = _slot(op, 4)
        if pos is not None:
            value = _int32(rng)
            struct.pack_into("<I", buf, pos, value & 0xFFFFFFFF)
            return f"opcode_index={value}", bytes(buf)
    elif kind == "options":
        o = op._tab.Offset(12)
        if o:
            table = op._tab.Indirect(op._tab.Pos + o)
            vtable = table - struct.unpack_from("<i", buf, table)[0]
            slot, fmt = rng.choice(CONV_OPTIONS)
            if slot < struct.unpack_from("<H", buf, vtable)[0]:
                field = struct.unpack_from("<H", buf, vtable + slot)[0]
                if field:
                    value = _int32(rng) if fmt == "<i" else rng.randrange(-128, 128)
                    struct.pack_into(fmt, buf, table + field, value)
                    return f"option slot {slot}={value}", bytes(buf)
    elif kind == "graph_io":
        start, n = _vector(graph, rng.choice((6, 8)))
        if n:
            value = _int32(rng)
            put_int32(start, value)
            return f"graph io={value}", bytes(buf)
    # the field is absent in this file (a default value): flip instead
    buf[rng.randrange(len(buf))] ^= 0xFF
    return f"{kind} (absent) -> flip", bytes(buf)


def keras_config(shape=(1, 32, 32, 3)):
    return {"module": "keras", "class_name": "Functional",
            "config": {"name": "m", "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": list(shape), "dtype": "float32", "name": "in"}},
                {"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": [3, 3], "name": "c"}}],
                "input_layers": [["in", 0, 0]], "output_layers": [["c", 0, 0]]},
            "build_config": {"input_shape": list(shape)}}


def write_keras(path, config_bytes=None, members=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if config_bytes is not None:
            z.writestr("config.json", config_bytes)
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        for name, data in (members or {}).items():
            z.writestr(name, data)
    return path


def _odd_json(rng):
    return rng.choice((None, True, False, 0, -1, 1.5, 10**30, "x", "", [], {}, [1, 2, 3], {"a": 1}, [None] * 4,
                       "a" * 5000, [[[[[[]]]]]], {"config": None}, {"layers": 7}, [1, "2", None, 3.5]))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def mutate_keras(folder, rng, case):
    """(what, path) of a generated .keras: a wrong JSON type at any level of a valid config, a deleted key, odd
    shapes, missing members, a decompression bomb (declared sizes), or damaged archive bytes."""
    path = os.path.join(folder, f"k{case}.keras")
    kind = rng.choice(("type", "type", "type", "delete", "shape", "missing", "bomb", "flip", "not_json", "deep"))
    cfg = keras_config()
    if kind in ("type", "delete"):
        where = rng.choice(list(_paths(cfg)))
        if not where:
            cfg = _odd_json(rng)
        else:
            parent = cfg
            for k in where[:-1]:
                parent = parent[k]
            if kind == "delete" and isinstance(parent, dict):
                del parent[where[-1]]
            else:
                parent[where[-1]] = _odd_json(rng)
        return f"{kind} at {list(where)}", write_keras(path, json.dumps(cfg))
    if kind == "shape":
        shape = [rng.choice((None, 1, 0, -3, 60000, 2**40, 3, 1.5, "3", True)) for _ in range(rng.randint(0, 9))]
        return f"shape {shape}", write_keras(path, json.dumps(keras_config(shape)))
    if kind == "missing":
        return "no config.json", write_keras(path, None, {"model.weights.h5": b"\0" * 100})
    if kind == "bomb":
        write_keras(path, json.dumps(cfg), {"model.weights.h5": b"\0" * 1000})
        data = bytearray(open(path, "rb").read())
        # the central directory's uncompressed size of each member: 4 GiB - 1
        pos = data.find(b"PK\x01\x02")
        while pos >= 0:
            struct.pack_into("<I", data, pos + 24, 0xFFFFFFFF - rng.randrange(2**20))
            pos = data.find(b"PK\x01\x02", pos + 4)
        open(path, "wb").write(data)
        return "declared sizes of 4 GiB", path
    if kind == "flip":
        write_keras(path, json.dumps(cfg))
        data = bytearray(open(path, "rb").read())
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        open(path, "wb").write(data)
        return "flipped archive bytes", path
    if kind == "deep":
        return "deeply nested JSON", write_keras(path, "[" * 200000 + "]" * 200000)
    return "config.json not JSON", write_keras(path, bytes(rng.randrange(256) for _ in range(200)))


def random_text_file(rng, path, kind):
    """Bytes for a labels file or a profile of one of the hostile kinds."""
    if kind == "random":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
    elif kind == "huge_line":
        data = b"x" * (5 * 2**20)
    elif kind == "nul":
        data = b"a\0b\nc\0\n"
    else:
        raise ValueError(kind)
    with open(path, "wb") as f:
        f.write(data)
    return path


def special_file(path, kind):
    """A FIFO, a socket, a symlink loop, a link to a device or to a folder at `path` (what a hostile folder holds)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "device":
        os.symlink("/dev/zero", path)
    elif kind == "folder":
        os.symlink(os.path.dirname(path), path)
    elif kind == "broken":
        os.symlink(path + ".missing", path)
    else:
        raise ValueError(kind)
    return path


SPECIAL = ("fifo", "socket", "loop", "device", "folder", "broken")


@pytest.fixture()
def short_tmp():
    """A short temporary folder: a Unix socket's path must stay under 108 bytes."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="t19-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# The cases seen in the issue (each failed on the code before the fix)


def test_huge_declared_input_is_one_error_in_the_frontend_and_the_embed_stage(tmp_path):
    """Seen: an input declared 1x60000x60000x3 passed codegen, then the embed stage died with MemoryError
    (80.5 GiB) and a traceback."""
    model = tmp_path / "huge.tflite"
    model.write_bytes(conv_model((1, 60000, 60000, 3), (1, 59998, 59998, 3)))
    build = tmp_path / "build"
    for stage, call in (("frontend", lambda: reader.load(model)),
                        ("embed", lambda: bin2c.embed([], str(model), str(build / "images.c"), str(build / "images.h"),
                                                      str(build / "images.json")))):
        message = outcome(stage, call)
        assert "[1, 60000, 60000, 3]" in message and "64 MiB" in message and str(model) in message, message
    assert not build.exists()


def test_tensors_without_names_are_read_and_embedded(tmp_path):
    """Seen (the heavy model fuzzer, a flipped byte): a tensor without a name (the schema's name is optional) ended
    the embed stage in an AttributeError; the frontend and the stages name it by its index instead."""
    w = (np.arange(3 * 3 * 3 * 2).reshape(3, 3, 3, 2) % 7 - 3).astype(np.int8)
    tensors = [T((1, 4, 4, 2), "int8", (0.05, -3), named=False), T((3, 3, 3, 2), "int8", (0.02, 0), data=w, named=False),
               T((3,), "int32", (0.001, 0), data=[1, -2, 3], named=False), T((1, 2, 2, 3), "int8", (0.1, 2), named=False)]
    options = {"Padding": 1, "StrideW": 1, "StrideH": 1, "DilationWFactor": 1, "DilationHFactor": 1}
    model = tmp_path / "nameless.tflite"
    model.write_bytes(flatbuffer(tensors, [("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", options)], [0], [3]))
    m = reader.load(str(model))
    assert [t.name for t in m.tensors] == ["tensor0", "tensor1", "tensor2", "tensor3"]
    io = model_io(str(model))
    assert io["input"]["name"] == "tensor0" and io["output"]["name"] == "tensor3"
    build = tmp_path / "build"
    bin2c.embed([], str(model), str(build / "images.c"), str(build / "images.h"), str(build / "images.json"))
    assert (build / "images.c").is_file() and json.loads((build / "images.json").read_text())["images"]


def test_model_input_larger_than_the_boards_ram_is_refused_by_the_embed_stage(tmp_path):
    model = tmp_path / "big.tflite"
    model.write_bytes(conv_model((1, 100, 100, 2), (1, 98, 98, 3)))        # 20,000-byte input, 28,812-byte output
    out = [str(tmp_path / n) for n in ("images.c", "images.h", "images.json")]
    message = outcome("embed", bin2c.embed, [], str(model), *out, board={"title": "Arduino Uno", "ram_bytes": 2048})
    assert "20,000 bytes" in message and "2,048 bytes of RAM of Arduino Uno" in message
    assert outcome("embed", bin2c.embed, [], str(model), *out, board={"title": "x", "ram_bytes": 10**6}) == "ok"


def test_keras_config_that_is_not_an_object_is_a_config_error(tmp_path):
    """Seen: a .keras whose config.json is [1,2,3] crashed every scons start (AttributeError: 'list' object has
    no attribute 'get')."""
    path = write_keras(str(tmp_path / "m.keras"), "[1,2,3]")
    message = outcome("inspect", usermodel.inspect, path)
    assert message.startswith(f"MODEL={path!r} is not a readable Keras model") and "list" in message


def test_keras_config_larger_than_the_cap_is_not_read(tmp_path):
    """Seen: a 4 MB .keras whose config inflates to 4 GiB was read whole into memory. Here a config of 17 MiB
    (a valid JSON padded with spaces: 17 KB compressed) is refused from its declared size, before reading it."""
    padded = json.dumps(keras_config()) + " " * (17 * 2**20)
    path = write_keras(str(tmp_path / "m.keras"), padded)
    assert os.path.getsize(path) < 100_000
    message = outcome("inspect", usermodel.inspect, path)
    assert "config.json is" in message and f"{usermodel.KERAS_CONFIG_MAX_BYTES:,} bytes allowed" in message


def test_keras_archive_declaring_gigabytes_is_refused(tmp_path, monkeypatch):
    path = write_keras(str(tmp_path / "m.keras"), json.dumps(keras_config()), {"model.weights.h5": b"\0" * 4096})
    monkeypatch.setattr(usermodel, "KERAS_MAX_UNPACKED_BYTES", 4000)      # the same check, a smaller file
    message = outcome("inspect", usermodel.inspect, path)
    assert "'model.weights.h5': 4,096" in message and "4,000 bytes allowed" in message


def test_fifo_in_a_data_class_folder_is_skipped_with_a_warning(short_tmp):
    """Seen: a FIFO named pipe.png in a DATA= class folder made scons wait forever (SCons hashes the sources)."""
    from PIL import Image

    data = os.path.join(short_tmp, "data")
    for cls in ("a", "b"):
        os.makedirs(os.path.join(data, cls))
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(os.path.join(data, cls, f"{i}.png"))
    special_file(os.path.join(data, "a", "pipe.png"), "fifo")
    warnings = []
    with time_limit(CASE_SECONDS, "list_class_folder"):
        classes = dataset.list_class_folder(data, warn=warnings.append)
    assert sorted(map(os.path.basename, classes["a"])) == ["0.png", "1.png", "2.png"]
    assert len(warnings) == 1 and "pipe.png (a FIFO (named pipe))" in warnings[0]
    build = os.path.join(short_tmp, "build")
    heldout = {c: os.path.join(build, "heldout", f"{c}.png") for c in classes}
    assert outcome("pack", dataset.pack, classes, os.path.join(build, "d.npz"), heldout, 8, 3, 0) == "ok"


@pytest.mark.parametrize("value", ['--build-property "compiler.cpp.extra_flags=-O3', "-DX=\\", "'"])
def test_unbalanced_quote_in_arduino_flags_names_the_variable_and_value(value):
    """Seen: ValueError: No closing quotation and a traceback with no file:line."""
    message = outcome("parse", config.parse, {"ARDUINO_FLAGS": value})
    assert message.startswith(f"ARDUINO_FLAGS={value!r} cannot be split into arguments")


def test_unbalanced_quote_in_a_profile_names_the_file_and_line(tmp_path):
    ini = tmp_path / "tinyml.ini"
    ini.write_text('[env:x]\nEPOCHS = 2\nARDUINO_FLAGS = --build-property "a=b\n')
    message = outcome("resolve", lambda: profiles.resolve({"ENV": "x"}, str(ini)).parse())
    assert message.startswith(f"{profiles._shown(str(ini))}:3 [env:x]: ARDUINO_FLAGS='--build-property \"a=b'")


def test_profile_with_a_utf8_bom_is_read_like_without(tmp_path):
    """Seen: a profiles file saved with a UTF-8 BOM was refused quoting a line that looks valid in any editor."""
    ini = tmp_path / "tinyml.ini"
    ini.write_bytes("\ufeff[env:x]\nEPOCHS = 3\n".encode())
    resolved = profiles.resolve({"ENV": "x"}, str(ini))
    assert resolved.parse()["epochs"] == 3
    # `scons save` into it keeps it readable
    profiles.save(str(ini), {"ENV": "x", "SEED": "4"})
    assert profiles.resolve({"ENV": "x"}, str(ini)).parse()["seed"] == 4


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_files_as_model_inputs_labels_rep_data_or_profile_are_named(short_tmp, kind):
    """MODEL=, INPUTS=, LABELS=, REP_DATA= and tinyml.ini that are not regular files: one error naming what they
    are (a FIFO as MODEL= was a hang in the stages that read it), never a wait."""
    for variable, name in (("MODEL", "m.tflite"), ("INPUTS", "i.png"), ("LABELS", "l.txt"), ("WEIGHTS", "w.h5")):
        path = special_file(os.path.join(short_tmp, name), kind)
        message = outcome(variable, config.parse, {variable: path})
        assert path in message and ("is a " in message or "does not exist" in message), message
        os.remove(path)
    ini = special_file(os.path.join(short_tmp, "tinyml.ini"), kind)
    message = outcome("profiles", profiles.load, ini)
    assert message.startswith(f"cannot read {profiles._shown(ini)} (")


def test_npy_whose_header_claims_gigabytes_is_not_allocated(tmp_path):
    path = tmp_path / "x.npy"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float32))
    header["shape"] = (60000, 60000, 3)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    model = tmp_path / "m.tflite"
    model.write_bytes(conv_model())
    inp = {"dtype": "int8", "shape": [1, 4, 4, 2], "scale": 0.05, "zero_point": -3}
    message = outcome("load_input", bin2c.load_input, str(path), inp)
    assert str(path) in message and "[60000, 60000, 3]" in message


def test_every_external_step_has_a_time_limit(monkeypatch):
    from codegen import proc

    monkeypatch.setenv(proc.STEP_TIMEOUT_VARIABLE, "0.3")
    message = outcome("proc.run", proc.run, ["sleep", "5"])
    assert message.startswith("sleep did not finish within 0.3 s") and proc.STEP_TIMEOUT_VARIABLE in message
    assert proc.run(["true"]).returncode == 0


# ---------------------------------------------------------------------------------------------------------------
# Through scons itself: what happens while the SConstruct is read


def scons_start(tmp_path, *args, timeout=60, **variables):
    cmd = [scons_exe(), "-C", ROOT, f"--project-conf={tmp_path / 'none.ini'}", f"BUILD_DIR={tmp_path / 'b'}",
           *[f"{k}={v}" for k, v in variables.items()], *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    return proc, errors


def test_scons_start_with_hostile_model_files(tmp_path):
    bad_config = write_keras(str(tmp_path / "list.keras"), "[1,2,3]")
    fifo = special_file(str(tmp_path / "pipe.tflite"), "fifo")
    for model, needle in ((bad_config, "is not a readable Keras model"), (fifo, "is a FIFO (named pipe)")):
        proc, errors = scons_start(tmp_path, "-n", MODEL=model)
        assert proc.returncode == 2 and len(errors) == 1 and needle in errors[0], proc.stderr
    assert not (tmp_path / "b").exists()


def test_scons_start_with_bad_settings(tmp_path):
    proc, errors = scons_start(tmp_path, "-n", ARDUINO_FLAGS='"-O3')
    assert proc.returncode == 2 and errors == [
        "error: ARDUINO_FLAGS='\"-O3' cannot be split into arguments (No closing quotation); close the quote, or quote "
        "the whole value for your shell, e.g. ARDUINO_FLAGS='--build-property \"a=b c\"'"]
    ini = tmp_path / "bom.ini"
    ini.write_bytes(b"\xef\xbb\xbf[env:x]\nEPOCHS = 3\n")
    cmd = [scons_exe(), "-C", ROOT, f"--project-conf={ini}", "-h", "ENV=x", f"BUILD_DIR={tmp_path / 'b'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "EPOCHS" in proc.stdout and "bom.ini [env:x]" in proc.stdout, proc.stderr


def test_scons_dataset_with_a_fifo_in_data_finishes(tmp_path):
    """The seen hang, end to end: `scons dataset` with a FIFO named pipe.png in a class folder (about 1.5 s:
    the dataset stage alone, no TensorFlow)."""
    from PIL import Image

    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(data / cls / f"{i}.png")
    os.mkfifo(data / "a" / "pipe.png")
    proc, errors = scons_start(tmp_path, "dataset", timeout=120, DATA=str(data), SIZE="32")
    assert proc.returncode == 0 and not errors, proc.stderr[-2000:]
    assert "pipe.png (a FIFO (named pipe))" in proc.stderr
    assert (tmp_path / "b" / "nano33ble" / "dataset.npz").is_file()


# ---------------------------------------------------------------------------------------------------------------
# The fuzzer


def fuzz_models(folder, rng, cases):
    from codegen import boards

    base = conv_model()
    board = boards.get("nano33ble")         # as the pipeline passes it: the input must fit the board's RAM
    build = os.path.join(folder, "build")
    outcomes = {}
    before = tree(folder)
    for case in range(cases):
        what, data = mutate_model(base, rng)
        path = os.path.join(folder, "m.tflite")
        with open(path, "wb") as f:
            f.write(data)
        label = f"seed {SEED} model case {case} ({what})"
        for stage, call in (("frontend", lambda: reader.load(path)),
                            ("embed", lambda: bin2c.embed([], path, *(os.path.join(build, n) for n in
                                                                      ("images.c", "images.h", "images.json")),
                                                          board=board))):
            result = outcome(f"{label} {stage}", call)
            outcomes[result == "ok"] = outcomes.get(result == "ok", 0) + 1
    written = {p for p in tree(folder) - before if not p.startswith(build + os.sep) and p != build}
    assert written == {path}, written
    return outcomes


def fuzz_keras(folder, rng, cases):
    outcomes = {}
    for case in range(cases):
        what, path = mutate_keras(folder, rng, case)
        result = outcome(f"seed {SEED} keras case {case} ({what})", config.parse, {"MODEL": path})
        outcomes[result == "ok"] = outcomes.get(result == "ok", 0) + 1
    return outcomes


def fuzz_text_files(folder, rng, cases):
    """Labels files and profiles: random bytes, BOMs, quotes, huge lines, NULs, special files, ini fragments."""
    fragments = ("[env]", "[env:x]", "[env:y]", "[tinyml]", "default_envs = x", "extends = env:y", "extends = env:x",
                 "EPOCHS = 3", "EPOCHS = 0", "EPOCHS = 1" + "0" * 5000, "ARDUINO_FLAGS = \"-O3",
                 "ARDUINO_FLAGS = '-O3'", "BOARD = mega", "BOARD = esp99", "LR = nan", "LR = 1e400", "SIZE = -1",
                 "DATA = /no/such", "  continued", "=", "KEY", "; comment", "\x00", "[", "]", "[env:]",
                 "SEED = \"0\"", "MODEL = x.tflite", "TEMPLATES = /dev/null")
    outcomes = {}
    for case in range(cases):
        kind = rng.choice(("random", "bom", "fragments", "fragments", "fragments", "special", "huge_line", "nul"))
        for role in ("labels", "profile"):
            path = os.path.join(folder, f"{role}{case}.txt")
            if kind == "special":
                special_file(path, rng.choice(SPECIAL))
            elif kind in ("fragments", "bom"):
                text = "\n".join(rng.choice(fragments) for _ in range(rng.randint(0, 12)))
                data = text.encode("utf-8", "surrogateescape")
                with open(path, "wb") as f:
                    f.write((b"\xef\xbb\xbf" if kind == "bom" else b"") + data)
            else:
                random_text_file(rng, path, kind)
            label = f"seed {SEED} {role} case {case} ({kind})"
            if role == "labels":
                result = outcome(label, lambda: (config.parse({"LABELS": path}),
                                                 bin2c.class_labels_for(rng.choice((1, 2, 3)), path)))
            else:
                env = {"ENV": "x"} if rng.random() < 0.5 else {}
                result = outcome(label, lambda: profiles.resolve(env, path).parse())
            outcomes[result == "ok"] = outcomes.get(result == "ok", 0) + 1
    return outcomes


def fuzz_image_folders(folder, rng, cases):
    from PIL import Image

    good = io.BytesIO()
    Image.new("RGB", (12, 10), (200, 30, 10)).save(good, format="PNG")
    good = good.getvalue()
    outcomes = {}
    for case in range(cases):
        data = os.path.join(folder, f"d{case}")
        for cls in ("a", "b"):
            os.makedirs(os.path.join(data, cls))
            for i in range(rng.randint(1, 6)):
                path = os.path.join(data, cls, f"{i}.png")
                kind = rng.choice(("good",) * 6 + ("zero", "truncated", "text", "special", "special", "subloop"))
                if kind == "special":
                    special_file(path, rng.choice(SPECIAL))
                elif kind == "subloop":
                    os.symlink("..", os.path.join(data, cls, f"loop{i}"))
                else:
                    with open(path, "wb") as f:
                        f.write({"good": good, "zero": b"", "truncated": good[:rng.randrange(1, len(good))],
                                 "text": b"not an image"}[kind])
        build = os.path.join(folder, f"build{case}")

        def run():
            classes = dataset.list_class_folder(data, warn=lambda msg: None)
            heldout = {c: os.path.join(build, "heldout", f"{c}.png") for c in classes}
            dataset.pack(classes, os.path.join(build, "dataset.npz"), heldout, 8, rng.choice((1, 3)), 0,
                         warn=lambda msg: None)

        before = tree(data)
        result = outcome(f"seed {SEED} image folder case {case}", run)
        assert tree(data) == before
        outcomes[result == "ok"] = outcomes.get(result == "ok", 0) + 1
    return outcomes


def fuzz_settings(folder, rng, cases):
    """Every build variable given hostile values on the command line: quotes, backslashes, huge or non-finite
    numbers, NULs, non-ASCII, very long, special files. config.parse answers a value or one ConfigError."""
    special = special_file(os.path.join(folder, "fifo"), "fifo")
    pieces = ('"', "'", "\\", "\0", "1e400", "nan", "-1", "0", "9" * 5000, "1" * 4000, "é", "\udcff", ",", " ", "=",
              "x" * 10000, "$HOME", "`id`", "$(id)", "\n", "0x10", "1_000", "+5", special, "/dev/zero", "/", "..")
    outcomes = {}
    names = sorted(config.VARIABLES)
    for case in range(cases):
        name = rng.choice(names)
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))
        result = outcome(f"seed {SEED} settings case {case} ({name}={value[:60]!r})", config.parse, {name: value})
        outcomes[result == "ok"] = outcomes.get(result == "ok", 0) + 1
    return outcomes


FUZZERS = {"settings": (fuzz_settings, 300), "models": (fuzz_models, 150), "keras": (fuzz_keras, 60), "text": (fuzz_text_files, 60),
           "images": (fuzz_image_folders, 12)}


@pytest.mark.parametrize("kind", list(FUZZERS))
def test_fuzz(short_tmp, kind):
    """Bounded: a few seconds per kind in the fast loop. Both outcomes must occur (the generator makes files the
    stages accept and files they refuse), and each refusal was one error line."""
    fn, cases = FUZZERS[kind]
    outcomes = fn(short_tmp, random.Random(f"{SEED}-{kind}"), cases)
    assert outcomes.get(False) and (outcomes.get(True) or kind == "keras"), outcomes


@pytest.mark.heavy
@pytest.mark.parametrize("kind", list(FUZZERS))
def test_fuzz_bigger_budget(short_tmp, kind):
    fn, cases = FUZZERS[kind]
    outcomes = fn(short_tmp, random.Random(f"{SEED}-{kind}-heavy"), cases * 10)
    assert outcomes.get(False), outcomes
