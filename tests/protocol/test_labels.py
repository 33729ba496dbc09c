"""People see labels, never codes: every event type and every violation has its Chinese label."""

from __future__ import annotations

from protocol.caseclock_types import EVENT_TYPES, EVENT_ZH, VIOLATION_ZH, VIOLATIONS


def test_every_event_type_and_the_registration_have_a_label():
    assert set(EVENT_TYPES) | {"receive"} == set(EVENT_ZH)
    assert all(label and not label.isascii() for label in EVENT_ZH.values())


def test_every_violation_has_a_reason_in_chinese():
    assert set(VIOLATIONS) <= set(VIOLATION_ZH)
    assert all(label and not label.isascii() for label in VIOLATION_ZH.values())
