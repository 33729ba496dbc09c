"""Drain cursor decisions (pure): live first, bounded in-flight, acks, rewinds; clock quality."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clock import clock_quality
from agent.drain import DrainPlan, TokenBucket
from agent.sync import split_by_size


def test_live_records_go_before_backlog():
    p = DrainPlan.start(acked=10, head=1000)
    assert p.next_range(head=1005, max_records=100, max_inflight=10_000) == (1001, 1005)
    assert p.next_range(head=1005, max_records=100, max_inflight=10_000) == (11, 110)


def test_inflight_is_bounded():
    p = DrainPlan.start(acked=0, head=1000)
    assert p.next_range(1000, 300, 500) == (1, 300)
    assert p.next_range(1000, 300, 500) == (301, 500)
    assert p.next_range(1000, 300, 500) is None
    p.on_ack(200)
    assert p.next_range(1000, 300, 500) == (501, 700)


def test_rewind_resends_from_the_gap():
    p = DrainPlan.start(acked=0, head=100)
    p.next_range(100, 100, 1000)
    p.on_ack(40)
    p.rewind(41)
    assert p.next_range(100, 100, 1000) == (41, 100)


def test_rewind_below_ack_when_the_hub_lost_data():
    p = DrainPlan.start(acked=50, head=50)
    p.rewind(20)
    assert p.acked == 19
    assert p.next_range(50, 100, 1000) == (20, 50)


@given(
    st.integers(0, 500),
    st.integers(0, 500),
    st.lists(st.integers(1, 50), max_size=30),
    st.integers(1, 200),
    st.integers(1, 400),
)
def test_every_record_is_sent_at_least_once(acked, extra, live_writes, batch, cap):
    head = acked + extra
    p = DrainPlan.start(acked, head)
    sent = set()
    writes = iter(live_writes)
    for _ in range(10_000):
        rng = p.next_range(head, batch, cap)
        if rng is None:
            if p.inflight():
                p.on_ack(max(sent) if sent and set(range(acked + 1, max(sent) + 1)) <= sent else p.acked)
                if p.next_range(head, batch, cap) is None and p.inflight():
                    p.rewind(p.acked + 1)
                continue
            nxt = next(writes, None)
            if nxt is None:
                break
            head += nxt
            continue
        assert rng[0] <= rng[1] <= head and rng[1] - rng[0] + 1 <= batch
        sent.update(range(rng[0], rng[1] + 1))
    assert set(range(acked + 1, head + 1)) <= sent


def test_token_bucket_limits_rate():
    b = TokenBucket(rate=1000, burst=100)
    assert b.wait_time(100, now=0.0) == 0.0
    assert b.wait_time(100, now=0.0) == pytest.approx(0.1)
    assert b.wait_time(50, now=0.05) == 0.0


def test_split_by_size_keeps_contiguous_chunks():
    data = [b"x" * 100] * 10
    chunks = split_by_size(7, data, 350)
    assert [s for s, _ in chunks] == [7, 10, 13, 16]
    assert sum(len(c) for _, c in chunks) == 10


@pytest.mark.parametrize(
    "ntp,offset,age,expected",
    [
        (True, None, None, "ntp"),
        (False, 0.5, 10.0, "hub"),
        (False, 500.0, 10.0, "untrusted"),
        (False, 0.5, 10 * 3600.0, "untrusted"),
        (False, None, None, "untrusted"),
    ],
)
def test_clock_quality(ntp, offset, age, expected):
    assert clock_quality(ntp, offset, age) == expected


def test_box_clock_never_runs_backwards_past_the_log(monkeypatch):
    """After a power cut fake-hwclock may restore an old time: records keep moving forward and
    say their clock is untrusted."""
    import time as _time

    from agent.clock import BoxClock

    c = BoxClock(force=None)
    real = _time.time_ns() // 1_000_000
    c.set_floor(real + 3_600_000)  # the newest record is an hour "in the future"
    assert c.is_behind() and c.quality() == "untrusted"
    assert c.wall_ms() >= real + 3_600_000 and c().wall_ms >= real + 3_600_000
    assert c.now().utcoffset().total_seconds() == 8 * 3600
    c.set_floor(real - 60_000)  # a normal restart: the clock is ahead of the log
    assert not c.is_behind() and c.wall_ms() >= real
