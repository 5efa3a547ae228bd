import pytest

from codegen import boards

from codegen import config
from codegen.errors import ConfigError


def test_defaults():
    cfg = config.parse({})
    assert cfg["boards"] == ["nano33ble"] and cfg["alpha"] == 0.25 and cfg["size"] == 64 and cfg["channels"] == 3


@pytest.mark.parametrize("raw,needle", [
    ({"EPOCHS": "0"}, "EPOCHS=0 is too small"),
    ({"EPOCHS": "ten"}, "not a whole number"),
    ({"ALPHA": "0.3"}, "ALPHA='0.3' is not supported"),
    ({"SIZE": "7"}, "SIZE=7 is too small"),
    ({"CHANNELS": "2"}, "CHANNELS"),
    ({"QUANT": "int4"}, "QUANT"),
    ({"LR": "-1"}, "must be greater than 0"),
    ({"LR": "fast"}, "not a number"),
    ({"DATA": "/no/such/dir"}, "not a folder"),
    ({"IMAGES": "/no/such.png"}, "does not exist"),
    ({"WEIGHTS": "/no/such.h5"}, "does not exist"),
    ({"EPOHCS": "3"}, "unknown build variable"),
])
def test_bad_values_fail_with_a_clear_message(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        config.parse(raw)


def test_boards_are_data():
    b = boards.get("nano33ble")
    assert b["fqbn"] == "arduino:mbed_nano:nano33ble" and b["ram_bytes"] == 262144 and not b["progmem"]
    assert boards.get("mega")["progmem"]
    for name in ("nano33ble_sense", "portenta_h7", "pico", "due", "uno", "mega"):
        assert {"fqbn", "flash_bytes", "ram_bytes", "usb_ids", "progmem", "core"} <= set(boards.get(name))
    with pytest.raises(ConfigError, match="not a known board"):
        boards.get("esp32x")
