"""Every board file in firmware-configs/ validates; conflicts and mistakes are reported clearly."""
from __future__ import annotations

import pytest

from provisioning.boards import KEY_NAMES, board_files, firmware_dir, load_board
from provisioning.errors import BoardError

BOARDS = board_files()


def test_there_are_boards():
    names = {p.stem for p in BOARDS}
    assert {"generic", "rpi4-hall-3win"} <= names


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.relative_to(firmware_dir()).as_posix())
def test_board_file_is_valid(path):
    board = load_board(path)
    assert board.name == path.stem
    assert load_board(path.stem) == board  # found by name too
    pins = [pin for pin, _ in board.pin_uses()]
    assert len(pins) == len(set(pins))
    for w in board.windows:
        if w.keypad:
            assert set(w.keypad.keys) <= set(KEY_NAMES)


def test_family_common_is_merged():
    board = load_board("rpi4-hall-3win")
    assert board.family == "raspberry-pi" and board.gpio == "lgpio"
    assert 2 in board.reserved_pins  # from common.yaml
    assert board.sign.type == "onbon-bx"  # the board overrides common's sign
    assert [w.keypad.model for w in board.windows] == ["five_key", "five_key", "four_key"]
    assert len(board.cameras) == 3 and all(c.rtsp_url.startswith("rtsp://") for c in board.cameras)
    assert load_board("raspberry-pi/rpi4-hall-3win") == board


def _write(tmp_path, monkeypatch, text, name="bad.yaml", family=None):
    root = tmp_path / "fw"
    folder = root / family if family else root
    folder.mkdir(parents=True, exist_ok=True)
    if family:
        (folder / "common.yaml").write_text(
            "family: raspberry-pi\ngpio: lgpio\nreserved_pins: {2: I2C SDA}\n")
    (folder / name).write_text(text)
    monkeypatch.setenv("JIANCHA_FIRMWARE_CONFIGS", str(root))
    return folder / name


def test_pin_conflict_names_the_file_and_the_pin(tmp_path, monkeypatch):
    path = _write(tmp_path, monkeypatch, """
windows:
  - id: 1
    label: one
    lamp: {red: 5, yellow: 6, green: 2}
""", family="raspberry-pi")
    with pytest.raises(BoardError) as exc:
        load_board("bad")
    msg = str(exc.value)
    assert str(path) in msg and "GPIO 2 is used by reserved (I2C SDA) and by window 1 lamp green" in msg


@pytest.mark.parametrize("text, expect", [
    ("family: generic\ngpio: mock\ncolour: red\n", "colour: Extra inputs are not permitted"),
    ("family: generic\ngpio: wiringpi\n", "gpio: Input should be"),
    ("family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: five_key, "
     "keys: {very_satisfied: 4}}}]\n", "needs 5 keys"),
    ("family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: four_key, "
     "keys: {happy: 4, satisfied: 5, dissatisfied: 6, very_dissatisfied: 7}}}]\n", "keys.happy"),
    ("family: generic\ngpio: mock\nwindows: [{id: 1, label: a, lamp: {red: 40, yellow: 5, "
     "green: 6}}]\n", "GPIO 40 (window 1 lamp red) is outside 0..27"),
    ("family: generic\ngpio: mock\nsign: {type: onbon-bx}\n", "needs a port"),
    ("family: generic\ngpio: mock\ncameras: [{name: c, window: 3, rtsp_url: 'rtsp://x'}]\n",
     "window 3, which is not defined"),
    ("- just\n- a list\n", "mapping"),
])
def test_invalid_boards_are_explained(tmp_path, monkeypatch, text, expect):
    path = _write(tmp_path, monkeypatch, text)
    with pytest.raises(BoardError) as exc:
        load_board("bad")
    assert str(path) in str(exc.value) and expect in str(exc.value)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(BoardError, match="unknown board 'rpi9'.*generic"):
        load_board("rpi9")
