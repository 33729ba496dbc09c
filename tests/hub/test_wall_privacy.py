"""The wall (/api/cases, fetched every 3 s) carries no personal data; the single case keeps it
for an operator. Codes come with their Chinese labels."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.hub.hubapp import close, provisioned_hub, served

REG = {
    "case_no": "S01-20261120-0001",
    "applicant": {"name": "张三", "id_no": "140702199001011234", "phone": "13800000000"},
    "window": "1",
    "clerk": "李四",
    "item": {"code": "XK-001", "name": "排水许可"},
}


@pytest.fixture
def hub(tmp_path, store_url):
    h = provisioned_hub(tmp_path / "hub", sites=("S01",), store_url=store_url)
    with h.conn:
        h.conn.execute(
            "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, "
            "reg_seq, reg_json, status, light, violations) VALUES (?, 'S01', 'XK-001', '排水许可', '住建局', "
            "'QC123456', '2026-11-20T09:00:00+08:00', 1, ?, 'accepted', 'red', ?)",
            (REG["case_no"], json.dumps(REG, ensure_ascii=False), json.dumps(["acceptance_timeout"])),
        )
    yield h
    close(h)


def test_wall_list_has_no_personal_data_but_the_case_view_does(hub):
    token = hub.cfg.api.admin_token

    async def go():
        async with served(hub) as (url, _app), aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
            async with s.get(url + "/api/cases?limit=300&order=urgency") as r:
                listed = await r.text()
            async with s.get(url + f"/api/cases/{REG['case_no']}") as r:
                one = await r.json()
            return listed, one

    listed, one = asyncio.run(go())
    for secret in ("140702199001011234", "13800000000", "张三", "QC123456"):
        assert secret not in listed
    case = json.loads(listed)["cases"][0]
    assert case["status_zh"] == "已受理" and case["light_zh"] == "红牌"
    assert case["violations"] == ["acceptance_timeout"] and case["violations_zh"] == ["逾期未受理（视为受理）"]
    assert one["applicant"] == REG["applicant"]  # the operator's single-case view keeps it
    assert "query_code" not in one
