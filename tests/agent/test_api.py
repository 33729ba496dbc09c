"""The clerk API answers from the local SQLite: clear errors for every bad input."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.api import create_app
from agent.store import AgentStore
from protocol.calendar import CST
from protocol.models import CatalogItem

TOKEN = "t" * 32
ITEMS = [
    CatalogItem(
        code="XK-001",
        name="食品经营许可",
        department="市场监督管理局",
        item_type="licensing",
        case_type="promised",
        legal_days=20,
        promised_days=10,
        yellow_days=2,
    ),
    CatalogItem(
        code="XK-004",
        name="个体工商户设立登记",
        department="市场监督管理局",
        item_type="行政许可",
        case_type="即办件",
        legal_days=20,
        promised_days=0,
    ),
]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday


@pytest.fixture
def store(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.save_config("catalog", 1, 0, {"items": [i.model_dump(mode="json") for i in ITEMS]}, b"raw")
    yield s
    s.close()


@pytest.fixture
async def client(store):
    app = create_app(store, TOKEN, now=lambda: NOW)
    async with TestClient(TestServer(app)) as c:
        yield c


H = {"Authorization": f"Bearer {TOKEN}"}
CASE = {"item_code": "XK-001", "applicant": {"name": "张三"}}


async def test_register_and_progress(client):
    r = await client.post("/api/cases", json=CASE, headers=H)
    assert r.status == 201
    case = await r.json()
    assert case["case_no"] == "S01-20261120-0001" and case["status"] == "received"
    assert case["acceptance_due"] == "2026-11-27"  # 5 working days after Friday
    for t in ("accept", "complete"):
        r = await client.post(f"/api/cases/{case['case_no']}/events", json={"type": t}, headers=H)
        assert r.status == 201, await r.text()
    got = await (await client.get(f"/api/cases/{case['case_no']}", headers=H)).json()
    assert got["status"] == "completed" and [e["type"] for e in got["events"]] == ["accept", "complete"]
    assert got["due_date"] == "2026-12-04" and got["light"] == "green"


async def test_missing_or_wrong_token_is_401(client):
    assert (await client.post("/api/cases", json=CASE)).status == 401
    r = await client.post("/api/cases", json=CASE, headers={"Authorization": "Bearer nope"})
    assert r.status == 401 and "token" in (await r.json())["error"]
    assert (await client.get("/api/health")).status == 200  # health needs no token


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_malformed_json_is_400(client, raw):
    r = await client.post("/api/cases", data=raw, headers={**H, "Content-Type": "application/json"})
    assert r.status == 400
    assert "JSON" in (await r.json())["error"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"item_code": "NOPE", "applicant": {"name": "张三"}}, "item_code"),
        ({"item_code": "XK-001"}, "applicant"),
        ({"item_code": "XK-001", "applicant": {}}, "applicant.name"),
        ({"item_code": "XK-001", "applicant": {"name": "张三"}, "received_at": "2026-11-20T09:00:00"}, "received_at"),
        (
            {"item_code": "XK-001", "applicant": {"name": "张三"}, "received_at": "2027-01-01T09:00:00+08:00"},
            "received_at",
        ),
        ({"item_code": "XK-001", "applicant": {"name": "张三"}, "surprise": 1}, "surprise"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(client, body, field):
    r = await client.post("/api/cases", json=body, headers=H)
    assert r.status == 422, await r.text()
    assert (await r.json())["field"] == field


async def test_event_errors(client):
    case = await (await client.post("/api/cases", json=CASE, headers=H)).json()
    url = f"/api/cases/{case['case_no']}/events"
    r = await client.post(url, json={"type": "fly"}, headers=H)
    assert r.status == 422 and (await r.json())["field"] == "type"
    r = await client.post(url, json={"type": "suspend", "procedure": "喝茶"}, headers=H)
    assert r.status == 422 and (await r.json())["field"] == "procedure"
    r = await client.post(url, json={"type": "accept", "at": "2026-12-24T09:00:00+08:00"}, headers=H)
    assert r.status == 422 and (await r.json())["field"] == "at"  # in the future
    # impossible transitions: 409 with a message
    r = await client.post(url, json={"type": "complete"}, headers=H)
    assert r.status == 409 and (await r.json())["error"]
    r = await client.post(url, json={"type": "reject"}, headers=H)  # needs a reason
    assert r.status == 409
    assert (await client.post(url, json={"type": "accept"}, headers=H)).status == 201
    assert (await client.post(url, json={"type": "accept"}, headers=H)).status == 409
    r = await client.post("/api/cases/S01-19990101-0001/events", json={"type": "accept"}, headers=H)
    assert r.status == 404


async def test_refused_events_leave_no_record(client, store):
    case = await (await client.post("/api/cases", json=CASE, headers=H)).json()
    head = store.head_seq
    await client.post(f"/api/cases/{case['case_no']}/events", json={"type": "complete"}, headers=H)
    assert store.head_seq == head


async def test_disk_full_is_507(client, store, monkeypatch):
    import sqlite3

    def full(*a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_append", full)
    r = await client.post("/api/cases", json=CASE, headers=H)
    assert r.status == 507 and "存储空间" in (await r.json())["error"]


@pytest.mark.parametrize(
    "raw,status",
    [
        (json.dumps({**CASE, "received_at": "0001-01-01T00:00:00+14:00"}).encode(), 422),
        (b"[" * 100_000, 400),
    ],
)
async def test_absurd_input_is_4xx_never_500(client, raw, status):
    r = await client.post("/api/cases", data=raw, headers={**H, "Content-Type": "application/json"})
    assert r.status == status, await r.text()
