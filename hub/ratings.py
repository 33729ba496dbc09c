"""Ratings (好差评) by channel: keypad votes come from the boxes (hub/devices.py store_vote);
portal ratings (网上评价) are written here. Both live in `votes`, labelled by `channel`.

A portal rating has no box record: it takes the case's site, a negative `seq` (the boxes'
sequence numbers are positive, so the two never collide; the next one below the site's lowest,
and when another hub worker takes that one at the same instant the insert does nothing and the
next is tried: the API's write lock serialises portal writes anyway, this holds without it), key and mapping_version "portal",
and the window and clerk from the case's registration. One portal rating per case (a unique
index); keypad votes of the same case are kept beside it.

`record_portal_rating` returns the stored row; the caller (hub/portal.py) opens the 差评 follow-up
of a 不满意/非常不满意 in the same transaction (hub/followups.py, docs/ratings.md).
"""

from __future__ import annotations

import json

from protocol.models import LEVEL_NAMES

CHANNEL_ZH = {"keypad": "评价器", "portal": "网上评价"}
MAX_COMMENT = 500  # characters of a portal rating's text
SEQ_ATTEMPTS = 20  # negative seqs tried when other writers take them at the same instant
# a case can be rated online once its outcome is known (withdrawn cases are not rated)
RATABLE = frozenset({"approved", "denied", "rejected", "completed", "delivered", "transferred"})
SQL = """
    ALTER TABLE votes ADD COLUMN channel TEXT NOT NULL DEFAULT 'keypad';
    ALTER TABLE votes ADD COLUMN comment TEXT;
    CREATE UNIQUE INDEX votes_portal_case ON votes(case_no) WHERE channel = 'portal';
"""
MIGRATIONS = [("portal_0002_vote_channel", SQL)]
PG_MIGRATIONS = [("pg_portal_0002_vote_channel", SQL)]

# callbacks(conn, row) run inside the rating's transaction (e.g. opening a 差评 follow-up)


class RatingRefused(ValueError):
    """The rating cannot be stored; the message is Chinese, for the citizen."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def check_rating(level, comment) -> tuple[int, str | None]:
    """A rating's level (1..5, 非常满意..非常不满意) and text, validated; raises RatingRefused (400)."""
    try:
        level = int(level)
    except (TypeError, ValueError):
        raise RatingRefused("请选择评价等级（非常满意至非常不满意）。", 400) from None
    if not 1 <= level <= 5:
        raise RatingRefused("评价等级只能是 1（非常满意）至 5（非常不满意）。", 400)
    if comment is not None and not isinstance(comment, str):
        raise RatingRefused("评价内容须为文字。", 400)
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise RatingRefused(f"评价内容最多 {MAX_COMMENT} 字。", 400)
    return level, comment


def record_portal_rating(conn, case: dict, level: int, comment: str | None, now_ms: int) -> dict:
    """网上评价: store one citizen's rating of a completed case (the caller checked its number and
    query code) and return the stored row; raises RatingRefused when the case is not completed or
    was rated online already. Runs inside the caller's transaction."""
    level, comment = check_rating(level, comment)
    if case["status"] not in RATABLE:
        raise RatingRefused("该办件尚未办结，办结后才能评价。")
    reg = json.loads(case.get("reg_json") or "{}")
    for _attempt in range(SEQ_ATTEMPTS):
        if conn.execute("SELECT 1 FROM votes WHERE case_no=? AND channel='portal'", (case["case_no"],)).fetchone():
            raise RatingRefused("该办件已经评价过，每个办件只能网上评价一次。")
        row = _portal_row(conn, case, reg, level, comment, now_ms)
        # ON CONFLICT DO NOTHING: another writer that took this seq (or rated this case) meanwhile
        # makes this insert a no-op once it commits, never an error; the next attempt reads the
        # seq it took (READ COMMITTED: each statement sees what was committed before it)
        got = conn.execute(
            'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
            "mapping_version, misuse, pressed_ms, channel, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING seq",
            tuple(row.values()),
        ).fetchone()
        if got is not None:
            return row
    raise RatingRefused("评价提交繁忙，请稍后再试。", 503)


def _portal_row(conn, case: dict, reg: dict, level: int, comment: str | None, now_ms: int) -> dict:
    """The votes row of a portal rating, with the next free negative seq of the case's site."""
    low = conn.execute("SELECT min(seq) FROM votes WHERE site=?", (case["site"],)).fetchone()[0]
    return {
        "site": case["site"],
        "seq": min(low or 0, 0) - 1,
        "case_no": case["case_no"],
        "window": str(reg.get("window") or ""),
        "staff": reg.get("clerk"),
        "department": case.get("department"),
        "key": "portal",
        "level": level,
        "level_name": LEVEL_NAMES[level - 1],
        "mapping_version": "portal",
        "misuse": None,
        "pressed_ms": now_ms,
        "channel": "portal",
        "comment": comment,
    }


def ratings_of_case(conn, case_no: str) -> list[dict]:
    """A case's ratings from every channel (level name, channel label, time; no staff names)."""
    rows = conn.execute(
        "SELECT level, level_name, channel, comment, pressed_ms, misuse FROM votes WHERE case_no=? "
        "ORDER BY pressed_ms, seq",
        (case_no,),
    ).fetchall()
    return [
        {
            "level": r[0],
            "level_name": r[1],
            "channel": r[2],
            "channel_zh": CHANNEL_ZH.get(r[2], r[2]),
            "comment": r[3] if r[2] == "portal" else None,
            "at_ms": r[4],
        }
        for r in rows
        if r[5] is None
    ]
