"""Crash safety with a real process: a worker killed while a message is 'sending' leaves it
leased; once the lease ends another worker sends it again (at-least-once)."""

from __future__ import annotations

import asyncio
import sys

from tests.hub.notify.conftest import sms_config
from tests.hub.notify.test_notifier import YELLOW, rows

CHILD = """
import asyncio, sys
from hub.notify.config import NotifyConfig
from hub.notify.notifier import Notifier
cfg = NotifyConfig.model_validate_json(sys.argv[2])
now = int(sys.argv[3])
asyncio.run(Notifier(cfg, sys.argv[1], clock=lambda: now).run_once())
"""


async def test_killed_worker_message_is_retried_after_the_lease(db, gateway, make_notifier, clock):
    store_url, conn = db
    cfg = sms_config(gateway, lease_s=60, batch_size=1, sms={"timeout_s": 30.0})
    n = make_notifier(cfg)
    n.enqueue(conn, channel="sms", to="13800138000", template="yellow", facts=YELLOW, dedupe_key="case:1")
    gateway.delay_s = 30.0  # the gateway holds the request; the child waits
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, store_url, cfg.model_dump_json(), str(clock.now)
    )
    try:
        for _ in range(1500):
            if gateway.received or child.returncode is not None:
                break
            await asyncio.sleep(0.01)
        assert gateway.received, "the child never reached the gateway"
        assert rows(conn)[0]["status"] == "sending"
    finally:
        child.kill()  # SIGKILL: no cleanup, no except/finally in the child
        await child.wait()
    gateway.delay_s = 0
    clock.advance(30_000)
    assert await n.run_once() == 0  # lease still held by the dead worker
    clock.advance(30_000)
    assert await n.run_once() == 1
    [r] = rows(conn)
    assert (r["status"], r["attempts"], r["provider_id"]) == ("sent", 2, "M2")
    assert [q["json"]["uid"] for q in gateway.received] == [str(r["id"])] * 2  # same id: gateway may dedupe
