"""Clerk sessions (expiry, cap, CSRF) and the PIN throttle (per clerk, per address, bounded)."""

from __future__ import annotations

import pytest

from agent import clerk_sessions as sessions
from agent import clerks
from agent.store import AgentStore
from tests.agent.clerk_helpers import cheap_hasher

POLICY = sessions.SessionPolicy(idle_ms=30 * 60_000, absolute_ms=12 * 3600_000)
T0 = 1_800_000_000_000


@pytest.fixture
def store(tmp_path, monkeypatch):
    cheap_hasher(monkeypatch)
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.local_write(lambda c: clerks.add(c, "李四", "1", "2580", None, 0))
    yield s
    s.close()


def test_idle_and_absolute_expiry(store):
    sid = store.local_write(lambda c: sessions.create(c, "李四", T0, "10.0.0.5", POLICY))
    assert sessions.lookup(store.conn, sid, T0 + 29 * 60_000, POLICY) is not None
    assert sessions.lookup(store.conn, sid, T0 + 30 * 60_000, POLICY) is None  # idle
    t = T0
    while t < T0 + 12 * 3600_000 - 20 * 60_000:  # used every 20 minutes: alive until the absolute limit
        t += 20 * 60_000
        s = sessions.lookup(store.conn, sid, t, POLICY)
        assert s is not None
        if sessions.should_touch(s.seen_ms, t):
            store.local_write(lambda c: sessions.touch(c, s.id_hash, t))
    assert sessions.lookup(store.conn, sid, T0 + 12 * 3600_000, POLICY) is None  # absolute


def test_only_a_digest_is_stored_and_logout_ends_it(store):
    sid = store.local_write(lambda c: sessions.create(c, "李四", T0, "10.0.0.5", POLICY))
    rows = store.conn.execute("SELECT id_hash FROM clerk_sessions").fetchall()
    assert rows == [(sessions.digest(sid),)] and sid not in rows[0][0]
    s = sessions.lookup(store.conn, sid, T0, POLICY)
    store.local_write(lambda c: sessions.end(c, s.id_hash))
    assert sessions.lookup(store.conn, sid, T0, POLICY) is None
    assert sessions.lookup(store.conn, "x" * 200, T0, POLICY) is None


def test_a_clerk_keeps_a_few_sessions_and_expired_ones_are_removed(store):
    sids = [store.local_write(lambda c: sessions.create(c, "李四", T0 + i, None, POLICY)) for i in range(8)]
    alive = [s for s in sids if sessions.lookup(store.conn, s, T0 + 10, POLICY)]
    assert alive == sids[-sessions.MAX_PER_CLERK :]
    store.local_write(lambda c: sessions.create(c, "李四", T0 + POLICY.idle_ms + 100, None, POLICY))
    assert store.conn.execute("SELECT count(*) FROM clerk_sessions").fetchone()[0] == 1


def test_csrf_token_belongs_to_its_session():
    a, b = "session-a", "session-b"
    assert sessions.csrf_matches(a, sessions.csrf_token(a))
    assert not sessions.csrf_matches(a, sessions.csrf_token(b))
    assert not sessions.csrf_matches(a, "") and not sessions.csrf_matches(a, None)


def test_throttle_per_clerk_and_per_address():
    t = sessions.PinThrottle(per_clerk=3, per_address=5, window_s=900)
    for _ in range(3):
        assert t.attempt("李四", "10.0.0.5", 0) is None
    assert t.attempt("李四", "10.0.0.6", 1) == pytest.approx(899)  # the clerk is locked, from any address
    assert t.attempt("赵六", "10.0.0.5", 1) is None  # the address has 2 attempts left
    assert t.attempt("王五", "10.0.0.5", 1) is None
    assert t.attempt("钱七", "10.0.0.5", 2) is not None  # address locked: 5 failures
    assert t.attempt("李四", "10.0.0.6", 900) is None  # the window is over


def test_a_right_pin_forgives_the_clerk_and_takes_the_attempt_back():
    t = sessions.PinThrottle(per_clerk=3, per_address=3, window_s=900)
    t.attempt("李四", "10.0.0.5", 0)
    t.attempt("李四", "10.0.0.5", 0)
    t.attempt("李四", "10.0.0.5", 0)
    t.succeeded("李四", "10.0.0.5")
    assert t.attempt("李四", "10.0.0.9", 1) is None  # the clerk's count is gone
    assert t.attempt("赵六", "10.0.0.5", 1) is None  # the address: two failures and this one
    assert t.attempt("钱七", "10.0.0.5", 1) is not None


def test_throttle_memory_is_bounded_and_flooders_share_one_slot():
    t = sessions.PinThrottle(per_clerk=2, per_address=2, window_s=900, max_keys=100)
    t.attempt("李四", "10.0.0.5", 0)
    for i in range(10_000):
        t.attempt(f"name{i}", f"10.1.{i // 250}.{i % 250}", 1)
    assert len(t) <= 100
    t.attempt("李四", "10.0.0.5", 2)
    assert t.attempt("李四", "10.0.0.5", 3) is not None  # the flood reset nobody's count
