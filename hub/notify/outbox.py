"""The durable outbox (`notifications` table): insert, claim with a lease, record results.

Life of a row: queued → sending (claimed: attempts+1, lease) → sent | queued (retry after
backoff) | failed (permanent error or max attempts). A row still 'sending' when its lease ends
belonged to a worker that died mid-send; it is queued again (at-least-once: the gateway may
have accepted it, so the request carries {id}/{dedupe_key} for gateways that deduplicate).
More than `digest_threshold` queued rows for one recipient become one digest row; the rows
it carries turn 'merged' with `merged_into` = the digest's id.

The SQL is the common dialect of SQLite and PostgreSQL (hub/db.py): ids come back through
`RETURNING`, never `lastrowid`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hub.notify.policy import HOUR_MS, digest_message, rate_wait_until, should_digest
from hub.notify.templates import DIGEST


@dataclass(frozen=True)
class Outgoing:
    """A claimed message handed to a channel."""

    id: int
    channel: str
    to: str
    subject: str | None
    text: str
    dedupe_key: str
    attempt: int


def insert_message(
    conn: sqlite3.Connection,
    *,
    channel: str,
    to: str,
    template: str,
    facts: Mapping,
    dedupe_key: str,
    text: str,
    subject: str | None,
    line: str,
    now_ms: int,
    status: str = "queued",
    last_error: str | None = None,
) -> int | None:
    """Insert one row in the caller's transaction; None if `dedupe_key` is already there."""
    cur = conn.execute(
        "INSERT INTO notifications(dedupe_key, channel, to_addr, template, facts_json, subject, text, line, "
        "status, next_attempt_ms, created_ms, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(dedupe_key) DO NOTHING RETURNING id",
        (
            dedupe_key,
            channel,
            to,
            template,
            json.dumps(dict(facts), ensure_ascii=False, default=str),
            subject,
            text,
            line,
            status,
            now_ms,
            now_ms,
            last_error,
        ),
    )
    row = cur.fetchone()  # no row back when the key was already there
    return None if row is None else row[0]


def reclaim_expired(conn: sqlite3.Connection, now_ms: int, max_attempts: int) -> int:
    """Rows whose lease ran out (worker died while sending): queue again, or fail at the limit."""
    err = "lease expired: the worker stopped while sending (delivery unknown)"
    conn.execute(
        "UPDATE notifications SET status='failed', lease_until_ms=NULL, last_error=? "
        "WHERE status='sending' AND lease_until_ms <= ? AND attempts >= ?",
        (err, now_ms, max_attempts),
    )
    return conn.execute(
        "UPDATE notifications SET status='queued', lease_until_ms=NULL, next_attempt_ms=?, "
        "last_error=? WHERE status='sending' AND lease_until_ms <= ?",
        (now_ms, err, now_ms),
    ).rowcount


def merge_digests(
    conn: sqlite3.Connection,
    now_ms: int,
    channels: Sequence[str],
    threshold: int,
    templates: Mapping[str, str],
    max_lines: int,
) -> int:
    """Fold each storm (more than `threshold` queued for one recipient) into one digest row,
    including the contents of a digest still queued for them. Returns digests created."""
    made = 0
    qs = ",".join("?" * len(channels))
    recipients = conn.execute(  # only recipients with something new: a digest alone stays as it is
        f"SELECT channel, to_addr FROM notifications WHERE status='queued' AND template != ? "
        f"AND channel IN ({qs}) GROUP BY channel, to_addr",
        (DIGEST, *channels),
    ).fetchall()
    for channel, to in recipients:
        singles = conn.execute(
            "SELECT id, template, line FROM notifications WHERE status='queued' "
            "AND template != ? AND channel=? AND to_addr=? ORDER BY id",
            (DIGEST, channel, to),
        ).fetchall()
        old = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM notifications WHERE status='queued' AND template=? AND channel=? AND to_addr=?",
                (DIGEST, channel, to),
            )
        ]
        carried = (
            conn.execute(
                f"SELECT id, template, line FROM notifications WHERE template != ? AND "
                f"merged_into IN ({','.join('?' * len(old))}) ORDER BY id",
                (DIGEST, *old),
            ).fetchall()
            if old
            else []
        )
        if not should_digest(len(singles) + len(carried), threshold):
            continue
        rows = carried + singles
        text, subject, facts = digest_message(templates, channel, [(t, ln) for _, t, ln in rows], max_lines)
        facts["ids"] = [r[0] for r in rows]
        digest_id = insert_message(
            conn,
            channel=channel,
            to=to,
            template=DIGEST,
            facts=facts,
            dedupe_key=f"digest:{channel}:{to}:{max(r[0] for r in rows)}",
            text=text,
            subject=subject,
            line="",
            now_ms=now_ms,
        )
        if digest_id is None:  # cannot happen: each digest holds a new single with a higher id
            raise RuntimeError(f"digest for {channel}:{to} already exists")
        ids = [r[0] for r in rows] + old
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            conn.execute(
                f"UPDATE notifications SET status='merged', merged_into=?, lease_until_ms=NULL "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                (digest_id, *chunk),
            )
        made += 1
    return made


