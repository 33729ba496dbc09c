"""sd_notify over a real datagram socket; the watchdog pings only while the checks pass."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from agent.store import AgentStore
from agent.watchdog import (
    CheckFailed,
    SystemdNotifier,
    WatchdogPinger,
    all_checks,
    store_check,
    store_probe,
    watchdog_interval,
)


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; collects what arrives."""

    def __init__(self, kind: str):
        if kind == "abstract":
            name = f"jiancha-test-{uuid.uuid4().hex}"
            self.env_value, addr = "@" + name, b"\0" + name.encode()
            self._dir = None
        else:  # a short folder: socket paths are limited to 108 bytes
            self._dir = tempfile.mkdtemp(prefix="jc-notify-")
            self.env_value = addr = str(Path(self._dir) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(addr)
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))
            except (TimeoutError, OSError):
                continue

    def messages(self, settle: float = 0.1) -> list[str]:
        """Every datagram received so far (after waiting `settle` for stragglers)."""
        time.sleep(settle)
        return [m for _, m in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request):
    s = NotifySocket(request.param)
    yield s
    s.close()


@pytest.fixture
def notifier(notify_socket):
    n = SystemdNotifier(notify_socket.env_value)
    yield n
    n.close()


# -- SystemdNotifier ------------------------------------------------------------------------
def test_each_message_is_one_datagram(notify_socket, notifier):
    assert notifier.enabled
    assert notifier.ready("serving S01 on :8081")
    assert notifier.status("2 problems:\n disk below floor")
    assert notifier.watchdog()
    assert notifier.extend_timeout(90)
    assert notifier.stopping()
    assert notify_socket.messages() == [
        "READY=1\nSTATUS=serving S01 on :8081",
        "STATUS=2 problems: disk below floor",  # a newline would start a new field
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=90000000",
        "STOPPING=1",
    ]


def test_socket_comes_from_the_environment(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.env_value)
    assert SystemdNotifier().ready()
    assert notify_socket.messages() == ["READY=1"]


