"""Outbox + worker against a fake SMS gateway on 127.0.0.1: delivery, idempotence, retries,
rate limit, digest under a storm, leases. Time is injected; nothing sleeps."""

from __future__ import annotations

import time

import pytest

from hub.notify.outbox import counts, delivery_of, retry_failed
from hub.notify.policy import HOUR_MS
from hub.notify.templates import TemplateError
from tests.hub.notify.conftest import sms_config

YELLOW = {
    "department": "市场监督管理局",
    "case_no": "S01-20250301-0007",
    "item_name": "食品经营许可",
    "due_date": "2025-03-10",
    "remaining": 1,
}
A, B, C = "13800138000", "13900139000", "15000150000"


def rows(conn, where: str = "1 = 1", *args) -> list[dict]:
    cur = conn.execute(f"SELECT * FROM notifications WHERE {where} ORDER BY id", args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def put(n, conn, to=A, key="k1", template="yellow", facts=YELLOW, channel="sms"):
    return n.enqueue(conn, channel=channel, to=to, template=template, facts=facts, dedupe_key=key)


async def test_yellow_sms_arrives_in_chinese_with_provider_id(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway))
    nid = put(n, conn)
    assert await n.run_once() == 1
    [req] = gateway.received
    assert req["json"]["mobile"] == A and req["json"]["uid"] == str(nid) and req["json"]["sign"] == "电子监察"
    assert req["json"]["content"] == (
        "【电子监察】市场监督管理局：办件S01-20250301-0007（食品经营许可）"
        "将于2025-03-10到期，剩余1个工作日，请及时办理。"
    )
    [row] = rows(conn)
    assert (row["status"], row["attempts"], row["provider_id"], row["last_error"]) == ("sent", 1, "M1", None)
    assert await n.run_once() == 0 and len(gateway.received) == 1


async def test_enqueue_joins_the_callers_transaction(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway))
    conn.execute("BEGIN IMMEDIATE")
    put(n, conn, key="rolled-back")
    conn.execute("ROLLBACK")
    assert rows(conn) == []
    conn.execute("BEGIN IMMEDIATE")
    put(n, conn, key="kept")
    conn.execute("COMMIT")
    assert [r["dedupe_key"] for r in rows(conn)] == ["kept"]


async def test_dedupe_key_makes_a_retried_sweep_send_once(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway))
    assert put(n, conn, key="case:7:yellow") is not None
    await n.run_once()
    assert put(n, conn, key="case:7:yellow") is None  # the sweep ran again after a crash
    await n.run_once()
    assert len(gateway.received) == 1 and len(rows(conn)) == 1


@pytest.mark.parametrize(
    "kw, err",
    [
        ({"to": "1380013800"}, "mainland mobile"),
        ({"template": "green"}, "template must be one of"),
        ({"facts": {"case_no": "X"}}, "needs fact(s) department, due_date, item_name, remaining"),
        ({"channel": "email", "to": "not-an-address"}, "not an e-mail address"),
        ({"channel": "fax"}, "channel must be"),
    ],
)
async def test_enqueue_refuses_bad_input(db, gateway, make_notifier, kw, err):
    n = make_notifier(sms_config(gateway))
    with pytest.raises((ValueError, TemplateError), match=err.replace("(", r"\(").replace(")", r"\)")):
        put(n, db[1], **kw)
    assert rows(db[1]) == []


async def test_transient_failures_retry_with_exponential_backoff(db, gateway, make_notifier, clock):
    _, conn = db
    gateway.fail_next = 2
    n = make_notifier(sms_config(gateway, backoff_s=10))  # rand() = 1.0 → full delay
    put(n, conn)
    t0 = clock.now
    assert await n.run_once() == 1
    [r] = rows(conn)
    assert (r["status"], r["attempts"], r["next_attempt_ms"]) == ("queued", 1, t0 + 10_000)
    assert "HTTP 500" in r["last_error"]
    clock.advance(9_999)
    assert await n.run_once() == 0  # not due yet
    clock.advance(1)
    assert await n.run_once() == 1
    assert rows(conn)[0]["next_attempt_ms"] == clock.now + 20_000
    clock.advance(20_000)
    assert await n.run_once() == 1
    [r] = rows(conn)
    assert (r["status"], r["attempts"], r["last_error"]) == ("sent", 3, None)
    assert len(gateway.received) == 3


