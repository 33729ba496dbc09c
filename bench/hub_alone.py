"""The hub's ingest code alone: sealed batches through hub.ingest.Ingestor in this process,
without MQTT (the ceiling for the end-to-end ingest figure)."""

from __future__ import annotations

import json
import time

from bench.backlog import catalog_of
from tests.e2e.harness import Env


def hub_alone(
    env: Env, batches: dict[str, list[tuple[bytes, int]]], group: int | None = None, tag: str = ""
) -> tuple[float, dict[int, tuple[int, float]]]:
    """Seconds the hub's ingest code (hub.ingest.Ingestor.process_group: verify, decrypt, dedupe,
    store, project, commit) takes for these batches in this process, without MQTT, and the
    cyclic GC's share {generation: (collections, seconds)}. Sites interleaved, `group`
    messages per transaction (default hub.ingest.GROUP_MAX, as the hub's writer thread takes
    them when they are queued), a fresh database, the env's real hub and site keys. The
    ceiling for the end-to-end figure."""
    import gc

    from hub.ingest import GROUP_MAX, Ingestor
    from hub.keys import HubKeys, SiteKeys
    from hub.store import open_db
    from protocol import topics

    group = group or GROUP_MAX
    queues = [[(topics.site_batch(code), p) for p, _ in bs] for code, bs in batches.items()]
    msgs = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]
    gc_stats: dict[int, list] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    gc_t0 = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            st = gc_stats[info["generation"]]
            st[0] += 1
            st[1] += time.perf_counter() - gc_t0[0]

    conn = open_db(env.root / "data" / f"bench-hub-alone{tag}.db")
    version, payload = catalog_of(env)  # the hub checks each item against the catalog it signed
    conn.execute(
        "INSERT OR REPLACE INTO catalog_versions VALUES (?, ?, 0)", (version, json.dumps(payload, ensure_ascii=False))
    )
    conn.commit()
    try:
        ing = Ingestor(conn, HubKeys.load(env.hub_cfg), SiteKeys(env.hub_cfg.registry), publish=lambda *a: None)
        gc.collect()
        gc.callbacks.append(on_gc)
        try:
            t0 = time.perf_counter()
            for i in range(0, len(msgs), group):
                ing.process_group(msgs[i : i + group])
            elapsed = time.perf_counter() - t0
        finally:
            gc.callbacks.remove(on_gc)
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        conn.close()
    want = sum(n for bs in batches.values() for _, n in bs)
    if stored != want:
        raise RuntimeError(f"hub-alone stored {stored} of {want} records")
    return elapsed, {g: (n, t) for g, (n, t) in gc_stats.items()}
