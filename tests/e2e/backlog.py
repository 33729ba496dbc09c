"""Agent backlogs for end-to-end tests and benchmarks: an agent.db of N registrations written
through the agent's own store, installed into a site's data folder before its agent starts."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

APPLICANT = {"name": "张三", "phone": "13800000000", "id_no": "140702199001011234"}


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


def install_backlog(env, code: str, template: Path) -> Path:
    """Copy a generated agent.db into the site's data folder (agent must not be running)."""
    data = env.root / "sites" / code / "data"
    data.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", ".head"):  # no head file: the copy is checked and adopted
        Path(str(data / "agent.db") + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, data / "agent.db")
    return data / "agent.db"
