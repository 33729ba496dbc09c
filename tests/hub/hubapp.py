"""A real Hub (provisioned directory, real store on SQLite or PostgreSQL, real aiohttp app on a free port) with
no broker and no threads started: for API tests that need only the HTTP side and the database."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hub.api import create_app
from hub.app import Hub, start_http
from hub.config import HubConfig
from iobase.config import load_config
from provisioning.setup import add_site, init_hub


def provisioned_hub(root: Path, sites=("S01", "S01-A"), store_url: str | None = None) -> Hub:
    """A hub directory with `sites` and the Hub object over it (nothing started). `store_url`
    (the `store_url` fixture of tests/hub/conftest.py) puts its store on that engine; a
    sqlite: URL outside the hub's data folder is ignored (the hub's own hub.db is used)."""
    init_hub(root, region="140700", name="测试市政务服务中心", broker_port=1, http_port=1)
    for code in sites:
        add_site(root, code=code, name=f"{code}便民服务中心")
    cfg = load_config(root / "hub.yaml", HubConfig)
    if store_url is not None and store_url.startswith("postgresql"):
        cfg.store.url = store_url
    return Hub(cfg)


@contextlib.asynccontextmanager
async def served(hub: Hub, *, header_timeout_s: float = 20.0, body_timeout_s: float = 30.0, limiter=None):
    """(base_url, app) of the hub's app served on 127.0.0.1."""
    app = create_app(hub, hub.reader, hub.cfg.api.admin_token, body_timeout_s=body_timeout_s, limiter=limiter)
    runner, port = await start_http(app, "127.0.0.1", 0, header_timeout_s=header_timeout_s)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


def close(hub: Hub) -> None:
    """Close the hub's database connections (nothing else was started)."""
    for conn in (hub.reader, hub.writer, hub.conn):
        conn.close()


def run(coro):
    return asyncio.run(coro)


def metrics_text(conn) -> str:
    """/metrics as rendered from a hub database, without a running hub (empty queue, connected)."""
    from types import SimpleNamespace

    from hub.metrics import render_metrics

    running = SimpleNamespace(
        ingest=SimpleNamespace(q=SimpleNamespace(qsize=lambda: 0)),
        link=SimpleNamespace(connected=SimpleNamespace(is_set=lambda: True)),
    )
    return render_metrics(conn, running)
