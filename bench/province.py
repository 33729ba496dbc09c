"""Province scale (issue 10): a province's day of records through the hub's ingest code, and a
store of 10,000,000 cases under the sweep and the case API, on SQLite and on PostgreSQL.

    .venv/bin/python bench/province.py [--sites 2000] [--records-per-site 150] [--batch-max 1,500]
                                       [--cases 10000000] [--runs 3] [--requests 20]
                                       [--engines sqlite,postgresql] [--skip-day] [--skip-store]
                                       [--plans] [--rebuild] [--cache /tmp/jiancha-bench-province]

A quick run: --sites 200 --cases 200000 --runs 1 (a few minutes). The full default run builds its
inputs first (about 10 minutes for the day, 25 for the stores), then measures for about two hours
on a quiet 2-core machine; docs/benchmarks.md "Province scale" has the figures.

PART 1, A PROVINCE'S DAY. --sites township sites (default 2,000: codes 140101-001 ... like a
county's region code and a township number), each with a day's records written through the
agent's own code (agent.store.AgentStore.register / add_event / append, with a simulated clock,
as bench/backlog.make_backlog does for registrations). A township service center's day, per site
(--records-per-site 150, everything scaled from it): about 40 cases registered between 08:30 and 17:00 (the
catalog's items, half of them immediate, 即办件), each accepted within minutes; the immediate
ones completed within the hour; 20 cases registered on earlier working days (promised items
accepted then, in progress) completed today, 30 % of them also delivered (送达); a keypad vote
after half of the completions. 40 + 40 + 20 + 20 + 6 + 20 = 146 records. Why 40: a township
center with 5-10 windows registers a few dozen cases a day (about 10,000 a year); 2,000 such
centers make 80,000 cases and about 300,000 records a day for a province. The 20 earlier cases
(their registration and acceptance, 40 records a site) are replayed untimed before the day, so
the hub holds them when their completions arrive. Every site's records continue its history at
seq HISTORY_SEQ (the hub's `sites` row says so), so the same logs also go on top of the filled
store of part 2.

Messages as the agent's syncer sends them (agent/sync.py): live, each record is sent as soon as
it is written, so a day arrives as one-record messages (--batch-max 1); after an outage a site
drains its backlog in batches of up to 500 (--batch-max 500). Each value in --batch-max is one
mode; both by default. Messages are interleaved across sites and grouped into transactions as the
hub's writer thread groups them from a full queue (bench/store_engines.writer_groups): the day is
replayed as fast as the hub takes it. At the real pace (3-4 records a second over a province)
most transactions would hold one message; the CPU per record is the figure that carries over.

Per run and engine, into fresh stores that already know the sites (the `sites` rows at the
history's head), the catalog and the notification directory, with the 20 earlier cases replayed:
  FLOOR  protocol.wire.open_batch (signature check, decryption, decoding) and one executemany per
         message into `records`, in the same transactions (bench/store_engines.floor_pass);
  HUB    hub.ingest.Ingestor.process_group of a hub.app.Hub built from the hub directory (nothing
         started: the Ingestor wired as the hub wires it, with its Supervisor and the notifier's
         hook), its clock fixed at the day's 18:00.
Printed: wall time, records per wall-second, µs of hub CPU per record (this process), the
PostgreSQL server's CPU (from /proc, not in the hub's CPU), the ratio hub/floor; medians of --runs.
With part 2's store built, one more HUB pass (one run) puts the same day on top of the filled
store (undone afterwards).

PART 2, 10,000,000 CASES (--cases). The store of a province after half a year: --cases cases
over the sites, registered on the 125 working days before the store's today (STORE_TODAY, a
Wednesday, fixed so that the cache stays valid: every measurement passes its own `now`), with
their events (accept, supplement, step, complete, deliver, deny, withdraw, transfer; the time each
took drawn per item from its promised days, 6 % late, 4 % never finished), a keypad vote after
10 % of the completions and deliveries, the cards (yellow/red) the sweep would have counted, an
alert per card and a 督办 ticket per red card (replied and accepted once the case closed). About 5 % of the cases are open at the store's today, with due dates
spread over the coming weeks, so every midnight some turn yellow or red. The case rows carry what
hub.projection would write (status, light, dates, violations, closed, next_change), computed with
the real protocol.caseclock.evaluate on the same events (memoized by item and dates); a sample is
then re-projected with hub.projection.project_cases and must come out unchanged. To keep each
engine's store near 10 GB, the events and alerts of closed cases received before the last
RECENT_WORKING_DAYS (20) working days are left out (their case rows, cards, votes and tickets are
in): the sweep and the recompute read only open cases' events, and a case page of such a case
shows no steps (all of them would add about 4 GB). Not filled either: the `records` table (the raw
log is read by neither the sweep nor the case API; 10M cases would make ~20 GB of it),
heartbeats, device events, documents, the notification history.

Loaded in bulk (SQLite: executemany in transactions of 100,000 rows with the secondary indexes
created afterwards from the schema's own statements; PostgreSQL: COPY, indexes afterwards,
VACUUM ANALYZE). Then, per engine (medians of --runs, each mutating step undone afterwards so the
cached store stays as built):
  - sweep, daytime: Ingestor.sweep() at the store's today 10:00 (what runs every 30 s: the
    next_change probe, held sites, projection of what is due, the Supervisor's ticket sweep);
  - sweep, first after midnight: Ingestor.sweep() at 00:00:30 of the next day (the morning's
    cards: every case whose next_change is that midnight, with alerts, cards, tickets, SMS);
  - full recompute: Ingestor.reload_calendar() (every open case re-projected, one transaction);
  - the case API: hub.api's app on a real HTTP server on a free port (tests/hub/hubapp.served),
    over the same store: the wall's two requests (GET /api/sites, GET /api/cases?open=1&
    order=urgency&limit=300), the case list filtered and paged, one case (GET /api/cases/{no}),
    the public lookup, /api/cards and /metrics; per route the median and 90th percentile of
    --requests requests (fewer when a route takes seconds: at most ~60 s per route);
  - the store's size on disk.
Query plans (EXPLAIN QUERY PLAN / EXPLAIN) of the routes' statements are printed with --plans.

Cache: the provisioned hub directory (2,000 sites' keys), the day's agent logs and messages, and
each engine's filled store are kept under --cache (keyed by their parameters) and reused;
--rebuild builds them again. PostgreSQL: a cluster of this benchmark's own in the cache folder
(tests/pgserver.PgServer, initdb once, started on a free 127.0.0.1 port for each run and stopped
at the end, also on Ctrl-C; never a server the machine already runs), with the test server's
settings (fsync=off, synchronous_commit=off) plus shared_buffers=1GB, maintenance_work_mem=512MB
and max_wal_size=4GB for the bulk load. SQLite: WAL, synchronous=FULL, the hub's own settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import machine_line, spread
from bench.store_engines import (
    checkpoint,
    floor_pass,
    install_signal_handlers,
    interleave,
    postmaster_pid,
    proc_cpu,
    server_cpu,
    writer_groups,
)
from protocol.calendar import CST, default_calendar

CACHE = Path("/tmp/jiancha-bench-province")
STORE_TODAY = date(2026, 11, 18)  # a Wednesday: the store's "today" and the replayed day
HISTORY_SEQ = 1_000_000  # each site's records continue here; the filled history lies below
SITES_PER_COUNTY = 20
HISTORY_WORKING_DAYS = 125  # about half a year of working days
RECENT_WORKING_DAYS = 20  # closed cases received since then keep their events and alerts (see History)
PG_SETTINGS = "-c shared_buffers=1GB -c maintenance_work_mem=512MB -c max_wal_size=4GB"
APPLICANT = {"name": "张三", "id_no": "140702199001011234", "phone": "13800000000"}


def log(msg: str) -> None:
    print(msg, flush=True)


# -- sites and the hub directory --------------------------------------------------------------------
def site_codes(n: int) -> list[str]:
    """Township codes as a province numbers them: the county's region code and a number."""
    out = []
    for k in range(n):
        county, town = divmod(k, SITES_PER_COUNTY)
        city, cty = divmod(county, 10)
        out.append(f"14{city + 1:02d}{cty + 1:02d}-{town + 1:03d}")
    return out


