"""Fixtures: a hub store (SQLite, then PostgreSQL) with the notify tables, a fake SMS gateway, a local SMTP server."""

from __future__ import annotations

import pytest

from hub.notify.config import NotifyConfig
from hub.notify.notifier import Notifier
from hub.store import open_db
from tests.hub.notify.fakegateway import FakeGateway

T0 = 1_760_000_000_000  # a fixed "now" in ms; tests move it by hand, never sleep


class Clock:
    """Injected time in ms."""

    def __init__(self, now: int = T0):
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


@pytest.fixture
def db(store_url):
    """(store URL, writer connection) of a migrated hub store, on SQLite then PostgreSQL
    (`store_url` of tests/hub/conftest.py): the worker opens its own connection from the URL."""
    conn = open_db(store_url)
    yield store_url, conn
    conn.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def gateway():
    gw = await FakeGateway().start()
    yield gw
    await gw.stop()


def sms_config(gateway: FakeGateway, **kw) -> NotifyConfig:
    """A NotifyConfig whose SMS gateway is the fake, reading code==0 and data.msgid."""
    sms = {
        "url": gateway.url,
        "fields": {"mobile": "{to}", "content": "{text}", "sign": "电子监察", "uid": "{id}"},
        "success_field": "code",
        "message_id_field": "data.msgid",
        "error_field": "msg",
        "timeout_s": 2.0,
        **kw.pop("sms", {}),
    }
    return NotifyConfig.model_validate({"sms": sms, "backoff_s": 10, **kw})


@pytest.fixture
async def make_notifier(db, clock):
    """Build a Notifier on the test database; its worker connection is its own."""
    made = []

    def make(config: NotifyConfig, **kw) -> Notifier:
        kw.setdefault("rand", lambda: 1.0)
        n = Notifier(config, db[0], clock=clock, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        await n.aclose()
        n.close()
