"""Every route of the real hub app, walked with hostile requests: no answer is a 5xx.

A real Hub (provisioned directory, SQLite, no broker) served on a free port, seeded with one
case, an open ticket on it and an online site so that replies, reviews, sign texts and clip
requests reach their handlers' deeper code. Publishing to the (absent) broker is recorded, not
sent. See tests/fuzzhttp.py for what is generated."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import datetime

import aiohttp
import pytest

from protocol.calendar import CST
from tests.craft import registration
from tests.fuzzhttp import Target, report, routes, slowest, walk
from tests.hub.hubapp import close, provisioned_hub, served

# random requests per route (129 routes with HEAD and static files), after the deterministic
# catalogue of known-hostile requests (about 45 per route). PostgreSQL walks the same catalogue with
# fewer random ones: what differs between the engines is the SQL under the handlers (NUL bytes,
# integer ranges, text lengths), which the catalogue covers; the random requests test the handlers.
EXAMPLES = {"sqlite": 30, "postgresql": 10}
CASE_NO = "S01-20261120-0001"
DEPARTMENT_TOKEN = "d" * 40
FIELDS = [
    "actor",
    "text",
    "decision",
    "level",
    "window",
    "seconds",
    "camera",
    "start_ms",
    "end_ms",
    "year",
    "holidays",
    "workdays",
    "source",
    "token",
    "case_no",
]
BODIES = {
    "/api/tickets/{id:\\d{1,18}}/reply": {"actor": "科长", "text": "已整改"},
    "/api/tickets/{id:\\d{1,18}}/review": {"decision": "reject", "actor": "监察员", "text": "理由不足"},
    "/api/cases/{case_no:[^{}/]+}/tickets": {"level": "duban", "actor": "监察员", "text": "超期"},
    "/api/calendar": {"year": 2031, "holidays": ["2031-01-01"], "workdays": [], "source": "fuzz"},
}
SITE = "/api/sites/{code:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}"
BODIES[SITE + "/sign"] = {"window": "1", "text": "暂停服务", "seconds": 600}
BODIES[SITE + "/clips"] = {"camera": "c1", "start_ms": 1_790_000_000_000, "end_ms": 1_790_000_060_000}
# 5xx our code answers on purpose, and the text that says so; nothing else may be 5xx
DELIBERATE_5XX = {
    ("GET", "/api/documents/{id:\\d{1,18}}.pdf"): (500, "文书校验失败"),  # a stored PDF fails its hash
    ("HEAD", "/api/documents/{id:\\d{1,18}}.pdf"): (500, ""),
}


def seed(hub) -> int:
    """One registered case, an open ticket on it, S01 online; the ticket's id."""
    reg = registration("S01", 1)

    def write(c):
        c.execute(
            "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, "
            "reg_seq, reg_json, status, light, due_date) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                CASE_NO,
                "S01",
                "XK-001",
                "食品经营许可",
                "市场监督管理局",
                reg["query_code"],
                reg["received_at"],
                1,
                json.dumps(reg, ensure_ascii=False),
                "received",
                "red",
                "2026-12-04",
            ),
        )
        c.execute(
            "INSERT INTO sites (code, online, last_seen_ms) VALUES ('S01', 1, ?) "
            "ON CONFLICT(code) DO UPDATE SET online=1",
            (int(time.time() * 1000),),
        )
        return hub.supervisor.open_ticket(
            c, CASE_NO, "duban", "监察员", datetime(2026, 12, 7, 9, tzinfo=CST), reason="fuzz"
        )

    return hub.write(write)


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", store_url=store_url)
    h.cfg.api.department_tokens["市场监督管理局"] = DEPARTMENT_TOKEN
    yield h
    close(h)


def test_no_route_answers_5xx_to_hostile_requests(hub, store_url):
    engine = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    tid = seed(hub)
    published = []
    hub.link.publish = lambda *a, **k: published.append(a)  # no broker: record the commands
    token = hub.cfg.api.admin_token
    from tests.hub.accounts_helpers import make_user, open_session

    make_user(hub, "fuzz-admin", "admin")
    sess = open_session(hub, "fuzz-admin")
    loop = asyncio.new_event_loop()
    try:

        async def start():
            ctx = served(hub)
            base, app = await ctx.__aenter__()
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            return ctx, base, app, session

        ctx, base, app, session = loop.run_until_complete(start())
        try:
            target = Target(
                loop=loop,
                base=base,
                app=app,
                credentials={
                    "admin": {"Authorization": f"Bearer {token}"},
                    "none": {},
                    "wrong": {"Authorization": "Bearer " + "x" * 40},
                    "department": {"Authorization": f"Bearer {DEPARTMENT_TOKEN}"},
                    "cookie": {"Cookie": f"jc_session={sess['sid']}", "X-CSRF-Token": sess["csrf"]},
                },
                known={
                    "case_no": [CASE_NO],
                    "id": [str(tid)],
                    "code": ["S01", "S01-A"],
                    "window": ["1"],
                    "clip_id": ["S01-c1-1790000000000"],
                    "seq": ["1"],
                    "filename": ["style.css"],
                },
                bodies=BODIES,
                fields=FIELDS,
                query_keys=[
                    "limit",
                    "offset",
                    "order",
                    "site",
                    "light",
                    "status",
                    "department",
                    "open",
                    "code",
                    "case_no",
                    "bad",
                ],
                deliberate_5xx=DELIBERATE_5XX,
            )
            t0 = time.monotonic()
            results = walk(target, session, max_examples=EXAMPLES[engine])
            took = time.monotonic() - t0
        finally:

            async def stop():
                await session.close()
                await ctx.__aexit__(None, None, None)

            loop.run_until_complete(stop())
    finally:
        loop.close()
    walked = {key for key, o in results.items() if o.requests}
    assert walked == set(routes(app)) and len(walked) >= 30, walked
    total = sum(o.requests for o in results.values())
    print(f"hub fuzz: {len(walked)} routes, {total} requests in {took:.1f} s, {len(published)} commands published")
    print("slowest routes:", slowest(results))
    assert not report(results), "\n" + report(results)
    # the walk reached the handlers, not only the guards
    statuses = sum((o.statuses for o in results.values()), start=Counter())
    assert statuses[200] and statuses[201] and statuses[202] and statuses[400] and statuses[422], statuses
