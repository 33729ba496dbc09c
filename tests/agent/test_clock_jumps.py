"""Clock jumps (issue 8): the box's clock quality says what is true, the hub's time corrects a
jumped clock, and case numbers never carry a wrong date. Time is injected (no sleeping, no
time-machine): `FakeTime` drives the wall and monotonic clocks of BoxClock."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from agent.clock import BoxClock
from agent.store import AgentStore
from hub import store as hubdb
from hub.clockcheck import clock_findings, clock_suspect_cases, flag_clock
from protocol.calendar import CST
from protocol.models import KIND_CASE_REGISTERED, CaseRegistered, CatalogItem, NewCase, NewEvent
from protocol.records import GENESIS, Record, decode_record

ITEM = CatalogItem(
    code="XK-001",
    name="食品经营许可",
    department="市场监督管理局",
    item_type="licensing",
    case_type="promised",
    legal_days=20,
    promised_days=10,
)
TRUE0 = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday morning
DAY_S = 86_400
BOOT = "boot-a"


class FakeTime:
    """The true time, the system clock (true + skew) and the monotonic clock."""

    def __init__(self, start: datetime = TRUE0):
        self.true_ms = int(start.timestamp() * 1000)
        self.skew_ms = 0
        self.mono = 5_000 * 10**9

    def advance(self, seconds: float) -> None:
        self.true_ms += int(seconds * 1000)
        self.mono += int(seconds * 1e9)

    def jump(self, seconds: float) -> None:
        """Someone (or fake-hwclock, or NTP) sets the system clock."""
        self.skew_ms += int(seconds * 1000)

    def wall_ns(self) -> int:
        return (self.true_ms + self.skew_ms) * 1_000_000

    def mono_ns(self) -> int:
        return self.mono

    def true(self) -> datetime:
        return datetime.fromtimestamp(self.true_ms / 1000, CST)

    def clock(self, tmp_path, boot: str = BOOT) -> BoxClock:
        return BoxClock(tmp_path / "no-ntp-flag", force="", wall_ns=self.wall_ns, mono_ns=self.mono_ns, boot_id=boot)


def _store(path, clock) -> AgentStore:
    s = AgentStore(path, "S01", clock=clock)
    if s.config_version("catalog") == 0:
        s.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"raw")
    return s


def _register(s: AgentStore, clock: BoxClock) -> dict:
    """As the clerk API does: `now` is the box clock's best-known time (agent/app.py)."""
    return s.register(NewCase(item_code="XK-001", applicant={"name": "李四"}), clock.now())


def _last(s: AgentStore) -> Record:
    return decode_record(s.read_log(s.head_seq, s.head_seq)[0])


def _restart(s: AgentStore, ft: FakeTime, tmp_path, *, record_anchor: bool = True):
    """Stop and start the agent: a new BoxClock, the store reopened, the floor set from the log
    (agent/app.py; with the newest record's monotonic time and boot id when `record_anchor`)."""
    path = s.path
    s.close()
    clock = ft.clock(tmp_path)
    s2 = _store(path, clock)
    if record_anchor:
        last = _last(s2)
        clock.set_floor(last.wall_ms, last.mono_ns, last.boot_id)
    elif (last_ms := s2.last_wall_ms()) is not None:
        clock.set_floor(last_ms)
    return s2, clock


def _close_to(ms: int, when: datetime, slack_s: float = 5) -> bool:
    return abs(ms - when.timestamp() * 1000) <= slack_s * 1000


