"""Device config: derived from every board profile; strict; errors name the problem."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.config import board_files, firmware_dir, load_board
from agent.devices.config import (
    DevicesConfig,
    KeypadConfig,
    LampConfig,
    SignArea,
    SignConfig,
    VoteDeskConfig,
    devices_from_board,
)


@pytest.mark.parametrize("path", board_files(), ids=lambda p: p.relative_to(firmware_dir()).as_posix())
def test_every_board_gives_a_device_config(path):
    board = load_board(path)
    cfg = devices_from_board(board)
    assert [k.window for k in cfg.keypads] == [str(w.id) for w in board.windows if w.keypad]
    assert cfg.gpio == board.gpio and cfg.desk.debounce_ms == board.debounce_ms
    for k in cfg.keypads:
        assert set(k.keys) <= set(k.mapping().keys)


def test_hall_board(hall):
    assert hall.window_labels == {"1": "1号窗口", "2": "2号窗口", "3": "3号窗口"}
    assert [k.mapping_version for k in hall.keypads] == ["keypad5-v1", "keypad5-v1", "keypad4-v1"]
    assert hall.keypads[2].keys["basically_satisfied"] == 8  # by name, from the board file
    assert hall.lamps[2] == LampConfig(window="3", red=12, yellow=16, green=20)
    sign = hall.sign
    assert sign.type == "onbon-bx" and sign.port == "tcp://192.168.10.50:5005"
    assert sign.areas == [SignArea(id=0, windows=["1", "2", "3"], width=192, height=32)]
    assert sign.refresh_s == 600.0 and sign.min_interval_s == 5.0


def test_generic_board_png_sign(generic):
    assert generic.gpio == "mock"
    assert generic.sign.type == "png" and generic.sign.port == "signs"
    assert generic.sign.min_interval_s == 0 and generic.sign.refresh_s is None


def test_extra_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        LampConfig(window="1", red=1, yellow=2, green=3, blue=4)


def test_unknown_mapping_version_lists_known():
    with pytest.raises(ValidationError, match="keypad4-v1"):
        KeypadConfig(
            window="1",
            model="four_key",
            mapping_version="keypad4-v9",
            keys={"very_satisfied": 1, "satisfied": 2, "basically_satisfied": 3, "dissatisfied": 4},
        )


def test_mapping_must_fit_the_model_and_keys():
    keys5 = {"very_satisfied": 1, "satisfied": 2, "basically_satisfied": 3, "dissatisfied": 4, "very_dissatisfied": 5}
    with pytest.raises(ValidationError, match="is for five_key, keypad is four_key"):
        KeypadConfig(window="1", model="four_key", mapping_version="keypad5-v1", keys=keys5)
    odd4 = {"very_satisfied": 1, "satisfied": 2, "dissatisfied": 4, "very_dissatisfied": 5}
    with pytest.raises(ValidationError, match="no meaning for key.*very_dissatisfied"):
        KeypadConfig(window="1", model="four_key", keys=odd4)


def test_one_keypad_and_one_lamp_per_window():
    lamp = LampConfig(window="1", red=1, yellow=2, green=3)
    with pytest.raises(ValidationError, match="more than one lamp for window"):
        DevicesConfig(lamps=[lamp, lamp])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(type="onbon-bx"), "needs a port"),
        (dict(type="png", windows=["1"], areas=[SignArea(windows=["1"], width=256, height=32)]), "does not fit"),
        (dict(type="png", windows=["1"], areas=[SignArea(windows=["2"], width=64, height=16)]), "does not serve"),
        (
            dict(
                type="png",
                windows=["1", "2"],
                areas=[
                    SignArea(id=1, windows=["1"], width=64, height=16),
                    SignArea(id=1, windows=["2"], width=64, height=16),
                ],
            ),
            "ids repeat",
        ),
    ],
)
def test_sign_config_errors(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SignConfig(**kwargs)


def test_sign_area_lookup():
    cfg = SignConfig(
        type="png",
        width=192,
        height=64,
        windows=["1", "2"],
        areas=[
            SignArea(id=0, windows=["1"], width=192, height=32),
            SignArea(id=1, windows=["2"], y=32, width=192, height=32),
        ],
    )
    assert cfg.area_of("2").id == 1 and cfg.area_of("9") is None


def test_desk_settings_bounds():
    assert VoteDeskConfig().settings().arm_timeout_s == 120.0
    with pytest.raises(ValidationError, match="burst_presses"):
        VoteDeskConfig(burst_presses=1)
