"""The target registry (codegen/targets.py): `scons -h` lists it aligned, and the checks made before any stage
runs derive from it. Fast: `scons -h` and plain function calls."""
import re
import subprocess

import pytest

from codegen import targets
from codegen.errors import ConfigError
from codegen.linux import targets as linux_targets
from helpers import ROOT, scons_exe


def _help():
    proc = subprocess.run([scons_exe(), "-C", ROOT, "-Q", "-h"], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_every_registered_target_in_one_aligned_column():
    text = _help().split("Targets (", 1)[1].split("\nLinux boards", 1)[0]
    rows = {m.group(1): m.start(2) - m.start(1) for m in re.finditer(r"^  (\S+) +(\S)", text, re.M)}
    assert set(rows) == {t.name for t in targets.TARGETS if t.listed and t.description} | {"<board>"}
    assert len(set(rows.values())) == 1                     # the longest name sets the column for all
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "expected" not in rows and "tflm_arena" not in rows   # internal stages stay out of -h


def test_linux_board_checks_come_from_the_registry():
    cfg = {"boards": ["rpi4"], "port": "", "host": ""}
    for name in targets.MCU_ONLY_STAGES:
        with pytest.raises(ConfigError, match=f"no {name} stage"):
            linux_targets.check(cfg, [name])
    linux_targets.check(cfg, ["check", "memory", "bundle"])
    with pytest.raises(ConfigError, match="Linux-board stage"):
        linux_targets.check({**cfg, "boards": ["nano33ble"]}, ["bundle"])


def test_capability_needs_are_board_keys():
    from codegen import boards

    keys = set().union(*(boards.get(name) for name in ("nano33ble", "mega", "pico")))
    assert targets.NEEDS and all(key in keys for key, _ in targets.NEEDS.values())
    assert set(targets.INT8_STAGES) <= set(targets.BY_NAME) and "dataset" not in targets.INT8_STAGES
