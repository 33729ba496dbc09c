"""A parent hub's ingest of its child hubs' uplink batches (DESIGN §7, docs/rollup.md).

The same checks as a site's batch (hub/ingest.py): the sender must be an active child hub of
the registry (kind hub), the batch must carry its signature and be sealed to this hub, records
must be canonical and chained; bad input is quarantined with a counted reason and never stops
ingest. Records are stored idempotently by (child, seq) in `child_records`; the contiguous mark
moves only over records that link to the one before; the ack names the highest contiguous seq
and its hash, and asks for a resend from the first gap when it persists. Runs inside the
ingest's group transaction (same writer, same lock per sender on a shared store).
"""

from __future__ import annotations

import json
import logging

from pydantic import ValidationError

from hub import rollups, uplink
from hub import store as db
from hub.wall import WALL_COUNTER
from protocol import topics
from protocol.records import GENESIS, record_hash
from protocol.uplink import CardBody, RollupBody, parse_body, relayed
from protocol.wire import WireError, decode_msg, open_batch

log = logging.getLogger("jiancha.hub.children")

GAP_WAIT_MS = 3000  # a gap this old (without progress) asks for a resend, doubling while it stays
GAP_WAIT_MAX_MS = 300_000
PAGE = 5000


def handle(ing, child: str, rest: str, topic: str, payload: bytes, now_ms: int, out) -> None:
    """Dispatch one message on a child hub's topic (called by Ingestor._dispatch)."""
    if rest == "up/state":
        return _state(ing, child, topic, payload, now_ms, out)
    if rest != "up/batch":
        return ing._quarantine(now_ms, child, topic, "bad_topic", "", payload)
    if not payload:
        return db.bump(ing.conn, "empty_payloads_ignored")
    _batch(ing, child, topic, payload, now_ms, out)


def _sender_key(ing, child: str, topic: str, payload: bytes, now_ms: int):
    key = ing.sites.child_key(child)
    if key is None:
        reason = "revoked_site" if ing.sites.is_revoked(child) else "unknown_site"
        ing._quarantine(now_ms, child, topic, reason, "child hub", payload)
    return key


