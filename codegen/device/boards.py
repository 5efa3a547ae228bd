"""Boards are data (boards.json beside this file): adding a board is adding an entry, not code."""
import json
import os

from ..errors import ConfigError

# The sketch's Serial.begin() rate unless a board entry says "baud": what `scons monitor`/`verify` open the port at.
DEFAULT_BAUD = 115200
_BOARDS_FILE = os.path.join(os.path.dirname(__file__), "boards.json")
_cache = None


def all_boards():
    global _cache
    if _cache is None:
        with open(_BOARDS_FILE) as f:
            _cache = json.load(f)
    return _cache


def get(name):
    boards = all_boards()
    if name not in boards:
        from ..suggest import did_you_mean

        hint = did_you_mean(name, boards, "did you mean BOARD={}? ")
        raise ConfigError(f"BOARD={name!r} is not a known board; {hint}use one of: {', '.join(sorted(boards))} "
                          f"(or add an entry to {_BOARDS_FILE}; `scons boards` lists them)")
    return dict(boards[name], name=name)


def is_linux(board):
    """A Linux single-board computer (`"kind": "linux"`): it runs the .tflite with LiteRT instead of C code from
    the generator, so its stages differ (codegen.linux.targets)."""
    return board.get("kind") == "linux"


def serial_baud(board):
    """The baud rate the board's sketch prints at: its entry's "baud", else DEFAULT_BAUD."""
    return int(board.get("baud") or DEFAULT_BAUD)
