"""bench/sweep: supervision sweep over a large hub database.

Builds a hub database with N open cases (default 1,000,000) whose receipt dates are spread
over ~200 working days, so every midnight about 1 % of cases turn yellow or red. Measures:
  - full recompute of every open case (e.g. after a calendar import), target <= 60 s;
  - an incremental sweep at the next midnight (only cases whose next_change is due), in which
    about 1-2 % of cases change light, target <= 1 s;
  - a raw baseline: reading the same rows and writing them back without evaluating, measured
    in the same run, to show what the case clock itself costs.
Prints medians of --runs runs. Example: .venv/bin/python bench/sweep.py --cases 200000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.projection import due_for_sweep, project_cases
from hub.store import open_db
from protocol.calendar import CST, default_calendar

ITEMS = [
    ("XK-001", "promised", 20, 10, 2),
    ("XK-003", "promised", 20, 5, 1),
    ("GG-003", "promised", 20, 3, 1),
    ("XK-002", "joint", 45, 15, 3),
    ("QR-001", "promised", 20, 15, 2),
]


def build(path: Path, n: int, today, spread_days: int = 200) -> None:
    """Insert n open cases (half accepted) with receipt days spread over `spread_days` working days."""
    cal = default_calendar()
    days = []
    d = today
    while len(days) < spread_days:
        d -= timedelta(days=1)
        if cal.is_working_day(d):
            days.append(d)
    conn = open_db(path)
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    conn.execute("BEGIN")
    batch, events = [], []
    for i in range(n):
        code, ctype, legal, promised, yellow = ITEMS[i % len(ITEMS)]
        day = days[rng.randrange(len(days))]
        received = datetime(day.year, day.month, day.day, 9, 30, tzinfo=CST).isoformat()
        case_no = f"S{i % 50:02d}-{day:%Y%m%d}-{i:07d}"
        batch.append(
            (
                case_no,
                f"S{i % 50:02d}",
                code,
                "事项",
                "部门",
                "12345678",
                received,
                i + 1,
                "{}",
                "received",
                "green",
                ctype,
                legal,
                promised,
                yellow,
            )
        )
        if i % 2 == 0:
            events.append(
                (
                    f"S{i % 50:02d}",
                    i + 1,
                    case_no,
                    "accept",
                    received,
                    json.dumps({"case_no": case_no, "type": "accept", "at": received}),
                )
            )
        if len(batch) >= 50_000:
            _flush(conn, batch, events)
    _flush(conn, batch, events)
    conn.execute("COMMIT")
    conn.close()


def _flush(conn, batch, events) -> None:
    conn.executemany(
        "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, "
        "received_at, reg_seq, reg_json, status, light, case_type, legal_days, promised_days, "
        "yellow_days) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        batch,
    )
    conn.executemany("INSERT INTO case_events (site, seq, case_no, type, at, body_json) VALUES (?,?,?,?,?,?)", events)
    batch.clear()
    events.clear()


def open_cases(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT case_no FROM cases WHERE closed=0")]


def full(conn, now, cal) -> tuple[float, int]:
    ids = open_cases(conn)
    t = time.perf_counter()
    conn.execute("BEGIN")
    tr = project_cases(conn, ids, now, cal, 1, int(now.timestamp() * 1000))
    conn.execute("COMMIT")
    return time.perf_counter() - t, len(tr)


def raw_baseline(conn) -> float:
    """Same reads and writes, no case clock: the floor set by SQLite."""
    ids = open_cases(conn)
    t = time.perf_counter()
    conn.execute("BEGIN")
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT case_no, light FROM cases WHERE case_no IN ({marks})", chunk).fetchall()
        conn.execute(f"SELECT case_no, body_json FROM case_events WHERE case_no IN ({marks})", chunk).fetchall()
        conn.executemany("UPDATE cases SET light=? WHERE case_no=?", [(light, c) for c, light in rows])
    conn.execute("COMMIT")
    return time.perf_counter() - t


def incremental(conn, now, cal) -> tuple[float, int, int]:
    t = time.perf_counter()
    conn.execute("BEGIN")
    due = due_for_sweep(conn, now)
    tr = project_cases(conn, due, now, cal, 1, int(now.timestamp() * 1000))
    conn.execute("COMMIT")
    return time.perf_counter() - t, len(due), len(tr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--spread-days",
        type=int,
        default=200,
        help="working days the receipts spread over (200: about 1 %% change light per midnight)",
    )
    args = ap.parse_args()
    cal = default_calendar()
    today = datetime(2026, 11, 18, tzinfo=CST).date()  # a Wednesday
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hub.db"
        t = time.perf_counter()
        build(path, args.cases, today, args.spread_days)
        print(f"built {args.cases:,} open cases in {time.perf_counter() - t:.1f} s", flush=True)
        conn = open_db(path)
        conn.execute("PRAGMA synchronous=NORMAL")
        fulls, raws, incs = [], [], []
        day = today
        for run in range(args.runs):
            now = datetime(day.year, day.month, day.day, 10, 0, tzinfo=CST)
            secs, changed = full(conn, now, cal)
            fulls.append(secs)
            raws.append(raw_baseline(conn))
            day = cal.next_working_day(day)
            midnight = datetime(day.year, day.month, day.day, 0, 0, 1, tzinfo=CST)
            secs, swept, changed = incremental(conn, midnight, cal)
            incs.append(secs)
            print(
                f"run {run + 1}: full {fulls[-1]:.1f} s, raw {raws[-1]:.1f} s, incremental {secs:.2f} s "
                f"({swept:,} due, {changed:,} changed light = {100 * changed / args.cases:.2f} %)",
                flush=True,
            )
        f, r, i = statistics.median(fulls), statistics.median(raws), statistics.median(incs)
        print(
            f"\nfull recompute of {args.cases:,} open cases: {f:.1f} s median (target <= 60 s); "
            f"raw read+write baseline {r:.1f} s → case clock share {100 * (f - r) / f:.0f} %"
        )
        print(f"incremental sweep: {i:.2f} s median (target <= 1 s)")


if __name__ == "__main__":
    main()