def _batch(ing, child: str, topic: str, payload: bytes, now_ms: int, out) -> None:
    conn = ing.conn
    key = _sender_key(ing, child, topic, payload, now_ms)
    if key is None:
        return
    try:
        header, records = open_batch(payload, site=child, verify_key=key, hub_seal_key=ing.keys.seal_key)
    except WireError as exc:
        return ing._quarantine(now_ms, child, topic, exc.reason, str(exc), payload)
    for i in range(1, len(records)):
        if records[i][0].prev != record_hash(records[i - 1][1]):
            return ing._quarantine(
                now_ms, child, topic, "chain_break", f"inside batch at seq {records[i][0].seq}", payload
            )
    db.bump(conn, "child_batches_received")
    row = _row(conn, child, ing.sites.name(child))
    existing = {
        r[0]: bytes(r[1])
        for r in conn.execute(
            "SELECT seq, hash FROM child_records WHERE child=? AND seq BETWEEN ? AND ?",
            (child, header.first_seq - 1, header.last_seq),
        ).fetchall()
    }
    first = records[0][0]
    before = existing.get(first.seq - 1)
    if (before is not None and before != first.prev) or (first.seq == 1 and first.prev != GENESIS):
        return ing._quarantine(now_ms, child, topic, "seq_conflict", f"seq {first.seq} does not link", payload)
    fresh = []
    for rec, enc in records:
        h = record_hash(enc)
        old = existing.get(rec.seq)
        if old is None:
            fresh.append((rec, enc, h))
        elif old != h:  # another history under this child's identity: kept apart, never mixed in
            return ing._quarantine(now_ms, child, topic, "seq_conflict", f"seq {rec.seq} differs", payload)
        else:
            db.bump(conn, "child_records_duplicate")
    rows = [_row_for(ing, child, topic, rec, enc, h, now_ms) for rec, enc, h in fresh]
    if rows:
        conn.executemany(
            "INSERT INTO child_records (child, seq, hash, prev, kind, wall_ms, received_ms, case_no, card, ticket, "
            "action, department, site, origin, body_json, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.bump(conn, "child_records_stored", len(rows))
        db.bump(conn, WALL_COUNTER)
    top = max([row["max"]] + [r.seq for r, _, _ in fresh])
    _advance(ing, child, row, top, now_ms, out)


def _row_for(ing, child, topic, rec, enc, h, now_ms) -> tuple:
    """The child_records row of one fresh record. A body the parent does not accept (unknown
    kind, a field it does not know) is kept as a link of the chain -- its hash and prev -- but
    without its content, counted and quarantined by reason (its content may hold what must not
    be stored here)."""
    try:
        body = parse_body(rec.kind, rec.body)
    except (ValidationError, ValueError) as exc:
        detail = _field_error(exc) if isinstance(exc, ValidationError) else str(exc)
        ing._quarantine(now_ms, child, topic, "bad_body", f"seq {rec.seq}: {detail}", b"")
        content = (None,) * 7  # case_no, card, ticket, action, department, site, origin
        return (child, rec.seq, h, rec.prev, rec.kind, rec.wall_ms, now_ms, *content, "{}", b"")
    if isinstance(body, RollupBody):  # the figures are kept by key in child_rollups (hub/rollups.py)
        rollups.store(ing.conn, child, body, now_ms)
        body_json = json.dumps(body.model_dump(), ensure_ascii=False, separators=(",", ":"))
        return (child, rec.seq, h, rec.prev, rec.kind, rec.wall_ms, now_ms, None, None, None, None,
                body.department, body.region, body.origin, body_json, enc)  # fmt: skip
    card = body.card if isinstance(body, CardBody) else None
    ticket, action = (None, None) if card else (body.ticket, body.action)
    c = body.case
    return (
        child,
        rec.seq,
        h,
        rec.prev,
        rec.kind,
        rec.wall_ms,
        now_ms,
        c.case_no,
        card,
        ticket,
        action,
        c.department,
        c.site,
        body.origin,
        json.dumps(body.model_dump(), ensure_ascii=False, separators=(",", ":")),
        enc,
    )


def _field_error(exc: ValidationError) -> str:
    e = exc.errors()[0]  # the field and the message, never the value (it may be personal data)
    return f"{'.'.join(str(p) for p in e.get('loc', ())) or '(body)'}: {e.get('msg', '')}"[:300]


def _row(conn, child: str, name: str) -> dict:
    sql = (
        "SELECT acked_seq, acked_hash, max_seq, gap_since_ms, resend_asks, chain_break_at FROM child_hubs WHERE code=?"
    )
    r = conn.execute(sql, (child,)).fetchone()
    if r is None:
        conn.execute("INSERT INTO child_hubs (code, name) VALUES (?, ?) ON CONFLICT DO NOTHING", (child, name))
        r = conn.execute(sql, (child,)).fetchone()
    return {
        "acked": r[0],
        "hash": bytes(r[1]) if r[1] else GENESIS,
        "max": r[2],
        "gap_since": r[3],
        "asks": r[4],
        "break_at": r[5],
    }


def _advance(ing, child: str, s: dict, top: int, now_ms: int, out, extra_resend: bool = False) -> None:
    """Move the contiguous mark over linked records, ack it, ask for a persisting gap."""
    conn = ing.conn
    acked, h, broke_at = s["acked"], s["hash"], None
    while acked < top and broke_at is None:
        rows = conn.execute(
            "SELECT seq, hash, prev FROM child_records WHERE child=? AND seq > ? ORDER BY seq LIMIT ?",
            (child, acked, PAGE),
        ).fetchall()
        for seq, rh, prev in rows:
            if seq != acked + 1:
                break
            if bytes(prev) != h:
                broke_at = seq
                break
            acked, h = seq, bytes(rh)
        if broke_at or len(rows) < PAGE or acked != rows[-1][0]:
            break
    if acked > s["acked"] and ing.uplink.enabled:
        _relay(ing, child, s["acked"], acked, now_ms)
    ack = {"acked": acked, "acked_hash": h.hex() if acked else "", "hub_ms": now_ms}
    asks = s["asks"] if acked == s["acked"] else 0
    gap_since = None if top <= acked else (s["gap_since"] if acked == s["acked"] and s["gap_since"] else now_ms)
    if top > acked and now_ms - (gap_since or now_ms) > min(GAP_WAIT_MS * 2 ** min(asks, 20), GAP_WAIT_MAX_MS):
        extra_resend, gap_since, asks = True, now_ms, asks + 1
    if extra_resend:
        ack["resend_from"] = acked + 1
        db.bump(conn, "child_resend_requests")
    if broke_at and broke_at != s["break_at"]:
        log.error("child hub %s: chain breaks at seq %d; acknowledged up to %d", child, broke_at, acked)
    conn.execute(
        "UPDATE child_hubs SET acked_seq=?, acked_hash=?, max_seq=?, last_seen_ms=?, online=1, gap_since_ms=?, "
        "resend_asks=?, chain_break_at=COALESCE(?, chain_break_at) WHERE code=?",
        (acked, h if acked else None, top, now_ms, gap_since, asks, broke_at, child),
    )
    out.extra.append((topics.child_ack(child), ack))


def _relay(ing, child: str, after: int, upto: int, now_ms: int) -> None:
    """A hub with a parent of its own relays what its child sent (county → city → province):
    each record once, when the contiguous mark passes it -- so in the child's order, only
    records that link, whatever order they arrived in -- in this transaction, origin kept.
    A record kept without its content (bad_body) has nothing to relay."""
    rows = ing.conn.execute(
        "SELECT kind, body_json FROM child_records WHERE child=? AND seq > ? AND seq <= ? AND body_json <> '{}' "
        "ORDER BY seq",
        (child, after, upto),
    ).fetchall()
    for kind, body_json in rows:
        body = parse_body(kind, json.loads(body_json))
        case_no = None if isinstance(body, RollupBody) else body.case.case_no
        uplink.append(ing.conn, kind, relayed(body, child), now_ms, case_no)


def _state(ing, child: str, topic: str, payload: bytes, now_ms: int, out) -> None:
    """A child hub's birth or death: on birth, tell it where we stand."""
    if not payload:
        return
    if _sender_key(ing, child, topic, payload, now_ms) is None:
        return
    try:
        st = decode_msg(payload)
    except WireError as exc:
        return ing._quarantine(now_ms, child, topic, exc.reason, str(exc), payload)
    online = bool(st.get("online"))
    last = st.get("last_seq") if type(st.get("last_seq")) is int else None
    row = _row(ing.conn, child, ing.sites.name(child))
    ing.conn.execute(
        "UPDATE child_hubs SET online=?, last_seen_ms=?, child_last_seq=COALESCE(?, child_last_seq), state_json=? "
        "WHERE code=?",
        (int(online), now_ms, last, json.dumps(st, ensure_ascii=False, default=repr)[:4000], child),
    )
    if online:
        theirs = st.get("acked_seq")
        behind = type(theirs) is int and theirs > row["acked"]  # our store was restored: ask again
        _advance(ing, child, row, max(row["max"], row["acked"]), now_ms, out, extra_resend=behind)
