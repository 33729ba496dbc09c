"""Votes (好差评) of a site over a period, by window and by staff member, for the site page.

The five national levels (protocol.models.LEVEL_NAMES, level 1 = 非常满意 … 5 = 非常不满意);
the last two are 差评. Satisfaction rate (满意率) = levels 1-3 over all counted votes. Presses
flagged as misuse (误按, repeated, unarmed) are kept at the hub but not counted (docs/wall.md);
so are 差评 a supervisor marked 误评/恶意差评 on appeal (hub/followups.py, docs/ratings.md),
counted apart as `marked`.

Two channels (hub/ratings.py): the keypad (评价器) and the portal's online rating (网上评价).
`total`, `by_window` and `by_staff` count both (a portal rating carries the case's window and
clerk); `by_channel` gives each channel's own counts and rate, so the page shows keypad and
portal apart with the total beside them, and each window or staff row says how many of its
votes came online (`portal`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hub.followups import VOTE_MARKED, VOTE_NOT_MARKED
from protocol.calendar import CST
from protocol.models import LEVEL_NAMES

MAX_PERIOD_DAYS = 366
DEFAULT_PERIOD_DAYS = 30
SATISFIED_LEVELS = (1, 2, 3)
CHANNELS = {"keypad": "评价器", "portal": "网上评价"}  # the order the page shows them in
MAX_GROUPS = 500  # windows or staff members listed at most (a box cannot make the page unbounded)


class PeriodError(ValueError):
    """A period the page cannot show; the message is Chinese then English."""


def parse_period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """(first day, last day) from YYYY-MM-DD strings, China dates, both inclusive; default: the
    last 30 days up to today. At most a year; the first day not after the last."""
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    except ValueError:
        raise PeriodError("日期格式应为 YYYY-MM-DD (dates must be YYYY-MM-DD)") from None
    if first > last:
        raise PeriodError("开始日期不能晚于结束日期 (from must not be after to)")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise PeriodError(f"统计期间最长 {MAX_PERIOD_DAYS} 天 (the period is at most {MAX_PERIOD_DAYS} days)")
    return first, last


def period_ms(first: date, last: date) -> tuple[int, int]:
    """[start, end) in epoch milliseconds of the China days first … last."""
    start = datetime(first.year, first.month, first.day, tzinfo=CST)
    end = datetime(last.year, last.month, last.day, tzinfo=CST) + timedelta(days=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def summarize(levels: dict[int, int]) -> dict:
    """Counts per level (1..5), total, 差评 and the satisfaction rate (None without votes)."""
    counts = [int(levels.get(lv, 0)) for lv in range(1, 6)]
    total = sum(counts)
    satisfied = sum(counts[lv - 1] for lv in SATISFIED_LEVELS)
    return {
        "levels": counts,
        "total": total,
        "bad": counts[3] + counts[4],
        "satisfaction": round(satisfied / total, 4) if total else None,
    }


def site_votes(conn, site: str, first: date, last: date) -> dict:
    """A site's counted votes over [first, last]: in total, by window and by staff member."""
    lo, hi = period_ms(first, last)
    by_window: dict[str, dict[int, int]] = {}
    by_staff: dict[tuple[str, str], dict[int, int]] = {}
    total: dict[int, int] = {}
    by_channel: dict[str, dict[int, int]] = {c: {} for c in CHANNELS}
    online_w: dict[str, int] = {}
    online_s: dict[tuple[str, str], int] = {}
    for window, staff, channel, level, n in conn.execute(
        'SELECT "window", staff, channel, level, count(*) FROM votes WHERE site = ? AND misuse IS NULL '
        f'AND {VOTE_NOT_MARKED} AND pressed_ms >= ? AND pressed_ms < ? GROUP BY "window", staff, channel, level',
        (site, lo, hi),
    ):
        n = int(n)
        w, s = window or "", staff or ""
        by_window.setdefault(w, {})[level] = by_window.setdefault(w, {}).get(level, 0) + n
        by_staff.setdefault((s, w), {})[level] = by_staff.setdefault((s, w), {}).get(level, 0) + n
        total[level] = total.get(level, 0) + n
        ch = by_channel.setdefault(channel, {})
        ch[level] = ch.get(level, 0) + n
        if channel == "portal":
            online_w[w] = online_w.get(w, 0) + n
            online_s[(s, w)] = online_s.get((s, w), 0) + n
    misuse = conn.execute(
        "SELECT count(*) FROM votes WHERE site = ? AND misuse IS NOT NULL AND pressed_ms >= ? AND pressed_ms < ?",
        (site, lo, hi),
    ).fetchone()[0]
    marked = conn.execute(  # 差评 marked 误评/恶意差评 on appeal: shown apart, never counted
        f"SELECT count(*) FROM votes WHERE site = ? AND misuse IS NULL AND {VOTE_MARKED} "
        "AND pressed_ms >= ? AND pressed_ms < ?",
        (site, lo, hi),
    ).fetchone()[0]
    windows = [{"window": w or None, **summarize(c), "portal": online_w.get(w, 0)} for w, c in by_window.items()]
    windows.sort(key=lambda r: (_num(r["window"]), r["window"] or ""))
    staff = [
        {"staff": s or None, "window": w or None, **summarize(c), "portal": online_s.get((s, w), 0)}
        for (s, w), c in by_staff.items()
    ]
    staff.sort(key=lambda r: (-r["total"], r["staff"] or "", r["window"] or ""))
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "level_names": list(LEVEL_NAMES),
        "total": summarize(total),  # both channels
        "by_channel": [
            {"channel": c, "channel_zh": CHANNELS.get(c, c), **summarize(by_channel[c])}
            for c in [*CHANNELS, *sorted(set(by_channel) - set(CHANNELS))]
        ],
        "misuse": int(misuse),
        "marked": int(marked),
        "by_window": windows[:MAX_GROUPS],
        "by_staff": staff[:MAX_GROUPS],
    }


def _num(window: str | None) -> int:
    """Windows sort by number when they are numbers (2 before 10)."""
    digits = "".join(ch for ch in (window or "") if ch.isdigit())
    return int(digits[:9]) if digits else 10**9
