"""Agent backlogs: an agent.db of N registrations and the sealed batches the agent would send.

* `catalog_of`       the catalog the hub of an Env pushes (the backlog's items)
* `make_backlog`     an agent.db holding N registrations written through agent.store.AgentStore
* `backlog_cache`    generate a site's backlog once per benchmark invocation
* `install_backlog`  copy it into a site's data folder before its agent starts
* `sealed_batches`   the sealed batches made from it as agent.sync.Syncer makes them
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from tests.e2e.harness import Env

APPLICANT = {"name": "张三", "phone": "13800000000", "id_no": "140702199001011234"}


def catalog_of(env: Env) -> tuple[int, dict]:
    """(version, payload) of the catalog the hub of `env` pushes to its sites."""
    conn = sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True)
    try:
        version, payload = conn.execute("SELECT version, payload_json FROM config WHERE kind='catalog'").fetchone()
    finally:
        conn.close()
    return version, json.loads(payload)


def make_backlog(path: Path, site: str, n: int, catalog: tuple[int, dict]) -> Path:
    """An agent.db holding `n` case registrations of `site`, written through AgentStore.register.

    The records are exactly what the agent's API would write (same code path: catalog
    lookup, CaseRegistered body, hash chain, case row). Two shortcuts for set-up speed only:
    PRAGMA synchronous=OFF on this generating connection and no case view rendered per call.
    The catalog is stored as if pushed by the hub (same version, so the hub's push is a no-op).
    """
    from agent.clock import BoxClock
    from agent.store import AgentStore
    from protocol.calendar import CST
    from protocol.models import NewCase

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".head"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = AgentStore(path, site, clock=BoxClock(force="ntp"))
    try:
        store.conn.execute("PRAGMA synchronous=OFF")
        version, payload = catalog
        store.save_config("catalog", version, int(time.time() * 1000), payload, b"bench")
        store.case_view = lambda case_no, now: None  # the API's answer; not needed here
        codes = [i["code"] for i in payload["items"]]
        now = datetime.now(CST)
        reqs = [
            NewCase.model_validate({"item_code": c, "applicant": APPLICANT, "window": "3号窗口", "clerk": "李四"})
            for c in codes
        ]
        for i in range(n):
            store.register(reqs[i % len(reqs)], now)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return path


def install_backlog(env: Env, code: str, template: Path) -> Path:
    """Copy a generated agent.db into the site's data folder (agent must not be running)."""
    data = env.root / "sites" / code / "data"
    data.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", ".head"):  # no head file: the copy is checked and adopted
        Path(str(data / "agent.db") + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, data / "agent.db")
    return data / "agent.db"


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