def _recent_sends(conn: sqlite3.Connection, channel: str, to: str, now_ms: int) -> list[int]:
    sent = [
        r[0]
        for r in conn.execute(
            "SELECT sent_ms FROM notifications WHERE status='sent' AND channel=? AND to_addr=? AND sent_ms > ?",
            (channel, to, now_ms - HOUR_MS),
        )
    ]
    in_flight = conn.execute(
        "SELECT count(*) FROM notifications WHERE status='sending' AND channel=? AND to_addr=?", (channel, to)
    ).fetchone()[0]
    return sent + [now_ms] * in_flight


def claim(
    conn: sqlite3.Connection, *, now_ms: int, channels: Sequence[str], cfg, templates: Mapping[str, str]
) -> list[Outgoing]:
    """One transaction on the worker's connection: reclaim expired leases, build digests, then
    lease up to `cfg.batch_size` due rows within each recipient's hourly rate."""
    if not channels:
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        reclaim_expired(conn, now_ms, cfg.max_attempts)
        merge_digests(conn, now_ms, channels, cfg.digest_threshold, templates, cfg.digest_max_lines)
        rows = conn.execute(
            f"SELECT id, channel, to_addr, subject, text, dedupe_key, attempts FROM notifications "
            f"WHERE status='queued' AND next_attempt_ms <= ? AND channel IN ({','.join('?' * len(channels))}) "
            f"ORDER BY next_attempt_ms, id LIMIT ?",
            (now_ms, *channels, cfg.batch_size),
        ).fetchall()
        recent: dict[tuple[str, str], list[int]] = {}
        out = []
        lease_until = now_ms + int(cfg.lease_s * 1000)
        for id_, channel, to, subject, text, key, attempts in rows:
            if (channel, to) not in recent:
                recent[(channel, to)] = _recent_sends(conn, channel, to, now_ms)
            sends = recent[(channel, to)]
            wait = rate_wait_until(sends, now_ms, cfg.rate_per_hour)
            if wait is not None:
                conn.execute("UPDATE notifications SET next_attempt_ms=? WHERE id=?", (wait, id_))
                continue
            sends.append(now_ms)
            conn.execute(
                "UPDATE notifications SET status='sending', attempts=attempts+1, lease_until_ms=? WHERE id=?",
                (lease_until, id_),
            )
            out.append(Outgoing(id_, channel, to, subject, text, key, attempts + 1))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return out


def record_sent(conn: sqlite3.Connection, msg: Outgoing, now_ms: int, provider_id: str | None) -> bool:
    """Mark a claimed row sent; False if its lease was lost meanwhile (another worker owns it)."""
    return (
        conn.execute(
            "UPDATE notifications SET status='sent', sent_ms=?, provider_id=?, lease_until_ms=NULL, last_error=NULL "
            "WHERE id=? AND status='sending' AND attempts=?",
            (now_ms, provider_id, msg.id, msg.attempt),
        ).rowcount
        == 1
    )


def record_failure(conn: sqlite3.Connection, msg: Outgoing, error: str, retry_at_ms: int | None) -> bool:
    """Queue a claimed row for retry at `retry_at_ms`, or mark it failed when that is None."""
    if retry_at_ms is None:
        sql, args = "status='failed'", ()
    else:
        sql, args = "status='queued', next_attempt_ms=?", (retry_at_ms,)
    return (
        conn.execute(
            f"UPDATE notifications SET {sql}, lease_until_ms=NULL, last_error=? "
            f"WHERE id=? AND status='sending' AND attempts=?",
            (*args, error[:1000], msg.id, msg.attempt),
        ).rowcount
        == 1
    )


def retry_failed(conn: sqlite3.Connection, *, now_ms: int, ids: Sequence[int] | None = None) -> int:
    """Operator action: queue failed rows again with a fresh attempt count."""
    where, args = "status='failed'", []
    if ids is not None:
        where += f" AND id IN ({','.join('?' * len(ids))})"
        args = list(ids)
    return conn.execute(
        f"UPDATE notifications SET status='queued', attempts=0, next_attempt_ms=? WHERE {where}", (now_ms, *args)
    ).rowcount


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per status (for /metrics and the operator page)."""
    out = {s: 0 for s in ("queued", "sending", "sent", "failed", "merged")}
    out.update(dict(conn.execute("SELECT status, count(*) FROM notifications GROUP BY status").fetchall()))
    return out


def delivery_of(conn: sqlite3.Connection, notification_id: int) -> dict | None:
    """Where a message stands, following a merge into its digest: {id, status, sent_ms, ...}."""
    row = conn.execute(
        "SELECT id, status, attempts, sent_ms, provider_id, last_error, merged_into FROM notifications WHERE id=?",
        (notification_id,),
    ).fetchone()
    if row is None:
        return None
    d = dict(zip(("id", "status", "attempts", "sent_ms", "provider_id", "last_error", "merged_into"), row))
    if d["merged_into"] is not None:
        digest = delivery_of(conn, d["merged_into"])
        d["digest"] = digest
    return d