async def test_gives_up_after_max_attempts_and_records_why(db, gateway, make_notifier, clock):
    _, conn = db
    gateway.always_error = True
    n = make_notifier(sms_config(gateway, max_attempts=3, backoff_s=1))
    put(n, conn)
    for _ in range(5):
        await n.run_once()
        clock.advance(60_000)
    [r] = rows(conn)
    assert (r["status"], r["attempts"]) == ("failed", 3)
    assert "code=40001" in r["last_error"] and "余额不足" in r["last_error"]
    assert len(gateway.received) == 3
    assert retry_failed(conn, now_ms=clock.now) == 1  # operator fixed the account
    gateway.always_error = False
    await n.run_once()
    assert rows(conn)[0]["status"] == "sent"


async def test_permanent_http_error_fails_at_once(db, gateway, make_notifier):
    _, conn = db
    gateway.fail_next, gateway.fail_status = 1, 400
    n = make_notifier(sms_config(gateway))
    put(n, conn)
    await n.run_once()
    assert rows(conn)[0]["status"] == "failed" and rows(conn)[0]["attempts"] == 1


async def test_slow_gateway_times_out_and_is_retried(db, gateway, make_notifier):
    _, conn = db
    gateway.delay_s = 1.0
    n = make_notifier(sms_config(gateway, sms={"timeout_s": 0.1}))
    put(n, conn)
    await n.run_once()
    [r] = rows(conn)
    assert r["status"] == "queued" and "timed out" in r["last_error"]


async def test_rate_limit_defers_the_rest_to_the_next_hour(db, gateway, make_notifier, clock):
    _, conn = db
    n = make_notifier(sms_config(gateway, rate_per_hour=3, digest_threshold=100))
    for i in range(5):
        put(n, conn, key=f"k{i}", facts={**YELLOW, "case_no": f"C{i}"})
    put(n, conn, to=B, key="other")  # another recipient is not held up
    t0 = clock.now
    assert await n.run_once() == 4
    assert [r["status"] for r in rows(conn, "to_addr=?", A)] == ["sent"] * 3 + ["queued"] * 2
    assert {r["next_attempt_ms"] for r in rows(conn, "status='queued'")} == {t0 + HOUR_MS}
    clock.advance(HOUR_MS - 1)
    assert await n.run_once() == 0
    clock.advance(1)
    assert await n.run_once() == 2
    assert counts(conn)["sent"] == 6


async def test_storm_of_1000_becomes_one_digest_per_recipient(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway, digest_threshold=5))
    conn.execute("BEGIN IMMEDIATE")  # one sweep turns 1,000 cases yellow
    for i in range(1000):
        put(n, conn, to=(A, B, C)[i % 3], key=f"case:{i}:yellow", facts={**YELLOW, "case_no": f"S01-{i:04d}"})
    conn.execute("COMMIT")
    assert await n.run_once() == 3
    assert sorted(r["json"]["mobile"] for r in gateway.received) == sorted([A, B, C])
    by_to = {r["json"]["mobile"]: r["json"]["content"] for r in gateway.received}
    assert by_to[A].startswith("【电子监察】您有334件办件即将到期或已超期：S01-0000（食品经营许可，2025-03-10到期）；")
    assert by_to[A].count("；") == 4 and "等334件" in by_to[A]
    assert "您有333件" in by_to[B] and "您有333件" in by_to[C]
    assert counts(conn) == {"queued": 0, "sending": 0, "sent": 3, "failed": 0, "merged": 1000}
    first = delivery_of(conn, 1)
    assert first["status"] == "merged" and first["digest"]["status"] == "sent"
    assert await n.run_once() == 0 and len(gateway.received) == 3


async def test_a_few_messages_are_sent_singly(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway, digest_threshold=3))
    for i in range(3):
        put(n, conn, key=f"k{i}")
    assert await n.run_once() == 3
    assert all("您有" not in t for t in gateway.texts())


