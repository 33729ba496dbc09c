"""The acknowledged mark's fast path (a batch that is exactly the next run is checked in memory)
and the counters written once per transaction (store.deferred_counters) behave exactly as the
plain code: re-reading the stored records on every batch and writing each bump at once.

The same random message stream (in-order, out-of-order, overlapping and duplicate batches, a
second history, link breaks, births, groups that fail once and are retried, groups retried one
message at a time) goes through both; every ack and the final store (sites rows, counters,
quarantine, records) must match. (Written by an independent review of those two changes.)
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta, timezone

import pytest

from hub import store as store_mod
from hub.config import HubConfig
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.store import counter_totals, open_db
from iobase.config import load_config
from protocol import topics
from protocol.wire import encode_msg
from provisioning.setup import add_site, init_hub
from tests.craft import SiteSigner, chain, trust_item


class Boom(Exception):
    pass


def _second_url(request, store_url, tmp_path):
    if store_url.startswith("sqlite:"):
        return f"sqlite:{tmp_path / 'hub_b.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_db("hubb", template=server.hub_template)


def _ingestor(root, cfg, url, clock):
    conn = open_db(url)
    trust_item(conn)
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda t, p, q, r: None)
    ing.now = lambda: clock[0]
    ing._retryable = (Boom,)
    return ing


def _stream(root, rng, n_msgs):
    """Mostly a live box (the next run after what it sent), with replays, runs past a gap,
    late fill-ins, another history, a reset box's unlinked record, and births."""
    per_site = {}
    for site in ("S01", "S02"):
        signer = SiteSigner(root, site)
        a, _ = chain(site, 200)  # the real history
        b, _ = chain(site, 200, body=lambda s: {"x": s})  # another box under the same identity
        p, out = 0, []
        for _ in range(n_msgs // 2):
            r = rng.random()
            k = rng.choice([1, 1, 2, 3, 5, 8])
            if r < 0.07:
                out.append(
                    (
                        topics.site_state(site),
                        encode_msg({"online": True, "last_seq": p, "acked_seq": rng.randint(0, p + 3)}),
                    )
                )
                continue
            if r < 0.55 and p < 200:
                i = p
                p = min(200, p + k)
                recs, first = a[i:p], i + 1
            elif r < 0.68:  # a replay / overlap of what was sent
                i = rng.randint(0, max(0, p - 1))
                recs, first = a[i : min(200, i + k + rng.randint(0, 3))], i + 1
            elif r < 0.78 and p < 195:  # runs past a gap (the fill-in comes as a later "live" run)
                i = min(199, p + rng.randint(1, 4))
                recs, first = a[i : min(200, i + k)], i + 1
            elif r < 0.80:  # another history
                i = rng.randint(max(0, p - 3), min(199, p + 2))
                recs, first = b[i : min(200, i + k)], i + 1
            elif r < 0.815 and p < 200:  # a record that does not link to the one before it
                recs, first = chain(site, 1, start_seq=p + 1, prev=b"\x01" * 32)[0], p + 1
            else:
                continue
            if recs:
                out.append((topics.site_batch(site), signer.seal(recs, first)))
        per_site[site] = out
    msgs = []
    queues = [list(v) for v in per_site.values()]
    while any(queues):
        q = rng.choice([q for q in queues if q])
        j = 1 if len(q) > 1 and rng.random() < 0.1 else 0  # now and then two messages swap
        msgs.append(q.pop(j))
    return msgs


def _snapshot(conn):
    sites = conn.execute(
        "SELECT code, acked_seq, acked_hash, max_seq, chain_breaks, chain_break_at, resend_asks, gap_since_ms, "
        "last_progress_ms FROM sites ORDER BY code"
    ).fetchall()
    q = conn.execute("SELECT site, reason, detail, sha FROM quarantine ORDER BY id").fetchall()
    recs = conn.execute("SELECT site, seq, hash FROM records ORDER BY site, seq").fetchall()
    alerts = conn.execute("SELECT site, kind, detail FROM alerts ORDER BY id").fetchall()
    return {
        "sites": [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in sites],
        "quarantine": [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in q],
        "records": [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in recs],
        "alerts": alerts,
        "counters": {k: v for k, v in counter_totals(conn).items() if v},
    }


# six random streams on SQLite, three on PostgreSQL (the engine adds its own SQL, not new paths
# through the fast path: each PostgreSQL stream costs 5-10x a SQLite one)
STREAMS = [("sqlite", seed) for seed in range(6)] + [
    pytest.param("postgresql", seed, marks=pytest.mark.postgresql) for seed in range(3)
]


@pytest.mark.parametrize("store_url, seed", STREAMS, indirect=["store_url"])
def test_fast_path_and_deferred_counters_match_the_old_behaviour(request, tmp_path, store_url, seed, monkeypatch):
    import hub.ingest as ingest_mod

    monkeypatch.setattr(ingest_mod, "GAP_WAIT_MS", 20_000)
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    for code in ("S01", "S02"):
        add_site(root, code=code, name=code)
    cfg = load_config(root / "hub.yaml", HubConfig)
    rng = random.Random(seed)
    msgs = _stream(root, rng, 160)
    groups, k = [], 0
    while k < len(msgs):
        n = rng.choice([1, 1, 1, 2, 3])
        groups.append(msgs[k : k + n])
        k += n
    fail_first = {g for g in range(len(groups)) if rng.random() < 0.1}  # a retryable failure on the first try
    poison = {g for g in range(len(groups)) if rng.random() < 0.05}  # an unexpected error: one by one

    def run(url, old: bool):
        clock = [datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=8)))]
        ing = _ingestor(root, cfg, url, clock)
        acks = []
        if old:
            real_adv = ing._advance
            ing._advance = lambda *a, fresh=None, **kw: real_adv(*a, **kw)
            monkeypatch.setattr(store_mod, "deferred_counters", lambda conn: contextlib.nullcontext())
        real_project, real_batch = ing._project, ing._batch
        state = {"g": 0, "tries": {}}

        def project(*a, **kw):
            real_project(*a, **kw)
            g = state["g"]
            state["tries"][g] = state["tries"].get(g, 0) + 1
            if g in fail_first and state["tries"][g] == 1:
                raise Boom("serialization failure")

        def batch(site, topic, payload, now_ms, out):
            real_batch(site, topic, payload, now_ms, out)
            if state["g"] in poison and payload == groups[state["g"]][-1][1]:
                raise RuntimeError("poison")

        ing._project, ing._batch = project, batch
        monkeypatch.setattr(ingest_mod.time, "sleep", lambda s: None)
        real_pg = ing.process_group

        def pg(group):
            out = real_pg(group)
            acks.append({s: {k: v for k, v in a.items() if k != "hub_ms"} for s, a in out.acks.items()})
            return out

        ing.process_group = pg
        for g, group in enumerate(groups):
            state["g"] = g
            ing.process_safely(group)
            clock[0] += timedelta(seconds=rng_clock.choice([1, 3, 11, 25]))
        snap = _snapshot(ing.conn)
        ing.conn.close()
        monkeypatch.setattr(store_mod, "deferred_counters", real_deferred)
        return acks, snap

    real_deferred = store_mod.deferred_counters
    rng_clock = random.Random(seed)
    acks_a, snap_a = run(store_url, old=False)
    rng_clock = random.Random(seed)
    acks_b, snap_b = run(_second_url(request, store_url, tmp_path), old=True)
    assert snap_a["sites"] == snap_b["sites"]
    assert snap_a["records"] == snap_b["records"]
    assert snap_a["quarantine"] == snap_b["quarantine"]
    assert snap_a["alerts"] == snap_b["alerts"]
    assert snap_a["counters"] == snap_b["counters"]
    assert acks_a == acks_b
    assert store_mod._DEFERRED == {}
