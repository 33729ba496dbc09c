"""Supervision through the real hub API: a red card opens a 督办 ticket; the department replies
with its own token; a supervisor rejects → escalation. A new year's calendar loaded on the
dashboard API turns provisional deadlines final and reaches the agents, signed."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

import yaml

from hub.admin import import_catalog
from protocol.calendar import default_calendar
from tests import calendar_reference as ref
from tests.e2e.harness import at, http, today, wait_for, working_days_ago

DEPT_TOKEN = "dept-token-market-0123456789"


def _with_department_token(env):
    env.hub.stop()
    path = env.root / "hub.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["api"]["department_tokens"] = {"市场监督管理局": DEPT_TOKEN}
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    env.start_hub()


def test_red_card_ticket_reply_review_escalate(env):
    _with_department_token(env)
    wait_for(lambda: env.agent_health("S01")["catalog_version"] > 0, 20)
    late = working_days_ago(30)  # promised 10 working days: long overdue by now → red
    years = {today().year}  # the 发文字号 carries the year the hub issues it in
    st, case = env.register("S01", "XK-001", received_at=at(late, 9).isoformat())
    assert st == 201
    assert env.event("S01", case["case_no"], "accept", at=at(late, 10).isoformat())[0] == 201
    env.wait_synced("S01")
    tickets = wait_for(lambda: env.hub_get(f"/api/tickets?case_no={case['case_no']}"), 20, what="ticket opened")
    t = tickets[0]
    assert t["level"] == "order_explain" and t["status"] == "open" and t["department"] == "市场监督管理局"
    url = f"{env.hub_url}/api/tickets/{t['id']}"
    # the department sees its own tickets and cases only (a department account's rules, docs/accounts.md)
    st, mine = http("GET", f"{env.hub_url}/api/tickets", token=DEPT_TOKEN)
    assert st == 200 and {x["department"] for x in mine} == {"市场监督管理局"}
    st, cases = http("GET", f"{env.hub_url}/api/cases", token=DEPT_TOKEN)
    assert st == 200 and {c["department"] for c in cases["cases"]} == {"市场监督管理局"}
    assert http("GET", f"{env.hub_url}/api/sites", token=DEPT_TOKEN)[0] == 403
    assert http("POST", url + "/review", {"decision": "accept", "actor": "x"}, DEPT_TOKEN)[0] == 403
    assert http("POST", url + "/reply", {"actor": "王科长"}, DEPT_TOKEN)[0] == 422
    assert http("POST", url + "/reply", raw=b"{bad", token=DEPT_TOKEN)[0] == 400
    st, r = http("POST", url + "/reply", {"actor": "王科长", "text": "窗口人员病假，已调整"}, DEPT_TOKEN)
    assert st == 201 and r["status"] == "replied"
    assert http("POST", url + "/reply", {"actor": "王科长", "text": "again"}, DEPT_TOKEN)[0] == 409
    st, r = http("POST", url + "/review", {"decision": "reject", "actor": "监察员", "text": "理由不充分"}, env.token)
    assert st == 201 and r["status"] == "escalated"
    levels = [x["level"] for x in env.hub_get(f"/api/tickets?case_no={case['case_no']}")]
    assert levels == ["suggestion", "order_explain"]

    # the 督办通知书 and 责令说明理由通知书 were issued as numbered PDFs with the case facts
    def issued():
        docs = env.hub_get(f"/api/tickets/{t['id']}")["documents"]
        return docs if all(d["document_id"] for d in docs) else None

    docs = wait_for(issued, 60, what="documents issued")
    years.add(today().year)
    assert [d["kind"] for d in docs] == ["duban", "order_explain"]
    text = _pdf_text(env, docs[1]["document_id"])
    assert "责令说明理由通知书" in text and case["case_no"] in text and "市场监督管理局" in text
    assert any(f"〔{y}〕" in text for y in years) and "张三" not in text
    # the department may read its own documents
    st, _ = http("GET", f"{env.hub_url}/api/documents/{docs[0]['document_id']}.pdf", token=DEPT_TOKEN)
    assert st == 200
    assert http("GET", f"{env.hub_url}/api/tickets/99999999999999999999", token=env.token)[0] == 404
    assert http("GET", f"{env.hub_url}/api/cases", token="tökén-ünicode")[0] in (400, 401)  # never 500
    cards = env.hub_get("/api/cards?department=" + quote("市场监督管理局"))
    assert cards[0]["red_cards"] >= 1
    assert http("GET", f"{env.hub_url}/api/tickets/999999", token=env.token)[0] == 404


def _pdf_text(env, doc_id) -> str:
    import subprocess
    import urllib.request

    req = urllib.request.Request(
        f"{env.hub_url}/api/documents/{doc_id}.pdf", headers={"Authorization": f"Bearer {env.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"] == "application/pdf"
        pdf = r.read()
    assert pdf.startswith(b"%PDF")
    return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def test_calendar_import_recomputes_provisional_and_pushes(env):
    # an item whose promised limit reaches into a year whose holiday table is not loaded yet
    # (40 working days from today always does: the seeded years end before the suite's today)
    (env.root / "long.yaml").write_text(
        "- {code: LONG-1, name: 采矿许可, department: 自然资源局, item_type: 行政许可, case_type: 联办件,\n"
        "   legal_days: 45, promised_days: 40, yellow_days: 3}\n",
        encoding="utf-8",
    )
    import_catalog(env.root / "hub.yaml", env.root / "long.yaml")
    wait_for(lambda: env.agent_health("S01")["catalog_version"] == 2, 20, what="catalog v2 at the agent")
    st, case = env.register("S01", "LONG-1")
    assert st == 201 and env.event("S01", case["case_no"], "accept")[0] == 201
    env.wait_synced("S01")
    before = wait_for(lambda: (c := env.hub_get(f"/api/cases/{case['case_no']}"))["status"] == "accepted" and c)
    accepted = date.fromisoformat(before["events"][0]["at"][:10])
    cal = default_calendar()
    loaded_years = set(cal.years())  # which tables the hub holds (data); the dates come from the reference
    weekends_only = (ref.add_working_days(accepted, 40, years=loaded_years), True)
    assert not all(cal.is_loaded(y) for y in range(accepted.year, weekends_only[0].year + 1))
    # the operator loads every missing year up to the deadline's, with three days off on weekdays
    # between acceptance and the provisional deadline, so that loading them moves the deadline
    missing = [y for y in range(accepted.year, weekends_only[0].year + 1) if not cal.is_loaded(y)]
    tables = []
    for y in missing:
        days = [date(y, 1, 1) + timedelta(days=i) for i in range(366)]
        off = [d for d in days if d.year == y and accepted < d <= weekends_only[0] and d.weekday() < 5][:3]
        tables.append(
            {
                "year": y,
                "holidays": [d.isoformat() for d in off],
                "workdays": [],
                "source": "测试通知",
                "actor": "张监察",
            }
        )
    year = tables[-1]
    days_off = frozenset(date.fromisoformat(d) for t in tables for d in t["holidays"])
    loaded = (ref.add_working_days(accepted, 40, years=loaded_years, days_off=days_off), False)
    assert loaded[0] > weekends_only[0]
    assert before["due_provisional"] is True and before["due_date"] == weekends_only[0].isoformat()
    bad = {**year, "holidays": [f"{year['year']}-13-01"]}
    assert http("POST", f"{env.hub_url}/api/calendar", bad, env.token)[0] == 422
    for t in tables:
        st, r = http("POST", f"{env.hub_url}/api/calendar", t, env.token)
        assert st == 201 and r["year"] == t["year"]
    after = wait_for(
        lambda: (c := env.hub_get(f"/api/cases/{case['case_no']}"))["due_provisional"] is False and c,
        20,
        what="recomputed",
    )
    assert after["due_date"] == loaded[0].isoformat()
    info = env.hub_get("/api/calendar")
    assert set(missing) <= {y["year"] for y in info["years"]}
    assert info["imports"][0]["actor"] == "api:张监察" and f"year {year['year']}" in info["imports"][0]["detail"]
    wait_for(lambda: env.agent_health("S01")["calendar_version"] >= r["version"], 20, what="agent got the calendar")
    st, at_agent = http("GET", f"{env.agent_url('S01')}/api/cases/{case['case_no']}", token=env.agent_token("S01"))
    assert at_agent["due_provisional"] is False and at_agent["due_date"] == after["due_date"]
