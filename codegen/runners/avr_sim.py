"""`simulate` for AVR boards: the generated sketch itself, built by a real Arduino toolchain (Debian's
arduino-builder with the AVR core) and run in simavr; its result lines must equal expected.json's exactly."""
import json
import os

from . import avr
from .. import boards
from ..errors import PipelineError
from ..fsutil import atomic_open
from .hostcheck import DEMO_LINE, check_demo_line, compare_lines, first_round


def simulate_avr_sketch(sketch_dir, sketch_name, board, expected_json, out_json, *, work_dir, timeout_s=120):
    if not avr.toolchain_available():
        raise PipelineError("simulating an AVR board needs arduino-builder, the Arduino AVR core and simavr "
                            "(Debian/Ubuntu: `sudo apt-get install arduino-builder arduino-core-avr gcc-avr avr-libc "
                            "arduino-ctags simavr`; `./dev setup` in a checkout installs every toolchain)")
    with open(expected_json) as f:
        expected = json.load(f)
    board = boards.board(board)
    built = avr.compile_sketch(sketch_dir, board.fqbn, os.path.join(work_dir, "arduino-build"))
    if built["ram_bytes"] > board.ram_bytes or built["flash_bytes"] > board.flash_bytes:
        raise PipelineError(f"the sketch does not fit {board.title}: flash {built['flash_bytes']} B of "
                            f"{board.flash_bytes}, RAM {built['ram_bytes']} B of {board.ram_bytes} (static "
                            "data only; the stack needs more); choose a smaller model (SIZE, CHANNELS, DEPTH)")
    text = avr.run_simavr(built["elf"], board.emulator_machine or board.cpu, timeout_s=timeout_s,
                          until=lambda t: first_round(t, expected) is not None and (
                              not expected.get("demo") or DEMO_LINE.search(t) is not None))
    printed = first_round(text, expected)
    compare_lines(printed, expected, f"{sketch_dir} on simavr ({board.cpu})", "on simavr")
    check_demo_line(text, expected, f"{sketch_dir} on simavr")
    # The sketch's own micros() on the simulated CPU clock: the inference time the real board would print.
    times = [r.ms for r in printed if r.ms is not None]
    result = {"board": board.name, "mcu": board.cpu, "flash_bytes": built["flash_bytes"],
              "ram_bytes": built["ram_bytes"],
              "images": [{"title": r.title, "label": r.label, "confidence": r.confidence, "scores": r.scores,
                          "ms": r.ms} for r in printed],
              "ms_per_inference": max(times) if times else None,       # the slowest input's
              "output": text}
    with atomic_open(out_json) as f:
        json.dump(result, f, indent=1)
    ms = result["ms_per_inference"]
    timing = f", {ms:,.1f} ms per inference (the sketch's micros() in simavr, slowest input)" if ms else ""
    print(f"  {board.title} (simavr {board.cpu}): flash {built['flash_bytes']} B, static RAM "
          f"{built['ram_bytes']} B; scores identical to TFLite{timing}")
    return result
