"""Device records at the hub: votes (好差评), device events with snapshots, box heartbeats."""

from __future__ import annotations

import json
import sqlite3

from hub.followups import VOTE_NOT_MARKED
from protocol.models import DeviceEvent, Heartbeat, VoteCast

MIGRATIONS = [
    (
        "0201_devices",
        """
        CREATE TABLE votes (site TEXT NOT NULL, seq INTEGER NOT NULL, case_no TEXT, window TEXT NOT NULL,
            staff TEXT, department TEXT, key TEXT NOT NULL, level INTEGER NOT NULL, level_name TEXT NOT NULL,
            mapping_version TEXT NOT NULL, misuse TEXT, pressed_ms INTEGER NOT NULL, PRIMARY KEY (site, seq));
        CREATE INDEX votes_case ON votes(case_no);
        CREATE INDEX votes_department ON votes(department, staff);
        CREATE TABLE device_events (site TEXT NOT NULL, seq INTEGER NOT NULL, device TEXT NOT NULL,
            event TEXT NOT NULL, window TEXT, at TEXT NOT NULL, detail_json TEXT, snapshot BLOB,
            PRIMARY KEY (site, seq));
        CREATE INDEX device_events_site ON device_events(site, at);
        CREATE TABLE heartbeats (site TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL,
            body_json TEXT NOT NULL, PRIMARY KEY (site, seq));
        ALTER TABLE sites ADD COLUMN heartbeat_json TEXT;
    """,
    ),
]


def store_vote(conn: sqlite3.Connection, site: str, seq: int, v: VoteCast) -> None:
    """Keep every press; misuse stays flagged (excluded from results, never deleted)."""
    conn.execute(
        "INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            site,
            seq,
            v.case_no,
            v.window,
            v.staff,
            v.department,
            v.key,
            v.level,
            v.level_name,
            v.mapping_version,
            v.misuse,
            v.pressed_wall_ms,
        ),
    )


def store_device_event(conn: sqlite3.Connection, site: str, seq: int, e: DeviceEvent) -> None:
    """An unattended window, a camera going offline, ... with its snapshot if any."""
    conn.execute(
        "INSERT INTO device_events VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            site,
            seq,
            e.device,
            e.event,
            e.window,
            e.at.isoformat(),
            json.dumps(e.detail, ensure_ascii=False) if e.detail else None,
            e.snapshot,
        ),
    )


def store_heartbeat(conn: sqlite3.Connection, site: str, seq: int, h: Heartbeat) -> None:
    """Keep the history and the latest on the site row (unless the site has a later one).

    Runs in the ingest writer's transaction, so reading the latest and replacing it is one step."""
    body, at = h.model_dump_json(), h.at.isoformat()
    conn.execute("INSERT INTO heartbeats VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (site, seq, at, body))
    row = conn.execute("SELECT heartbeat_json FROM sites WHERE code=?", (site,)).fetchone()
    if row is not None and _heartbeat_at(row[0]) <= at:
        conn.execute("UPDATE sites SET heartbeat_json=? WHERE code=?", (body, site))


def _heartbeat_at(heartbeat_json: str | None) -> str:
    """The `at` of a stored heartbeat as text ('' when there is none), compared as text with a
    new heartbeat's (what SQLite did with json_extract(heartbeat_json, '$.at'), done here so
    both engines share it)."""
    if not heartbeat_json:
        return ""
    try:
        at = json.loads(heartbeat_json).get("at")
    except (ValueError, AttributeError):  # not a JSON object: the next heartbeat replaces it
        return ""
    return at if isinstance(at, str) else ""


def votes_of_case(conn, case_no: str) -> list[dict]:
    """Votes linked to a case (misuse included, flagged)."""
    cur = conn.execute(
        'SELECT "window", staff, key, level, level_name, mapping_version, misuse, pressed_ms '
        "FROM votes WHERE case_no=? ORDER BY seq",
        (case_no,),
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def site_detail(conn, code: str) -> dict:
    """Heartbeat, recent device events (snapshot links) and vote counts of a site."""
    row = conn.execute("SELECT heartbeat_json FROM sites WHERE code=?", (code,)).fetchone()
    events = [
        {
            "seq": seq,
            "device": dev,
            "event": ev,
            "window": win,
            "at": at,
            "detail": json.loads(d) if d else None,
            "snapshot": f"/api/sites/{code}/snapshots/{seq}.jpg" if has else None,
        }
        for seq, dev, ev, win, at, d, has in conn.execute(
            'SELECT seq, device, event, "window", at, detail_json, '
            "CASE WHEN snapshot IS NULL THEN 0 ELSE 1 END FROM device_events "
            "WHERE site=? ORDER BY at DESC LIMIT 100",
            (code,),
        )
    ]
    votes = [
        dict(zip(("level", "level_name", "n"), r))
        for r in conn.execute(
            "SELECT level, level_name, count(*) FROM votes WHERE site=? AND misuse IS NULL "
            f"AND {VOTE_NOT_MARKED} "  # a 差评 marked 误评/恶意差评 (hub/followups.py) is not counted
            "GROUP BY level, level_name ORDER BY level",  # a level has one name (VoteCast checks it)
            (code,),
        )
    ]
    misuse = conn.execute("SELECT count(*) FROM votes WHERE site=? AND misuse IS NOT NULL", (code,)).fetchone()[0]
    return {
        "heartbeat": json.loads(row[0]) if row and row[0] else None,
        "device_events": events,
        "votes": votes,
        "votes_misuse": misuse,
    }


def snapshot(conn, code: str, seq: int) -> bytes | None:
    """The JPEG of one device event."""
    row = conn.execute("SELECT snapshot FROM device_events WHERE site=? AND seq=?", (code, seq)).fetchone()
    return row[0] if row and row[0] else None
