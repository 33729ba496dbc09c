"""Helpers of the clerk page tests: a store with a catalog and clerks, a page client that logs in."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from agent import clerks
from agent.api import create_app
from agent.store import AgentStore
from agent.web import ClerkWeb
from protocol.calendar import CST
from protocol.models import CatalogItem

TOKEN = "t" * 32
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday
LOOKUP = "https://jiancha.example.gov.cn/public"
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
        materials="食品经营许可申请书 [food-permit-application.pdf]\n营业执照复印件\n法定代表人身份证明",
    ),
    CatalogItem(
        code="XK-003",
        name="排水许可",
        department="住房和城乡建设局",
        item_type="licensing",
        case_type="promised",
        legal_days=20,
        promised_days=5,
    ),
    CatalogItem(
        code="GG-002",
        name="残疾人证核发",
        department="残疾人联合会",
        item_type="public_service",
        case_type="joint",
        legal_days=20,
        promised_days=7,
    ),
]
APPLICANT = {"name": "王五", "id_no": "11010519491231002X", "phone": "13800000000"}


def cheap_hasher(monkeypatch) -> None:
    """Tests hash PINs cheaply (the product's argon2id costs ~60 ms each)."""
    monkeypatch.setattr(clerks, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    monkeypatch.setattr(clerks, "_DUMMY", clerks.HASHER.hash("dummy"))


def make_store(path) -> AgentStore:
    s = AgentStore(path, "S01")
    s.save_config("catalog", 1, 0, {"items": [i.model_dump(mode="json") for i in ITEMS]}, b"raw")
    s.local_write(lambda c: clerks.add(c, "李四", "1", "2580", ["1", "2"], 0))
    s.local_write(lambda c: clerks.add(c, "赵六", "2", "7391", ["1", "2"], 0))
    return s


class Clock:
    """A settable clock for the case times (`now`) and the session times (`ms`)."""

    def __init__(self, now: datetime = NOW):
        self.now = now
        self.ms = int(now.timestamp() * 1000)


def make_web(store, clock: Clock, hall=None, **kw) -> ClerkWeb:
    return ClerkWeb(
        store,
        hall_name="东阳镇便民服务中心",
        phone="0354-12345",
        lookup_url=LOOKUP,
        windows=["1", "2"],
        window_labels={"1": "1号窗口", "2": "2号窗口"},
        hall=hall,
        now_ms=lambda: clock.ms,
        **kw,
    )


def client_for(store, clock: Clock, hall=None, **kw) -> TestClient:
    app = create_app(store, TOKEN, now=lambda: clock.now, clerk_web=make_web(store, clock, hall, **kw))
    return TestClient(TestServer(app))


def csrf_of(html: str) -> str:
    """The csrf field of the first form on a page."""
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def login(client: TestClient, name: str = "李四", pin: str = "2580"):
    """Log in through the form; returns the response after the redirect."""
    page = await (await client.get("/")).text()
    return await client.post("/login", data={"clerk": name, "pin": pin, "csrf": csrf_of(page)})


async def post_form(client: TestClient, path: str, data: dict, page: str = "/"):
    """POST a form with the CSRF token of `page`."""
    html = await (await client.get(page)).text()
    return await client.post(path, data={**data, "csrf": csrf_of(html)})


async def register(client: TestClient, item: str = "XK-001", **applicant) -> str:
    """Register a case through the form; returns its number."""
    r = await post_form(client, "/register", {"item_code": item, **APPLICANT, **applicant}, f"/register?item={item}")
    assert r.status == 200 and "/cases/" in str(r.url), await r.text()
    return re.search(r"/cases/([^/?]+)", str(r.url)).group(1)


async def step(client: TestClient, case_no: str, type_: str, **fields):
    """Take a step on a case through its form."""
    return await post_form(client, f"/cases/{case_no}/steps", {"type": type_, **fields}, f"/cases/{case_no}")
