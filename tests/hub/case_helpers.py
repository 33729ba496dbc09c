"""A hub with two counties' sites fed real signed, chained records (as their agents would), the
accounts of every role, and HTTP helpers: for the case page and 督办 page tests."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta

import aiohttp
import chinese_calendar

from protocol import topics
from protocol.calendar import CST
from protocol.records import GENESIS, Record, encode_record, record_hash
from tests.craft import SiteSigner, registration, trust_item
from tests.hub.accounts_helpers import cookie_headers, make_user, open_session
from tests.hub.hubapp import provisioned_hub, served

SITE_A, SITE_B = "140702-001", "140703-001"
DEPT = "市场监督管理局"  # tests.craft.ITEM's department
RECEIVED = datetime(2026, 9, 28, 9, 0, tzinfo=CST)  # Monday before the National Day holidays
NOW = datetime(2026, 10, 14, 10, 0, tzinfo=CST)
APPLICANT = {"name": "张三丰", "id_no": "140702199001011234", "phone": "13812345678"}


def wd_after(start: date, n: int) -> date:
    """The n-th working day after `start`, by chinese_calendar."""
    d = start
    while n:
        d += timedelta(days=1)
        n -= chinese_calendar.is_workday(d)
    return d


def wd_between(a: date, b: date) -> int:
    """Working days d with a < d <= b, by chinese_calendar."""
    return sum(chinese_calendar.is_workday(a + timedelta(days=i)) for i in range(1, (b - a).days + 1))


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


ACCOUNTS = (
    ("admin1", "admin", None),
    ("sup", "supervisor", None),
    ("sup-b", "supervisor", "140703"),
    ("dept", "department", DEPT),
    ("wall", "viewer", None),
)


class Feed:
    """A site's agent, as far as the hub can tell: signed batches of chained records."""

    def __init__(self, hub, root, site: str):
        self.hub, self.site, self.signer = hub, site, SiteSigner(root, site)
        self.seq, self.prev = 0, GENESIS

    def send(self, *items: tuple[str, dict, datetime]) -> list[int]:
        encs, first = [], self.seq + 1
        for kind, body, at in items:
            self.seq += 1
            rec = Record(self.seq, self.prev, kind, ms(at), 1, "boot", "ntp", body)
            enc = encode_record(rec)
            self.prev = record_hash(enc)
            encs.append(enc)
        self.hub.ingest.process_group([(topics.site_batch(self.site), self.signer.seal(encs, first))])
        return list(range(first, self.seq + 1))

    def register(self, n: int, received: datetime, applicant: dict | None = None) -> str:
        reg = registration(self.site, n, received)
        if applicant:
            reg["applicant"] = applicant
        self.send(("case.registered", reg, received))
        return reg["case_no"]

    def event(self, case_no: str, type_: str, at: datetime, **extra) -> int:
        body = {"case_no": case_no, "type": type_, "at": at.isoformat(), "actor": "赵六", **extra}
        return self.send(("case.event", body, at))[0]


def fetch(hub, login: str | None, *paths: str, accept_json: bool = False):
    """(status, text or json, headers) per path, as `login` (None: not logged in)."""

    async def go():
        out = []
        async with served(hub) as (base, _app), aiohttp.ClientSession() as s:
            h = cookie_headers(open_session(hub, login), base) if login else {}
            for p in paths:
                async with s.get(base + p, headers=h, allow_redirects=False) as r:
                    body = await (r.json() if r.content_type == "application/json" else r.text())
                    out.append((r.status, body, r.headers))
        return out

    return asyncio.run(go())


def cells(html: str, attr: str) -> dict[str, str]:
    """Rows of a table by their data-* attribute: {value: the row's text}."""
    rows = re.findall(rf'<tr {attr}="([^"]+)"[^>]*>(.*?)</tr>', html, re.S)
    return {k: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", v)).strip() for k, v in rows}


def make_world(tmp_path, store_url):
    """(hub, feed of site A, case of site A accepted on RECEIVED, case of site B); close(hub) after."""
    root = tmp_path / "hub"
    hub = provisioned_hub(root, sites=(SITE_A, SITE_B), store_url=store_url)
    hub.link.publish = lambda *a, **k: None
    hub.ingest.now = lambda: NOW
    trust_item(hub.conn)
    for login, role, scope in ACCOUNTS:
        make_user(hub, login, role, scope)
    a, b = Feed(hub, root, SITE_A), Feed(hub, root, SITE_B)
    case = a.register(1, RECEIVED, APPLICANT)
    a.event(case, "accept", RECEIVED + timedelta(hours=1))
    other = b.register(1, RECEIVED)
    return hub, a, case, other