async def test_rate_limited_digest_absorbs_later_messages(db, gateway, make_notifier, clock):
    _, conn = db
    n = make_notifier(sms_config(gateway, rate_per_hour=1, digest_threshold=2))
    put(n, conn, key="first")
    await n.run_once()  # uses the hour's only slot
    for i in range(3):
        put(n, conn, key=f"a{i}", template="red", facts={**YELLOW, "case_no": f"R{i}"})
    await n.run_once()  # 3 > 2 → digest, but rate-limited
    clock.advance(60_000)
    for i in range(2):
        put(n, conn, key=f"b{i}", facts={**YELLOW, "case_no": f"Y{i}"})
    await n.run_once()  # old digest folded into a new one
    digests = rows(conn, "template='digest'")
    assert [d["status"] for d in digests] == ["merged", "queued"]
    assert len(rows(conn, "merged_into=?", digests[1]["id"])) == 6  # 5 cases + the old digest
    put(n, conn, key="c0", facts={**YELLOW, "case_no": "Z0"})
    await n.run_once()  # and again: the digest rows are not counted
    assert len(rows(conn, "template='digest' AND status='queued'")) == 1
    clock.advance(HOUR_MS)
    assert await n.run_once() == 1
    text = gateway.texts()[-1]
    assert "您有6件" in text and "；；" not in text and text.index("R0") < text.index("Y0")  # red first
    assert delivery_of(conn, rows(conn, "dedupe_key='a0'")[0]["id"])["digest"]["status"] == "sent"


async def test_expired_lease_is_retried_and_a_live_one_is_not(db, gateway, make_notifier, clock):
    from hub.notify.outbox import claim

    _, conn = db
    n = make_notifier(sms_config(gateway, lease_s=60))
    put(n, conn)
    claimed = claim(n._db(), now_ms=clock.now, channels=["sms"], cfg=n.config, templates=n.templates)
    assert len(claimed) == 1 and rows(conn)[0]["status"] == "sending"  # ... and the worker dies here
    clock.advance(59_999)
    assert await n.run_once() == 0
    clock.advance(1)
    assert await n.run_once() == 1
    [r] = rows(conn)
    assert (r["status"], r["attempts"]) == ("sent", 2)


async def test_expired_lease_at_max_attempts_is_failed(db, gateway, make_notifier, clock):
    from hub.notify.outbox import claim

    _, conn = db
    n = make_notifier(sms_config(gateway, lease_s=60, max_attempts=1))
    put(n, conn)
    claim(n._db(), now_ms=clock.now, channels=["sms"], cfg=n.config, templates=n.templates)
    clock.advance(60_000)
    assert await n.run_once() == 0
    [r] = rows(conn)
    assert r["status"] == "failed" and "lease expired" in r["last_error"]


async def test_unconfigured_channel_waits_in_the_outbox(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway))
    put(n, conn, channel="email", to="wang@example.gov.cn")
    assert await n.run_once() == 0
    assert rows(conn)[0]["status"] == "queued"


async def test_worker_thread_wakes_and_delivers(db, gateway, make_notifier, clock):
    import asyncio

    _, conn = db
    n = make_notifier(sms_config(gateway, poll_interval_s=30))
    n.start()
    try:
        put(n, conn)
        n.wake()
        # well inside the 30 s poll interval: only the wake can have delivered it (a fixed 2 s
        # was too short on a loaded CI machine)
        deadline = time.monotonic() + 15
        while rows(conn)[0]["status"] != "sent" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert rows(conn)[0]["status"] == "sent"
    finally:
        await asyncio.to_thread(n.stop)


def _directory():
    from hub.notify.directory import Department, Directory, Person

    return Directory(
        departments=(
            Department(
                name="市场监督管理局",
                head=Person(name="王局长", phone=A, email="wang@example.gov.cn"),
                handlers=(
                    Person(name="张三", phone=B, items=("SC001",)),
                    Person(name="李四", phone=C),
                    Person(name="王局长", phone=A),
                ),
            ),
        )
    )


async def test_department_fan_out_once_per_address(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway))
    ids = n.enqueue_department(
        conn,
        _directory(),
        "市场监督管理局",
        template="red",
        facts={**YELLOW, "overdue": 1},
        dedupe_key="case:7:red",
        item_code="SC002",
    )
    assert [r["to_addr"] for r in rows(conn)] == [C, A] and len(ids) == 2  # 张三 is not on SC002
    assert rows(conn)[0]["dedupe_key"] == f"case:7:red|sms|{C}"
    again = n.enqueue_department(
        conn, _directory(), "市场监督管理局", template="red", facts={**YELLOW, "overdue": 1}, dedupe_key="case:7:red"
    )
    assert len(again) == 1 and rows(conn)[-1]["to_addr"] == B  # only the one not told yet
    heads = n.enqueue_department(
        conn,
        _directory(),
        "市场监督管理局",
        template="supervision",
        roles=("head",),
        facts={**YELLOW, "title": "督办通知", "reply_due_date": "2025-03-20"},
        dedupe_key="case:7:督办",
    )
    assert len(heads) == 1
    await n.run_once()
    assert "发出督办通知，请于2025-03-20前书面回复" in gateway.texts()[-1]


