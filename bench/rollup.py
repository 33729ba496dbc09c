"""bench/rollup: a county hub's backlog for its parent (issue 14, docs/rollup.md), in process, SQLite.

    .venv/bin/python bench/rollup.py [--cases 200000] [--sites 100] [--batch 500] [--dir /tmp/jiancha-bench-rollup]

The county's store: --cases cases over --sites sites (tests/hub/stats_data.py's generator:
receipts over 21 days, 75 % concluded, ~0.6 ratings and 0.02 complaints per case). The link to
the parent was down: every hour of those records is dirty, and each red case has a card in
the outbox. Measured:
  1. marking: hub.rollups.mark_cases over every case (what ingest does, spread over the week);
  2. the producer: RollupProducer.tick until no dirty hour is left (counting every hour per
     region and department into roll-up records of the outbox);
  3. the link back: the whole outbox sealed in batches of --batch records (the forwarder's
     work) and ingested by a city hub's real Ingestor (verify, open, store, roll-ups kept by
     revision, ack), batch after batch; the parent is complete when its contiguous ack is the
     county's head. No broker in between: the forwarder's rate_per_s (2000 by default) is the
     bound on the wire, reported beside.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import machine_line


def log(msg: str) -> None:
    print(msg, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=200_000)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/jiancha-bench-rollup"))
    a = ap.parse_args()

    from hub import rollups, uplink
    from hub.config import HubConfig
    from hub.ingest import Ingestor
    from hub.keys import HubKeys, SiteKeys
    from hub.rollups import RollupProducer
    from hub.store import open_db
    from iobase.config import load_config
    from iobase.sqlite import transaction
    from protocol import topics
    from protocol.calendar import CST, default_calendar
    from protocol.crypto import load_private_pem, load_public_pem
    from protocol.wire import seal_batch
    from provisioning.child_hub import add_child_hub
    from provisioning.setup import add_site, init_hub
    from tests.hub.stats_data import generate, sites_of, write

    log(machine_line())
    shutil.rmtree(a.dir, ignore_errors=True)
    county_dir, city_dir = a.dir / "county", a.dir / "city"
    init_hub(county_dir, region="140721", name="基准县", level="county", broker_port=1, http_port=1)
    codes = sites_of(a.sites)
    for code in codes:
        add_site(county_dir, code=code, name=code)
    init_hub(city_dir, region="140700", name="基准市", level="city", broker_port=1, http_port=1)
    bundle = add_child_hub(city_dir, code="140721", name="基准县")
    g = generate(date(2026, 11, 23), date(2026, 11, 29), a.cases, seed=5, sites=codes)
    county = open_db(f"sqlite:{county_dir / 'data' / 'hub.db'}")
    write(county, g, batch=50_000)
    log(f"county store: {len(g.cases):,} cases, {len(g.events):,} decision events, {len(g.votes):,} ratings, "
        f"{len(g.complaints):,} complaints, {a.sites} sites")  # fmt: skip

    now = datetime(2026, 12, 1, 9, 0, tzinfo=CST)
    up = uplink.Uplink(True)
    t = time.perf_counter()
    reds = [c["case_no"] for c in g.cases if c["light"] == "red"]
    with transaction(county):
        for n in reds:
            up.card(county, n, "red", "yellow", int(now.timestamp() * 1000))
    log(f"cards appended: {len(reds):,} in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    ids = [c["case_no"] for c in g.cases]
    for i in range(0, len(ids), 20_000):
        with transaction(county):
            rollups.mark_cases(county, ids[i : i + 20_000])
    hours = county.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0]
    log(f"1. marking every case's hours: {time.perf_counter() - t:.1f} s → {hours:,} dirty hours")

    cal = default_calendar()
    producer = RollupProducer(county, lambda: cal, "140721", now=lambda: now)
    head0 = uplink.head(county)
    t = time.perf_counter()
    while producer.tick():
        pass
    dt = time.perf_counter() - t
    n_roll = uplink.head(county) - head0
    log(f"2. producer: {hours:,} hours → {n_roll:,} roll-up records in {dt:.1f} s ({hours / dt:,.0f} hours/s)")

    head = uplink.head(county)
    cfg = load_config(city_dir / "hub.yaml", HubConfig)
    city = open_db(f"sqlite:{city_dir / 'data' / 'hub.db'}")
    sent: list = []
    ing = Ingestor(city, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0),
                   lambda t_, p, q=None, r=None: sent.append(p), now=lambda: now)  # fmt: skip
    sign = load_private_pem((bundle / "sign.key").read_bytes(), "ed25519")
    seal = load_public_pem((bundle / "parent_seal.pub").read_bytes(), "x25519")
    t = time.perf_counter()
    seal_s = 0.0
    for first in range(1, head + 1, a.batch):
        last = min(head, first + a.batch - 1)
        s0 = time.perf_counter()
        encs = uplink.read(county, first, last)
        batch = seal_batch("hub-140721", encs, sign_key=sign, hub_seal_pub=seal, sent_ms=0, first_seq=first)
        seal_s += time.perf_counter() - s0
        ing.process_group([(topics.child_batch("hub-140721"), batch)])
    dt = time.perf_counter() - t
    acked = city.execute("SELECT acked_seq FROM child_hubs WHERE code='hub-140721'").fetchone()[0]
    kept = city.execute("SELECT count(*) FROM child_rollups").fetchone()[0]
    received = sum(
        __import__("json").loads(b)["received"] for (b,) in city.execute("SELECT body_json FROM child_rollups")
    )
    assert acked == head, (acked, head)
    assert received == len(g.cases), (received, len(g.cases))
    log(f"3. link back: {head:,} records ({len(reds):,} cards + {n_roll:,} roll-ups) in batches of {a.batch}: "
        f"parent complete in {dt:.1f} s ({head / dt:,.0f} records/s; of it sealing and reading the outbox "
        f"{seal_s:.1f} s); at the default rate_per_s 2000 the wire takes {head / 2000:.0f} s")  # fmt: skip
    log(f"   parent holds {kept:,} roll-up keys; their received sum {received:,} == the county's cases")
    county.close()
    city.close()


if __name__ == "__main__":
    main()