# -- +1 day -------------------------------------------------------------------------------------
def test_plus_one_day_jump_says_untrusted_and_numbers_by_the_hubs_time(tmp_path):
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    clock.observe_hub_time(ft.true_ms)  # an ack: the hub agrees with us
    c1 = _register(s, clock)
    assert _last(s).clock == "hub" and c1["case_no"] == "S01-20261120-0001"

    ft.advance(60)
    ft.jump(+DAY_S)  # the system clock jumps a day ahead
    assert clock.quality() == "untrusted"
    assert abs(clock.jump_s() - DAY_S) < 5
    c2 = _register(s, clock)
    rec = _last(s)
    assert rec.clock == "untrusted"  # not `hub` any more
    assert _close_to(rec.wall_ms, ft.true())  # the record carries the hub-corrected time
    assert c2["case_no"] == "S01-20261120-0002"  # the true date, numbering continues
    assert datetime.fromisoformat(c2["received_at"]).date() == ft.true().date()
    assert "时钟跳变" in clock.problem()

    ft.advance(300)
    clock.observe_hub_time(ft.true_ms)  # the next ack: still a day off, still corrected
    assert clock.quality() == "untrusted" and _close_to(clock.wall_ms(), ft.true())
    assert abs(clock.hub_offset_s + DAY_S) < 5


def test_plus_one_day_jump_offline_keeps_the_time_before_the_jump(tmp_path):
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    _register(s, clock)
    ft.advance(3600)
    ft.jump(+DAY_S)  # no hub, no NTP: the monotonic clock decides
    c = _register(s, clock)
    assert c["case_no"] == "S01-20261120-0002"
    assert _close_to(_last(s).wall_ms, ft.true()) and _last(s).clock == "untrusted"
    ft.advance(2 * 3600)
    assert _close_to(clock.wall_ms(), ft.true())  # continued with the monotonic clock


def test_clock_coming_back_is_trusted_again(tmp_path):
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    clock.observe_hub_time(ft.true_ms)
    ft.jump(+DAY_S)
    assert clock.quality() == "untrusted"
    ft.advance(600)
    ft.jump(-DAY_S)  # an operator (or NTP) sets it right
    assert clock.quality() == "hub" and clock.jump_s() is None and clock.problem() is None
    assert _close_to(clock.wall_ms(), ft.true())


# -- back and restart ---------------------------------------------------------------------------
def test_jump_back_and_restart_numbers_by_the_true_date(tmp_path):
    """The audit: +1 day, cases registered, the clock came back, the agent restarted, and the box
    went on numbering a day ahead (the log's jumped times held the clock ahead)."""
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    clock.observe_hub_time(ft.true_ms)
    _register(s, clock)
    ft.advance(60)
    ft.jump(+DAY_S)
    for _ in range(3):
        _register(s, clock)
    assert _last(s).wall_ms < ft.true_ms + 60_000  # the log never holds the jumped time
    ft.advance(600)
    ft.jump(-DAY_S)  # the clock comes back ...
    s, clock = _restart(s, ft, tmp_path, record_anchor=False)  # ... and the agent restarts (app.py today)
    c = _register(s, clock)
    assert c["case_no"] == "S01-20261120-0005"
    assert clock.quality() == "untrusted"  # no NTP, no ack yet: honest, but not behind
    assert not clock.is_behind()


def test_restart_while_still_ahead_is_found_against_the_last_record(tmp_path):
    """Same boot: the newest record's monotonic time shows the clock jumped while the agent was down."""
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    _register(s, clock)
    ft.advance(120)
    ft.jump(+DAY_S)  # while the agent is stopped
    s, clock = _restart(s, ft, tmp_path)
    c = _register(s, clock)
    assert c["case_no"] == "S01-20261120-0002" and _last(s).clock == "untrusted"
    assert _close_to(_last(s).wall_ms, ft.true())


def test_restart_after_a_backward_jump_is_found_against_the_log(tmp_path):
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    _register(s, clock)
    ft.advance(120)
    ft.jump(-DAY_S)
    for anchor in (False, True):  # floor only (other boot) / same boot
        s, clock = _restart(s, ft, tmp_path, record_anchor=anchor)
        assert clock.quality() == "untrusted"
        assert clock.wall_ms() >= _last(s).wall_ms  # never behind the log ...
        assert clock.now().date() == ft.true().date()  # ... so not yesterday
    assert _close_to(clock.wall_ms(), ft.true())  # same boot: the downtime is counted too


