"""Pure delivery decisions, one line each."""

from __future__ import annotations

import pytest

from hub.notify.policy import HOUR_MS, backoff_ms, is_permanent_http, rate_wait_until, should_digest


@pytest.mark.parametrize(
    "attempt, rand, ms",
    [
        (1, 1.0, 30_000),
        (2, 1.0, 60_000),
        (3, 1.0, 120_000),
        (3, 0.0, 60_000),
        (10, 1.0, 3_600_000),
        (10, 0.0, 1_800_000),
        (1, 0.5, 22_500),
    ],
)
def test_backoff_doubles_with_equal_jitter_and_a_cap(attempt, rand, ms):
    assert backoff_ms(attempt, 30, 3600, rand) == ms


@pytest.mark.parametrize(
    "recent, limit, expected",
    [
        ([], 3, None),
        ([1000, 2000], 3, None),
        ([1000, 2000, 3000], 3, 1000 + HOUR_MS),
        ([3000, 1000, 2000, 4000], 3, 2000 + HOUR_MS),
        ([-HOUR_MS + 5000, 2000, 3000], 3, None),  # the oldest slid out of the window
    ],
)
def test_rate_wait_until(recent, limit, expected):
    assert rate_wait_until(recent, 5000, limit) == expected


@pytest.mark.parametrize("pending, threshold, yes", [(5, 5, False), (6, 5, True), (1000, 5, True), (1, 1, False)])
def test_should_digest(pending, threshold, yes):
    assert should_digest(pending, threshold) is yes


@pytest.mark.parametrize(
    "status, permanent", [(400, True), (401, True), (404, True), (408, False), (429, False), (500, False), (503, False)]
)
def test_is_permanent_http(status, permanent):
    assert is_permanent_http(status) is permanent
