"""The live wall with `jiancha hub run --workers 2` on PostgreSQL: ingest happens in whichever
worker the broker's shared subscription picks, the walls are served by whichever worker the
kernel gives the connection; every open wall still gets the change (hub/wall_events.py: one
poller per process reads the counter all workers bump)."""

from __future__ import annotations

import asyncio

import aiohttp

from provisioning.setup import add_hub_workers
from tests.e2e.harness import Env, wait_for
from tests.e2e.test_workers import start_workers

WALLS = 6  # spread over both workers by the kernel (SO_REUSEPORT), each on its own connection
WAIT_S = 15.0


async def _wait_change(resp: aiohttp.ClientResponse) -> str:
    """Read the stream until a `change` event; returns the data line after it."""
    async with asyncio.timeout(WAIT_S):
        event = None
        while True:
            line = (await resp.content.readline()).decode().strip()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "change":
                return line[6:]


async def test_every_wall_hears_of_a_record_ingested_by_any_worker(tmp_path, pg_server):
    env = Env(tmp_path / "hub", sites=("S01",), store_url=pg_server.create_db("wall"))
    try:
        add_hub_workers(env.root, count=2)
        env.configure_hub(workers={"lease_s": 3.0}, api={"wall_streams_per_session": WALLS})
        env.start_broker()
        await asyncio.to_thread(start_workers, env, 2)
        await asyncio.to_thread(env.start_agent, "S01")
        await asyncio.to_thread(
            wait_for, lambda: env.agent_health("S01")["catalog_version"] > 0, 60, 0.2, "catalog at S01"
        )
        headers = {"Authorization": f"Bearer {env.token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(None)) as s:
            streams = []
            for _ in range(WALLS):
                r = await s.get(env.hub_url + "/api/events/wall")  # each holds its own connection
                assert r.status == 200, await r.text()
                assert (await r.content.readline()).startswith(b"retry:")
                streams.append(r)
            st, case = await asyncio.to_thread(env.register, "S01", "XK-001")
            assert st == 201
            got = await asyncio.gather(*(_wait_change(r) for r in streams))
            for r in streams:
                r.close()
        assert len(got) == WALLS and all('"version"' in g for g in got)
        body = await asyncio.to_thread(env.hub_get, "/api/wall")
        assert body["counts"]["green"] == 1
    finally:
        env.close()