def test_a_counter_left_for_a_later_day_does_not_move_todays_numbers(tmp_path):
    """A box that ran a day ahead (before this fix) left tomorrow's counter and records dated
    tomorrow in its log. Once the hub's time is known, today's cases are numbered today; when
    tomorrow comes, its numbers continue after those (no duplicates)."""
    ft = FakeTime()
    ahead = BoxClock(
        tmp_path / "no", force="hub", wall_ns=lambda: ft.wall_ns() + DAY_S * 10**9, mono_ns=ft.mono_ns, boot_id=BOOT
    )  # the old behaviour: the raw jumped clock
    s = _store(tmp_path / "a.db", ahead)
    for _ in range(2):
        _register(s, ahead)  # S01-20261121-0001, -0002
    s, clock = _restart(s, ft, tmp_path, record_anchor=False)
    assert clock.is_behind()  # offline, the log's (wrong) floor holds ...
    assert clock.quality() == "untrusted"
    clock.observe_hub_time(ft.true_ms)  # ... until the hub's time is known
    assert not clock.is_behind()
    assert _register(s, clock)["case_no"] == "S01-20261120-0001"
    ft.advance(DAY_S)
    clock.observe_hub_time(ft.true_ms)
    assert _register(s, clock)["case_no"] == "S01-20261121-0003"


# -- -1 day while running ------------------------------------------------------------------------
def test_minus_one_day_jump_while_running_is_clamped(tmp_path):
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    c = _register(s, clock)
    ft.advance(60)
    ft.jump(-DAY_S)
    assert clock.quality() == "untrusted"
    assert _close_to(clock.wall_ms(), ft.true())  # clamped: continued, not yesterday
    c2 = _register(s, clock)
    assert c2["case_no"] == "S01-20261120-0002"
    v = s.add_event(c["case_no"], NewEvent(type="accept"), clock.now())
    assert datetime.fromisoformat(v["events"][-1]["at"]).date() == ft.true().date()
    assert _last(s).clock == "untrusted" and _close_to(_last(s).wall_ms, ft.true())


def test_store_defaults_to_its_clocks_best_time(tmp_path):
    ft = FakeTime()
    clock = ft.clock(tmp_path)
    s = _store(tmp_path / "a.db", clock)
    ft.advance(30)
    ft.jump(+DAY_S)
    c = s.register(NewCase(item_code="XK-001", applicant={"name": "王五"}))  # no `now` given
    assert c["case_no"] == "S01-20261120-0001"
    v = s.add_event(c["case_no"], NewEvent(type="accept"))
    assert datetime.fromisoformat(v["events"][-1]["at"]).date() == ft.true().date()


# -- NTP ------------------------------------------------------------------------------------------
def test_a_jump_explained_by_an_ntp_sync_is_accepted(tmp_path):
    """After a power cut fake-hwclock sets an old time; NTP then jumps it forward: that is a fix."""
    ft = FakeTime()
    ft.jump(-3 * DAY_S)  # fake-hwclock's old time
    flag = tmp_path / "synchronized"
    clock = BoxClock(flag, force="", wall_ns=ft.wall_ns, mono_ns=ft.mono_ns, boot_id=BOOT)
    assert clock.quality() == "untrusted"
    ft.advance(40)
    ft.jump(+3 * DAY_S)  # timesyncd steps the clock ...
    flag.touch()
    os.utime(flag, ns=(ft.wall_ns(), ft.wall_ns()))  # ... and touches its flag
    ft.advance(1)
    assert clock.quality() == "ntp" and clock.jump_s() is None
    assert _close_to(clock.wall_ms(), ft.true())
    ft.advance(60)
    ft.jump(+DAY_S)  # a later manual jump is not NTP's
    assert clock.quality() == "untrusted" and _close_to(clock.wall_ms(), ft.true())


# -- the hub --------------------------------------------------------------------------------------
def _reg_record(seq: int, received_at: datetime, clock: str, wall_ms: int) -> Record:
    body = CaseRegistered(
        case_no=f"S01-{received_at:%Y%m%d}-{seq:04d}",
        query_code="12345678",
        item=ITEM.model_dump(
            include={"code", "name", "department", "item_type", "case_type", "legal_days", "promised_days"}
        ),
        applicant={"name": "李四"},
        received_at=received_at,
    )
    return Record(
        seq=seq,
        prev=GENESIS,
        kind=KIND_CASE_REGISTERED,
        wall_ms=wall_ms,
        mono_ns=1,
        boot_id=BOOT,
        clock=clock,
        body=body.model_dump(mode="json"),
    )


