"""GpioKeypad on gpiozero's mock pins: keys by name, presses reach the desk, pins released."""

from __future__ import annotations

import pytest

from agent.devices import KeyPress
from agent.devices.config import KeypadConfig
from agent.devices.keypads.collector import VoteCollector
from agent.devices.keypads.desk import VoteDesk
from agent.devices.keypads.gpio import GpioKeypad

MS = 1_000_000


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.ns = 1_000 * MS

    def __call__(self) -> int:
        return self.ns


def test_key_names_come_from_the_board(mock_pins, hall):
    presses: list[KeyPress] = []
    pad = GpioKeypad(hall.keypads[2], mono_ns=Ticks(), wall_ms=lambda: 42)
    pad.start(presses.append)
    mock_pins.pin(8).drive_low()  # GPIO 8 is window 3's "basically_satisfied" (一般) key
    mock_pins.pin(8).drive_high()
    mock_pins.pin(24).drive_low()  # GPIO 24: "very_satisfied"
    assert [(p.window, p.key, p.wall_ms) for p in presses] == [
        ("3", "basically_satisfied", 42),
        ("3", "very_satisfied", 42),
    ]
    pad.close()


def test_order_of_keys_in_the_file_does_not_matter(mock_pins, hall):
    cfg = hall.keypads[0]
    shuffled = KeypadConfig(window="1", model=cfg.model, keys=dict(reversed(cfg.keys.items())))
    presses: list[KeyPress] = []
    pad = GpioKeypad(shuffled)
    pad.start(presses.append)
    mock_pins.pin(cfg.keys["dissatisfied"]).drive_low()
    assert [p.key for p in presses] == ["dissatisfied"]
    pad.close()


def test_presses_become_votes_with_software_debounce(mock_pins, hall):
    ticks = Ticks()
    pads = [GpioKeypad(k, mono_ns=ticks) for k in hall.keypads]
    desk = VoteDesk({k.window: k.mapping() for k in hall.keypads}, hall.desk.settings())
    votes = []
    collector = VoteCollector(desk, pads, votes.append, mono_ns=ticks)
    collector.start()
    collector.arm("C-100", "3", "王五", "社保")
    pin = mock_pins.pin(7)  # window 3 "dissatisfied" (不满意)
    for step_ms in (0, 3, 4, 5):  # contact bounce: the mock factory ignores bounce_time
        ticks.ns += step_ms * MS
        pin.drive_low()
        pin.drive_high()
    assert len(votes) == 1
    vote = votes[0]
    assert (
        vote.case_no,
        vote.window,
        vote.staff,
        vote.key_label,
        vote.level_name,
        vote.mapping_version,
        vote.misuse,
    ) == ("C-100", "3", "王五", "不满意", "不满意", "keypad4-v1", None)
    ticks.ns += 2_000 * MS
    mock_pins.pin(4).drive_low()  # window 1, nobody armed it
    assert votes[-1].window == "1" and votes[-1].misuse == "disarmed"
    collector.close()


def test_close_releases_pins_and_stops_callbacks(mock_pins, hall):
    presses = []
    pad = GpioKeypad(hall.keypads[0])
    pad.start(presses.append)
    pad.close()
    again = GpioKeypad(hall.keypads[0])  # the pins are free again
    mock_pins.pin(4).drive_low()
    assert presses == []
    again.close()


def test_a_pin_in_use_fails_cleanly(mock_pins, hall):
    from gpiozero import Button
    from gpiozero.exc import GPIOPinInUse

    taken = Button(27)  # window 1's basically_satisfied pin
    with pytest.raises(GPIOPinInUse):
        GpioKeypad(hall.keypads[0])
    taken.close()
    GpioKeypad(hall.keypads[0]).close()  # the keys opened before the failure were released
