"""Real browser (headless Chromium): a supervisor logs in and sees the wall; a citizen looks up
progress and sees no personal data."""

from __future__ import annotations

from tests.browser import Browser
from tests.e2e.harness import at, working_days_ago


async def test_supervisor_wall_and_citizen_lookup(env, tmp_path):
    import asyncio

    from tests.e2e.harness import wait_for

    await asyncio.to_thread(wait_for, lambda: env.agent_health("S01")["catalog_version"] > 0, 20)
    late = at(working_days_ago(30), 9).isoformat()  # long overdue by now → red
    st, red = await asyncio.to_thread(env.register, "S01", "XK-003", received_at=late)
    assert st == 201
    await asyncio.to_thread(env.event, "S01", red["case_no"], "accept", at=late)
    st, fresh = await asyncio.to_thread(env.register, "S01", "XK-001")
    await asyncio.to_thread(env.wait_synced, "S01")
    # a back-entered case (补录) is judged after the hub's grace time, then it is red
    await asyncio.to_thread(
        wait_for,
        lambda: env.hub_get(f"/api/cases/{red['case_no']}")["light"] == "red",
        30,
        0.2,
        "the back-entered case judged red",
    )

    async with Browser() as b:
        await b.goto(f"{env.hub_url}/")
        await b.wait_for(
            "location.pathname === '/login' && document.querySelector('input[name=password]') !== null"
        )  # no cookie → login page
        await b.eval(
            f"document.querySelector('input[name=login]').value = {env.login!r};"
            "document.querySelector('input[name=password]').value = 'wrong-password'; document.forms[0].submit(); 1"
        )
        await b.wait_for("getComputedStyle(document.getElementById('bad')).display === 'block'")
        await b.eval(
            f"document.querySelector('input[name=login]').value = {env.login!r};"
            f"document.querySelector('input[name=password]').value = {env.password!r}; document.forms[0].submit(); 1"
        )
        await b.wait_for(f"document.querySelector('tr[data-case=\"{fresh['case_no']}\"]') !== null")
        rows = await b.eval(
            "[...document.querySelectorAll('#cases tbody tr')].map(r => [r.dataset.case, r.dataset.light])"
        )
        assert rows[0] == [red["case_no"], "red"]  # worst first
        assert [fresh["case_no"], "green"] in rows
        text = await b.eval("document.body.innerText")
        assert await b.eval("document.getElementById('n-red').textContent") == "1"
        assert "S01便民服务中心" in text and "在线" in text
        await b.screenshot(tmp_path / "wall.png")

        await b.goto(f"{env.hub_url}/public")
        await b.eval(
            f"document.getElementById('case_no').value = {red['case_no']!r};"
            f"document.getElementById('code').value = {red['query_code']!r};"
            "document.querySelector('#f button').click(); 1"
        )
        shown = await b.wait_for(
            "document.getElementById('result').innerText.includes('当前状态') && "
            "document.getElementById('result').innerText"
        )
        assert "已受理" in shown and "排水许可" in shown and "受理" in shown
        assert "张三" not in shown and "13800000000" not in shown
        await b.eval(
            "document.getElementById('code').value = '12345678'; document.querySelector('#f button').click(); 1"
        )
        await b.wait_for("document.getElementById('result').innerText.includes('未找到')")
    assert (tmp_path / "wall.png").stat().st_size > 10_000


async def test_operator_loads_next_year_on_the_calendar_page(env):
    async with Browser() as b:
        await b.goto(f"{env.hub_url}/login")
        await b.eval(
            f"document.querySelector('input[name=login]').value = {env.login!r};"
            f"document.querySelector('input[name=password]').value = {env.password!r}; document.forms[0].submit(); 1"
        )
        await b.wait_for("location.pathname === '/'")
        await b.goto(f"{env.hub_url}/calendar")
        await b.wait_for("document.querySelectorAll('#years tbody tr').length === 3")  # 2024-2026 seeded
        await b.eval("""
            document.getElementById('year').value = '2027';
            document.getElementById('source').value = '国办发明电〔2026〕测试';
            document.getElementById('actor').value = '张监察';
            document.getElementById('holidays').value = '2027-01-01\\n2027-02-06~2027-02-12';
            document.getElementById('workdays').value = '2027-01-31';
            document.querySelector('#f button').click(); 1""")
        msg = await b.wait_for("document.getElementById('msg').textContent")
        assert "已载入 2027" in msg, msg
        await b.wait_for("document.querySelectorAll('#years tbody tr').length === 4")
        row = await b.eval("document.querySelector('#years tbody tr:last-child').innerText")
        assert "2027" in row and "8" in row  # 1 + 7 holidays
        log = await b.eval("document.querySelector('#log tbody').innerText")
        assert "api:张监察" in log
        # a bad table is refused with the reason
        await b.eval(
            "document.getElementById('workdays').value = '2027-01-05'; document.querySelector('#f button').click(); 1"
        )
        msg = await b.wait_for(
            "document.getElementById('msg').textContent.includes('失败') && document.getElementById('msg').textContent"
        )
        assert "2027-01-05" in msg
        # the header names the account; its 退出 button ends the session (the next API call is 401)
        await b.wait_for("document.getElementById('logout') !== null")
        assert env.login in await b.eval("document.getElementById('account').textContent")
        await b.eval("document.getElementById('logout').click(); 1")
        await b.wait_for("location.pathname === '/login'")
        status = await b.eval("fetch('/api/me').then(r => r.status)")
        assert status == 401