@pytest.mark.parametrize("value", [None, "", "vsock:2:1234", "relative/path"])
def test_outside_systemd_nothing_is_sent(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    n = SystemdNotifier()
    assert not n.enabled and n.ready() is False and n.watchdog() is False


def test_a_vanished_socket_is_logged_not_raised(tmp_path, caplog):
    n = SystemdNotifier(str(tmp_path / "gone"))
    assert n.enabled and n.watchdog() is False
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize(
    "env, pid, expect",
    [
        ({"WATCHDOG_USEC": "60000000"}, 42, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "42"}, 42, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "7"}, 42, None),  # meant for another process
        ({}, 42, None),
        ({"WATCHDOG_USEC": "0"}, 42, None),
        ({"WATCHDOG_USEC": "soon"}, 42, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(env, pid, expect):
    assert watchdog_interval(env, pid=pid) == expect


# -- WatchdogPinger -------------------------------------------------------------------------
async def test_pings_when_the_check_passes(notify_socket, notifier):
    p = WatchdogPinger(lambda: True, notifier, interval=1, status=lambda: "ok; backlog 0")
    assert await p.tick() and await p.tick()
    # STATUS= only when it changes
    assert notify_socket.messages() == ["WATCHDOG=1", "STATUS=ok; backlog 0", "WATCHDOG=1"]


async def _hang():
    await asyncio.sleep(30)
    return True


def _boom():
    raise RuntimeError("sign driver wedged")


@pytest.mark.parametrize(
    "check, reason",
    [
        (lambda: False, "health check failed"),
        (_boom, "sign driver wedged"),
        (_hang, "hung for more than 0.1 s"),
    ],
)
async def test_no_ping_when_the_check_fails(notify_socket, notifier, check, reason):
    p = WatchdogPinger(check, notifier, interval=1, check_timeout=0.1)
    assert await p.tick() is False
    msgs = notify_socket.messages()
    assert "WATCHDOG=1" not in msgs
    assert len(msgs) == 1 and msgs[0].startswith("STATUS=unhealthy") and reason in msgs[0]
    assert p.failures == 1 and reason in p.last_error


async def test_async_checks_are_awaited(notify_socket, notifier):
    async def ok():
        await asyncio.sleep(0)
        return True

    assert await WatchdogPinger(ok, notifier, interval=1).tick()
    assert "WATCHDOG=1" in notify_socket.messages()


async def test_pings_resume_after_failures_retried_sooner(notify_socket, notifier):
    calls = []

    def flaky():
        calls.append(time.monotonic())
        return len(calls) > 2

    p = WatchdogPinger(flaky, notifier, interval=0.4)
    p.start()
    await asyncio.sleep(0.5)
    await p.stop()
    msgs = notify_socket.messages()
    assert msgs[:3] == [
        "STATUS=unhealthy, watchdog not pinged: health check failed",
        "WATCHDOG=1",
        "STATUS=ok",
    ]  # no ping before the check passed
    # after a failure the check is retried after interval/4, not a whole interval
    assert calls[2] - calls[0] < 0.4


async def test_a_blocked_event_loop_sends_no_ping(notify_socket, notifier):
    p = WatchdogPinger(lambda: True, notifier, interval=0.05)
    p.start()
    await asyncio.sleep(0.2)
    time.sleep(0.6)  # a handler that blocks the loop (a hung driver call, say)
    await asyncio.sleep(0.2)
    await p.stop()
    notify_socket.messages()
    pings = [t for t, m in notify_socket.received if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert len(pings) >= 4 and max(gaps) >= 0.55


# -- store probe ----------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.save_config("catalog", 1, 0, {"items": []}, b"raw")
    yield s
    s.close()


def _files(tmp_path):
    return {p.name: p.stat().st_size for p in tmp_path.iterdir()}


def test_probe_passes_and_writes_nothing(store, tmp_path):
    before, changes = _files(tmp_path), store.conn.total_changes
    assert store_probe(store.conn, store.lock)
    assert _files(tmp_path) == before and store.conn.total_changes == changes
    assert not store.conn.in_transaction


def test_probe_fails_while_a_writer_holds_the_store_lock(store):
    held, release = threading.Event(), threading.Event()

    def writer():
        with store.lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    held.wait(5)
    try:
        assert store_probe(store.conn, store.lock, timeout_s=0.05) is False
    finally:
        release.set()
        t.join()
    assert store_probe(store.conn, store.lock)


def test_probe_fails_on_a_connection_left_in_a_transaction(store):
    store.conn.execute("BEGIN")  # what a lost ROLLBACK leaves behind
    assert store_probe(store.conn, store.lock) is False
    store.conn.execute("ROLLBACK")
    assert store_probe(store.conn, store.lock)


def test_probe_fails_when_another_connection_keeps_the_write_lock(store):
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    store.conn.execute("PRAGMA busy_timeout=50")
    try:
        assert store_probe(store.conn, store.lock) is False
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_probe_fails_on_a_closed_connection(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.close()
    assert store_probe(s.conn, s.lock) is False


async def test_store_check_gates_the_pinger(store, notify_socket, notifier):
    check = all_checks(store=store_check(store, timeout_s=0.05))
    p = WatchdogPinger(check, notifier, interval=1)
    assert await p.tick()
    store.conn.execute("BEGIN")
    assert await p.tick() is False
    store.conn.execute("ROLLBACK")
    assert notify_socket.messages() == [
        "WATCHDOG=1",
        "STATUS=ok",
        "STATUS=unhealthy, watchdog not pinged: store check failed",
    ]


async def test_all_checks_names_the_failing_one():
    def broken():
        raise OSError("gpiochip0 gone")

    with pytest.raises(CheckFailed, match="keypads: OSError: gpiochip0 gone"):
        await all_checks(loop=lambda: True, keypads=broken)()
    with pytest.raises(CheckFailed, match="^store check failed$"):
        await all_checks(loop=lambda: True, store=lambda: False)()
    assert await all_checks(loop=lambda: True)() is True
