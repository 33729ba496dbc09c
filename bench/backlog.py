"""Agent backlogs: an agent.db of N registrations and the sealed batches the agent would send.

* `catalog_of`       the catalog the hub of an Env pushes (the backlog's items)
* `make_backlog`     an agent.db holding N registrations written through agent.store.AgentStore
* `backlog_cache`    generate a site's backlog once per benchmark invocation
* `install_backlog`  copy it into a site's data folder before its agent starts
* `sealed_batches`   the sealed batches made from it as agent.sync.Syncer makes them
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.e2e.backlog import APPLICANT, install_backlog, make_backlog
from tests.e2e.harness import Env

__all__ = ["APPLICANT", "backlog_cache", "catalog_of", "install_backlog", "make_backlog", "sealed_batches"]


def catalog_of(env: Env) -> tuple[int, dict]:
    """(version, payload) of the catalog the hub of `env` pushes to its sites."""
    conn = sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True)
    try:
        version, payload = conn.execute("SELECT version, payload_json FROM config WHERE kind='catalog'").fetchone()
    finally:
        conn.close()
    return version, json.loads(payload)


def backlog_cache(workdir: Path, site: str, n: int, catalog: tuple[int, dict]) -> Path:
    """Generate a site's backlog once per benchmark invocation, then copy it per run."""
    path = Path(workdir) / f"backlog-{site}-{n}.db"
    if not path.exists():
        t = time.perf_counter()
        make_backlog(path, site, n, catalog)
        print(f"  (generated {n:,} records for {site} in {time.perf_counter() - t:.1f} s)", flush=True)
    return path


def sealed_batches(env: Env, code: str, db: Path, batch_max: int) -> list[tuple[bytes, int]]:
    """(payload, record count) of every sealed batch the agent would send for the log in `db`,
    made as agent.sync.Syncer._send makes them (ranges of batch_max, split_by_size, seal_batch)."""
    from agent.sync import BATCH_BYTES, split_by_size
    from protocol.crypto import load_private_pem, load_public_pem
    from protocol.wire import seal_batch

    d = env.root / "sites" / code
    sign = load_private_pem((d / "sign.key").read_bytes(), "ed25519")
    seal = load_public_pem((d / "hub_seal.pub").read_bytes(), "x25519")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = []
    try:
        head = conn.execute("SELECT max(seq) FROM log").fetchone()[0] or 0
        for first in range(1, head + 1, batch_max):
            last = min(head, first + batch_max - 1)
            data = [
                r[0] for r in conn.execute("SELECT data FROM log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))
            ]
            for start, chunk in split_by_size(first, data, BATCH_BYTES):
                out.append(
                    (
                        seal_batch(
                            code,
                            chunk,
                            sign_key=sign,
                            hub_seal_pub=seal,
                            sent_ms=int(time.time() * 1000),
                            first_seq=start,
                        ),
                        len(chunk),
                    )
                )
    finally:
        conn.close()
    return out
