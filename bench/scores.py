"""bench/scores: a month's scores (绩效评估, issue 13) over a large store, on both engines.

Builds a hub store (SQLite, and PostgreSQL on a server of its own) with N cases (default
1,000,000) at S sites (default 200) received over 2026-09-01..2026-12-20, with what the default
rules count: yellow cards (6 % of cases), red cards (2 %), 督办 tickets (0.5 %, a third never
answered), keypad and portal votes (60 % of cases; 1 % misuse presses; 4 % 差评, each with its
follow-up, a tenth marked 误评), complaints (0.2 %, assigned, most answered, some late), unattended
window records (one per site and working day in three), backdated cases (0.3 %), two catalog
versions (shortened limits, a 即办 conversion) and 200 manual items. Building is untimed.

Timed, `--runs` times each on a fresh connection as the hub opens it: `hub.scores.fresh` for
November 2026 with the default rules (every event read, every line built, caps, ranking,
disqualifications, canonical JSON, the inputs' sha256), split into reading the events and the rest.
Baseline in the same run: plain COUNT(*)s over the same rows (the month's alerts, votes,
follow-ups and cases) — what just touching them costs. Prints each run and the medians. Example:

    .venv/bin/python bench/scores.py --cases 200000 --runs 3 --engines sqlite
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub import scores
from hub.scores_events import Window, read_events
from hub.scores_rules import load_rules
from protocol.calendar import CST, default_calendar

DEPTS = ["市场监督管理局", "住房和城乡建设局", "医疗保障局", "自然资源局", "公安局", "人力资源和社会保障局"]
START, END = date(2026, 9, 1), date(2026, 12, 20)
PERIOD = "2026-11"
AS_OF = date(2026, 12, 21)


def _ms(d: date, hour: int = 10, minute: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, hour, minute, tzinfo=CST).timestamp() * 1000)


def build(conn, n: int, n_sites: int, seed: int = 7) -> dict:
    """Fill an empty, migrated store; returns the row counts."""
    cal, rng = default_calendar(), random.Random(seed)
    days = [START + timedelta(days=i) for i in range((END - START).days + 1)]
    work = [d for d in days if cal.is_working_day(d)]
    sites = [f"1407{k // 50:02d}-{k % 50:03d}" for k in range(n_sites)]
    counts = dict.fromkeys(("cases", "alerts", "tickets", "votes", "followups", "complaints", "device_events"), 0)
    cases, alerts, tickets, tevents, votes, fus = [], [], [], [], [], []

    def flush(final=False):
        if len(cases) >= 20_000 or final:
            conn.executemany(
                "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, "
                "reg_seq, reg_json, status, light, violations, case_type) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                cases,
            )
            conn.executemany("INSERT INTO alerts (at_ms, site, case_no, kind, light) VALUES (?,?,?,?,?)", alerts)
            conn.executemany(
                "INSERT INTO tickets (id, case_no, site, department, level, status, opened_ms, reply_due, actor) "
                "VALUES (?,?,?,?,'duban','open',?,?,'监察员')",
                tickets,
            )
            conn.executemany(
                "INSERT INTO ticket_events (ticket_id, at_ms, actor, action, text) VALUES (?,?,'部门','reply','已整改')",
                tevents,
            )
            conn.executemany(
                'INSERT INTO votes (site, seq, case_no, "window", staff, department, key, level, level_name, '
                "mapping_version, misuse, pressed_ms, channel) VALUES (?,?,?,?,?,?,'k',?,?,'v1',?,?,?)",
                votes,
            )
            conn.executemany(
                'INSERT INTO followups (channel, rating_ref, site, seq, case_no, "window", staff, department, level, '
                "level_name, rated_ms, opened_ms, limit_days, due, step, mark) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,7,"
                "'2026-12-31','verify',?)",
                fus,
            )
            for lst in (cases, alerts, tickets, tevents, votes, fus):
                lst.clear()

    def tally():
        for key, lst in (("cases", cases), ("alerts", alerts), ("tickets", tickets), ("votes", votes),
                         ("followups", fus)):  # fmt: skip
            counts[key] += len(lst)

    names = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
    conn.execute("BEGIN")
    for i in range(n):
        site = sites[i % n_sites]
        d = work[rng.randrange(len(work))]
        win = 1 + (i // n_sites) % 8
        dept, clerk = DEPTS[win % len(DEPTS)], f"窗口{win}人员"
        no = f"{site}-{d:%Y%m%d}-{i:07d}"
        reg = json.dumps({"window": f"{win}号窗口", "clerk": clerk}, ensure_ascii=False)
        viol = '["backdated"]' if rng.random() < 0.003 else "[]"
        received = datetime(d.year, d.month, d.day, 9, 30, tzinfo=CST).isoformat()
        cases.append((no, site, "XK-001", "食品经营许可", dept, "12345678", received, i, reg, "accepted", "green", viol,
                      "promised"))  # fmt: skip
        r = rng.random()
        if r < 0.06:
            alerts.append((_ms(d + timedelta(days=7)), site, no, "light_yellow", "yellow"))
        if r < 0.02:
            alerts.append((_ms(d + timedelta(days=14)), site, no, "light_red", "red"))
        if r < 0.005:
            tid = counts["tickets"] + len(tickets) + 1
            due = d + timedelta(days=20)
            tickets.append((tid, no, site, dept, _ms(d + timedelta(days=14)), due.isoformat()))
            if rng.random() < 0.67:
                tevents.append((tid, _ms(due - timedelta(days=1))))
        if rng.random() < 0.6:
            level = 4 + (rng.random() < 0.5) if rng.random() < 0.04 else 1 + rng.randrange(3)
            misuse = "repeat" if rng.random() < 0.01 else None
            channel = "portal" if rng.random() < 0.2 else "keypad"
            at = _ms(d, 11, rng.randrange(60))
            votes.append(
                (site, 10_000_000 + i, no, str(win), clerk, dept, level, names[level - 1], misuse, at, channel)
            )
            if level >= 4 and misuse is None:
                mark = "misuse" if rng.random() < 0.1 else None
                fus.append((channel, f"{site}#{i}", site, 10_000_000 + i, no, str(win), clerk, dept, level,
                            names[level - 1], at, at, mark))  # fmt: skip
        if len(cases) >= 20_000:
            tally()
            flush()
    tally()
    flush(final=True)
    _complaints(conn, rng, sites, work, max(n // 500, 1), counts)
    _devices(conn, rng, sites, work, counts)
    _catalog_and_manual(conn, rng, sites)
    conn.execute("COMMIT")
    return counts


def _complaints(conn, rng, sites, work, n, counts) -> None:
    for cid in range(1, n + 1):
        site, d = sites[rng.randrange(len(sites))], work[rng.randrange(len(work))]
        dept = DEPTS[rng.randrange(len(DEPTS))]
        replied = rng.random() < 0.9
        conn.execute(
            "INSERT INTO complaints (id, complaint_no, query_code, about_kind, about, site, department, text, "
            "contact_name, status, filed_ms, updated_ms) VALUES (?,?,'ABCDEFGH','window','1号窗口',?,?,'t','王五',?,?,?)",
            (cid, f"TS{cid:09d}", site, dept, "replied" if replied else "assigned", _ms(d), _ms(d)),
        )
        conn.execute("INSERT INTO complaint_events (complaint_id, at_ms, actor, action, text) VALUES (?,?,'x','assign','')",
                     (cid, _ms(d)))  # fmt: skip
        if replied:
            conn.execute("INSERT INTO complaint_events (complaint_id, at_ms, actor, action, text) VALUES (?,?,'x','reply','')",
                         (cid, _ms(d + timedelta(days=rng.randrange(5, 20)))))  # fmt: skip
    counts["complaints"] = n


def _devices(conn, rng, sites, work, counts) -> None:
    rows = []
    for k, site in enumerate(sites):
        for j, d in enumerate(work):
            if (j + k) % 3 == 0:
                at = datetime(d.year, d.month, d.day, 3, 0, tzinfo=UTC).isoformat()  # 11:00 China time
                rows.append(
                    (site, 20_000_000 + j, "win1", "window_unattended", str(1 + j % 8), at, '{"unattended_s": 900}')
                )
    conn.executemany(
        'INSERT INTO device_events (site, seq, device, event, "window", at, detail_json) VALUES (?,?,?,?,?,?,?)', rows
    )
    counts["device_events"] = len(rows)


def _catalog_and_manual(conn, rng, sites) -> None:
    def item(code, dept, promised, ctype="promised"):
        return {"code": code, "name": code, "department": dept, "item_type": "licensing", "case_type": ctype,
                "legal_days": 20, "promised_days": promised}  # fmt: skip

    v1 = [item(f"I{k:03d}", DEPTS[k % len(DEPTS)], 10) for k in range(60)]
    v2 = [item(i["code"], i["department"], 8 if k % 5 == 0 else (0 if k % 7 == 0 else 10),
               "immediate" if k % 7 == 0 and k % 5 else "promised") for k, i in enumerate(v1)]  # fmt: skip
    for version, items, d in ((1, v1, date(2026, 9, 1)), (2, v2, date(2026, 11, 16))):
        conn.execute("INSERT INTO catalog_versions VALUES (?, ?, ?)", (version, json.dumps({"items": items}), _ms(d)))
    for it in v2:
        conn.execute("INSERT INTO catalog (code, name, department, item_json) VALUES (?,?,?,?)",
                     (it["code"], it["name"], it["department"], json.dumps(it)))  # fmt: skip
    cats = ["thanks", "media_praise", "commendation", "discipline", "verified_complaint"]
    for k in range(200):
        d = date(2026, 11, 1 + k % 30)
        conn.execute(
            'INSERT INTO score_manual (day, category, department, site, "window", staff, reason, attachment, actor, '
            "at_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (d.isoformat(), cats[k % 5], DEPTS[k % len(DEPTS)], sites[k % len(sites)], "1", "窗口1人员", "事由",
             "附件.pdf", "sup", _ms(d)),
        )  # fmt: skip


def baseline(conn, period) -> float:
    """Plain COUNT(*)s over the rows a month's scores read."""
    w = Window(period.start, period.end, AS_OF)
    a, b = w.ms()
    t = time.perf_counter()
    conn.execute("SELECT count(*) FROM alerts WHERE kind IN ('light_yellow', 'light_red') AND at_ms >= ? AND at_ms < ?",
                 (a, b)).fetchone()  # fmt: skip
    conn.execute("SELECT count(*) FROM votes WHERE pressed_ms >= ? AND pressed_ms < ?", (a, b)).fetchone()
    conn.execute("SELECT count(*) FROM followups WHERE rated_ms >= ? AND rated_ms < ?", (a, b)).fetchone()
    conn.execute("SELECT count(*) FROM cases WHERE received_at >= ? AND received_at < ?",
                 (period.start.isoformat(), (period.end + timedelta(days=1)).isoformat())).fetchone()  # fmt: skip
    return time.perf_counter() - t


