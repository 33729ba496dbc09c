"""Evaluator keypads (评价器): key mapping tables, the pure VoteDesk, GPIO and fake drivers."""

from agent.devices.keypads.collector import VoteCollector
from agent.devices.keypads.desk import DeskSettings, Session, Vote, VoteDesk
from agent.devices.keypads.fake import FakeKeypad
from agent.devices.keypads.mapping import (
    LEVEL_NAMES,
    MAPPINGS,
    KeyMapping,
    KeyMeaning,
    default_mapping,
    get_mapping,
    is_bad,
)

__all__ = [
    "DeskSettings",
    "FakeKeypad",
    "KeyMapping",
    "KeyMeaning",
    "LEVEL_NAMES",
    "MAPPINGS",
    "Session",
    "Vote",
    "VoteCollector",
    "VoteDesk",
    "default_mapping",
    "get_mapping",
    "is_bad",
]
# GpioKeypad lives in agent.devices.keypads.gpio; import it from there (it needs gpiozero).
