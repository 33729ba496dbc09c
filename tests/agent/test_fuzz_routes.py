"""Every route of the real agent app, walked with hostile requests: no answer is a 5xx; and the
agent's bad inputs of issue 8 §1, one test each.

The app is the real one (`create_app`, with a fake-device hall so the keypad route is live)
served the way `agent run` serves it (`start_http`). See tests/fuzzhttp.py for what is generated."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import datetime

import aiohttp
import pytest
from pydantic import ValidationError

from agent.api import create_app
from agent.app import start_http
from agent.hall import Hall, devices_config_for
from agent.httpguard import HttpLimits
from agent.store import AgentStore
from protocol.calendar import CST
from protocol.models import CaseEventBody, CatalogItem, NewCase, NewEvent
from tests.fuzzhttp import Target, report, routes, walk

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
EXAMPLES = 100  # per route (7 routes with HEAD)
CASE_ROUTE = "/api/cases/{case_no:[^{}/]+}"
BODIES = {
    "/api/cases": {
        "item_code": "XK-001",
        "applicant": {"name": "张三", "phone": "13800000000"},
        "window": "1",
        "received_at": "2026-11-20T09:00:00+08:00",
    },
    CASE_ROUTE + "/events": {"type": "accept", "at": "2026-11-20T09:30:00+08:00", "actor": "李四"},
    "/api/devices/keypads/{window:[^{}/]+}/press": {"key": "satisfied"},
}
FIELDS = [
    "item_code",
    "applicant",
    "window",
    "clerk",
    "received_at",
    "type",
    "at",
    "actor",
    "reason",
    "days",
    "procedure",
    "step",
    "approver",
    "link",
    "key",
    "name",
    "id_no",
    "phone",
]
# 5xx our code answers on purpose, and the text that says so; nothing else may be 5xx
DELIBERATE_5XX = {(m, p): (507, "存储空间已满") for m, p in (("POST", "/api/cases"), ("POST", CASE_ROUTE + "/events"))}


@pytest.fixture
def store(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"raw")
    yield s
    s.close()


@pytest.fixture
def hall(store, tmp_path):
    h = Hall(store, devices_config_for("generic"), fake=True, data_dir=tmp_path, now=lambda: NOW)
    h.open()
    return h


def _serve(loop, store, hall):
    limits = HttpLimits(request_timeout_s=10.0, max_connections=50)
    app = create_app(store, TOKEN, now=lambda: NOW, hall=hall, limits=limits)
    runner, port = loop.run_until_complete(start_http(app, "127.0.0.1", 0, limits))
    return app, runner, f"http://127.0.0.1:{port}"


def test_no_route_answers_5xx_to_hostile_requests(store, hall):
    case_no = store.register(NewCase(item_code="XK-001", applicant={"name": "王五"}), NOW)["case_no"]
    loop = asyncio.new_event_loop()
    try:
        app, runner, base = _serve(loop, store, hall)
        session = loop.run_until_complete(_session())
        try:
            target = Target(
                loop=loop,
                base=base,
                app=app,
                credentials={
                    "token": H,
                    "none": {},
                    "wrong": {"Authorization": "Bearer " + "x" * 32},
                    "not-bearer": {"Authorization": TOKEN},
                },
                known={"case_no": [case_no], "window": ["1", "2"]},
                bodies=BODIES,
                fields=FIELDS,
                query_keys=["a"],
                deliberate_5xx=DELIBERATE_5XX,
            )
            t0 = time.monotonic()
            results = walk(target, session, max_examples=EXAMPLES)
            took = time.monotonic() - t0
        finally:
            loop.run_until_complete(session.close())
            loop.run_until_complete(runner.cleanup())
    finally:
        loop.close()
    walked = {key for key, o in results.items() if o.requests}
    assert walked == set(routes(app)) and len(walked) >= 7, walked
    total = sum(o.requests for o in results.values())
    print(f"agent fuzz: {len(walked)} routes, {total} requests in {took:.1f} s")
    assert not report(results), "\n" + report(results)
    statuses = sum((o.statuses for o in results.values()), start=Counter())
    assert statuses[200] and statuses[201] and statuses[400] and statuses[422], statuses


async def _session():
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))


# --- issue 8 §1, the agent's items ---------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        "2000-01-01T00:00:00+14:00",  # 1999-12-31T18:00 in China
        "2101-01-01T00:00:00-12:00",  # 2101-01-01T20:00 in China, 2100 UTC-12
        "0001-01-01T00:00:00+14:00",  # before datetime.min in China time
        "9999-12-31T23:59:59-23:59",
    ],
)  # after datetime.max in China time
def test_times_outside_2000_2100_in_china_time_are_refused(when):
    for model, body in (
        (NewCase, {"item_code": "X", "applicant": {"name": "a"}, "received_at": when}),
        (NewEvent, {"type": "accept", "at": when}),
        (CaseEventBody, {"case_no": "S01-1", "type": "accept", "at": when}),
    ):
        with pytest.raises(ValidationError, match="between the years 2000 and 2100"):
            model.model_validate(body)
    # the edges in China time are fine whatever the offset
    assert (
        NewEvent.model_validate({"type": "accept", "at": "1999-12-31T16:00:00+00:00"}).at.astimezone(CST).year == 2000
    )
    assert NewEvent.model_validate({"type": "accept", "at": "2100-12-31T23:59:59+08:00"})


def _post(store, hall, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    async def go():
        limits = HttpLimits(request_timeout_s=10.0)
        runner, port = await start_http(
            create_app(store, TOKEN, now=lambda: NOW, hall=hall, limits=limits), "127.0.0.1", 0, limits
        )
        try:
            async with (
                aiohttp.ClientSession() as s,
                s.post(f"http://127.0.0.1:{port}{path}", data=body, headers={**H, "Content-Type": content_type}) as r,
            ):
                return r.status, await r.json(content_type=None)
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_case_received_in_1999_china_time_is_422_and_writes_nothing(store, hall):
    before = store.counts()
    status, body = _post(
        store,
        hall,
        "/api/cases",
        json.dumps(
            {"item_code": "XK-001", "applicant": {"name": "张三"}, "received_at": "2000-01-01T00:00:00+14:00"}
        ).encode(),
    )
    assert status == 422 and body["field"] == "received_at", body
    case_no = store.register(NewCase(item_code="XK-001", applicant={"name": "王五"}), NOW)["case_no"]
    status, body = _post(
        store,
        hall,
        f"/api/cases/{case_no}/events",
        json.dumps({"type": "accept", "at": "2000-01-01T00:00:00+14:00"}).encode(),
    )
    assert status == 422 and body["field"] == "at", body
    assert store.counts() != before and store.case_view(case_no, NOW)["status"] == "received"


def test_keypad_press_with_undecodable_body_is_400(store, hall):
    status, body = _post(store, hall, "/api/devices/keypads/1/press", b"\xff\xfe")
    assert status == 400 and "JSON" in body["error"], body


@pytest.mark.parametrize("path", ["/api/cases", "/api/cases/S01-20261120-0001/events", "/api/devices/keypads/1/press"])
def test_unknown_charset_is_400(store, hall, path):
    status, body = _post(store, hall, path, b"{}", "application/json; charset=klingon")
    assert status == 400 and "charset" in body["error"], body


def test_no_clerk_page_answers_5xx_to_hostile_requests(store, hall, tmp_path, monkeypatch):
    """The same walk over the app with the clerk's window pages (agent/web.py), as a logged-in
    clerk (session cookie, with and without the CSRF token) and as a stranger."""
    from agent import clerk_sessions, clerks
    from tests.agent.clerk_helpers import Clock, cheap_hasher, make_web

    cheap_hasher(monkeypatch)
    store.local_write(lambda c: clerks.add(c, "李四", "1", "2580", None, 0))
    clock = Clock(NOW)
    sid = store.local_write(lambda c: clerk_sessions.create(c, "李四", clock.ms, None, clerk_sessions.SessionPolicy()))
    csrf = clerk_sessions.csrf_token(sid)
    case_no = store.register(NewCase(item_code="XK-001", applicant={"name": "王五"}, window="1"), NOW)["case_no"]
    loop = asyncio.new_event_loop()
    try:
        limits = HttpLimits(request_timeout_s=10.0, max_connections=50)
        app = create_app(
            store, TOKEN, now=lambda: NOW, hall=hall, limits=limits, clerk_web=make_web(store, clock, hall)
        )
        runner, port = loop.run_until_complete(start_http(app, "127.0.0.1", 0, limits))
        session = loop.run_until_complete(_session())
        try:
            cookie = {"Cookie": f"{clerk_sessions.COOKIE}={sid}"}
            target = Target(
                loop=loop,
                base=f"http://127.0.0.1:{port}",
                app=app,
                credentials={
                    "clerk": cookie,
                    "clerk+csrf": {**cookie, "X-CSRF-Token": csrf},
                    "none": {},
                    "stale": {"Cookie": f"{clerk_sessions.COOKIE}={'x' * 43}"},
                    "token": H,
                },
                known={"case_no": [case_no], "window": ["1"], "filename": ["clerk.css", "receipt.css", "clerk.js"]},
                bodies={**BODIES, "/register": {"item_code": "XK-001", "name": "王五", "phone": "13800000000"}},
                fields=[*FIELDS, "csrf", "pin", "q", "item", "kind", "paper", "done"],
                query_keys=["q", "item", "kind", "paper", "done"],
                deliberate_5xx=DELIBERATE_5XX,
            )
            results = walk(target, session, max_examples=40)
        finally:
            loop.run_until_complete(session.close())
            loop.run_until_complete(runner.cleanup())
    finally:
        loop.close()
    walked = {key for key, o in results.items() if o.requests}
    assert {("GET", "/"), ("POST", "/login"), ("GET", "/register")} <= walked and walked == set(routes(app))
    assert not report(results), "\n" + report(results)
