"""Notifications end to end: the operator imports the directory; a case turning red makes the
real hub send an SMS (to a local stand-in for the SMS platform) to the department head and
handler, once, with the Chinese text; the 督办 ticket notice follows."""

from __future__ import annotations

import asyncio

import yaml

from hub.admin import import_directory
from tests.e2e.harness import at, wait_for, working_days_ago
from tests.hub.notify.fakegateway import FakeGateway

DIRECTORY = """
departments:
  - name: 住房和城乡建设局
    head: {name: 王局长, phone: "13800138000"}
    handlers:
      - {name: 张三, phone: "139 0013 9000"}
"""


async def test_red_card_sends_sms_to_the_department(env):
    gw = await FakeGateway().start()
    try:
        env.hub.stop()
        path = env.root / "hub.yaml"
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        cfg["notify"] = {
            "sms": {
                "url": gw.url,
                "fields": {"mobile": "{to}", "content": "{text}", "uid": "{id}"},
                "success_field": "code",
                "message_id_field": "data.msgid",
            },
            "poll_interval_s": 0.2,
        }
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        (env.root / "dir.yaml").write_text(DIRECTORY, encoding="utf-8")
        assert import_directory(path, env.root / "dir.yaml") == 2
        await asyncio.to_thread(env.start_hub)
        await asyncio.to_thread(wait_for, lambda: env.agent_health("S01")["catalog_version"] > 0, 20)
        # XK-003 (排水许可, 住房和城乡建设局): received 30 working days ago and accepted → long overdue → red
        late = working_days_ago(30)
        st, case = await asyncio.to_thread(env.register, "S01", "XK-003", received_at=at(late, 9).isoformat())
        assert st == 201
        await asyncio.to_thread(env.event, "S01", case["case_no"], "accept", at=at(late, 10).isoformat())

        def by_phone() -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for r in list(gw.received):
                out.setdefault(r["json"]["mobile"], []).append(r["json"]["content"])
            return out

        def all_sent() -> bool:  # a red card to handler and head, and the head's 督办 notice
            texts = by_phone()
            red = [t for ts in texts.values() for t in ts if "亮红牌" in t]
            return len(red) >= 2 and any("责令说明理由" in t for t in texts.get("13800138000", []))

        for _ in range(200):  # up to 20 s, over as soon as the three messages are in
            if all_sent():
                break
            await asyncio.sleep(0.1)
        by_phone = by_phone()
        assert set(by_phone) == {"13800138000", "13900139000"}
        red = [t for texts in by_phone.values() for t in texts if "亮红牌" in t]
        assert len(red) == 2 and all(case["case_no"] in t and "排水许可" in t for t in red)
        assert any("责令说明理由" in t for t in by_phone["13800138000"])  # the ticket notice to the head
        await asyncio.sleep(1.0)
        n = len(gw.received)
        assert n == 3, by_phone  # and nothing else: no duplicate, no stray yellow

        # a restart sends nothing twice: restart, then wait for a positive sign that the new
        # hub process swept and delivered (a second case's red card and notice arrive), and only
        # then count; the first case's three messages must still be three
        await asyncio.to_thread(env.hub.stop)
        await asyncio.to_thread(env.start_hub)
        st, case2 = await asyncio.to_thread(env.register, "S01", "XK-003", received_at=at(late, 9).isoformat())
        assert st == 201
        await asyncio.to_thread(env.event, "S01", case2["case_no"], "accept", at=at(late, 10).isoformat())

        def about(case_no: str) -> list[str]:
            return [r["json"]["content"] for r in list(gw.received) if case_no in r["json"]["content"]]

        for _ in range(300):  # up to 30 s, over when the second case's red cards are in
            if len([t for t in about(case2["case_no"]) if "亮红牌" in t]) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len([t for t in about(case2["case_no"]) if "亮红牌" in t]) == 2, gw.received
        assert len(about(case["case_no"])) == len([t for ts in by_phone.values() for t in ts if case["case_no"] in t])
        assert sum("亮红牌" in t for t in about(case["case_no"])) == 2
    finally:
        await gw.stop()
