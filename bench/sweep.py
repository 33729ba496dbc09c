"""bench/sweep: the hub's real supervision sweep over a large SQLite store (issue 15 §5).

Builds a provisioned hub directory (demo catalog, an SMS gateway configured so that cards queue
their reminders, a recipients directory for every department) and a store with N open cases
(default 1,000,000) whose receipt days spread over ~200 working days, half of them accepted,
all projected once at 10:00 of a Wednesday (untimed). Then, each run on a fresh copy of that
store and a freshly built `hub.app.Hub` (the Ingestor, Supervisor and notifier hook wired as
`jiancha hub run` wires them; connections as the hub opens them: WAL, synchronous=FULL; SQLite's
page cache cold), it times:

  - the first sweep after midnight: `Ingestor.sweep()` at 00:00:30 of the next working day —
    the next_change probe, projection of what is due, alerts, the Supervisor's tickets and
    documents, SMS reminders queued — target <= 1 s for about 1 % of cases changing light;
  - a full recompute: `Ingestor.reload_calendar()` (what a calendar import runs), target <= 60 s;
  - a raw baseline: the full recompute's reads and writes without the case clock, on a fresh
    connection with the hub's settings (synchronous=FULL), to show what the clock costs.

--drop-caches (root only) also empties the OS page cache before each timed step, so the store
is read from disk as after a reboot; it affects the whole machine, so it is off by default.
Prints each run and the medians. Example:

    .venv/bin/python bench/sweep.py --cases 200000 --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.projection import project_cases
from hub.store import open_db
from protocol.calendar import CST, default_calendar

# (code, name, department, case type, legal, promised, yellow) from jiancha/templates/catalog-demo.csv
ITEMS = [
    ("XK-001", "食品经营许可", "市场监督管理局", "promised", 20, 10, 2),
    ("XK-003", "排水许可", "住房和城乡建设局", "promised", 20, 5, 1),
    ("GG-003", "医疗救助申请", "医疗保障局", "promised", 20, 3, 1),
    ("XK-002", "建设工程规划许可证核发", "自然资源局", "joint", 45, 15, 3),
    ("QR-001", "居民身份证换领", "公安局", "promised", 20, 15, 2),
]


def provision(root: Path) -> Path:
    """A hub directory as `jiancha provision init-hub` writes it, with the demo catalog, the
    hub's own supervision defaults and an SMS gateway (never called: nothing is started)."""
    from tests.e2e.harness import Env

    env = Env(root, sites=("S00",))
    env.configure_hub(
        supervision={"backentry_grace_minutes": 30.0, "sweep_interval_s": 30.0},
        notify={"sms": {"url": "http://127.0.0.1:9/sms"}},
    )
    return root / "data" / "hub.db"


def directory():
    """A head and two handlers for each department of ITEMS."""
    from hub.notify.directory import Department, Directory, Person

    deps = sorted({i[2] for i in ITEMS})
    return Directory(
        departments=tuple(
            Department(
                name=name,
                head=Person(name="王主任", phone=f"139{k:04d}0000"),
                handlers=(
                    Person(name="赵科员", phone=f"138{k:04d}0001"),
                    Person(name="钱科员", phone=f"138{k:04d}0002"),
                ),
            )
            for k, name in enumerate(deps)
        )
    )


def build(path: Path, n: int, today, spread_days: int = 200) -> None:
    """Insert n open cases (half accepted) with receipt days spread over `spread_days` working
    days, the directory, and project them all at today 10:00 (the state a running hub has)."""
    from hub.notify.directory import save_directory

    cal = default_calendar()
    days = []
    d = today
    while len(days) < spread_days:
        d -= timedelta(days=1)
        if cal.is_working_day(d):
            days.append(d)
    conn = open_db(path)
    conn.execute("PRAGMA synchronous=OFF")  # building only; every timed step uses the hub's FULL
    rng = random.Random(7)
    conn.execute("BEGIN")
    batch, events = [], []
    for i in range(n):
        code, name, dept, ctype, legal, promised, yellow = ITEMS[i % len(ITEMS)]
        day = days[rng.randrange(len(days))]
        received = datetime(day.year, day.month, day.day, 9, 30, tzinfo=CST).isoformat()
        site = f"S{i % 50:02d}"
        case_no = f"{site}-{day:%Y%m%d}-{i:07d}"
        batch.append(
            (case_no, site, code, name, dept, "12345678", received, i + 1, "{}", "received", "green")
            + (ctype, legal, promised, yellow)
        )
        if i % 2 == 0:
            body = json.dumps({"case_no": case_no, "type": "accept", "at": received})
            events.append((site, i + 1, case_no, "accept", received, body))
        if len(batch) >= 50_000:
            _flush(conn, batch, events)
    _flush(conn, batch, events)
    conn.execute("COMMIT")
    now = datetime(today.year, today.month, today.day, 10, 0, tzinfo=CST)
    save_directory(conn, directory(), now_ms=int(now.timestamp() * 1000))
    ids = [r[0] for r in conn.execute("SELECT case_no FROM cases WHERE closed=0")]
    conn.execute("BEGIN")
    project_cases(conn, ids, now, cal, 1, int(now.timestamp() * 1000))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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


