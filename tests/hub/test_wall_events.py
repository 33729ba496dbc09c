"""The live wall (GET /api/events/wall, hub/wall_events.py) on both store engines: a record
ingested through the hub's real ingest path reaches an open stream within a bounded wait; the
bounds (per session 429, per process 503, JSON errors); logout, session expiry and shutdown end
the streams."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from hub.api_wall import EVENTS
from hub.sessions import digest
from hub.wall_events import admission
from protocol import topics
from tests.craft import SiteSigner, chain, trust_item
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.hubapp import close, provisioned_hub, served

WAIT_S = 10.0  # generous under a loaded machine; the bench measures the real latency (bench/wall.py)


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=("S01",), store_url=store_url)
    h.root = tmp_path / "hub"
    h.ingest.publish = lambda *a, **k: None  # no broker: acks go nowhere
    trust_item(h.conn)
    make_user(h, "wall", "viewer")
    yield h
    close(h)


async def _next_event(resp: aiohttp.ClientResponse, timeout: float = WAIT_S) -> tuple[str, str]:
    """(event name, data) of the next event on an SSE stream (comments skipped)."""
    name, data = "message", ""
    async with asyncio.timeout(timeout):
        while True:
            line = (await resp.content.readline()).decode()
            if line == "":
                return "eof", ""
            line = line.rstrip("\n")
            if line == "":
                if data:
                    return name, data
                continue
            if line.startswith(":") or line.startswith("retry:"):
                continue
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data = value


def test_admission_bounds():
    assert admission(0, 0, 10, 2) is None
    assert admission(5, 2, 10, 2)[0] == 429
    assert admission(10, 0, 10, 2)[0] == 503


def test_a_record_ingested_reaches_an_open_wall_at_once(hub):
    signer = SiteSigner(hub.root, "S01")

    async def go():
        async with served(hub) as (base, app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, "wall"), base, csrf=False)
            async with s.get(base + "/api/events/wall", headers=h) as stream:
                assert stream.status == 200 and stream.content_type == "text/event-stream"
                name, data = await _next_event(stream)
                assert name == "hello"
                t0 = time.monotonic()
                recs, _ = chain("S01", 1)
                await asyncio.to_thread(hub.ingest.process_group, [(topics.site_batch("S01"), signer.seal(recs, 1))])
                name, data = await _next_event(stream)
                latency = time.monotonic() - t0
                async with s.get(base + "/api/wall", headers=h) as r:
                    wall = await r.json()
            return name, data, latency, wall

    name, data, latency, wall = asyncio.run(go())
    assert name == "change" and '"version"' in data
    assert latency < WAIT_S
    assert sum(wall["counts"].values()) == 1  # the refetch shows the new case (whatever its light on this date)
    assert sum(wall["sites"][0][light] for light in ("green", "yellow", "red")) == 1


def test_too_many_streams_are_refused_with_a_clear_error(hub):
    hub.cfg.api.wall_streams_per_session = 2
    hub.cfg.api.wall_streams = 3

    async def go():
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            one = cookie_headers(open_session(hub, "wall"), base, csrf=False)
            other = cookie_headers(open_session(hub, "wall"), base, csrf=False)
            opened = [await s.get(base + "/api/events/wall", headers=one) for _ in range(2)]
            third = await s.get(base + "/api/events/wall", headers=one)
            per_session = (third.status, await third.json(), third.headers.get("Retry-After"))
            opened.append(await s.get(base + "/api/events/wall", headers=other))
            async with s.head(base + "/api/events/wall", headers=other) as head:  # answered, never held
                head_status = head.status
            token = {"Authorization": f"Bearer {hub.cfg.api.admin_token}"}
            full = await s.get(base + "/api/events/wall", headers=token)
            per_process = (full.status, await full.json())
            statuses = [r.status for r in opened]
            for r in opened:
                r.close()
            return statuses, per_session, per_process, head_status

    statuses, per_session, per_process, head_status = asyncio.run(go())
    assert statuses == [200, 200, 200] and head_status == 200
    assert per_session[0] == 429 and "实时大屏" in per_session[1]["error"] and per_session[2] == "60"
    assert per_process[0] == 503 and "连接已满" in per_process[1]["error"]


def test_logout_and_expiry_end_the_stream_and_shutdown_does_not_wait(hub):
    hub.cfg.api.wall_heartbeat_s = 1.0

    async def go():
        async with aiohttp.ClientSession() as s:  # outside: the server shuts down with our stream open
            async with served(hub) as (base, app):
                sess = open_session(hub, "wall")
                h = cookie_headers(sess, base)
                async with s.get(base + "/api/events/wall", headers=h) as stream:
                    assert (await _next_event(stream))[0] == "hello"
                    async with s.post(base + "/logout", headers=h, allow_redirects=False) as r:
                        assert r.status == 302
                    logout = await _next_event(stream)
                expired = open_session(hub, "wall")
                h2 = cookie_headers(expired, base, csrf=False)
                async with s.get(base + "/api/events/wall", headers=h2) as stream:
                    assert (await _next_event(stream))[0] == "hello"
                    hub.write(lambda c: c.execute("DELETE FROM sessions WHERE id_hash=?", (digest(expired["sid"]),)))
                    gone = await _next_event(stream)  # noticed at the next heartbeat
                last = await s.get(base + "/api/events/wall", headers=cookie_headers(open_session(hub, "wall"), base))
                assert (await _next_event(last))[0] == "hello"
                open_now = len(app[EVENTS].streams)
                t0 = time.monotonic()
            shutdown_s = time.monotonic() - t0
            end = await _next_event(last)
            last.close()
        return logout, gone, open_now, shutdown_s, end

    logout, gone, open_now, shutdown_s, end = asyncio.run(go())
    assert logout == ("end", '{"reason": "logout"}')
    assert gone == ("end", '{"reason": "session"}')
    assert open_now == 1
    assert shutdown_s < 5.0 and end == ("end", '{"reason": "shutdown"}')
