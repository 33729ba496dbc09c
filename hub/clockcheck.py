"""What the hub does with a box's clock: records written while the box's clock was untrusted, or
dated ahead of the hub's own time, are flagged (issue 8, "Clock jumps").

The box writes its best-known time (agent/clock.py): after a jump it keeps the hub's time or the
time before the jump, and says `clock=untrusted`. The hub keeps that quality per record
(`records.clock`) and per site (`sites.clock`, the last record's). On top of that:

- a batch with records of an untrusted clock raises one yellow `clock_untrusted` alert per site
  and hour (further ones only count), naming the cases it touches;
- a case registered or moved "in the future" (its `received_at` or event `at` more than
  `AHEAD_TOLERANCE_MS` after the hub received it) would look green until that day comes: one red
  `clock_ahead` alert per site and hour names such cases;
- `clock_suspect_cases` lists the cases whose registration or events came from an untrusted
  clock or are dated ahead of their arrival (from `records`, no extra column).

Called by ingest for the fresh records of each batch: `flag_clock(conn, site, fresh, now_ms,
ingestor._alert_once)`; it reads nothing, so it costs a loop over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from protocol.models import KIND_CASE_EVENT, KIND_CASE_REGISTERED

AHEAD_TOLERANCE_MS = 5 * 60_000
_NAMES = 5  # case numbers named in an alert's detail


@dataclass
class ClockFindings:
    """Seqs of records with an untrusted clock, and cases dated ahead of the hub's time."""

    untrusted: list[int] = field(default_factory=list)
    untrusted_cases: list[str] = field(default_factory=list)
    ahead_cases: list[str] = field(default_factory=list)
    ahead_ms: int = 0


def _ms(v) -> int | None:
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return None
    if isinstance(v, datetime) and v.utcoffset() is not None:
        return int(v.timestamp() * 1000)
    return None


def clock_findings(records, now_ms: int, tolerance_ms: int = AHEAD_TOLERANCE_MS) -> ClockFindings:
    """Pure: look at records (protocol.records.Record) received at the hub's `now_ms`."""
    f = ClockFindings()
    for rec in records:
        body = rec.body if isinstance(rec.body, dict) else {}
        case_no = body.get("case_no") if rec.kind in (KIND_CASE_REGISTERED, KIND_CASE_EVENT) else None
        case_no = case_no if isinstance(case_no, str) else None
        if rec.clock == "untrusted":
            f.untrusted.append(rec.seq)
            if case_no and case_no not in f.untrusted_cases:
                f.untrusted_cases.append(case_no)
        t = _ms(body.get("received_at") if rec.kind == KIND_CASE_REGISTERED else body.get("at"))
        ahead = max(rec.wall_ms, t or 0) - now_ms
        if ahead > tolerance_ms:
            f.ahead_ms = max(f.ahead_ms, ahead)
            if case_no and case_no not in f.ahead_cases:
                f.ahead_cases.append(case_no)
    return f


def _names(case_nos: list[str]) -> str:
    more = f" 等 {len(case_nos)} 件" if len(case_nos) > _NAMES else ""
    return "、".join(case_nos[:_NAMES]) + more


def flag_clock(conn, site: str, records, now_ms: int, alert_once) -> ClockFindings:
    """Flag a batch's fresh records (inside ingest's transaction). `alert_once(now_ms, site, kind,
    light, detail)` is the ingestor's once-per-site-and-hour alert."""
    from hub import store as db

    f = clock_findings(records, now_ms)
    if f.untrusted:
        db.bump(conn, "records_clock_untrusted", len(f.untrusted))
        cases = f"；涉及办件 {_names(f.untrusted_cases)}" if f.untrusted_cases else ""
        alert_once(
            now_ms,
            site,
            "clock_untrusted",
            "yellow",
            f"站点时钟不可信 (box clock untrusted): {len(f.untrusted)} 条记录 "
            f"(seq {f.untrusted[0]}–{f.untrusted[-1]}) 的时间无法核实{cases}",
        )
    if f.ahead_cases or f.ahead_ms:
        db.bump(conn, "records_clock_ahead")
        cases = f"办件 {_names(f.ahead_cases)} " if f.ahead_cases else ""
        alert_once(
            now_ms,
            site,
            "clock_ahead",
            "red",
            f"站点时间超前 (box time ahead of the hub by {f.ahead_ms / 3_600_000:.1f} h): {cases}"
            f"的时间晚于集控中心收到的时间，绿灯不可信 (their lights cannot be trusted)",
        )
    return f


def clock_suspect_cases(conn, site: str | None = None, tolerance_ms: int = AHEAD_TOLERANCE_MS) -> dict[str, str]:
    """{case_no: 'untrusted' | 'ahead'} for cases whose registration or an event was written with
    an untrusted clock or dated after the hub received it (one scan of those sites' case records)."""
    where, args = ("AND r.site=?", (site,)) if site else ("", ())
    out: dict[str, str] = {}
    rows = conn.execute(
        "SELECT c.case_no, r.clock, r.wall_ms, r.received_ms, c.received_at FROM cases c "
        f"JOIN records r ON r.site=c.site AND r.seq=c.reg_seq WHERE 1=1 {where} "
        "UNION ALL SELECT e.case_no, r.clock, r.wall_ms, r.received_ms, e.at FROM case_events e "
        f"JOIN records r ON r.site=e.site AND r.seq=e.seq WHERE 1=1 {where}",
        args * 2,
    ).fetchall()
    for case_no, clock, wall_ms, received_ms, at in rows:
        t = _ms(at) or 0
        if max(wall_ms, t) - received_ms > tolerance_ms:
            out[case_no] = "ahead"
        elif clock == "untrusted":
            out.setdefault(case_no, "untrusted")
    return out