def timed(url: str, runs: int) -> dict:
    from hub.store import load_calendar, open_db

    rules, period = load_rules(), scores.parse_period(PERIOD)
    out = {"total": [], "read": [], "baseline": [], "events": 0, "bytes": 0}
    for _ in range(runs):
        conn = open_db(url)
        cal = load_calendar(conn)
        out["baseline"].append(baseline(conn, period))
        t = time.perf_counter()
        events = read_events(conn, rules.kinds(), Window(period.start, period.end, AS_OF), cal)
        out["read"].append(time.perf_counter() - t)
        t = time.perf_counter()
        data, _fp = scores.fresh(conn, rules, period, cal, AS_OF)
        out["total"].append(time.perf_counter() - t)
        out["events"], out["bytes"] = len(events), len(data)
        conn.close()
        print(f"  run: scores {out['total'][-1]:.3f} s (events read {out['read'][-1]:.3f} s), "
              f"COUNT(*) baseline {out['baseline'][-1]:.3f} s", flush=True)  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--engines", default="sqlite,postgresql")
    args = ap.parse_args()
    from hub.store import open_db

    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-scores-") as tmp:
            if engine == "sqlite":
                url, ctx = f"sqlite:{Path(tmp) / 'hub.db'}", None
            else:
                from bench.store_engines import own_postgres

                ctx = own_postgres()
                server = ctx.__enter__()
                url = server.create_db("scores")
            try:
                conn = open_db(url)
                if engine == "sqlite":
                    conn.execute("PRAGMA synchronous=OFF")  # building only
                t = time.perf_counter()
                counts = build(conn, args.cases, args.sites)
                if engine == "postgresql":
                    conn.execute("ANALYZE")
                conn.close()
                print(f"{engine}: built {counts} in {time.perf_counter() - t:.0f} s (untimed)", flush=True)
                got = timed(url, args.runs)
                med = {k: statistics.median(v) for k, v in got.items() if isinstance(v, list)}
                print(json.dumps({"engine": engine, "cases": args.cases, "sites": args.sites, "period": PERIOD,
                                  "events": got["events"], "result_bytes": got["bytes"],
                                  "median_scores_s": round(med["total"], 3), "median_read_s": round(med["read"], 3),
                                  "median_count_baseline_s": round(med["baseline"], 3), "runs": args.runs},
                                 ensure_ascii=False), flush=True)  # fmt: skip
            finally:
                if ctx is not None:
                    ctx.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
