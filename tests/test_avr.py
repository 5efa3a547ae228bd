"""codegen.runners.avr: a real arduino-builder build for an ATmega2560, run in simavr and checked against Python."""
import os
import shutil
import socket
import time

import pytest

from codegen.runners import avr
from codegen.runners.avr import AvrError
from codegen.errors import PipelineError

pytestmark = pytest.mark.skipif(
    not avr.toolchain_available(),
    reason="AVR toolchain missing: " + ", ".join(avr.missing_tools()) +
           " (apt-get install arduino-builder arduino-core-avr gcc-avr avr-libc arduino-ctags simavr)")

FQBN = "arduino:avr:mega:cpu=atmega2560"
MCU = "atmega2560"

TABLE = [(i * 73 + 29) % 256 for i in range(96)]

LIB_H = """\
#ifndef DEMO_LIB_H
#define DEMO_LIB_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A score computed from a PROGMEM table with 32-bit arithmetic (AVR's int is 16 bits). */
int32_t demo_score(uint8_t object, uint8_t k);

#ifdef __cplusplus
}
#endif
#endif
"""

LIB_C = """\
#include <avr/pgmspace.h>
#include "lib.h"

const uint8_t table[] PROGMEM = {%s};
#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

int32_t demo_score(uint8_t object, uint8_t k)
{
    int32_t acc = 0;
    uint8_t i;
    for (i = 0; i < TABLE_LEN; i++) {
        int32_t v = (int32_t)pgm_read_byte(&table[i]) - 128;
        int32_t w = (int32_t)(i + 1 + 64 * object) * (k ? 517 : 3);
        acc += v * w;
    }
    return acc + (int32_t)70000 * (k + 1);
}
""" % ", ".join(str(v) for v in TABLE)

INO = """\
#include <avr/interrupt.h>
#include <avr/sleep.h>
#include "src/lib.h"

void setup() {
  Serial.begin(115200);
  Serial.println("Car results:");
  Serial.println(demo_score(0, 0));
  Serial.println(demo_score(0, 1));
  Serial.println("Other object results:");
  Serial.println(demo_score(1, 0));
  Serial.println(demo_score(1, 1));
  Serial.flush();
  cli();
  sleep_enable();
  sleep_cpu();
}

void loop() {
}
"""


def demo_score(obj, k):
    """The same computation as demo_score() in lib.c, in Python integers."""
    acc = sum((v - 128) * ((i + 1 + 64 * obj) * (517 if k else 3)) for i, v in enumerate(TABLE))
    return acc + 70000 * (k + 1)


def expected_lines():
    return ["Car results:", str(demo_score(0, 0)), str(demo_score(0, 1)),
            "Other object results:", str(demo_score(1, 0)), str(demo_score(1, 1))]


def write_sketch(root, name, ino, files=None):
    sketch = root / name
    (sketch / "src").mkdir(parents=True)
    (sketch / f"{name}.ino").write_text(ino)
    for rel, text in (files or {}).items():
        (sketch / rel).write_text(text)
    return sketch


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("avr_demo")
    sketch = write_sketch(root, "demo", INO, {"src/lib.c": LIB_C, "src/lib.h": LIB_H})
    build = root / "build"
    t0 = time.monotonic()
    first = avr.compile_sketch(sketch, FQBN, build)
    t1 = time.monotonic()
    second = avr.compile_sketch(sketch, FQBN, build)
    t2 = time.monotonic()
    return {"sketch": sketch, "build": build, "first": first, "second": second,
            "first_s": t1 - t0, "second_s": t2 - t1}


def test_expected_values_need_32_bits():
    values = [demo_score(o, k) for o in (0, 1) for k in (0, 1)]
    assert any(abs(v) > 32767 for v in values), values
    assert all(abs(v) < 2 ** 31 for v in values), values


def test_compile_outputs_and_sizes(demo_build):
    result = demo_build["first"]
    assert set(result) == {"elf", "hex", "flash_bytes", "ram_bytes"}
    assert os.path.isabs(result["elf"]) and os.path.isfile(result["elf"])
    assert result["elf"] == str(demo_build["build"] / "demo.ino.elf")
    assert os.path.isfile(result["hex"])
    # the table lives in flash; Serial's buffers (2 x 64 B) and the core's globals are in RAM
    assert 1500 < result["flash_bytes"] < 20000
    assert 150 < result["ram_bytes"] < 1000
    assert demo_build["second"] == result
    print(f"\nflash {result['flash_bytes']} B, RAM {result['ram_bytes']} B")


def test_second_compile_uses_cache(demo_build):
    first, second = demo_build["first_s"], demo_build["second_s"]
    print(f"\ncompile: first {first:.2f} s, cached {second:.2f} s")
    assert second < first, (first, second)


def test_simavr_output_matches_python(demo_build):
    t0 = time.monotonic()
    text = avr.run_simavr(demo_build["first"]["elf"], MCU, timeout_s=60)
    print(f"\nsimavr run {time.monotonic() - t0:.2f} s:\n{text}")
    assert text.splitlines() == expected_lines()
    assert text.endswith("\n") and "\x1b" not in text and "\r" not in text


