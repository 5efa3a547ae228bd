"""Which stages a board has, checked against the command line before any stage runs.

A Linux board runs the .tflite with LiteRT: it has no generated C (mlf, export, images, expected, sketch), no
emulator (simulate) and no arduino-cli (compile), but a deployable bundle instead. Asking a board for a stage it
does not have is one error naming the board, the stage and what it offers, before training starts.
"""
from .. import boards
from ..errors import ConfigError
from ..targets import LINUX_ONLY_STAGES, LINUX_STAGES, MCU_ONLY_STAGES

REMOTE_STAGES = ("upload", "monitor", "verify")


def _asks(targets, stage, board_name):
    return stage in targets or f"{stage}-{board_name}" in targets


def check(cfg, targets):
    """Raises ConfigError when a requested target is not a stage of one of the boards, or upload/monitor of a
    Linux board has no HOST=."""
    targets = set(targets)
    linux = [n for n in cfg["boards"] if boards.is_linux(boards.get(n))]
    if cfg.get("port") and linux and len(linux) == len(cfg["boards"]):
        raise ConfigError(f"PORT={cfg['port']} is an Arduino's serial port; BOARD={','.join(linux)} is reached over "
                          "ssh: give its port as SSH_PORT= (or HOST=user@host:port)")
    for name in cfg["boards"]:
        board = boards.get(name)
        if boards.is_linux(board):
            missing = [s for s in MCU_ONLY_STAGES if _asks(targets, s, name)]
            if missing:
                raise ConfigError(
                    f"BOARD={name} ({board['title']}) is a Linux board: it runs the .tflite with LiteRT, so it has "
                    f"no {', '.join(missing)} stage; its stages are {', '.join(LINUX_STAGES)} (e.g. `scons check "
                    f"BOARD={name}`, `scons upload BOARD={name} HOST=pi@raspberrypi.local`)")
            remote = [s for s in REMOTE_STAGES if _asks(targets, s, name)]
            if remote and not cfg["host"]:
                raise ConfigError(f"`{remote[0]}` for BOARD={name} needs the board's ssh address: add "
                                  "HOST=user@host, e.g. HOST=pi@raspberrypi.local (SSH_PORT=, SSH_KEY= if needed)")
        else:
            wrong = [s for s in LINUX_ONLY_STAGES if _asks(targets, s, name)]
            if wrong:
                raise ConfigError(f"`{wrong[0]}` is a Linux-board stage (BOARD=rpi4, rpi5, rpi_zero2); BOARD={name} "
                                  f"({board['title']}) is a microcontroller: use `scons sketch` or `scons export`")