async def test_unknown_department_leaves_a_visible_failed_row(db, gateway, make_notifier):
    _, conn = db
    n = make_notifier(sms_config(gateway))
    for _ in range(2):
        assert (
            n.enqueue_department(
                conn, _directory(), "不存在局", template="yellow", facts=YELLOW, dedupe_key="case:9:yellow"
            )
            == []
        )
    [r] = rows(conn)
    assert r["status"] == "failed" and "no sms contact for department '不存在局'" in r["last_error"]
    assert r["text"].startswith("【电子监察】市场监督管理局：")  # the caller's facts name the department
    assert await n.run_once() == 0


async def test_run_loop_as_an_asyncio_task_stops_cleanly(db, gateway, make_notifier, clock):
    import asyncio

    _, conn = db
    n = make_notifier(sms_config(gateway, poll_interval_s=0.01))
    stop = asyncio.Event()
    task = asyncio.create_task(n.run(stop))
    put(n, conn)
    deadline = time.monotonic() + 15
    while not gateway.received and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    n.wake()
    await asyncio.wait_for(task, 2)
    assert rows(conn)[0]["status"] == "sent"


def test_migrations_are_named_for_notify_and_apply_once(db):
    from hub.db import SQLITE, engine
    from hub.notify.schema import MIGRATIONS
    from hub.store import all_migrations
    from iobase.sqlite import migrate

    _, conn = db
    assert all(name.startswith("notify_") for name, _ in MIGRATIONS)
    assert [m for m in all_migrations(SQLITE) if m[0].startswith("notify_")] == MIGRATIONS
    assert migrate(conn, all_migrations(engine(conn))) == []
    if engine(conn) == SQLITE:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    else:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        tables = {r[0] for r in conn.execute(sql)}
    assert {"directory", "notifications", "cases", "alerts"} <= tables


async def test_supervisor_hook_uses_the_stored_directory_and_its_names(db, gateway, make_notifier):
    from hub.notify.directory import save_directory

    _, conn = db
    n = make_notifier(sms_config(gateway))
    hook = n.supervisor_hook()
    save_directory(conn, _directory(), now_ms=1)
    conn.execute("BEGIN IMMEDIATE")  # the writer's sweep transaction
    hook(
        conn,
        "市场监督管理局",
        ["head"],
        "ticket",
        {
            "case_no": "S01-7",
            "item_name": "食品经营许可",
            "department": "市场监督管理局",
            "title": "责令说明理由",
            "reply_due": "2025-03-20",
        },
        "ticket:1",
    )
    conn.execute("COMMIT")
    [r] = rows(conn)
    assert (r["to_addr"], r["template"], r["dedupe_key"]) == (A, "supervision", f"ticket:1|sms|{A}")
    assert "发出责令说明理由，请于2025-03-20前书面回复" in r["text"]
    save_directory(conn, _directory().model_copy(update={"departments": ()}), now_ms=2)
    hook(conn, "市场监督管理局", ["head"], "red", {**YELLOW}, "red:S01-7")  # directory re-read: nobody
    assert rows(conn, "dedupe_key='red:S01-7|nobody'")[0]["status"] == "failed"


async def test_supervisor_hook_never_rolls_back_the_sweep(db, gateway, make_notifier):
    from hub.notify.directory import save_directory

    _, conn = db
    n = make_notifier(sms_config(gateway))
    save_directory(conn, _directory(), now_ms=1)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO counters(name, value) VALUES ('sweep', 1)")
    n.supervisor_hook()(conn, "市场监督管理局", ["handler", "head"], "yellow", {"case_no": "X"}, "yellow:X")
    n.supervisor_hook()(conn, "市场监督管理局", ["head"], "green", {**YELLOW}, "green:X")
    conn.execute("COMMIT")
    assert conn.execute("SELECT value FROM counters WHERE name='sweep'").fetchone() == (1,)
    bad = rows(conn)
    assert [(r["dedupe_key"], r["status"]) for r in bad] == [("yellow:X|error", "failed"), ("green:X|error", "failed")]
    assert "needs fact(s)" in bad[0]["last_error"] and "template must be one of" in bad[1]["last_error"]