def fresh_copy(built: Path, run_dir: Path, drop_caches: bool) -> Path:
    """The built store copied into the hub's data folder (untimed); the OS cache emptied if asked."""
    target = run_dir / "hub.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(built, target)
    if drop_caches:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    return target


def make_hub(hubdir: Path, now: datetime):
    """hub.app.Hub over the hub directory's store (nothing started), its Ingestor's clock at `now`."""
    from hub.app import Hub
    from hub.config import HubConfig
    from iobase.config import load_config

    hub = Hub(load_config(hubdir / "hub.yaml", HubConfig))
    hub.ingest.now = lambda: now
    return hub


def close_hub(hub) -> None:
    for conn in (hub.reader, hub.writer, hub.conn):
        with contextlib.suppress(Exception):
            conn.close()


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def real_sweep(hubdir: Path, midnight: datetime) -> dict:
    """Ingestor.sweep() as the hub's loop runs it, timed, with what it wrote."""
    hub = make_hub(hubdir, midnight)
    try:
        conn = hub.conn
        before = {t: count(conn, t) for t in ("alerts", "tickets", "notifications", "document_queue")}
        t = time.perf_counter()
        due = hub.ingest.sweep()
        secs = time.perf_counter() - t
        after = {t: count(conn, t) - n for t, n in before.items()}
        return {"s": secs, "due": due, **after}
    finally:
        close_hub(hub)


def real_full(hubdir: Path, now: datetime) -> float:
    """Ingestor.reload_calendar(): every open case recomputed (a calendar import)."""
    hub = make_hub(hubdir, now)
    try:
        t = time.perf_counter()
        hub.ingest.reload_calendar()
        return time.perf_counter() - t
    finally:
        close_hub(hub)


def raw_baseline(store: Path) -> float:
    """The full recompute's reads and writes without the case clock, on a connection as the hub
    opens it (WAL, synchronous=FULL)."""
    from hub.db import connect

    conn = connect(f"sqlite:{store}")
    try:
        ids = [r[0] for r in conn.execute("SELECT case_no FROM cases WHERE closed=0")]
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT case_no, light FROM cases WHERE case_no IN ({marks})", chunk).fetchall()
            conn.execute(f"SELECT case_no, body_json FROM case_events WHERE case_no IN ({marks})", chunk).fetchall()
            conn.executemany("UPDATE cases SET light=? WHERE case_no=?", [(light, c) for c, light in rows])
        conn.execute("COMMIT")
        return time.perf_counter() - t
    finally:
        conn.close()


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
    ap.add_argument("--drop-caches", action="store_true", help="empty the OS page cache before each timed step (root)")
    args = ap.parse_args()
    cal = default_calendar()
    today = datetime(2026, 11, 18, tzinfo=CST).date()  # a Wednesday
    nxt = cal.next_working_day(today)
    midnight = datetime(nxt.year, nxt.month, nxt.day, 0, 0, 30, tzinfo=CST)
    daytime = datetime(today.year, today.month, today.day, 10, 0, tzinfo=CST)
    with tempfile.TemporaryDirectory() as tmp:
        hubdir = Path(tmp) / "hub"
        store = provision(hubdir)
        built = Path(tmp) / "built.db"
        t = time.perf_counter()
        shutil.copyfile(store, built)
        build(built, args.cases, today, args.spread_days)
        size = built.stat().st_size / 2**20
        print(f"built and projected {args.cases:,} open cases in {time.perf_counter() - t:.1f} s ({size:,.0f} MiB)")
        sweeps, fulls, raws = [], [], []
        for run in range(args.runs):
            fresh_copy(built, store.parent, args.drop_caches)
            sweeps.append(real_sweep(hubdir, midnight))
            fresh_copy(built, store.parent, args.drop_caches)
            fulls.append(real_full(hubdir, daytime))
            raws.append(raw_baseline(fresh_copy(built, store.parent, args.drop_caches)))
            s = sweeps[-1]
            print(
                f"run {run + 1}: sweep after midnight {s['s']:.2f} s ({s['due']:,} due: +{s['alerts']:,} alerts, "
                f"+{s['tickets']:,} tickets, +{s['document_queue']:,} documents queued, +{s['notifications']:,} "
                f"SMS queued); full recompute {fulls[-1]:.1f} s; raw read+write {raws[-1]:.1f} s",
                flush=True,
            )
        sw = statistics.median(s["s"] for s in sweeps)
        f, r = statistics.median(fulls), statistics.median(raws)
        cold = "OS cache dropped" if args.drop_caches else "SQLite cache cold, OS cache warm"
        print(f"\n{args.cases:,} open cases, synchronous=FULL, {cold}, medians of {args.runs}:")
        print(f"first sweep after midnight (real: alerts, tickets, SMS): {sw:.2f} s (target <= 1 s)")
        print(f"full recompute (reload_calendar): {f:.1f} s (target <= 60 s)")
        print(f"raw read+write baseline {r:.1f} s → case clock and supervision share {100 * (f - r) / f:.0f} %")


if __name__ == "__main__":
    main()