def provision(root: Path, codes: list[str]) -> SimpleNamespace:
    """A hub directory with `codes` as sites (cached). The first site through the e2e harness's
    Env (init_hub, add_site, the demo catalog, as every benchmark); the others only get what the
    ingest path reads: a signing key pair under sites/CODE/ and their entry in registry.yaml,
    written once (`add_site` re-reads and rewrites the registry for every site, which takes
    about an hour for 2,000). No MQTT certificates or agent.yaml for those: no broker here."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from hub.config import HubConfig, Registry, RegistrySite
    from iobase.config import dump_config, load_config

    done = root / "provisioned.json"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        from tests.e2e.harness import Env

        t = time.perf_counter()
        env = Env(root, sites=(codes[0],))
        # the hub's own supervision defaults (the harness shortens them for tests), and an SMS
        # gateway so that cards queue their reminders (never sent: the notifier is not started)
        env.configure_hub(
            supervision={"backentry_grace_minutes": 30.0, "sweep_interval_s": 30.0},
            notify={"sms": {"url": "http://127.0.0.1:9/sms"}},
        )
        reg_path = env.hub_cfg.registry
        registry = load_config(reg_path, Registry)
        seal_pub = (root / "sites" / codes[0] / "hub_seal.pub").read_bytes()
        for code in codes[1:]:
            folder = root / "sites" / code
            folder.mkdir(parents=True, mode=0o700)
            key = ed25519.Ed25519PrivateKey.generate()
            (folder / "sign.key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            (folder / "hub_seal.pub").write_bytes(seal_pub)
            pub = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            registry.sites.append(
                RegistrySite(code=code, name=f"{code}便民服务中心", sign_pub=pub.decode("ascii"), added_at="2026-05-01")
            )
        dump_config(registry, reg_path)
        done.write_text(json.dumps({"sites": len(codes)}))
        log(f"  provisioned {len(codes):,} sites in {time.perf_counter() - t:.0f} s ({root})")
    cfg = load_config(root / "hub.yaml", HubConfig)
    return SimpleNamespace(root=root, hub_cfg=cfg)  # what bench/backlog and floor_pass read of an Env


def catalog_items():
    from hub.catalog import read_catalog
    from tests.e2e.harness import CATALOG

    return read_catalog(CATALOG)


# -- part 1: a township's day, written by the agent's own code ---------------------------------------
# share of registrations per catalog item (jiancha/templates/catalog-demo.csv): half immediate
ITEM_WEIGHTS = {
    "XK-004": 20,  # 个体工商户设立登记, immediate
    "QR-002": 30,  # 城乡居民养老保险参保登记, immediate
    "XK-001": 10,  # 食品经营许可, promised 10
    "XK-003": 5,  # 排水许可, promised 5
    "QR-001": 10,  # 居民身份证换领, promised 15
    "GG-002": 8,  # 残疾人证核发, promised 7
    "GG-003": 7,  # 医疗救助申请, promised 3
    "XK-002": 5,  # 建设工程规划许可证核发, joint 15
    "GG-001": 5,  # 农村宅基地用地审批, escalated 20
}
DAY_RECORDS_PER_REG = 146 / 40  # the docstring's day: 146 records for 40 registrations


def working_days_before(day: date, n: int) -> list[date]:
    """The n working days before `day`, newest first (the seeded calendar)."""
    cal, out, d = default_calendar(), [], day
    while len(out) < n:
        d -= timedelta(days=1)
        if cal.is_working_day(d):
            out.append(d)
    return out


def at(d: date, minutes: float) -> datetime:
    """`d` at `minutes` after midnight, China time, whole seconds."""
    return datetime(d.year, d.month, d.day, tzinfo=CST) + timedelta(seconds=int(minutes * 60))


def history_hash(code: str) -> bytes:
    """The hash of the record before HISTORY_SEQ at a site (its history is not replayed)."""
    return hashlib.sha256(f"history of {code}".encode()).digest()


def write_site_day(path: Path, code: str, catalog: tuple[int, dict], regs: int, older: int, seed: int) -> dict:
    """A site's agent.db: `older` cases registered and accepted on earlier working days, then
    the day (STORE_TODAY): `regs` registrations with their events and votes, every record written
    through agent.store.AgentStore with the clock set to the action's time. Returns the seq
    ranges {"older": [first, last], "day": [first, last]}. Set-up shortcuts, as in
    bench/backlog.make_backlog: synchronous=OFF on this connection, no case view per call. The
    log starts at HISTORY_SEQ (a placeholder row at HISTORY_SEQ - 1 stands for the history) and
    the earlier days' case numbers at 9001 (the filled store's history uses the numbers below)."""
    import sqlite3

    from agent.devices.keypads.desk import Vote
    from agent.store import AgentStore, ClockInfo
    from protocol.models import KIND_VOTE, LEVEL_NAMES, NewCase, NewEvent

    rng = random.Random(seed)
    for suffix in ("", "-wal", "-shm", ".head"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    AgentStore(path, code, check=False).close()
    back = working_days_before(STORE_TODAY, 10)
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO log VALUES (?, ?, 'history', x'')", (HISTORY_SEQ - 1, history_hash(code)))
    raw.executemany("INSERT INTO day_counters VALUES (?, 9000)", [(d.strftime("%Y%m%d"),) for d in back])
    raw.commit()
    raw.close()
    now_ms = [0]
    store = AgentStore(
        path, code, clock=lambda: ClockInfo(now_ms[0], time.monotonic_ns(), "bench-boot", "ntp"), check=False
    )
    try:
        store.conn.execute("PRAGMA synchronous=OFF")
        version, payload = catalog
        store.save_config("catalog", version, int(at(back[-1], 0).timestamp() * 1000), payload, b"bench")
        store.case_view = lambda case_no, now: {"case_no": case_no}  # the API's answer: only the number
        items = {i["code"]: i for i in payload["items"]}
        codes, weights = list(ITEM_WEIGHTS), list(ITEM_WEIGHTS.values())
        slow = [c for c in codes if items[c]["case_type"] != "immediate"]
        cases: dict[object, str] = {}
        dept: dict[object, str] = {}

        def run(actions) -> tuple[int, int]:
            first = store.head_seq + 1
            for t, _, what, key, arg in sorted(actions, key=lambda a: (a[0], a[1])):
                now_ms[0] = int(t.timestamp() * 1000)
                if what == "reg":
                    req = NewCase.model_validate(
                        {
                            "item_code": arg,
                            "applicant": APPLICANT,
                            "window": f"{rng.randint(1, 8)}号窗口",
                            "clerk": "李四",
                        }
                    )
                    cases[key] = store.register(req, t)["case_no"]
                    dept[key] = items[arg]["department"]
                elif what == "vote":
                    level = rng.choices((1, 2, 3, 4, 5), (70, 20, 6, 3, 1))[0]
                    vote = Vote(
                        cases[key],
                        "3号窗口",
                        "李四",
                        arg,
                        f"k{level}",
                        LEVEL_NAMES[level - 1],
                        level,
                        LEVEL_NAMES[level - 1],
                        "keypad5-v1",
                        None,
                        now_ms[0],
                        time.monotonic_ns(),
                    )
                    store.append(KIND_VOTE, vote.to_record())
                else:
                    body = {"type": what, "actor": "李四"}
                    if what == "request_supplement":
                        body["reason"] = "材料不全：缺少身份证复印件"
                    store.add_event(cases[key], NewEvent.model_validate(body), t)
            return first, store.head_seq

        n = 0
        actions = []  # (time, order, what, case key, item code)
        for i in range(older):  # in progress: registered on an earlier working day, accepted then
            code_i = rng.choice(slow)
            d = back[rng.randrange(min(len(back), max(1, items[code_i]["promised_days"] - 1)))]
            t = at(d, rng.uniform(510, 990))
            actions += [
                (t, n, "reg", ("old", i), code_i),
                (t + timedelta(minutes=rng.uniform(5, 15)), n + 1, "accept", ("old", i), None),
            ]
            n += 2
        old_range = run(actions)
        actions = []
        for i in range(regs):
            code_i = rng.choices(codes, weights)[0]
            t = at(STORE_TODAY, rng.uniform(510, 1020))  # 08:30 .. 17:00
            actions.append((t, n, "reg", i, code_i))
            if items[code_i]["case_type"] == "immediate":
                ta = t + timedelta(minutes=rng.uniform(3, 8))
                tc = ta + timedelta(minutes=rng.uniform(10, 40))
                actions += [(ta, n + 1, "accept", i, None), (tc, n + 2, "complete", i, None)]
                if rng.random() < 0.5:
                    actions.append((tc + timedelta(minutes=1), n + 3, "vote", i, None))
            else:
                kind = "request_supplement" if rng.random() < 0.03 else "accept"
                actions.append((t + timedelta(minutes=rng.uniform(5, 15)), n + 1, kind, i, None))
            n += 4
        for i in range(older):  # the earlier cases finished today
            tc = at(STORE_TODAY, rng.uniform(510, 1010))
            actions.append((tc, n, "complete", ("old", i), None))
            if rng.random() < 0.3:
                actions.append((tc + timedelta(minutes=rng.uniform(5, 60)), n + 1, "deliver", ("old", i), None))
            if rng.random() < 0.5:
                actions.append((tc + timedelta(minutes=1), n + 2, "vote", ("old", i), None))
            n += 3
        day_range = run(actions)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return {"older": list(old_range), "day": list(day_range)}


def seal_range(hubdir, code: str, db: Path, first: int, last: int, batch_max: int) -> list[tuple[bytes, int]]:
    """(payload, records) of the sealed batches the agent sends for seqs first..last: as
    bench/backlog.sealed_batches makes them (ranges of batch_max, split_by_size, seal_batch with
    the site's real keys), from `first` instead of seq 1."""
    import sqlite3

    from agent.sync import BATCH_BYTES, split_by_size
    from protocol.crypto import load_private_pem, load_public_pem
    from protocol.wire import seal_batch

    d = hubdir.root / "sites" / code
    sign = load_private_pem((d / "sign.key").read_bytes(), "ed25519")
    seal = load_public_pem((d / "hub_seal.pub").read_bytes(), "x25519")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = []
    try:
        rows = conn.execute(
            "SELECT seq, data FROM log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
        ).fetchall()
        for k in range(0, len(rows), batch_max):
            part = rows[k : k + batch_max]
            for start, chunk in split_by_size(part[0][0], [r[1] for r in part], BATCH_BYTES):
                sent = int(time.time() * 1000)
                out.append(
                    (
                        seal_batch(code, chunk, sign_key=sign, hub_seal_pub=seal, sent_ms=sent, first_seq=start),
                        len(chunk),
                    )
                )
    finally:
        conn.close()
    return out


def day_logs(cache: Path, hubdir, codes: list[str], rps: int, rebuild: bool) -> tuple[Path, dict]:
    """Every site's agent.db for the day (cached): {code: seq ranges}."""
    from bench.backlog import catalog_of

    folder = cache / f"day-{len(codes)}-{rps}"
    meta = folder / "ranges.json"
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not meta.exists():
        regs = max(1, round(rps / DAY_RECORDS_PER_REG))
        older = max(1, round(regs / 2))
        catalog = catalog_of(hubdir)
        t = time.perf_counter()
        ranges = {}
        for k, code in enumerate(codes):
            checkpoint()
            ranges[code] = write_site_day(folder / "agents" / f"{code}.db", code, catalog, regs, older, seed=k)
            if (k + 1) % 200 == 0:
                log(f"    day logs: {k + 1:,} of {len(codes):,} sites ({time.perf_counter() - t:.0f} s)")
        meta.write_text(json.dumps(ranges))
        day = sum(r["day"][1] - r["day"][0] + 1 for r in ranges.values())
        log(
            f"  wrote the day's agent logs in {time.perf_counter() - t:.0f} s: {regs} registrations and {older} "
            f"earlier cases a site, {day:,} records ({day / len(codes):.0f} a site)"
        )
    return folder, json.loads(meta.read_text())


def day_messages(folder: Path, hubdir, ranges: dict, batch_max: int) -> dict:
    """The sealed messages (cached): 'older' (the earlier cases, replayed untimed, batches of 500)
    and 'day' (--batch-max records each), as (site, topic, payload) interleaved across sites."""
    path = folder / f"messages-b{batch_max}.pickle"
    if not path.exists():
        t = time.perf_counter()
        older, day = {}, {}
        for code, r in ranges.items():
            checkpoint()
            db = folder / "agents" / f"{code}.db"
            older[code] = seal_range(hubdir, code, db, *r["older"], 500)
            day[code] = seal_range(hubdir, code, db, *r["day"], batch_max)
        out = {
            "older": interleave(older),
            "day": interleave(day),
            "older_records": sum(n for bs in older.values() for _, n in bs),
            "day_records": sum(n for bs in day.values() for _, n in bs),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
        log(f"  sealed {len(out['day']):,} messages of at most {batch_max} records in {time.perf_counter() - t:.0f} s")
    return pickle.loads(path.read_bytes())


# -- stores ---------------------------------------------------------------------------------------
def directory():
    """A recipients directory: a head and two handlers for each department of the catalog."""
    from hub.notify.directory import Department, Directory, Person

    deps = sorted({i.department for i in catalog_items()})
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


def seed_store(conn, hubdir, codes: list[str], now_ms: int) -> None:
    """What a running hub knows before the day: the catalog it signed (the version its boxes hold),
    the notification directory, and every site at its history's head (HISTORY_SEQ - 1)."""
    from bench.backlog import catalog_of
    from hub.catalog import store_catalog
    from hub.notify.directory import save_directory
    from iobase.sqlite import transaction

    version = store_catalog(conn, catalog_items(), actor="bench")
    if version != catalog_of(hubdir)[0]:
        raise RuntimeError(f"catalog version {version} in the store, {catalog_of(hubdir)[0]} at the boxes")
    with transaction(conn):
        save_directory(conn, directory(), now_ms=now_ms)
        conn.executemany(
            "INSERT INTO sites (code, name, online, last_seen_ms, acked_seq, acked_hash, max_seq, agent_last_seq, "
            "clock, last_progress_ms, acked_progress_ms, catalog_seen, catalog_seen_seq) "
            "VALUES (?, ?, 1, ?, ?, ?, ?, ?, 'ntp', ?, ?, ?, ?)",
            [
                (
                    c,
                    f"{c}便民服务中心",
                    now_ms,
                    HISTORY_SEQ - 1,
                    history_hash(c),
                    HISTORY_SEQ - 1,
                    HISTORY_SEQ - 1,
                    now_ms,
                    now_ms,
                    version,
                    HISTORY_SEQ - 1,
                )
                for c in codes
            ],
        )


def make_hub(hubdir, url: str, now: datetime):
    """hub.app.Hub over the store at `url` (nothing started): the Ingestor, Supervisor and
    notifier hook wired as `jiancha hub run` wires them, the Ingestor's clock fixed at `now`."""
    from hub.app import Hub
    from hub.config import HubConfig
    from iobase.config import load_config

    cfg = load_config(hubdir.root / "hub.yaml", HubConfig)
    cfg.store.url = url
    hub = Hub(cfg)
    hub.ingest.now = lambda: now
    return hub


def close_hub(hub) -> None:
    for conn in (hub.reader, hub.writer, hub.conn):
        with contextlib.suppress(Exception):
            conn.close()


class CachedPg:
    """tests/pgserver.PgServer with its cluster kept in the cache folder: initdb once, then
    started on a free port for each run and stopped cleanly (the folder stays)."""

    def __init__(self, root: Path):
        from tests.pgserver import PgServer

        self.server = PgServer(root)
        self.root, self.data, self.port = self.server.root, self.server.data, self.server.port

    def start(self) -> CachedPg:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root.parent, 0o711)  # the server's user must reach its folder (0700 otherwise)
        if not self._running():  # a run cut off by a power cut or kill -9 leaves its pid file
            (self.data / "postmaster.pid").unlink(missing_ok=True)
        self.server.start(settings=PG_SETTINGS, wait_s=300)  # initdb only the first time
        return self

    def _running(self) -> bool:
        return self.server._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def stop(self) -> None:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a 2nd Ctrl-C cannot leave it running
        try:
            if self.data.exists():
                self.server._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "300", "stop", timeout=360)
        finally:
            signal.signal(signal.SIGINT, old)

    def url(self, db: str = "postgres") -> str:
        return self.server.url(db)

    def create_db(self, prefix: str) -> str:
        return self.server.create_db(prefix)

    def drop_db(self, url: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')

    def postmaster(self) -> int:
        return postmaster_pid(self.server)


@contextlib.contextmanager
def cached_postgres(root: Path):
    """A CachedPg running for the duration, stopped on exit, Ctrl-C, SIGTERM or error."""
    import atexit

    pg = CachedPg(root)
    atexit.register(pg.stop)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        atexit.unregister(pg.stop)


# -- part 1: the passes -------------------------------------------------------------------------------
DAY_NOW = datetime(STORE_TODAY.year, STORE_TODAY.month, STORE_TODAY.day, 18, 0, tzinfo=CST)


def new_store(engine: str, pg, workdir: Path, tag: str) -> str:
    """A fresh, migrated store's URL (SQLite file in workdir, or a new database on our server)."""
    from hub.store import open_db

    if engine == "sqlite":
        path = workdir / f"{tag}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:{path}"
    else:
        url = pg.create_db(tag)
    open_db(url).close()
    return url


def drop_store(url: str, pg) -> None:
    if url.startswith("sqlite:"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{url[7:]}{suffix}").unlink(missing_ok=True)
    else:
        pg.drop_db(url)


@dataclass
class Cpu:
    """Wall, this process's CPU and (PostgreSQL) the backend's and the whole server's CPU."""

    conn: object
    pg: object = None

    def __enter__(self):
        gc.collect()
        self.backend = self.postmaster = None
        if self.pg is not None:
            self.backend = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            self.postmaster = self.pg.postmaster()
            self.b0, self.s0 = proc_cpu(self.backend), server_cpu(self.postmaster)
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
        if self.pg is not None:
            self.backend_cpu = proc_cpu(self.backend) - self.b0
            self.server = server_cpu(self.postmaster) - self.s0

    def figures(self) -> dict:
        out = {"wall": self.wall, "cpu": self.cpu}
        if self.pg is not None:
            out |= {"backend": self.backend_cpu, "server": self.server}
        return out


def floor_day(url: str, pg, hubdir, msgs: dict, group: int | None) -> dict:
    """FLOOR: the earlier cases (untimed), then the day, through bench/store_engines.floor_pass."""
    from hub.store import open_db

    conn = open_db(url)
    try:
        floor_pass(conn, hubdir, writer_groups(msgs["older"], None))
        groups = writer_groups(msgs["day"], group)
        with Cpu(conn, pg) as c:
            floor_pass(conn, hubdir, groups)
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        conn.close()
    if stored != msgs["older_records"] + msgs["day_records"]:
        raise RuntimeError(f"floor stored {stored} records, expected {msgs['older_records'] + msgs['day_records']}")
    return c.figures()


def hub_day(url: str, pg, hubdir, codes, msgs: dict, group: int | None, *, seeded: bool = False) -> dict:
    """HUB: the store seeded (unless it is the filled one), the earlier cases replayed (untimed),
    then the day through Ingestor.process_group, grouped as from a full queue."""
    hub = make_hub(hubdir, url, DAY_NOW)
    try:
        conn, ing = hub.conn, hub.ingest
        if not seeded:
            seed_store(conn, hubdir, codes, int(DAY_NOW.timestamp() * 1000) - 86_400_000)
        for grp in writer_groups(msgs["older"], None):
            ing.process_group([(topic, p) for _site, topic, p in grp])
        groups = [[(topic, p) for _site, topic, p in grp] for grp in writer_groups(msgs["day"], group)]
        before = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        with Cpu(conn, pg) as c:
            for grp in groups:
                checkpoint()
                ing.process_group(grp)
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0] - before
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        acked = conn.execute("SELECT sum(acked_seq) FROM sites").fetchone()[0]
    finally:
        close_hub(hub)
    want_acked = sum(HISTORY_SEQ - 1 for _ in codes) + msgs["older_records"] + msgs["day_records"]
    if stored != msgs["day_records"] or quarantined or int(acked) != want_acked:
        raise RuntimeError(
            f"hub pass: {stored} of {msgs['day_records']} records stored, {quarantined} quarantined, "
            f"acked {int(acked) - sum(HISTORY_SEQ - 1 for _ in codes)} of {msgs['older_records'] + msgs['day_records']}"
        )
    return c.figures()


def day_runs(a, hubdir, codes, folder, ranges, engines, pg, workdir) -> dict:
    """Every --batch-max mode, --runs runs, FLOOR then HUB on each engine into fresh stores."""
    results = {}
    for batch_max in a.batch_max:
        msgs = day_messages(folder, hubdir, ranges, batch_max)
        n = msgs["day_records"]
        groups = writer_groups(msgs["day"], a.group)
        log(
            f"\nday, {len(msgs['day']):,} messages of up to {batch_max} records ({n:,} records, "
            f"{sum(len(m[2]) for m in msgs['day']) / n:.0f} B/record sealed), {len(groups):,} transactions "
            f"of {len(msgs['day']) / len(groups):.1f} messages; {msgs['older_records']:,} records of the earlier "
            f"cases replayed first, untimed"
        )
        for i in range(1, a.runs + 1):
            line = []
            for engine in engines:
                for kind in ("floor", "hub"):
                    url = new_store(engine, pg, workdir, f"day_{kind}")
                    try:
                        pgs = pg if engine == "postgresql" else None
                        if kind == "floor":
                            r = floor_day(url, pgs, hubdir, msgs, a.group)
                        else:
                            r = hub_day(url, pgs, hubdir, codes, msgs, a.group)
                    finally:
                        drop_store(url, pg)
                    results.setdefault((batch_max, engine, kind), []).append(r)
                    line.append(
                        f"{engine} {kind} {r['wall']:.1f} s, {n / r['wall']:,.0f} rec/s"
                        + (f", server {r['server']:.1f} s" if "server" in r else "")
                    )
            log(f"  run {i}: " + "; ".join(line) + f"; load {os.getloadavg()[0]:.2f}")
        summarize_day(results, batch_max, engines, n)
    return results


def summarize_day(results: dict, batch_max: int, engines, n: int) -> None:
    log(
        f"  figures, messages of up to {batch_max} records (medians of {len(results[(batch_max, engines[0], 'hub')])} runs):"
    )
    for engine in engines:
        fl, hb = results[(batch_max, engine, "floor")], results[(batch_max, engine, "hub")]
        for kind, rs in (("floor", fl), ("hub", hb)):
            extra = ""
            if "server" in rs[0]:
                extra = f"; server CPU µs/record {spread([1e6 * r['server'] / n for r in rs], '{:,.1f}')}"
            log(
                f"    {engine:<10} {kind:<5} wall {spread([r['wall'] for r in rs], '{:,.1f} s')}; "
                f"records/s {spread([n / r['wall'] for r in rs])}; "
                f"hub CPU µs/record {spread([1e6 * r['cpu'] / n for r in rs], '{:,.1f}')}{extra}"
            )
        ratio_cpu = [h["cpu"] / f["cpu"] for h, f in zip(hb, fl)]
        ratio_wall = [h["wall"] / f["wall"] for h, f in zip(hb, fl)]
        log(f"    {engine:<10} hub/floor: hub CPU {spread(ratio_cpu, '{:.2f}x')}; wall {spread(ratio_wall, '{:.2f}x')}")


# -- part 2: the filled store ------------------------------------------------------------------------
STORE_NOW = datetime(STORE_TODAY.year, STORE_TODAY.month, STORE_TODAY.day, 8, 0, tzinfo=CST)  # as built
EVENT_FIELDS = ("reason", "step", "link")  # the extras used here, in CaseEventBody's field order
SUPPLEMENT = "材料不全：缺少身份证复印件"
DENY = "不符合法定条件"
LINK = "县农业农村局"


@dataclass
class ItemInfo:
    code: str
    name: str
    department: str
    case_type: str
    legal: int
    promised: int
    yellow: int | None
    snapshot: str  # the item as a box's registration carries it (compact JSON, sorted keys)


class History:
    """Cases, events, votes, cards, alerts and tickets of the filled store, per site, with the
    case columns computed by protocol.caseclock.evaluate as hub.projection computes them."""

    def __init__(self, hubdir, version: int):
        from hub.config import HubConfig
        from iobase.config import load_config
        from protocol.caseclock_days import days_of

        self.cal = default_calendar()
        self.days = days_of(self.cal)
        cfg = load_config(hubdir.root / "hub.yaml", HubConfig)
        sup = cfg.supervision
        self.default_yellow = sup.yellow_days
        self.reply_days = sup.reply_days
        self.first_level = sup.ladder[0]
        h = sup.backdate_tolerance_hours
        self.tolerance = timedelta(hours=h) if h is not None else None
        self.items = {}
        for it in catalog_items():
            snap = {
                "case_type": it.case_type,
                "catalog_version": version,
                "code": it.code,
                "department": it.department,
                "item_type": it.item_type,
                "legal_days": it.legal_days,
                "name": it.name,
                "promised_days": it.promised_days,
                "yellow_days": it.yellow_days,
            }
            self.items[it.code] = ItemInfo(
                it.code,
                it.name,
                it.department,
                it.case_type,
                it.legal_days,
                it.promised_days,
                it.yellow_days,
                json.dumps(snap, ensure_ascii=False, separators=(",", ":")),
            )
        self.codes, self.weights = list(ITEM_WEIGHTS), list(ITEM_WEIGHTS.values())
        self.received_days = list(reversed(working_days_before(STORE_TODAY, HISTORY_WORKING_DAYS)))
        self.recent = working_days_before(STORE_TODAY, RECENT_WORKING_DAYS)[-1]
        self.wdays = list(reversed(working_days_before(STORE_TODAY, HISTORY_WORKING_DAYS + 5)))
        d = STORE_TODAY
        while len(self.wdays) < HISTORY_WORKING_DAYS + 200:
            if self.cal.is_working_day(d):
                self.wdays.append(d)
            d += timedelta(days=1)
        self.widx = {d: i for i, d in enumerate(self.wdays)}
        self.applicant = json.dumps(APPLICANT, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        self.memo: dict = {}
        self.evaluated = 0
        self.alert_id = self.ticket_id = self.ticket_event_id = 0
        self.now_ms = int(STORE_NOW.timestamp() * 1000)

    def wd(self, d: date, k: int) -> date:
        return self.wdays[self.widx[d] + k]

    # one case's steps: [(type, time, extras)], each drawn per item from its promised days
    def story(self, rng: random.Random, it: ItemInfo, d: date, t: datetime) -> list:
        u = rng.uniform
        if it.case_type == "immediate":
            ta = t + timedelta(seconds=int(u(180, 480)))
            if rng.random() < 0.005:  # accepted, never completed: red from the next day
                return [("accept", ta, {})]
            return [("accept", ta, {}), ("complete", ta + timedelta(seconds=int(u(600, 2400))), {})]
        if rng.random() < 0.03:  # 补正: told at once, material in within three days (accepted then)
            start = self.wd(d, rng.randint(1, 3))
            ev = [
                ("request_supplement", t + timedelta(seconds=int(u(300, 900))), {"reason": SUPPLEMENT}),
                ("supplement_received", at(start, u(540, 990)), {}),
            ]
        else:
            start = d
            ev = [("accept", t + timedelta(seconds=int(u(300, 900))), {})]
        p, r = max(1, it.promised), rng.random()
        if r < 0.04:  # never finished
            return ev
        if r < 0.06:  # withdrawn by the applicant
            return ev + [("withdraw", at(self.wd(start, rng.randint(1, p)), u(540, 990)), {})]
        if r < 0.08 and it.case_type != "escalated":  # denied, with reasons
            return ev + [("deny", at(self.wd(start, rng.randint(1, p)), u(540, 990)), {"reason": DENY})]
        k = rng.randint(1, p) if r < 0.94 else p + rng.randint(1, 8)  # 6 % late
        fin = self.wd(start, k)
        if it.case_type == "joint" and k >= 2:
            ev.append(("step", at(self.wd(start, k // 2), u(540, 990)), {"step": "联合审查"}))
        tf = at(fin, u(540, 960))
        if it.case_type == "escalated":
            return ev + [("transfer", tf, {"link": LINK})]
        ev.append(("complete", tf, {}))
        if rng.random() < 0.3:
            j = rng.randint(0, 3)
            ev.append(
                (
                    "deliver",
                    tf + timedelta(seconds=int(u(300, 7200))) if j == 0 else at(self.wd(fin, j), u(540, 990)),
                    {},
                )
            )
        return ev

    def event_json(self, case_no: str, typ: str, t: datetime, extra: dict) -> str:
        """The body hub.ingest stores: CaseEventBody.model_dump_json(exclude_none=True)."""
        tail = "".join(f',"{k}":"{extra[k]}"' for k in EVENT_FIELDS if k in extra)
        return f'{{"case_no":"{case_no}","type":"{typ}","at":"{t.isoformat()}","actor":"李四"{tail}}}'

    def evaluate(self, it: ItemInfo, d: date, t: datetime, events: list) -> tuple:
        """(the projection's column values, card dates) of a case, memoized by item and dates
        (the case clock works in days; times only order the events, the same way each time)."""
        key = (it.code, d, tuple((e[0], e[1].date()) for e in events))
        got = self.memo.get(key)
        if got is None:
            from hub.projection import event_from_row
            from protocol.caseclock import CLOSED, ItemRule, evaluate

            evs = [
                event_from_row(i + 1, self.event_json("X-20000101-0001", typ, at_, ex), int(at_.timestamp() * 1000))
                for i, (typ, at_, ex) in enumerate(events)
            ]
            rule = ItemRule(it.code, it.case_type, it.legal, it.promised, it.yellow)
            extra = {"backdate_tolerance": self.tolerance} if self.tolerance is not None else {}
            v = evaluate(rule, t, evs, STORE_NOW, self.cal, self.default_yellow, **extra)
            cols = (
                v.status,
                v.light,
                _iso(v.due_date),
                int(v.due_provisional),
                _iso(v.legal_due_date),
                _iso(v.acceptance_due),
                json.dumps(list(v.violations)),
                int(v.status in CLOSED),
                v.next_change.isoformat() if v.next_change else None,
            )
            got = (cols, self.cards(it, v, events))
            self.memo[key] = got
            self.evaluated += 1
        return got

    def cards(self, it: ItemInfo, v, events: list) -> tuple:
        """(yellow day or None, red day or None): the cards the sweep counted while the case was
        open. An immediate case (即办件, promised 0, warning 0 days) is yellow from its acceptance
        (0 days left <= 0) until completed in a later message: one yellow card each."""
        closed_on = next(
            (e[1].date() for e in events if e[0] in ("complete", "deny", "withdraw", "transfer", "reject")), None
        )
        red = v.due_date + timedelta(days=1) if v.light == "red" and v.due_date else None
        if it.case_type == "immediate":
            acc = next((e[1] for e in events if e[0] == "accept"), None)
            return (acc, red)
        if v.due_date is None:
            return (None, red)
        y = it.yellow if it.yellow is not None else self.default_yellow
        start = self.days.add(v.due_date, -y) if y > 0 else v.due_date
        if closed_on is None:
            return (start if v.light in ("yellow", "red") else None, red)
        return (start if closed_on >= start else None, red)

    def site(self, code: str, n: int, seed: int) -> dict:
        """Every row of one site's history, sorted by primary key; the site's records are
        numbered below HISTORY_SEQ in time order."""
        rng = random.Random(seed)
        per_day = [0] * len(self.received_days)
        for _ in range(n):
            per_day[rng.randrange(len(per_day))] += 1
        cases, records = [], []  # records: (ms, tiebreak, kind, payload)
        alerts, tickets, tevents = [], [], []
        for d, count in zip(self.received_days, per_day):
            minutes = sorted(rng.uniform(510, 1020) for _ in range(count))
            for j, m in enumerate(minutes, 1):
                it = self.items[rng.choices(self.codes, self.weights)[0]]
                t = at(d, m)
                case_no = f"{code}-{d:%Y%m%d}-{j:04d}"
                events = [e for e in self.story(rng, it, d, t) if e[1].date() < STORE_TODAY]
                cols, (yellow_at, red_at) = self.evaluate(it, d, t, events)
                window = f"{rng.randint(1, 8)}号窗口"
                qc = f"{rng.randrange(10**8):08d}"
                reg = (
                    f'{{"applicant":{self.applicant},"case_no":"{case_no}","clerk":"李四","item":{it.snapshot},'
                    f'"query_code":"{qc}","received_at":"{t.isoformat()}","window":"{window}"}}'
                )
                ms = int(t.timestamp() * 1000)
                row = [case_no, code, it.code, it.name, it.department, qc, t.isoformat(), None, reg, *cols,
                       self.now_ms, it.case_type, it.legal, it.promised, it.yellow,
                       int(yellow_at is not None), int(red_at is not None), None]  # fmt: skip
                cases.append(row)
                records.append((ms, 0, "reg", row))
                kept = cols[7] == 0 or d >= self.recent  # open, or received recently: events and alerts kept
                for typ, at_, ex in events:
                    ems = int(at_.timestamp() * 1000)
                    ev = (case_no, typ, at_.isoformat(), self.event_json(case_no, typ, at_, ex), ems) if kept else None
                    records.append((ems, 1, "event", ev))
                    if typ in ("complete", "deliver") and rng.random() < 0.1:
                        level = rng.choices((1, 2, 3, 4, 5), (70, 20, 6, 3, 1))[0]
                        records.append((ems + 60_000, 2, "vote", (case_no, window, it.department, level, ems + 60_000)))
                self.card_rows(code, case_no, it, cols, yellow_at, red_at, alerts if kept else [], tickets, tevents)
        records.sort(key=lambda r: (r[0], r[1]))
        first = HISTORY_SEQ - len(records)
        case_events, votes = [], []
        from protocol.models import LEVEL_NAMES

        for i, (_ms, _o, kind, p) in enumerate(records):
            seq = first + i
            if kind == "reg":
                p[7] = seq
            elif kind == "event":
                if p is not None:
                    case_events.append((code, seq, p[0], p[1], p[2], p[3], p[4]))
            else:
                votes.append((code, seq, p[0], p[1], "李四", p[2], f"k{p[3]}", p[3], LEVEL_NAMES[p[3] - 1],
                              "keypad5-v1", None, p[4]))  # fmt: skip
        return {
            "cases": cases,
            "case_events": case_events,
            "votes": votes,
            "alerts": alerts,
            "tickets": tickets,
            "ticket_events": tevents,
        }

    def card_rows(self, code, case_no, it, cols, yellow_at, red_at, alerts, tickets, tevents) -> None:
        """An alert per card (as hub.ingest writes them) and a 督办 ticket per red card (opened at
        the ladder's first level; replied and accepted once the case closed)."""
        if yellow_at is not None:
            t = yellow_at if isinstance(yellow_at, datetime) else at(yellow_at, 0.5)
            self.alert_id += 1
            alerts.append(
                (self.alert_id, int(t.timestamp() * 1000), code, case_no, "light_yellow", "yellow", "green → yellow")
            )
        if red_at is None:
            return
        opened = at(red_at, 0.5)
        opened_ms = int(opened.timestamp() * 1000)
        self.alert_id += 1
        old = "yellow" if yellow_at is not None else "green"
        alerts.append((self.alert_id, opened_ms, code, case_no, "light_red", "red", f"{old} → red"))
        from hub import tickets as tk

        due = tk.reply_due(red_at, self.reply_days, self.cal)
        closed = cols[7] == 1
        status = "accepted" if closed else ("open" if due >= STORE_TODAY else "replied")
        self.ticket_id += 1
        tid = self.ticket_id
        reason = "超过承诺时限未办结"
        tickets.append((tid, case_no, code, it.department, self.first_level, status, opened_ms, due.isoformat(), None,
                        reason, "system", opened_ms + 2 * 86_400_000 if closed else None))  # fmt: skip
        steps = [("system", "open", f"{tk.LEVEL_TITLES[self.first_level]}：{reason}")]
        if status != "open":
            steps.append(("赵科员", "reply", "已加快办理，情况说明见附件"))
        if closed:
            steps.append(("监察员", "accept", "同意"))
        for k, (actor, action, text) in enumerate(steps):
            self.ticket_event_id += 1
            tevents.append((self.ticket_event_id, tid, opened_ms + k * 86_400_000, actor, action, text))


def _iso(d) -> str | None:
    return d.isoformat() if d else None


# -- part 2: loading ---------------------------------------------------------------------------------
COLUMNS = {
    "cases": "case_no, site, item_code, item_name, department, query_code, received_at, reg_seq, reg_json, status, "
    "light, due_date, due_provisional, legal_due_date, acceptance_due, violations, closed, next_change, updated_ms, "
    "case_type, legal_days, promised_days, yellow_days, yellow_cards, red_cards, item_check",
    "case_events": "site, seq, case_no, type, at, body_json, recorded_ms",
    "votes": 'site, seq, case_no, "window", staff, department, key, level, level_name, mapping_version, misuse, '
    "pressed_ms",
    "alerts": "id, at_ms, site, case_no, kind, light, detail",
    "tickets": "id, case_no, site, department, level, status, opened_ms, reply_due, parent_id, reason, actor, closed_ms",
    "ticket_events": "id, ticket_id, at_ms, actor, action, text",
}
PROJECTED = (
    "status, light, due_date, due_provisional, legal_due_date, acceptance_due, violations, closed, next_change, "
    "yellow_cards, red_cards"
)


def store_key(a) -> str:
    return f"store-{a.cases}-{a.sites}"


def sqlite_store(a, hubdir, codes: list[str]) -> tuple[str, dict]:
    """The filled SQLite store (cached): its URL and what was built."""
    folder = a.cache / store_key(a)
    meta = folder / "built.json"
    if a.rebuild and folder.exists():
        shutil.rmtree(folder)
    if not meta.exists():
        folder.mkdir(parents=True, exist_ok=True)
        info = fill_sqlite(folder / "hub.db", hubdir, codes, a.cases)
        meta.write_text(json.dumps(info))
    return f"sqlite:{folder / 'hub.db'}", json.loads(meta.read_text())


def secondary_indexes(conn, tables) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the tables' indexes other than primary keys and UNIQUE."""
    from hub.db import engine

    if engine(conn) == "sqlite":
        marks = ",".join("?" * len(tables))
        return conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
            tuple(tables),
        ).fetchall()
    return conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname='public' AND i.tablename = ANY(?) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        (list(tables),),
    ).fetchall()


def fill_sqlite(path: Path, hubdir, codes: list[str], n_cases: int) -> dict:
    """Generate the history (History) into a new SQLite store: the schema from hub.store.open_db,
    the secondary indexes dropped during the load and created again from their own statements."""
    from hub.store import open_db

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    conn = open_db(path)
    seed_store(conn, hubdir, codes, int(STORE_NOW.timestamp() * 1000) - 3_600_000)
    version = conn.execute("SELECT version FROM config WHERE kind='catalog'").fetchone()[0]
    hist = History(hubdir, version)
    recent = hist.recent.isoformat()
    indexes = secondary_indexes(conn, COLUMNS)
    for name, _sql in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    inserts = {t: f"INSERT INTO {t} ({c}) VALUES ({','.join('?' * len(c.split(',')))})" for t, c in COLUMNS.items()}
    counts = dict.fromkeys(COLUMNS, 0)
    base, extra = divmod(n_cases, len(codes))
    sample, open_n, pending = [], 0, 0
    conn.execute("BEGIN")
    for k, code in enumerate(codes):
        checkpoint()
        rows = hist.site(code, base + (k < extra), seed=1_000_003 * (k + 1))
        for table, rs in rows.items():
            conn.executemany(inserts[table], rs)
            counts[table] += len(rs)
        open_n += sum(1 for r in rows["cases"] if r[16] == 0)
        kept = [r[0] for r in rows["cases"] if r[16] == 0 or r[6] >= recent]  # cases with their events
        sample += kept[:: max(1, len(kept) // 3)][:3]
        pending += len(rows["cases"])
        if pending >= 100_000:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            pending = 0
        if (k + 1) % 100 == 0 or k + 1 == len(codes):
            log(
                f"    SQLite fill: {k + 1:,} of {len(codes):,} sites, {counts['cases']:,} cases "
                f"({time.perf_counter() - t0:.0f} s, {hist.evaluated:,} distinct case clocks evaluated)"
            )
    conn.execute("COMMIT")
    t1 = time.perf_counter()
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    info = {
        "counts": counts,
        "open": open_n,
        "sample": sample,
        "load_s": round(t1 - t0, 1),
        "index_s": round(time.perf_counter() - t1, 1),
    }
    log(
        f"  filled the SQLite store in {t1 - t0:.0f} s + {info['index_s']:.0f} s of indexes: "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        + f"; open cases {open_n:,} ({100 * open_n / max(1, counts['cases']):.1f} %)"
    )
    return info


def pg_store(a, pg, sqlite_url: str) -> str:
    """The filled PostgreSQL store (cached in our cluster): a copy of the SQLite one through COPY,
    secondary indexes created after the load, identity counters above the ids, VACUUM ANALYZE."""
    import psycopg

    name = store_key(a).replace("-", "_")
    url = pg.url(name)
    marker = a.cache / f"{store_key(a)}-postgresql.json"
    if marker.exists() and not a.rebuild and marker.stat().st_mtime >= Path(sqlite_url[7:]).stat().st_mtime:
        return url
    from hub.db import connect
    from hub.migrate_store import _columns, _order, _tables
    from hub.store import open_db

    marker.unlink(missing_ok=True)
    with psycopg.connect(pg.url(), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')
    t0 = time.perf_counter()
    src = connect(sqlite_url, readonly=True)
    dst = open_db(url)
    try:
        tables = _tables(src)
        indexes = secondary_indexes(dst, tables)
        for idx, _sql in indexes:
            dst.execute(f'DROP INDEX "{idx}"')
        for table in tables:
            cols = [c for c in _columns(src, table) if c in set(_columns(dst, table))]
            names = ", ".join(f'"{c}"' for c in cols)
            n = 0
            with dst.raw.transaction(), dst.raw.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as cp:
                for row in src.execute(f'SELECT {names} FROM "{table}" ORDER BY {_order(src, table)}'):
                    cp.write_row(row)
                    n += 1
                    if n % 1_000_000 == 0:
                        checkpoint()
            if "id" in cols:
                dst.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f'COALESCE((SELECT max(id) FROM "{table}"), 0) + 1, false)'
                )
            if n >= 100_000:
                log(f"    PostgreSQL load: {table} {n:,} rows ({time.perf_counter() - t0:.0f} s)")
        t1 = time.perf_counter()
        for _idx, sql in indexes:
            dst.execute(sql)
        t2 = time.perf_counter()
        dst.execute("VACUUM ANALYZE")
        t3 = time.perf_counter()
    finally:
        src.close()
        dst.close()
    log(f"  PostgreSQL store: COPY {t1 - t0:.0f} s, indexes {t2 - t1:.0f} s, VACUUM ANALYZE {t3 - t2:.0f} s")
    marker.write_text(json.dumps({"copy_s": round(t1 - t0), "index_s": round(t2 - t1), "vacuum_s": round(t3 - t2)}))
    return url


def check_sample(url: str, sample: list[str], hub_cfg) -> str:
    """Re-project the sample with hub.projection.project_cases (the hub's own code, with the
    hub's settings) and compare the columns it writes (rolled back). Raises on any difference."""
    from hub.db import connect
    from hub.projection import project_cases

    sup = hub_cfg.supervision
    tol = timedelta(hours=sup.backdate_tolerance_hours) if sup.backdate_tolerance_hours is not None else None
    sel = f"SELECT case_no, {PROJECTED} FROM cases WHERE case_no IN ({','.join('?' * len(sample))})"
    conn = connect(url)
    try:
        before = {r[0]: tuple(r[1:]) for r in conn.execute(sel, sample).fetchall()}
        conn.execute("BEGIN")
        try:
            now_ms = int(STORE_NOW.timestamp() * 1000)
            tr = project_cases(
                conn, sample, STORE_NOW, default_calendar(), sup.yellow_days, now_ms, backdate_tolerance=tol
            )
            after = {r[0]: tuple(r[1:]) for r in conn.execute(sel, sample).fetchall()}
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()
    diff = [c for c in sample if before.get(c) != after.get(c)]
    if diff or tr or len(before) != len(sample):
        c = diff[0] if diff else None
        raise RuntimeError(
            f"the projection does not agree with the built rows: {len(diff)} of {len(sample)} differ, "
            f"{len(tr)} light changes; e.g. {c}: built {before.get(c)}, projected {after.get(c)}"
        )
    return f"{len(sample):,} sample cases re-projected with hub.projection.project_cases: unchanged"


# -- part 2: measurements ----------------------------------------------------------------------------
AUX = ("alerts", "tickets", "ticket_events", "document_queue", "notifications", "quarantine", "config_log")


class Undo:
    """What a measured step changes in the cached store, put back afterwards: the given cases'
    projected columns, rows added to the append-only tables, open tickets, counters, sites and
    held cases. A marker file says a step is under way (an interrupted one makes the next run
    rebuild the store)."""

    def __init__(self, conn, marker: Path, case_nos=()):
        self.conn, self.marker, self.case_nos = conn, marker, list(case_nos)

    def _cases(self) -> dict:
        out = {}
        for i in range(0, len(self.case_nos), 500):
            chunk = self.case_nos[i : i + 500]
            out.update(
                (r[0], tuple(r[1:]))
                for r in self.conn.execute(
                    f"SELECT case_no, {PROJECTED}, updated_ms FROM cases WHERE case_no IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )
        return out

    def __enter__(self):
        c = self.conn
        self.marker.write_text("a measured step is changing this store")
        self.ids = {t: c.execute(f"SELECT COALESCE(max(id), 0) FROM {t}").fetchone()[0] for t in AUX}
        self.tickets = c.execute(
            "SELECT id, status, closed_ms FROM tickets WHERE status IN ('open', 'replied')"
        ).fetchall()
        self.counters = c.execute("SELECT name, value FROM counters").fetchall()
        self.sites = c.execute("SELECT * FROM sites").fetchall()
        self.site_cols = [d[0] for d in c.execute("SELECT * FROM sites LIMIT 0").description]
        self.held = c.execute("SELECT case_no, site, until_ms FROM projection_held").fetchall()
        self.before = self._cases()
        return self

    def restore(self) -> int:
        """Put everything back; returns the number of case rows rewritten."""
        from iobase.sqlite import transaction

        c = self.conn
        after = self._cases()
        changed = [row + (no,) for no, row in self.before.items() if after.get(no, row)[:-1] != row[:-1]]
        sets = ", ".join(f"{col.strip()}=?" for col in (PROJECTED + ", updated_ms").split(","))
        with transaction(c):
            if changed:
                c.executemany(f"UPDATE cases SET {sets} WHERE case_no=?", changed)
            for t, top in self.ids.items():
                c.execute(f"DELETE FROM {t} WHERE id > ?", (top,))
            c.executemany(
                "UPDATE tickets SET status=?, closed_ms=? WHERE id=?", [(s, m, i) for i, s, m in self.tickets]
            )
            c.execute("DELETE FROM counters")
            c.executemany("INSERT INTO counters (name, value) VALUES (?, ?)", self.counters)
            c.execute("DELETE FROM sites")
            marks = ",".join("?" * len(self.site_cols))
            cols = ", ".join(f'"{x}"' for x in self.site_cols)
            c.executemany(f"INSERT INTO sites ({cols}) VALUES ({marks})", self.sites)
            c.execute("DELETE FROM projection_held")
            c.executemany("INSERT INTO projection_held (case_no, site, until_ms) VALUES (?, ?, ?)", self.held)
        self.marker.unlink(missing_ok=True)
        return len(changed)

    def __exit__(self, *exc):
        if self.marker.exists():  # not restored yet (an error or Ctrl-C in the step)
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.restore()


class DayUndo(Undo):
    """Undo for the day on top of the filled store: also the records, and the cases, events and
    votes the day and its earlier cases added (all at seqs from HISTORY_SEQ, case numbers of the
    day and 9001+ of the earlier days)."""

    def restore(self) -> int:
        from iobase.sqlite import transaction

        c = self.conn
        codes = [r[0] for r in c.execute("SELECT code FROM sites")]
        days = [STORE_TODAY, *working_days_before(STORE_TODAY, 10)]
        with transaction(c):
            c.execute("DELETE FROM records")
            for code in codes:
                for table in ("case_events", "votes"):
                    c.execute(f"DELETE FROM {table} WHERE site=? AND seq >= ?", (code, HISTORY_SEQ))
                c.execute(
                    "DELETE FROM cases WHERE case_no BETWEEN ? AND ?",
                    (f"{code}-{STORE_TODAY:%Y%m%d}-0000", f"{code}-{STORE_TODAY:%Y%m%d}-9999"),
                )
                c.executemany(
                    "DELETE FROM cases WHERE case_no BETWEEN ? AND ?",
                    [(f"{code}-{d:%Y%m%d}-9000", f"{code}-{d:%Y%m%d}-9999") for d in days[1:]],
                )
        n = super().restore()
        got = {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("cases", "case_events", "votes")}
        if got != self.counts:
            raise RuntimeError(f"the filled store was not put back after the day: {got} rows, {self.counts} before")
        return n

    def __enter__(self):
        c = self.conn
        self.counts = {
            t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("cases", "case_events", "votes")
        }
        return super().__enter__()


def sweep_step(hubdir, url: str, pg, now: datetime, marker: Path, *, full: bool = False) -> dict:
    """One Ingestor.sweep() (or, with `full`, Ingestor.reload_calendar()) at `now` on the filled
    store, timed; the store put back afterwards (untimed)."""
    from hub.projection import due_for_sweep

    hub = make_hub(hubdir, url, now)
    try:
        conn = hub.conn
        if full:
            targets = [r[0] for r in conn.execute("SELECT case_no FROM cases WHERE closed=0")]
        else:
            targets = due_for_sweep(conn, now)
        with Undo(conn, marker, targets) as undo:
            a0 = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
            t0 = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
            n0 = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
            with Cpu(conn, pg) as c:
                if full:
                    hub.ingest.reload_calendar()
                    n = len(targets)
                else:
                    n = hub.ingest.sweep()
            r = c.figures() | {"cases": n}
            r["alerts"] = conn.execute("SELECT count(*) FROM alerts").fetchone()[0] - a0
            r["tickets"] = conn.execute("SELECT count(*) FROM tickets").fetchone()[0] - t0
            r["sms"] = conn.execute("SELECT count(*) FROM notifications").fetchone()[0] - n0
            t = time.perf_counter()
            r["restored"] = undo.restore()
            r["restore_s"] = time.perf_counter() - t
        if pg is not None:
            t = time.perf_counter()
            conn.execute("VACUUM cases")
            r["vacuum_s"] = time.perf_counter() - t
    finally:
        close_hub(hub)
    return r


def size_on_disk(url: str, pg) -> str:
    if url.startswith("sqlite:"):
        path = Path(url[7:])
        total = sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists())
        return f"{total / 2**30:.2f} GiB (hub.db and its WAL)"
    from hub.db import connect

    conn = connect(url)
    try:
        db = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        parts = conn.execute(
            "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 4"
        ).fetchall()
    finally:
        conn.close()
    detail = ", ".join(f"{n} {t / 2**30:.2f} + indexes {i / 2**30:.2f}" for n, t, i in parts)
    return f"{db / 2**30:.2f} GiB (pg_database_size; {detail} GiB)"


def api_routes(url: str, info: dict) -> list[tuple[str, list[str]]]:
    """(name, request paths) of the routes measured, with sample values from the store."""
    from hub.db import connect

    conn = connect(url, readonly=True)
    try:
        sample = info["sample"][:: max(1, len(info["sample"]) // 40)][:40]
        marks = ",".join("?" * len(sample))
        rows = conn.execute(f"SELECT case_no, query_code FROM cases WHERE case_no IN ({marks})", sample).fetchall()
        site = conn.execute("SELECT code FROM sites ORDER BY code").fetchall()
        site = site[len(site) // 2][0]
        dept = conn.execute("SELECT department FROM catalog WHERE code='XK-001'").fetchone()[0]
    finally:
        conn.close()
    from urllib.parse import quote

    return [
        ("wall: GET /api/sites (2 per refresh, every 3 s)", ["/api/sites"]),
        ("wall: GET /api/cases?open=1&order=urgency&limit=300", ["/api/cases?open=1&order=urgency&limit=300"]),
        (
            "GET /api/cases?open=1&light=red&order=urgency&limit=300",
            ["/api/cases?open=1&light=red&order=urgency&limit=300"],
        ),
        ("GET /api/cases?limit=50 (newest, no filter)", ["/api/cases?limit=50"]),
        (f"GET /api/cases?site={site}&limit=50", [f"/api/cases?site={site}&limit=50"]),
        (f"GET /api/cases?site={site}&limit=50&offset=2000", [f"/api/cases?site={site}&limit=50&offset=2000"]),
        (
            "GET /api/cases?department=…&status=accepted&limit=50",
            [f"/api/cases?department={quote(dept)}&status=accepted&limit=50"],
        ),
        ("GET /api/cases/{case_no} (one case; 40 different)", [f"/api/cases/{quote(c)}" for c, _ in rows]),
        (
            "GET /api/public/cases/{case_no}?code=… (citizen lookup)",
            [f"/api/public/cases/{quote(c)}?code={q}" for c, q in rows],
        ),
        ("GET /api/cards (cards per department)", ["/api/cards"]),
        ("GET /metrics", ["/metrics"]),
    ]


def api_runs(hubdir, url: str, info: dict, requests: int, budget_s: float = 60.0) -> list[tuple[str, list[float]]]:
    """Each route's request times (ms), through a real HTTP server on a free port (the hub's
    app from hub.api.create_app, tests/hub/hubapp.served) over the store; the first request of a
    route is a warm-up and not counted."""
    import aiohttp

    from hub.api import Limiter
    from tests.hub.hubapp import served

    routes = api_routes(url, info)
    hub = make_hub(hubdir, url, STORE_NOW)
    token = hub.cfg.api.admin_token

    async def go():
        out = []
        limiter = Limiter(n=10**6, global_n=10**7)  # the public lookup's 30 a minute would stop us
        async with (
            served(hub, limiter=limiter) as (base, _app),
            aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=600)
            ) as http,
        ):
            for name, paths in routes:
                times, start, k = [], time.perf_counter(), 0
                while True:
                    path = paths[k % len(paths)]
                    t = time.perf_counter()
                    async with http.get(base + path) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{path}: HTTP {resp.status}")
                    if k > 0:
                        times.append(1000 * (time.perf_counter() - t))
                    k += 1
                    if len(times) >= requests or (len(times) >= 3 and time.perf_counter() - start > budget_s):
                        break
                    checkpoint()
                out.append((name, times))
                log(
                    f"    {name:<62} median {statistics.median(times):>9,.1f} ms  p90 {p90(times):>9,.1f} ms  ({len(times)} requests)"
                )
        return out

    try:
        return asyncio.run(go())
    finally:
        close_hub(hub)


def p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.9 * len(xs)))]


URGENCY = "CASE light WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 ELSE 2 END, due_date, received_at"  # hub.api.ORDERS
PLAN_QUERIES = [  # (what, the SQL as hub/api.py, hub/metrics.py, hub/projection.py build it, parameters)
    ("wall: GET /api/cases?open=1 (count)", "SELECT count(*) FROM cases WHERE closed = 0", ()),
    (
        "wall: GET /api/cases?open=1&order=urgency&limit=300 (page)",
        f"SELECT * FROM cases WHERE closed = 0 ORDER BY {URGENCY} LIMIT ? OFFSET ?",
        (300, 0),
    ),
    (
        "GET /api/cases?open=1&light=red&order=urgency (page)",
        f"SELECT * FROM cases WHERE light = ? AND closed = 0 ORDER BY {URGENCY} LIMIT ? OFFSET ?",
        ("red", 300, 0),
    ),
    ("GET /api/cases?limit=50 (count, no filter)", "SELECT count(*) FROM cases", ()),
    ("GET /api/cases?limit=50 (page)", "SELECT * FROM cases ORDER BY received_at DESC LIMIT ? OFFSET ?", (50, 0)),
    (
        "GET /api/cases?site=…&offset=2000 (page)",
        "SELECT * FROM cases WHERE site = ? ORDER BY received_at DESC LIMIT ? OFFSET ?",
        ("SITE", 50, 2000),
    ),
    (
        "GET /api/cases?department=…&status=accepted (count)",
        "SELECT count(*) FROM cases WHERE department = ? AND status = ?",
        ("DEPT", "accepted"),
    ),
    (
        "GET /api/cases?department=…&status=accepted (page)",
        "SELECT * FROM cases WHERE department = ? AND status = ? ORDER BY received_at DESC LIMIT ? OFFSET ?",
        ("DEPT", "accepted", 50, 0),
    ),
    (
        "wall: GET /api/sites (once per site)",
        "SELECT light, count(*) FROM cases WHERE site=? AND closed=0 GROUP BY light",
        ("SITE",),
    ),
    (
        "GET /api/cards",
        "SELECT department, sum(yellow_cards), sum(red_cards), sum(red_cards + yellow_cards / CAST(? AS BIGINT)), "
        "count(*) FROM cases GROUP BY department",
        (2,),
    ),
    ("GET /metrics (open cases by light)", "SELECT light, count(*) FROM cases WHERE closed=0 GROUP BY light", ()),
    (
        "GET /api/cases/{no}: its events",
        "SELECT seq, type, at, body_json FROM case_events WHERE case_no=? ORDER BY seq",
        ("CASE",),
    ),
    (
        "sweep: due_for_sweep",
        "SELECT case_no FROM cases WHERE closed=0 AND next_change IS NOT NULL AND next_change <= ?",
        ("NOW",),
    ),
    ("reload_calendar: the open cases", "SELECT case_no FROM cases WHERE closed=0", ()),
]


def plans(url: str) -> None:
    """The plan of each statement (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL)
    and its time (median of 3 executions, rows fetched)."""
    from hub.db import connect, engine

    conn = connect(url, readonly=True)
    try:
        site = conn.execute("SELECT code FROM sites ORDER BY code").fetchall()
        site = site[len(site) // 2][0]
        values = {
            "SITE": site,
            "DEPT": conn.execute("SELECT department FROM catalog WHERE code='XK-001'").fetchone()[0],
            "CASE": conn.execute("SELECT case_no FROM cases WHERE closed=0 LIMIT 1").fetchone()[0],
            "NOW": (STORE_NOW + timedelta(days=1)).replace(hour=0, minute=0, second=30).isoformat(),
        }
        for what, sql, params in PLAN_QUERIES:
            params = tuple(values.get(p, p) if isinstance(p, str) else p for p in params)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                n = len(conn.execute(sql, params).fetchall())
                times.append(time.perf_counter() - t)
            if engine(conn) == "sqlite":
                plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
            else:
                plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()]
            log(f"    {what}: {1000 * statistics.median(times):,.1f} ms, {n:,} rows\n      {sql}")
            for line in plan:
                log(f"        {line}")
    finally:
        conn.close()


def store_part(a, hubdir, codes, engines, pg) -> None:
    """Part 2: build (or reuse) the filled stores, then the sweeps, the recompute, the API and the
    day on top, per engine."""
    log(f"\nfilled store: {a.cases:,} cases over {len(codes):,} sites (store's today {STORE_TODAY}, a Wednesday)")
    for eng in ("sqlite", "postgresql"):  # a step interrupted half-way leaves a store to rebuild
        dirty = a.cache / f"{store_key(a)}-{eng}.dirty"
        if dirty.exists():
            log(f"  the {eng} store was left changed by an interrupted step: building it again")
            (
                a.cache / store_key(a) / "built.json"
                if eng == "sqlite"
                else a.cache / f"{store_key(a)}-postgresql.json"
            ).unlink(missing_ok=True)
            dirty.unlink()
    sqlite_url, info = sqlite_store(a, hubdir, codes)
    counts = info["counts"]
    log(
        "  rows: "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        + f"; open cases {info['open']:,} ({100 * info['open'] / counts['cases']:.1f} %); built in "
        f"{info['load_s']:.0f} s + {info['index_s']:.0f} s of indexes (SQLite, the source of the PostgreSQL copy)"
    )
    stores = {}
    if "sqlite" in engines:
        stores["sqlite"] = sqlite_url
    if "postgresql" in engines:
        stores["postgresql"] = pg_store(a, pg, sqlite_url)
    midnight = datetime.combine(STORE_TODAY + timedelta(days=1), datetime.min.time(), CST).replace(second=30)
    daytime = STORE_NOW.replace(hour=10)
    steps = [
        (f"sweep, daytime ({daytime:%m-%d %H:%M})", {"now": daytime}),
        (f"sweep, first after midnight ({midnight:%m-%d %H:%M:%S})", {"now": midnight}),
        (f"full recompute, reload_calendar ({daytime:%m-%d %H:%M})", {"now": daytime, "full": True}),
    ]
    for eng, url in stores.items():
        pgs = pg if eng == "postgresql" else None
        marker = a.cache / f"{store_key(a)}-{eng}.dirty"
        log(f"\n{eng}: {check_sample(url, info['sample'], hubdir.hub_cfg)}")
        log(f"  size on disk: {size_on_disk(url, pgs)}")
        for name, kw in steps:
            rs = []
            for i in range(a.runs):
                r = sweep_step(hubdir, url, pgs, marker=marker, **kw)
                rs.append(r)
                log(
                    f"  {name} run {i + 1}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s hub CPU"
                    + (f", server {r['server']:.2f} s" if "server" in r else "")
                    + f"; {r['cases']:,} cases, +{r['alerts']:,} alerts, +{r['tickets']:,} tickets, "
                    f"+{r['sms']:,} SMS queued; put back: {r['restored']:,} rows in {r['restore_s']:.1f} s"
                    + (f", VACUUM cases {r['vacuum_s']:.0f} s" if "vacuum_s" in r else "")
                    + f"; load {os.getloadavg()[0]:.2f}"
                )
            log(
                f"  => {name}: wall {spread([r['wall'] for r in rs], '{:,.2f} s')}; hub CPU "
                f"{spread([r['cpu'] for r in rs], '{:,.2f} s')}"
                + (f"; server CPU {spread([r['server'] for r in rs], '{:,.2f} s')}" if "server" in rs[0] else "")
            )
        log(f"  case API ({a.requests} requests per route at most, ~60 s per route at most; ms per request):")
        api_runs(hubdir, url, info, a.requests)
        if a.plans:
            log("  query plans:")
            plans(url)
        if not a.skip_day:
            day_on_store(a, hubdir, codes, url, pgs, marker)


def day_on_store(a, hubdir, codes, url: str, pg, marker: Path) -> None:
    """The day (live messages, --batch-max's first value) on top of the filled store, one run."""
    from hub.db import connect

    folder = a.cache / f"day-{len(codes)}-{a.records_per_site}"
    ranges = json.loads((folder / "ranges.json").read_text())
    msgs = day_messages(folder, hubdir, ranges, a.batch_max[0])
    n = msgs["day_records"]
    conn = connect(url)
    try:
        with DayUndo(conn, marker) as undo:
            r = hub_day(url, pg, hubdir, codes, msgs, a.group, seeded=True)
            t = time.perf_counter()
            undo.restore()
            back = time.perf_counter() - t
        if pg is not None:
            conn.execute("VACUUM")
    finally:
        conn.close()
    log(
        f"  the day on top of this store (messages of up to {a.batch_max[0]} records, 1 run): {r['wall']:.1f} s, "
        f"{n / r['wall']:,.0f} records/s, hub CPU {1e6 * r['cpu'] / n:,.1f} µs/record"
        + (f", server CPU {1e6 * r['server'] / n:,.1f} µs/record" if "server" in r else "")
        + f" (undone in {back:.0f} s)"
    )


# -- main ---------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--sites", type=int, default=2000, help="township sites (default 2000)")
    ap.add_argument("--records-per-site", type=int, default=150, help="a site's records in the day (default 150)")
    ap.add_argument(
        "--batch-max",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 500],
        help="records per message, one mode per value (default 1,500: live, and a backlog drain)",
    )
    ap.add_argument("--group", type=int, default=None, help="messages per transaction (default: as from a full queue)")
    ap.add_argument("--cases", type=int, default=10_000_000, help="cases in the filled store (default 10,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each measurement; medians are printed (default 3)")
    ap.add_argument("--requests", type=int, default=20, help="requests per API route (default 20)")
    ap.add_argument("--engines", default="sqlite,postgresql", help="sqlite,postgresql (default both)")
    ap.add_argument("--skip-day", action="store_true", help="skip part 1 (the day)")
    ap.add_argument("--skip-store", action="store_true", help="skip part 2 (the filled store)")
    ap.add_argument("--plans", action="store_true", help="print the query plans of the API's statements")
    ap.add_argument("--rebuild", action="store_true", help="build every cached input again")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"cache folder (default {CACHE})")
    a = ap.parse_args(argv)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    install_signal_handlers()
    log(machine_line())
    log(load_line())
    codes = site_codes(a.sites)
    a.cache.mkdir(parents=True, exist_ok=True)
    hubdir = provision(a.cache / f"hub-{a.sites}", codes)
    workdir = a.cache / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    try:
        with contextlib.ExitStack() as stack:
            pg = None
            if "postgresql" in engines:
                pg = stack.enter_context(cached_postgres(a.cache / "pg"))
                log(f"PostgreSQL of our own on 127.0.0.1:{pg.port} ({pg.data})")
            if not a.skip_day:
                folder, ranges = day_logs(a.cache, hubdir, codes, a.records_per_site, a.rebuild)
                day_runs(a, hubdir, codes, folder, ranges, engines, pg, workdir)
                log(load_line())
            if not a.skip_store:
                store_part(a, hubdir, codes, engines, pg)
                log(load_line())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def load_line() -> str:
    """`uptime` and what else used the CPU during one second (the machine is shared)."""
    up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    def ticks() -> dict[int, int]:
        out = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    f = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
                    out[int(entry.name)] = int(f[11]) + int(f[12])
                except (OSError, IndexError):
                    pass
        return out

    t0 = ticks()
    time.sleep(1.0)
    t1 = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    busy = sorted(((t1[p] - t0.get(p, t1[p])) * 100 / hz, p) for p in t1 if p != os.getpid())
    names = []
    for pct, pid in reversed(busy[-6:]):
        if pct < 5:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        names.append(f"{pct:.0f}% {cmd[:70]}")
    return f"uptime: {up}\n  using the CPU in the last second besides this process: {'; '.join(names) or 'nothing above 5 %'}"


if __name__ == "__main__":
    from bench.cleanup import run_main

    run_main(main)
