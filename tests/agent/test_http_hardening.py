"""The agent's HTTP server over real sockets: cross-site refusal, security headers, time and
connection bounds, and 4xx (never 5xx) for hostile JSON bodies.

The app is the real one (`create_app`) served the way `agent run` serves it (`start_http`),
on 127.0.0.1 and a free port, with short limits injected.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import aiohttp
import pytest

from agent.api import create_app
from agent.app import start_http
from agent.httpguard import HttpLimits
from agent.store import AgentStore
from protocol.calendar import CST
from protocol.models import CatalogItem

TOKEN = "t" * 32
H = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
ITEM = CatalogItem(
    code="XK-001",
    name="食品经营许可",
    department="市场监督管理局",
    item_type="licensing",
    case_type="promised",
    legal_days=20,
    promised_days=10,
    yellow_days=2,
)
CASE = {"item_code": "XK-001", "applicant": {"name": "张三"}}
SECURITY = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@pytest.fixture
def store(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"raw")
    yield s
    s.close()


async def _serve(store, limits):
    app = create_app(store, TOKEN, now=lambda: NOW, limits=limits)
    return await start_http(app, "127.0.0.1", 0, limits)


@pytest.fixture
async def agent(store):
    """Base URL of a served agent whose requests must arrive within 1 s."""
    runner, port = await _serve(store, HttpLimits(request_timeout_s=1.0, max_connections=50))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def _assert_security_headers(resp) -> None:
    for k, v in SECURITY.items():
        assert resp.headers.get(k) == v, (k, resp.status)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


async def test_security_headers_on_every_answer(agent, http):
    for method, path, kw, status in [
        ("GET", "/api/health", {}, 200),
        ("POST", "/api/cases", {"json": CASE}, 401),
        ("POST", "/api/cases", {"json": CASE, "headers": H}, 201),
        ("GET", "/api/cases/S01-20261120-9999", {"headers": H}, 404),
        ("GET", "/nothing-here", {}, 404),
        ("POST", "/api/cases", {"data": "{", "headers": H}, 400),
    ]:
        async with http.request(method, agent + path, **kw) as r:
            assert r.status == status, (path, await r.text())
            _assert_security_headers(r)


async def test_cross_site_state_change_is_refused_before_the_token(agent, http):
    port = agent.rsplit(":", 1)[1]
    body = json.dumps(CASE)
    # the audit's attack: a text/plain form-like POST from a foreign page (no preflight)
    for headers in (
        {"Origin": "http://evil.example", "Content-Type": "text/plain", **H},
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", **H},
        {"Origin": f"http://127.0.0.1:{int(port) + 1}", **H},
        {"Sec-Fetch-Site": "cross-site", **H},
        {"Sec-Fetch-Site": "same-site", "Origin": agent, **H},
    ):
        async with http.post(agent + "/api/cases", data=body, headers=headers) as r:
            assert r.status == 403, headers
            err = (await r.json())["error"]
            assert "跨站" in err and "cross-site request refused" in err
            _assert_security_headers(r)
    # browsers on the box's own origin, and non-browser clients with the token, still work
    for headers in (
        {**H},
        {"Origin": agent, **H},
        {"Sec-Fetch-Site": "same-origin", "Origin": agent, **H},
        {"Sec-Fetch-Site": "none", **H},
    ):
        async with http.post(agent + "/api/cases", json=CASE, headers=headers) as r:
            assert r.status == 201, (headers, await r.text())
    # reading is not a state change: a foreign Origin on GET gets the ordinary answer
    async with http.get(agent + "/api/health", headers={"Origin": "http://evil.example"}) as r:
        assert r.status == 200


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes; fails if it keeps the socket open longer."""
    t0 = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)  # read() returns at EOF
    return data, time.monotonic() - t0


async def _connect(agent: str):
    host, port = agent.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_silent_and_half_sent_heads_are_disconnected(agent):
    # nothing at all, half a request line, half the headers, headers dripped slowly
    for first in (b"", b"POST /api/ca", b"POST /api/cases HTTP/1.1\r\nHost: x\r\nContent-Le"):
        reader, writer = await _connect(agent)
        writer.write(first)
        data, took = await _closed_within(reader, 5.0)
        assert took < 3.0 and data == b"", (first, data)
        writer.close()
    reader, writer = await _connect(agent)
    t0 = time.monotonic()
    with pytest.raises((ConnectionError, asyncio.TimeoutError, AssertionError)):
        for _ in range(20):  # 1 byte every 0.3 s
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(0.3)
            assert not reader.at_eof()
    assert time.monotonic() - t0 < 4.0
    writer.close()


