"""The uplink outbox (上报队列) of a child hub: what it forwards to its parent (DESIGN §7).

An append-only log in the hub's own store with the guarantees of a site's log: a per-sender
`seq` from 1 without gaps, each record's `prev` the hash of the one before, canonical records
(protocol/records.py). A record is appended in the SAME transaction as the event it describes
(a yellow or red card written by the projection, a 督办 ticket step written by the supervisor),
so it is durable before anything is sent and exists exactly when the event does. The forwarder
(hub/forwarder.py) reads it and keeps the parent's acknowledged mark in `uplink_acked`.

Appenders serialize on the one row of `uplink_head` (UPDATE … RETURNING takes its row lock on
PostgreSQL; SQLite has one writer): two ingest workers never take the same seq.

The parent's side of the same tables (`child_hubs`, `child_records`, the `child_cards` view)
is created here too: a city hub is a parent and a child at once.
"""

from __future__ import annotations

import json
import logging

from protocol.records import GENESIS, Record, encode_record, record_hash
from protocol.uplink import KIND_CARD, KIND_TICKET_STEP, card_body, ticket_step_body

log = logging.getLogger("jiancha.hub.uplink")

_CHILD_SQL = """
    CREATE TABLE child_hubs (code TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
        online {int} NOT NULL DEFAULT 0, last_seen_ms {int}, acked_seq {int} NOT NULL DEFAULT 0,
        acked_hash {blob}, max_seq {int} NOT NULL DEFAULT 0, child_last_seq {int},
        gap_since_ms {int}, resend_asks {int} NOT NULL DEFAULT 0, chain_break_at {int}, state_json TEXT);
    CREATE TABLE child_records (child TEXT NOT NULL, seq {int} NOT NULL, hash {blob} NOT NULL,
        prev {blob} NOT NULL, kind TEXT NOT NULL, wall_ms {int} NOT NULL, received_ms {int} NOT NULL,
        case_no TEXT, card TEXT, ticket {int}, action TEXT, department TEXT, site TEXT, origin TEXT,
        body_json TEXT NOT NULL, data {blob} NOT NULL, PRIMARY KEY (child, seq)){rowid};
    CREATE INDEX child_records_case ON child_records(case_no);
    -- origin: the hub below the child where it happened (a city relaying its county), NULL: the child
    -- one row per (child, case, card colour): a card the child sent twice (two records) counts once
    CREATE VIEW child_cards AS SELECT child, case_no, card AS kind, min(seq) AS first_seq,
        count(*) AS records, min(wall_ms) AS first_ms, max(department) AS department, max(site) AS site,
        max(origin) AS origin FROM child_records WHERE kind = 'card' GROUP BY child, case_no, card;
"""
_OUTBOX_SQL = """
    CREATE TABLE uplink_head (id {int} PRIMARY KEY CHECK (id = 1), seq {int} NOT NULL, hash {blob});
    CREATE TABLE uplink_acked (id {int} PRIMARY KEY CHECK (id = 1), seq {int} NOT NULL, hash {blob},
        at_ms {int});
    CREATE TABLE uplink_log (seq {int} PRIMARY KEY, kind TEXT NOT NULL, case_no TEXT,
        at_ms {int} NOT NULL, data {blob} NOT NULL);
"""
MIGRATIONS = [
    ("0201_uplink", (_OUTBOX_SQL + _CHILD_SQL).format(int="INTEGER", blob="BLOB", rowid=" WITHOUT ROWID")),
]
PG_MIGRATIONS = [
    ("pg_0201_uplink", (_OUTBOX_SQL + _CHILD_SQL).format(int="BIGINT", blob="BYTEA", rowid="")),
]

_SUMMARY_SQL = (
    "SELECT case_no, site, item_code, item_name, department, case_type, received_at, due_date, "
    "legal_due_date, status, light, violations, yellow_cards, red_cards FROM cases WHERE case_no=?"
)


