"""systemd supervision (看门狗): sd_notify datagrams and a watchdog that pings only when healthy.

The unit (firmware-configs/systemd/jiancha-agent.service) is `Type=notify`, `WatchdogSec=60`,
`Restart=always`. The agent sends READY=1 once it serves, then WATCHDOG=1 every
WatchdogSec/2, but only after its checks pass: the event loop runs (the pinger is a task on
it, so a blocked loop sends nothing) and the case log can take SQLite's write lock
(`store_probe`). When checks keep failing for the rest of the window, systemd kills the agent
with SIGABRT (PYTHONFAULTHANDLER=1 in the unit prints every thread's stack to the journal) and
starts it again.

The protocol is one datagram per message to the AF_UNIX socket in $NOTIFY_SOCKET ('@' starts
an abstract-namespace name), so the standard library is enough. Outside systemd
($NOTIFY_SOCKET unset) every call is a no-op that returns False.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("jiancha.agent.watchdog")

Check = Callable[[], "bool | Awaitable[bool]"]


class CheckFailed(Exception):
    """A health check failed; the message says which and why (it goes to STATUS=)."""


class SystemdNotifier:
    """Sends sd_notify messages; never raises (a lost datagram must not stop the agent)."""

    def __init__(self, socket_path: str | None = None, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET", "")
        self.address = _socket_address(path)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when a service manager is listening ($NOTIFY_SOCKET is a usable address)."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send 'KEY=value' fields as one datagram; True when it was sent."""
        if self.address is None:
            return False
        data = "\n".join(fields).encode("utf-8")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self.address)
                return True
            except OSError as exc:
                log.warning("sd_notify to %r failed: %s", self.address, exc)
                return False

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up finished (systemd starts the watchdog clock now)."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """STATUS=...: the line `systemctl status` shows."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """WATCHDOG=1: keep-alive ping."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: orderly shutdown has begun."""
        return self.notify("STOPPING=1", *_status(status))

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more start-up/stop time (long migrations on an SD card)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        """Close the socket (a later call opens a new one)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _socket_address(path: str) -> str | bytes | None:
    if not path or not (path.startswith("/") or path.startswith("@")):
        return None  # unset, or a kind we do not speak (vsock:...)
    return b"\0" + path[1:].encode() if path.startswith("@") else path


def _status(text: str | None) -> list[str]:
    # A newline would start a new KEY=value field; keep the status on one line.
    return [] if text is None else ["STATUS=" + " ".join(text.split())]


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of $WATCHDOG_USEC), or None when no watchdog is expected."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wd_pid = env.get("WATCHDOG_PID")
    if wd_pid and wd_pid.strip() != str(os.getpid() if pid is None else pid):
        return None  # the watchdog is meant for another process (a parent or a child)
    return usec / 2 / 1_000_000


def store_probe(
    conn: sqlite3.Connection, lock: threading.RLock | threading.Lock | None = None, timeout_s: float = 5.0
) -> bool:
    """True when the log could commit now: BEGIN IMMEDIATE; ROLLBACK on the writer connection.

    Takes the store's lock (so it never interleaves with a transaction on the same
    connection) and SQLite's write lock, then gives it back: no page is written, nothing
    is fsynced, it costs microseconds (about 3 µs on a laptop). It fails for what a restart
    cures: a writer that holds the lock longer than `timeout_s`, a connection left inside a
    transaction, a closed connection, a write lock another process never gives back. It does
    not fail for a full disk (a restart cannot cure that; see agent.health.disk_action), and
    it cannot see a filesystem remounted read-only (only a real write does). Call it off the
    event loop (`store_check` does).
    """
    if lock is not None and not lock.acquire(timeout=timeout_s):
        log.warning("store probe: the store lock was held for more than %.1f s", timeout_s)
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.Error as exc:
        log.warning("store probe failed: %s", exc)
        return False
    finally:
        if lock is not None:
            lock.release()


def store_check(store, timeout_s: float = 5.0) -> Callable[[], Awaitable[bool]]:
    """An async check running `store_probe` on an AgentStore's writer connection in a thread."""

    async def check() -> bool:
        return await asyncio.to_thread(store_probe, store.conn, store.lock, timeout_s)

    return check


def all_checks(**checks: Check) -> Callable[[], Awaitable[bool]]:
    """One check from named checks; raises CheckFailed naming the first that fails."""

    async def check() -> bool:
        for name, fn in checks.items():
            try:
                ok = await _call(fn)
            except CheckFailed:
                raise
            except Exception as exc:
                raise CheckFailed(f"{name}: {type(exc).__name__}: {exc}") from exc
            if not ok:
                raise CheckFailed(f"{name} check failed")
        return True

    return check


async def _call(fn: Check) -> bool:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


class WatchdogPinger:
    """Loop: run the check, ping WATCHDOG=1 only when it passes; retry sooner when it fails.

    A failed or hung check (longer than `check_timeout`) sends no ping and says why in
    STATUS=. Checks are retried every `interval / 4` after a failure, so one slow moment
    does not cost a restart; only checks failing until WatchdogSec runs out do.
    """

    def __init__(
        self,
        check: Check,
        notifier: SystemdNotifier,
        interval: float,
        *,
        check_timeout: float | None = None,
        status: Callable[[], str] | None = None,
    ):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.check = check
        self.notifier = notifier
        self.interval = interval
        self.check_timeout = check_timeout if check_timeout is not None else interval / 2
        self.status = status
        self.pings = 0
        self.failures = 0
        self.last_error: str | None = None
        self._last_status: str | None = None
        self._task: asyncio.Task | None = None

    async def tick(self) -> bool:
        """One round: check, then ping or report. Returns whether the check passed."""
        try:
            ok = await asyncio.wait_for(_call(self.check), self.check_timeout)
            error = None if ok else "health check failed"
        except TimeoutError:
            ok, error = False, f"health check hung for more than {self.check_timeout:.1f} s"
        except Exception as exc:
            ok, error = False, str(exc) or type(exc).__name__
        if ok:
            self.notifier.watchdog()
            self.pings += 1
            self.last_error = None
            self._set_status(self._status_text())
        else:
            self.failures += 1
            self.last_error = error
            log.error("watchdog not pinged: %s", error)
            self._set_status(f"unhealthy, watchdog not pinged: {error}")
        return ok

    def _status_text(self) -> str:
        if self.status is None:
            return "ok"
        try:
            return self.status()
        except Exception as exc:
            return f"ok (status unavailable: {exc})"

    def _set_status(self, text: str) -> None:
        if text != self._last_status:
            self.notifier.status(text)
            self._last_status = text

    async def run(self) -> None:
        """Ping forever (until cancelled)."""
        while True:
            started = time.monotonic()
            ok = await self.tick()
            wait = self.interval if ok else self.interval / 4
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))

    def start(self) -> asyncio.Task:
        """Run in a task on the current loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="watchdog")
        return self._task

    async def stop(self) -> None:
        """Cancel the task and wait for it."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