def test_simavr_until_stops_early(demo_build):
    elf = demo_build["first"]["elf"]
    text = avr.run_simavr(elf, MCU, until=lambda t: "Car results:" in t)
    assert text.splitlines()[0] == "Car results:"
    assert avr.run_simavr(elf, MCU, until=3).splitlines()[:3] == expected_lines()[:3]
    with pytest.raises(AvrError, match="ended before the expected output"):
        avr.run_simavr(elf, MCU, until=lambda t: "never printed" in t)
    with pytest.raises(AvrError, match="ended before the expected output"):
        avr.run_simavr(elf, MCU, until=7)


def test_endless_sketch_until_count_and_timeout(tmp_path):
    ino = """\
long n = 0;
void setup() { Serial.begin(115200); }
void loop() {
  Serial.print("tick ");
  Serial.println(n++);
  for (int i = 0; i < 300; i++) Serial.write('a' + i % 26);
  Serial.write('\\n');
}
"""
    sketch = write_sketch(tmp_path, "ticker", ino)
    elf = avr.compile_sketch(sketch, FQBN, tmp_path / "build")["elf"]
    long_line = "".join(chr(ord("a") + i % 26) for i in range(300))
    text = avr.run_simavr(elf, MCU, until=4, timeout_s=30)
    assert text.splitlines()[:4] == ["tick 0", long_line, "tick 1", long_line]
    with pytest.raises(AvrError, match=r"within 2 s[\s\S]*tick 0"):
        avr.run_simavr(elf, MCU, timeout_s=2)


def test_syntax_error_reports_compiler_message(tmp_path):
    bad_c = LIB_C.replace("acc += v * w;", "acc += v * ;")
    sketch = write_sketch(tmp_path, "broken", INO, {"src/lib.c": bad_c, "src/lib.h": LIB_H})
    with pytest.raises(AvrError) as info:
        avr.compile_sketch(sketch, FQBN, tmp_path / "build")
    message = str(info.value)
    assert isinstance(info.value, PipelineError)
    assert "error: expected expression before" in message
    # the location names the sketch's own file, not arduino-builder's copy in the build path
    assert str(sketch / "src" / "lib.c") + ":" in message


def test_missing_ino_names_path(tmp_path):
    sketch = tmp_path / "nothing"
    (sketch / "src").mkdir(parents=True)
    with pytest.raises(AvrError, match=str(sketch / "nothing.ino")):
        avr.compile_sketch(sketch, FQBN, tmp_path / "build")


def test_deleted_source_is_not_linked_from_stale_copy(tmp_path):
    """arduino-builder keeps old copies in <build>/sketch; a file removed from the sketch must not build."""
    sketch = write_sketch(tmp_path, "stale", "void setup() {}\nvoid loop() {}\n",
                          {"src/extra.c": "int extra(void) { return 1 + ; }\n"})
    build = tmp_path / "build"
    with pytest.raises(AvrError):
        avr.compile_sketch(sketch, FQBN, build)
    os.remove(sketch / "src" / "extra.c")
    assert os.path.isfile(avr.compile_sketch(sketch, FQBN, build)["elf"])


def test_missing_elf_and_bad_until(tmp_path):
    with pytest.raises(AvrError, match="does not exist"):
        avr.run_simavr(tmp_path / "none.elf", MCU)
    with pytest.raises(TypeError):
        avr.run_simavr(tmp_path / "none.elf", MCU, until="text")


def test_toolchain_available_follows_path(monkeypatch):
    assert avr.toolchain_available()
    real_which = shutil.which
    monkeypatch.setattr(avr.shutil, "which", lambda t: None if t == "simavr" else real_which(t))
    assert not avr.toolchain_available()
    assert "simavr" in avr.missing_tools()


def test_crash_is_reported_without_waiting_for_timeout(tmp_path):
    ino = """\
void setup() {
  Serial.begin(115200);
  Serial.println("before the jump");
  Serial.flush();
  void (*nowhere)(void) = (void (*)(void))0x3F000;   /* erased flash */
  nowhere();
}
void loop() {}
"""
    sketch = write_sketch(tmp_path, "crasher", ino)
    elf = avr.compile_sketch(sketch, FQBN, tmp_path / "build")["elf"]
    t0 = time.monotonic()
    with pytest.raises(AvrError, match=r"crashed[\s\S]*before the jump"):
        avr.run_simavr(elf, MCU, timeout_s=30)
    assert time.monotonic() - t0 < 10
    # with gdb's port 1234 taken, simavr exits with status 0 after a crash: still a crash, not a clean end
    with socket.socket() as busy:
        try:
            busy.bind(("0.0.0.0", 1234))
            busy.listen(1)
        except OSError:
            return
        with pytest.raises(AvrError, match=r"crashed[\s\S]*before the jump"):
            avr.run_simavr(elf, MCU, timeout_s=30)


# arduino-builder AVR builds run in simavr: minutes; `pytest -m "not heavy"` skips this module.
pytestmark = [pytestmark, pytest.mark.heavy]