def test_hub_flags_untrusted_and_future_dated_cases(tmp_path):
    now = TRUE0
    now_ms = int(now.timestamp() * 1000)
    ok = _reg_record(1, now, "hub", now_ms)
    untrusted = _reg_record(2, now, "untrusted", now_ms)  # a corrected box after a jump
    tomorrow = now + timedelta(days=1)  # an unclamped clock: "tomorrow"
    ahead = _reg_record(3, tomorrow, "hub", now_ms + DAY_S * 1000)
    f = clock_findings([ok, untrusted, ahead], now_ms)
    assert f.untrusted == [2] and f.untrusted_cases == [untrusted.body["case_no"]]
    assert f.ahead_cases == [ahead.body["case_no"]] and f.ahead_ms >= DAY_S * 1000 - 1000
    assert clock_findings([ok], now_ms).ahead_cases == [] and not clock_findings([ok], now_ms).untrusted

    conn = hubdb.open_db(tmp_path / "hub.db")
    alerts = []
    for _ in range(2):  # the ingestor's _alert_once repeats nothing within the hour; we just record
        flag_clock(conn, "S01", [ok, untrusted, ahead], now_ms, lambda *a: alerts.append(a))
    kinds = {(a[2], a[3]) for a in alerts}
    assert kinds == {("clock_untrusted", "yellow"), ("clock_ahead", "red")}
    assert any(ahead.body["case_no"] in a[4] for a in alerts if a[2] == "clock_ahead")
    assert dict(conn.execute("SELECT name, value FROM counters WHERE name LIKE 'records_clock%'")) == {
        "records_clock_untrusted": 2,
        "records_clock_ahead": 2,
    }

    for rec in (ok, untrusted, ahead):  # as ingest stores them: records + case rows
        conn.execute(
            "INSERT INTO records(site, seq, hash, prev, kind, wall_ms, clock, received_ms, data) "
            "VALUES ('S01', ?, ?, ?, ?, ?, ?, ?, x'00')",
            (rec.seq, bytes([rec.seq]), rec.prev, rec.kind, rec.wall_ms, rec.clock, now_ms),
        )
        hubdb.insert_registration(conn, "S01", rec.seq, CaseRegistered.model_validate(rec.body))
    assert clock_suspect_cases(conn, "S01") == {untrusted.body["case_no"]: "untrusted", ahead.body["case_no"]: "ahead"}


def test_a_clock_set_back_by_hand_after_an_ntp_sync_is_not_taken_for_ntp(tmp_path):
    """timesyncd synced 10 minutes ago (its flag file's mtime); then someone sets the clock back
    a day. The flag was not touched again, so this is no NTP step: untrusted, true time kept."""
    import os

    ft = FakeTime()
    flag = tmp_path / "synchronized"
    flag.write_text("")
    ft.advance(600)
    synced = (ft.true_ms - 600_000) / 1000
    os.utime(flag, (synced, synced))
    clock = BoxClock(flag, force="", wall_ns=ft.wall_ns, mono_ns=ft.mono_ns, boot_id=BOOT)
    ft.advance(60)
    assert clock.quality() == "ntp"
    ft.jump(-86400)
    ft.advance(1)
    assert clock.quality() == "untrusted"
    assert abs((clock.now() - ft.true()).total_seconds()) < 5
    ft.advance(3600)
    assert clock.quality() == "untrusted" and abs((clock.now() - ft.true()).total_seconds()) < 5
    # a real NTP step: timesyncd sets the clock right and touches the flag
    ft.jump(+86400)
    now = ft.true_ms / 1000
    os.utime(flag, (now, now))
    ft.advance(1)
    assert clock.quality() == "ntp" and abs((clock.now() - ft.true()).total_seconds()) < 5