def case_summary(conn, case_no: str) -> dict | None:
    """The case as a parent may see it (protocol/uplink.py CaseSummary), None if no such case.
    Read column by column from `cases`: never reg_json, query_code or anything personal."""
    row = conn.execute(_SUMMARY_SQL, (case_no,)).fetchone()
    if row is None:
        return None
    try:
        violations = [str(v) for v in json.loads(row[11] or "[]")]
    except ValueError:
        violations = []
    return {
        "case_no": row[0],
        "site": row[1],
        "item_code": row[2],
        "item_name": row[3] or "",
        "department": row[4] or "",
        "case_type": row[5],
        "received_at": row[6],
        "due_date": row[7],
        "legal_due_date": row[8],
        "status": row[9],
        "light": row[10],
        "violations": violations,
        "yellow_cards": int(row[12] or 0),
        "red_cards": int(row[13] or 0),
    }


def append(conn, kind: str, body: dict, at_ms: int, case_no: str | None = None) -> int:
    """Append one record inside the caller's transaction; returns its seq."""
    # the row is made on first use (an empty store stays empty: `jiancha hub migrate-store`
    # copies only into an empty one); its row lock orders the appenders
    conn.execute("INSERT INTO uplink_head (id, seq, hash) VALUES (1, 0, NULL) ON CONFLICT (id) DO NOTHING")
    seq, prev = conn.execute("UPDATE uplink_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash").fetchone()
    enc = encode_record(Record(seq, bytes(prev) if prev else GENESIS, kind, at_ms, 0, "", "ntp", body))
    conn.execute("UPDATE uplink_head SET hash = ? WHERE id = 1", (record_hash(enc),))
    conn.execute(
        "INSERT INTO uplink_log (seq, kind, case_no, at_ms, data) VALUES (?, ?, ?, ?, ?)",
        (seq, kind, case_no, at_ms, enc),
    )
    return seq


def head(conn) -> int:
    """The last seq appended (0: none)."""
    row = conn.execute("SELECT seq FROM uplink_head WHERE id = 1").fetchone()
    return row[0] if row else 0


def acked(conn) -> int:
    """The highest seq the parent acknowledged as stored contiguously."""
    row = conn.execute("SELECT seq FROM uplink_acked WHERE id = 1").fetchone()
    return row[0] if row else 0


def set_acked(conn, seq: int, hash_: bytes | None, at_ms: int) -> None:
    """Persist the parent's ack (only forward; the caller commits)."""
    conn.execute(
        "INSERT INTO uplink_acked (id, seq, hash, at_ms) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
        "SET seq = excluded.seq, hash = excluded.hash, at_ms = excluded.at_ms WHERE uplink_acked.seq < excluded.seq",
        (seq, hash_, at_ms),
    )


def read(conn, first: int, last: int) -> list[bytes]:
    """Encoded records first..last (fewer if the log ends earlier)."""
    rows = conn.execute("SELECT data FROM uplink_log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))
    return [bytes(r[0]) for r in rows.fetchall()]


def record_hash_at(conn, seq: int) -> bytes | None:
    """Hash of our record at `seq` (to compare with the parent's ack), None if we hold none."""
    enc = read(conn, seq, seq)
    return record_hash(enc[0]) if enc else None


class Uplink:
    """The hooks the projection and the supervisor call; a no-op on a hub without a parent."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def card(self, conn, case_no: str, card: str, previous: str | None, at_ms: int) -> int | None:
        """A yellow/red card on `case_no` (call in the card's transaction)."""
        if not self.enabled:
            return None
        case = case_summary(conn, case_no)
        if case is None:
            return None
        return append(conn, KIND_CARD, card_body(card, previous, at_ms, case), at_ms, case_no)

    def ticket_step(self, conn, ticket_id: int, action: str, actor: str, at_ms: int) -> int | None:
        """A step of ticket `ticket_id` (call in the step's transaction, after it is written).
        Tickets of things that are not cases (a complaint's or a 差评 follow-up's 督办, tickets.subject)
        are not forwarded (docs/rollup.md)."""
        if not self.enabled:
            return None
        cur = conn.execute(
            "SELECT id, parent_id, level, status, reply_due, case_no FROM tickets WHERE id=? AND subject='case'",
            (ticket_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        ticket = dict(zip(("id", "parent_id", "level", "status", "reply_due", "case_no"), row))
        case = case_summary(conn, ticket["case_no"])
        if case is None:
            return None
        body = ticket_step_body(ticket, action, actor == "system", at_ms, case)
        return append(conn, KIND_TICKET_STEP, body, at_ms, ticket["case_no"])