async def test_half_sent_body_gets_408_and_is_disconnected(agent):
    reader, writer = await _connect(agent)
    writer.write(
        b"POST /api/cases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"item_code"'
    )
    data, took = await _closed_within(reader, 6.0)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b"timed out" in data and took < 4.0
    writer.close()
    # without the token the body is never read: 401 at once, then closed all the same
    reader, writer = await _connect(agent)
    writer.write(b"POST /api/cases HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    data, took = await _closed_within(reader, 6.0)
    assert data.startswith(b"HTTP/1.1 401") and took < 4.0
    writer.close()


async def test_idle_keep_alive_connection_is_closed_but_a_busy_one_is_not(agent):
    reader, writer = await _connect(agent)
    for _ in range(3):  # three requests 0.6 s apart: > 1 s in all, still served
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        await asyncio.sleep(0.6)
    data, took = await _closed_within(reader, 5.0)
    assert data == b"" and took < 3.0
    writer.close()


async def test_connections_beyond_the_limit_get_503(store):
    limits = HttpLimits(request_timeout_s=30.0, max_connections=4)
    runner, port = await _serve(store, limits)
    agent = f"http://127.0.0.1:{port}"
    try:
        idle = [await _connect(agent) for _ in range(4)]
        await asyncio.sleep(0.2)
        reader, writer = await _connect(agent)
        data, _ = await _closed_within(reader, 5.0)
        assert data.startswith(b"HTTP/1.1 503") and b"too many connections" in data
        assert b"X-Frame-Options: DENY" in data
        writer.close()
        for _r, w in idle:
            w.close()
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as http, http.get(agent + "/api/health") as r:
            assert r.status == 200
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),  # 200 KB, 100 000 deep
        (b"[" * 50_000, "application/json", 400),  # deep, under the size cap
        (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "application/json", 400),
        (b"1" * 5000, "application/json", 400),  # int beyond 4300 digits
        (json.dumps(CASE).encode(), "application/json; charset=no-such-charset", 400),
        (b"\xff\xfe\x00\xd8", "application/json; charset=utf-16", 400),  # lone surrogate
        (b"\xc3\x28", "application/json", 400),  # bad UTF-8
        (b"x" * (300 * 1024), "application/json", 413),
        (b"", "application/json", 400),
    ],
)
async def test_hostile_json_bodies_are_4xx(agent, http, body, content_type, status):
    for path in ("/api/cases", "/api/cases/S01-20261120-0001/events"):
        async with http.post(agent + path, data=body, headers={**H, "Content-Type": content_type}) as r:
            assert r.status == status, (path, await r.text())
            _assert_security_headers(r)


async def test_agent_run_serves_with_the_guard(tmp_path, capsys):
    """`agent run`'s own serve(): headers and the head deadline are there (no broker needed)."""
    from agent.app import serve
    from agent.config import AgentConfig
    from iobase.config import load_config
    from provisioning.setup import add_site, init_hub

    init_hub(tmp_path / "h", region="1", name="x")
    cfg = load_config(add_site(tmp_path / "h", code="S01", name="a"), AgentConfig)
    cfg = cfg.model_copy(update={"devices": cfg.devices.model_copy(update={"mode": "off"})})
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(cfg, http_port=0, data_dir=tmp_path / "data", stop=stop, http_limits=HttpLimits(request_timeout_s=1.0))
    )
    try:
        for _ in range(100):
            if "ready on" in (out := capsys.readouterr().out):
                break
            await asyncio.sleep(0.1)
        agent = out.split("ready on ")[1].split()[0]
        async with aiohttp.ClientSession() as http, http.get(agent + "/api/health") as r:
            assert r.status == 200
            _assert_security_headers(r)
        reader, writer = await _connect(agent)
        writer.write(b"GET /api/health HTTP/1.1\r\nHo")
        data, took = await _closed_within(reader, 5.0)
        assert data == b"" and took < 3.0
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
