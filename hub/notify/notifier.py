"""Notifier: writes reminders into the outbox and delivers them.

`enqueue` runs on the caller's connection inside the caller's transaction (the hub's single
writer thread, during a sweep), so a reminder is stored exactly when the light change that
caused it commits, and a unique `dedupe_key` makes a repeated sweep harmless. Delivery runs
elsewhere — an asyncio task (`run`) or its own thread (`start`) — on its OWN connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

from hub.db import connect
from hub.notify.channels import Channel, DeliveryError
from hub.notify.config import NotifyConfig
from hub.notify.directory import Directory, Role, normalize_email, normalize_mobile, read_directory
from hub.notify.outbox import Outgoing, claim, insert_message, record_failure, record_sent
from hub.notify.policy import backoff_ms
from hub.notify.templates import KINDS, TemplateError, render

log = logging.getLogger("jiancha.hub.notify")

ChannelName = Literal["sms", "email"]
# Names hub.supervision uses for what this package calls otherwise.
TEMPLATE_ALIASES = {"ticket": "supervision"}
FACT_ALIASES = {"reply_due": "reply_due_date"}


def build_channels(config: NotifyConfig) -> dict[str, Channel]:
    """The real channels for the configured sections (imported lazily: aiohttp, smtplib)."""
    out: dict[str, Channel] = {}
    if config.sms is not None:
        from hub.notify.sms import SmsGateway

        out["sms"] = SmsGateway(config.sms)
    if config.email is not None:
        from hub.notify.smtp import EmailSender

        out["email"] = EmailSender(config.email, footer=config.all_templates()["email_footer"])
    return out


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Notifier:
    """Durable, idempotent SMS/e-mail reminders (outbox + delivery worker)."""

    def __init__(
        self,
        config: NotifyConfig,
        db_path: str | Path | None = None,
        *,
        conn: sqlite3.Connection | None = None,
        channels: Mapping[str, Channel] | None = None,
        clock: Callable[[], int] = _wall_ms,
        rand: Callable[[], float] = random.random,
    ):
        self.config = config
        self.templates = config.all_templates()
        self.db_path = db_path
        self._conn, self._own_conn = conn, conn is None
        self.channels = dict(build_channels(config) if channels is None else channels)
        self.clock = clock
        self.rand = rand
        self.gate: Callable[[], bool] = lambda: True  # hub.lease: whether this worker delivers now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # -- writing (caller's connection and transaction) --------------------------------------
    def enqueue(
        self,
        conn: sqlite3.Connection,
        *,
        channel: ChannelName,
        to: str,
        template: str,
        facts: Mapping[str, object],
        dedupe_key: str,
        now_ms: int | None = None,
    ) -> int | None:
        """Store one message in the caller's transaction; None when `dedupe_key` was seen before."""
        if channel not in ("sms", "email"):
            raise ValueError(f"channel must be 'sms' or 'email', not {channel!r}")
        if template not in KINDS:
            raise ValueError(f"template must be one of {', '.join(KINDS)}, not {template!r}")
        if not dedupe_key or len(dedupe_key) > 300:
            raise ValueError("dedupe_key must be 1-300 characters")
        to = normalize_mobile(to) if channel == "sms" else normalize_email(to)
        text = render(self.templates, template, facts)
        subject = render(self.templates, f"{template}.subject", facts) if channel == "email" else None
        line = render(self.templates, f"{template}.line", facts)
        return insert_message(
            conn,
            channel=channel,
            to=to,
            template=template,
            facts=facts,
            dedupe_key=dedupe_key,
            text=text,
            subject=subject,
            line=line,
            now_ms=self.clock() if now_ms is None else now_ms,
        )

    def enqueue_department(
        self,
        conn: sqlite3.Connection,
        directory: Directory,
        department: str,
        *,
        template: str,
        facts: Mapping[str, object],
        dedupe_key: str,
        roles: Iterable[Role] = ("handler", "head"),
        item_code: str | None = None,
        channels: Iterable[ChannelName] | None = None,
        now_ms: int | None = None,
    ) -> list[int]:
        """Tell everyone of `department` in `roles` on every channel (default: the configured
        ones). Keys are `dedupe_key|channel|address`. When nobody can be reached, a 'failed' row
        says so, so the gap shows in the outbox instead of vanishing."""
        roles = tuple(roles)
        channels = tuple(channels) if channels is not None else tuple(self.channels)
        now_ms = self.clock() if now_ms is None else now_ms
        facts = {"department": department, **facts}  # the caller may give a display name
        ids, reached = [], 0
        for r in directory.recipients(department, roles, item_code=item_code):
            for ch in channels:
                addr = r.phone if ch == "sms" else r.email
                if not addr:
                    continue
                reached += 1
                new = self.enqueue(
                    conn,
                    channel=ch,
                    to=addr,
                    template=template,
                    facts={**facts, "recipient": r.name},
                    dedupe_key=f"{dedupe_key}|{ch}|{addr}",
                    now_ms=now_ms,
                )
                if new is not None:
                    ids.append(new)
        if not reached and channels:
            gap = insert_message(
                conn,
                channel=channels[0],
                to="",
                template=template,
                facts=facts,
                dedupe_key=f"{dedupe_key}|nobody",
                text=render(self.templates, template, facts),
                subject=None,
                line="",
                now_ms=now_ms,
                status="failed",
                last_error=f"no {'/'.join(channels)} contact for department {department!r} "
                f"(roles {', '.join(roles)}) in the directory",
            )
            if gap is not None:
                log.warning("nobody to notify for %s (department %s)", dedupe_key, department)
        return ids

    def supervisor_hook(self) -> Callable[..., None]:
        """The `notify(conn, department, roles, template, facts, dedupe_key)` callable that
        hub.supervision.Supervisor takes. It reads the directory on the same connection (cached
        until the table changes), maps names (ticket → supervision, reply_due → reply_due_date),
        and never lets a notification problem roll back the sweep: it is logged and stored as a
        'failed' row instead."""
        cache: dict = {}

        def hook(conn, department, roles, template, facts, dedupe_key) -> None:
            template = TEMPLATE_ALIASES.get(template, template)
            facts = dict(facts)
            for old, new in FACT_ALIASES.items():
                if old in facts:
                    facts.setdefault(new, facts[old])
            if template == "supervision":
                facts.setdefault("title", "督办通知")
            # outside a transaction the hook makes its own (SQLite would let the SAVEPOINT start
            # one; PostgreSQL refuses a SAVEPOINT there)
            own = not conn.in_transaction
            if own:
                conn.execute("BEGIN IMMEDIATE")
            try:
                self._enqueue_or_record(conn, cache, department, roles, template, facts, dedupe_key)
            except BaseException:
                if own and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if own:
                conn.execute("COMMIT")

        return hook

    def _enqueue_or_record(self, conn, cache: dict, department, roles, template, facts, dedupe_key) -> None:
        """The hook's work inside a SAVEPOINT: a bad template or fact becomes a 'failed' row; any
        other error undoes the hook's rows and is raised with the caller's transaction still
        usable (PostgreSQL refuses every statement after an error until a ROLLBACK TO)."""
        conn.execute("SAVEPOINT notify_hook")
        try:
            self.enqueue_department(
                conn,
                self._directory(conn, cache),
                department,
                template=template,
                facts=facts,
                dedupe_key=dedupe_key,
                roles=roles,
                item_code=facts.get("item_code"),
            )
        except (TemplateError, ValueError) as exc:
            conn.execute("ROLLBACK TO notify_hook")
            log.error("reminder %s not queued: %s", dedupe_key, exc)
            insert_message(
                conn,
                channel=next(iter(sorted(self.channels)), "sms"),
                to="",
                template=template,
                facts=facts,
                dedupe_key=f"{dedupe_key}|error",
                text="",
                subject=None,
                line="",
                now_ms=self.clock(),
                status="failed",
                last_error=f"not queued: {exc}",
            )
        except BaseException:
            conn.execute("ROLLBACK TO notify_hook")
            raise
        finally:
            conn.execute("RELEASE notify_hook")

    @staticmethod
    def _directory(conn: sqlite3.Connection, cache: dict) -> Directory:
        # int(): PostgreSQL's sum() of a BIGINT is a Decimal
        stamp = tuple(
            None if v is None else int(v)
            for v in conn.execute("SELECT count(*), max(updated_ms), COALESCE(sum(id), 0) FROM directory").fetchone()
        )
        if cache.get("stamp") != stamp:
            cache["stamp"], cache["directory"] = stamp, read_directory(conn)
        return cache["directory"]

    # -- delivery (own connection) ----------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.db_path is None:
                raise ValueError("Notifier needs db_path (or conn) to deliver")
            self._conn = connect(self.db_path)
        return self._conn

    async def run_once(self, now_ms: int | None = None) -> int:
        """One pass: claim due messages, send them, record results. Returns messages attempted."""
        if not self.gate():  # another hub worker holds the lease (hub.lease): it delivers
            return 0
        now_ms = self.clock() if now_ms is None else now_ms
        conn = self._db()
        batch = await asyncio.to_thread(
            claim, conn, now_ms=now_ms, channels=sorted(self.channels), cfg=self.config, templates=self.templates
        )
        if not batch:
            return 0
        gate = asyncio.Semaphore(self.config.concurrency)
        results = await asyncio.gather(*(self._send(m, gate) for m in batch))
        await asyncio.to_thread(self._record, conn, results, now_ms)
        return len(batch)

    async def _send(self, msg: Outgoing, gate: asyncio.Semaphore):
        async with gate:
            try:
                return msg, await self.channels[msg.channel].send(msg), None
            except DeliveryError as exc:
                return msg, None, exc
            except Exception as exc:
                log.exception("channel %s crashed on message %s", msg.channel, msg.id)
                return msg, None, DeliveryError(f"{type(exc).__name__}: {exc}")

    def _record(self, conn: sqlite3.Connection, results, now_ms: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for msg, provider_id, err in results:
                if err is None:
                    record_sent(conn, msg, now_ms, provider_id)
                    continue
                final = err.permanent or msg.attempt >= self.config.max_attempts
                retry_at = (
                    None
                    if final
                    else now_ms + backoff_ms(msg.attempt, self.config.backoff_s, self.config.backoff_max_s, self.rand())
                )
                record_failure(conn, msg, str(err), retry_at)
                log.log(
                    logging.WARNING if final else logging.INFO,
                    "%s %s to %s attempt %d: %s",
                    "gave up on" if final else "will retry",
                    msg.channel,
                    msg.to,
                    msg.attempt,
                    err,
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until `stop` is set: a pass, then wait `poll_interval_s` or a `wake()`."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._stop = stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    n = await self.run_once()
                except Exception:
                    log.exception("notification pass failed")
                    n = 0
                if n >= self.config.batch_size or stop.is_set():
                    continue
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
                except TimeoutError:
                    pass
        finally:
            await self.aclose()

    def wake(self) -> None:
        """Start a pass now (thread-safe; e.g. after the writer committed new reminders)."""
        loop, ev = self._loop, self._wake
        if loop is not None and ev is not None:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:
                pass  # loop already closed

    def start(self) -> None:
        """Run the worker in its own thread with its own event loop."""
        ready = threading.Event()

        async def main():
            stop = asyncio.Event()
            self._loop, self._stop = asyncio.get_running_loop(), stop
            ready.set()
            await self.run(stop)

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="notify", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker thread started by `start()` and close the connection."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
            self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    async def aclose(self) -> None:
        """Close the channels (HTTP sessions)."""
        for ch in self.channels.values():
            try:
                await ch.aclose()
            except Exception:
                log.exception("closing channel failed")

    def close(self) -> None:
        """Close the worker's own database connection."""
        if self._own_conn and self._conn is not None:
            self._conn.close()
            self._conn = None
