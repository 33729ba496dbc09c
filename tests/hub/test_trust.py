"""What the hub trusts from a site: exact case ownership, items only from its own signed
catalog, bounded quarantine, no personal data in logs, and supervision only on a whole history.

Everything runs in-process on the real Ingestor and a real hub database, with crafted records
sealed by the provisioned sites' own keys; the time is passed in (never today's date).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta

import pytest

from hub.config import HubConfig, Supervision
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.store import open_db
from hub.supervision import Supervisor, ticket_view
from iobase.config import load_config
from protocol import topics
from protocol.calendar import CST
from protocol.caseno import case_site, make_case_no, owned_by
from protocol.records import GENESIS, Record, encode_record, record_hash
from protocol.wire import encode_msg
from provisioning.setup import add_site, init_hub
from tests.craft import ITEM, SiteSigner, registration, trust_item

VICTIM, ATTACKER = "140702-001", "140702"  # one site code prefixes the other
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=CST)


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


class Site:
    """A site's log as its agent would write it: seq, hash chain, sealed batches."""

    def __init__(self, root, code):
        self.code, self.signer, self.seq, self.prev = code, SiteSigner(root, code), 0, GENESIS
        self.clock = "ntp"

    def records(self, *bodies: tuple[str, dict], wall: datetime | None = None) -> tuple[str, bytes]:
        """Records as written at `wall` (default: when each step happened, as a box that was
        offline writes its backlog)."""
        encs, first = [], self.seq + 1
        for kind, body in bodies:
            self.seq += 1
            at = wall or datetime.fromisoformat(body.get("received_at") or body.get("at") or NOW.isoformat())
            enc = encode_record(
                Record(
                    seq=self.seq,
                    prev=self.prev,
                    kind=kind,
                    wall_ms=int(at.timestamp() * 1000),
                    mono_ns=time.monotonic_ns(),
                    boot_id="b",
                    clock=self.clock,
                    body=body,
                )
            )
            self.prev = record_hash(enc)
            encs.append(enc)
        return topics.site_batch(self.code), self.signer.seal(encs, first)


@pytest.fixture
def hub(tmp_path, store_url):
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    for code in (VICTIM, ATTACKER, "S01"):
        add_site(root, code=code, name=code)
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    trust_item(conn)
    clock = Clock(NOW)
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None, now=clock)
    notes = []
    ing.supervisor = Supervisor(
        Supervision(),
        calendar=lambda: ing.calendar,
        notify=lambda c, dept, roles, tpl, facts, key: notes.append((tpl, facts)),
    )
    ing.root, ing.clock, ing.notes = root, clock, notes
    return ing


def reg(site: str, n: int, received: datetime = NOW, **item) -> tuple[str, dict]:
    body = registration(site, n, received)
    body["case_no"] = make_case_no(site, received.strftime("%Y%m%d"), n)
    body["item"] = {**ITEM, **item}
    return "case.registered", body


def event(case_no: str, type_: str, at: datetime, **kw) -> tuple[str, dict]:
    return "case.event", {"case_no": case_no, "type": type_, "at": at.isoformat(), **kw}


def one(conn, sql, *args):
    row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


# -- ownership ------------------------------------------------------------------------------------
def test_case_numbers_parse_to_exactly_one_site():
    assert case_site("140702-001-20261102-0001") == "140702-001"
    assert case_site("140702-20261102-0001") == "140702"
    assert owned_by("140702-001-20261102-0001", "140702-001")
    assert not owned_by("140702-001-20261102-0001", "140702")
    assert not owned_by("140702-20261102-0001", "140702-001")
    for bad in ("140702-20261102-0001\n", "140702-001", "x-2026110-0001", "", "-20261102-0001", None):
        assert case_site(bad) is None


def test_a_site_whose_code_prefixes_another_cannot_touch_its_cases(hub):
    victim, attacker = Site(hub.root, VICTIM), Site(hub.root, ATTACKER)
    hub.process_group([victim.records(reg(VICTIM, 1))])
    target = make_case_no(VICTIM, NOW.strftime("%Y%m%d"), 1)
    # the attacker withdraws the victim's case, pre-registers its next number, votes on it
    forged_next = reg(ATTACKER, 2)
    forged_next[1]["case_no"] = make_case_no(VICTIM, NOW.strftime("%Y%m%d"), 2)
    vote = (
        "vote",
        {
            "case_no": target,
            "window": "1",
            "key": "k1",
            "level": 5,
            "level_name": "非常不满意",
            "mapping_version": "keypad5-v1",
            "pressed_wall_ms": int(NOW.timestamp() * 1000),
        },
    )
    out = hub.process_group([attacker.records(event(target, "withdraw", NOW), forged_next, vote)])
    assert out.acks[ATTACKER]["acked"] == 3  # stored for completeness, never applied
    assert one(hub.conn, "SELECT status FROM cases WHERE case_no=?", target) == "received"
    assert one(hub.conn, "SELECT count(*) FROM case_events") == 0
    assert one(hub.conn, "SELECT count(*) FROM cases") == 1
    assert one(hub.conn, "SELECT count(*) FROM quarantine WHERE reason='wrong_site' AND site=?", ATTACKER) == 3
    # a supervisor is told, once for the burst (repeats only count)
    alerts = hub.conn.execute("SELECT site, light, detail FROM alerts WHERE kind='wrong_site'").fetchall()
    assert len(alerts) == 1 and alerts[0][:2] == (ATTACKER, "red") and target in alerts[0][2]
    assert one(hub.conn, "SELECT value FROM counters WHERE name='alerts_wrong_site_repeated'") == 2
    # the victim's real next case is accepted, with its own query code
    hub.process_group([victim.records(reg(VICTIM, 2))])
    assert one(hub.conn, "SELECT site FROM cases WHERE case_no=?", forged_next[1]["case_no"]) == VICTIM
    assert one(hub.conn, "SELECT count(*) FROM quarantine WHERE reason='duplicate_case_no'") == 0


# -- the item comes from the hub's signed catalog --------------------------------------------------
def test_item_details_come_from_the_signed_catalog_not_from_the_box(hub):
    s = Site(hub.root, "S01")
    version = one(hub.conn, "SELECT max(version) FROM catalog_versions")
    hub.process_group(
        [
            s.records(
                reg(
                    "S01",
                    1,
                    promised_days=20,
                    legal_days=60,
                    department="别的部门",
                    name="伪造事项",
                    catalog_version=version,
                )
            )
        ]
    )
    row = hub.conn.execute(
        "SELECT item_name, department, promised_days, legal_days, item_check, reg_json FROM cases"
    ).fetchone()
    assert row[:5] == (ITEM["name"], ITEM["department"], 10, 20, "mismatch")
    assert "伪造事项" in row[5]  # the box's claim is kept as it came
    (detail,) = [r[0] for r in hub.conn.execute("SELECT detail FROM alerts WHERE kind='item_mismatch'")]
    assert "承诺时限" in detail and "实施部门" in detail and f"第{version}版" in detail
    # deadlines use the hub's limit: accepted 11/02, promised 10 → due 2026-11-16 (not 20 days)
    hub.process_group([s.records(event("S01-20261102-0001", "accept", NOW))])
    assert one(hub.conn, "SELECT due_date FROM cases") == "2026-11-16"


def test_an_item_checked_against_the_version_the_box_names(hub):
    s = Site(hub.root, "S01")
    v1 = one(hub.conn, "SELECT max(version) FROM catalog_versions")
    trust_item(hub.conn)  # same items again: version 2
    changed = {**ITEM, "promised_days": 5}
    from hub.catalog import store_catalog
    from protocol.models import CatalogItem

    v3 = store_catalog(hub.conn, [CatalogItem.model_validate(changed)])
    hub.catalogs.cache.clear()
    # a box still on version 1 registers with the old limit: that is what version 1 said
    hub.process_group([s.records(reg("S01", 1, catalog_version=v1))])
    # a box on version 3 claiming the old limit is caught
    hub.process_group([s.records(reg("S01", 2, catalog_version=v3))])
    rows = hub.conn.execute("SELECT case_no, promised_days, item_check FROM cases ORDER BY case_no").fetchall()
    assert rows == [("S01-20261102-0001", 10, None), ("S01-20261102-0002", 5, "mismatch")]


def test_an_item_no_signed_catalog_has_is_flagged_and_never_carded(hub):
    s = Site(hub.root, "S01")
    long_ago = datetime(2026, 9, 1, 9, 0, tzinfo=CST)  # would be long overdue
    hub.process_group([s.records(reg("S01", 1, long_ago, code="XK-999", catalog_version=1))])
    row = hub.conn.execute("SELECT item_check, light, due_date FROM cases").fetchone()
    assert row == ("unknown_item", "green", None)
    assert one(hub.conn, "SELECT count(*) FROM alerts WHERE kind='item_unknown_item' AND light='red'") == 1
    hub.sweep()
    assert one(hub.conn, "SELECT count(*) FROM tickets") == 0 and hub.notes == []


# -- bounded quarantine, no personal data in logs --------------------------------------------------
def test_quarantine_is_bounded_per_site_and_counts_what_it_dropped(hub):
    hub.quarantine_site_bytes, hub.quarantine_site_rows = 10_000, 12
    junk = [(topics.site_batch("S01"), os.urandom(3000)) for _ in range(20)]
    for m in junk:
        hub.process_group([m])
    rows, stored = hub.conn.execute("SELECT count(*), sum(length(data)) FROM quarantine WHERE site='S01'").fetchone()
    assert rows == 12 and stored <= 10_000
    counters = dict(hub.conn.execute("SELECT name, value FROM counters"))
    assert counters["rejected_malformed"] == 20  # every rejection still counted
    assert counters["quarantine_rows_dropped"] == 8
    assert counters["dropped_bytes_quarantine"] == 20 * 3000 - stored
    # another site is not affected by S01's junk
    hub.process_group([(topics.site_batch(VICTIM), os.urandom(3000))])
    assert one(hub.conn, "SELECT length(data) FROM quarantine WHERE site=?", VICTIM) == 3000


def test_a_bad_registration_logs_no_personal_data(hub, caplog):
    s = Site(hub.root, "S01")
    kind, body = reg("S01", 1)
    body["applicant"] = {"id_no": "110101199003071234", "phone": "13800138000"}  # no name: invalid
    with caplog.at_level(logging.DEBUG):
        hub.process_group([s.records((kind, body))])
    detail = one(hub.conn, "SELECT detail FROM quarantine WHERE reason='bad_body'")
    assert "applicant" in detail
    text = caplog.text + detail
    for secret in ("110101199003071234", "13800138000", body["query_code"]):
        assert secret not in text


# -- supervision only on a whole history -----------------------------------------------------------
def test_a_backlog_split_over_batches_is_judged_once_on_its_whole_history(hub):
    """Received 2026-10-12, accepted 20 minutes later (no violation), promised 10 → due 10/26;
    the box comes back on 11/02 and sends registration and acceptance in separate batches."""
    s = Site(hub.root, "S01")
    received = datetime(2026, 10, 12, 9, 0, tzinfo=CST)
    case_no = make_case_no("S01", "20261012", 1)
    first = s.records(reg("S01", 1, received))
    second = s.records(event(case_no, "accept", received.replace(minute=20)))
    hub.process_group([(topics.site_state("S01"), encode_msg({"online": True, "last_seq": 2, "clock": "ntp"}))])
    hub.process_group([first])
    assert one(hub.conn, "SELECT count(*) FROM tickets") == 0 and hub.notes == []  # held: half a history
    assert one(hub.conn, "SELECT count(*) FROM alerts WHERE case_no=?", case_no) == 0
    hub.process_group([second])
    (t,) = [ticket_view(hub.conn, r[0]) for r in hub.conn.execute("SELECT id FROM tickets")]
    assert "acceptance_timeout" not in t["reason"] and "超过承诺时限" in t["reason"]
    assert one(hub.conn, "SELECT violations FROM cases") == "[]"
    assert one(hub.conn, "SELECT red_cards FROM cases") == 1
    assert [n[0] for n in hub.notes].count("red") == 1
    assert one(hub.conn, "SELECT count(*) FROM projection_held") == 0


def test_a_backlog_that_stops_arriving_releases_the_hold_with_an_alert(hub):
    s = Site(hub.root, "S01")
    received = datetime(2026, 10, 12, 9, 0, tzinfo=CST)
    hub.process_group([(topics.site_state("S01"), encode_msg({"online": True, "last_seq": 5, "clock": "ntp"}))])
    hub.process_group([s.records(reg("S01", 1, received))])
    hub.sweep()
    assert one(hub.conn, "SELECT count(*) FROM tickets") == 0
    hub.clock.t = NOW + timedelta(minutes=11)  # ten minutes without progress
    hub.sweep()
    assert one(hub.conn, "SELECT light FROM cases") == "red"
    reason = one(hub.conn, "SELECT reason FROM tickets")
    assert reason and "逾期未受理" in reason  # Chinese, never the code
    assert one(hub.conn, "SELECT count(*) FROM alerts WHERE kind='backlog_incomplete' AND site='S01'") == 1
    assert one(hub.conn, "SELECT hold_since_ms FROM sites WHERE code='S01'") is None


def test_a_back_entered_paper_case_is_judged_after_its_steps_are_entered(hub):
    """补录 while online: the registration (received 10/12) goes up at once, its acceptance
    (10/12, 20 minutes after receipt) a moment later in another batch. No acceptance_timeout
    card in between; the overdue card comes once the grace time is over."""
    s = Site(hub.root, "S01")
    received = datetime(2026, 10, 12, 9, 0, tzinfo=CST)
    case_no = make_case_no("S01", "20261012", 1)
    hub.process_group([s.records(reg("S01", 1, received), wall=NOW)])
    hub.clock.t = NOW + timedelta(minutes=1)
    hub.sweep()
    hub.process_group([s.records(event(case_no, "accept", received.replace(minute=20)), wall=hub.clock.t)])
    assert one(hub.conn, "SELECT count(*) FROM tickets") == 0 and hub.notes == []
    hub.clock.t = NOW + timedelta(minutes=29)
    hub.sweep()
    assert one(hub.conn, "SELECT light FROM cases") == "green"  # still in its grace time
    hub.clock.t = NOW + timedelta(minutes=31)
    hub.sweep()
    assert one(hub.conn, "SELECT light FROM cases") == "red"
    assert one(hub.conn, "SELECT violations FROM cases") == "[]"
    assert one(hub.conn, "SELECT reason FROM tickets") == "超过承诺时限未办结"
    assert one(hub.conn, "SELECT count(*) FROM projection_held") == 0
    # a case registered as it is received is judged at once
    hub.process_group([s.records(reg("S01", 2, hub.clock.t), wall=hub.clock.t)])
    assert one(hub.conn, "SELECT updated_ms IS NOT NULL FROM cases WHERE case_no LIKE '%-0002'") == 1


def test_empty_payloads_from_the_retained_sweep_are_ignored_not_quarantined(hub):
    hub.process_group([(topics.site_batch("S01"), b""), (topics.site_clip("S01"), b"")])
    assert one(hub.conn, "SELECT count(*) FROM quarantine") == 0
    assert one(hub.conn, "SELECT value FROM counters WHERE name='empty_payloads_ignored'") == 2


def test_quarantine_drops_show_in_metrics_as_one_family_each(hub):
    from tests.hub.hubapp import metrics_text

    hub.quarantine_site_rows = 1
    for _ in range(3):
        hub.process_group([(topics.site_batch("S01"), os.urandom(100))])
    text = metrics_text(hub.conn)
    assert 'jiancha_dropped_bytes_total{what="quarantine"} 200' in text
    assert "jiancha_quarantine_rows_dropped_total 2" in text
    families = [line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")]
    seen, previous = set(), None
    for name in families:  # Prometheus text format: a family's samples are contiguous
        assert name == previous or name not in seen, name
        seen.add(name)
        previous = name


# -- found by the attacker review -----------------------------------------------------------------
def test_an_unknown_item_stays_unjudged_after_events_and_keeps_nothing_the_box_said(hub):
    s = Site(hub.root, "S01")
    received = datetime(2026, 9, 1, 9, 0, tzinfo=CST)
    hub.process_group(
        [
            s.records(
                reg(
                    "S01",
                    1,
                    received,
                    code="XK-999",
                    promised_days=3,
                    legal_days=5,
                    department="任选部门",
                    name="伪造事项",
                    catalog_version=1,
                )
            )
        ]
    )
    case_no = make_case_no("S01", "20260901", 1)
    hub.process_group([s.records(event(case_no, "accept", received.replace(minute=20)))])
    hub.sweep()
    row = hub.conn.execute(
        "SELECT item_check, light, due_date, item_name, department, promised_days FROM cases"
    ).fetchone()
    assert row == ("unknown_item", "green", None, None, None, None)
    assert one(hub.conn, "SELECT count(*) FROM tickets") == 0 and hub.notes == []


# counts SQLite VM steps (set_progress_handler); the query is the same on PostgreSQL
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_birth_with_records_stored_past_a_gap_costs_the_same_as_without(hub):
    """Records far past the contiguous mark must not be re-read on every later message."""

    def steps_of_a_birth() -> int:
        n = [0]

        def count():
            n[0] += 1

        hub.conn.set_progress_handler(count, 100)
        try:
            hub.process_group([(topics.site_state("S01"), encode_msg({"online": True, "last_seq": 2}))])
        finally:
            hub.conn.set_progress_handler(None, 100)
        return n[0]

    base = steps_of_a_birth()
    hub.conn.executemany(
        "INSERT INTO records(site, seq, hash, prev, kind, wall_ms, clock, received_ms, data) "
        "VALUES ('S01', ?, ?, ?, 'x', 0, 'ntp', 0, x'00')",
        [(seq, os.urandom(32), os.urandom(32)) for seq in range(3, 30_003)],
    )
    hub.conn.commit()
    assert steps_of_a_birth() <= base + 20  # (x100 SQLite steps) was ~300 for 30,000 rows


def test_a_box_that_keeps_a_gap_open_cannot_keep_its_cards_held(hub):
    s = Site(hub.root, "S01")
    received = datetime(2026, 10, 12, 9, 0, tzinfo=CST)
    hub.process_group([(topics.site_state("S01"), encode_msg({"online": True, "last_seq": 10**9}))])
    hub.process_group([s.records(reg("S01", 1, received))])
    s.seq += 1  # seq 2 never comes
    ahead = s.records(event(make_case_no("S01", "20261012", 1), "accept", received.replace(minute=20)))
    for minutes in (0, 5, 10):  # the same batch again and again: resends, no progress
        hub.clock.t = NOW + timedelta(minutes=minutes)
        hub.process_group([ahead])
        assert one(hub.conn, "SELECT count(*) FROM tickets") == 0
    hub.clock.t = NOW + timedelta(minutes=11)
    hub.process_group([ahead])
    assert one(hub.conn, "SELECT light FROM cases") == "red"
    assert one(hub.conn, "SELECT count(*) FROM alerts WHERE kind='backlog_incomplete'") == 1
    # a new birth announcing a backlog does not start another hold for a day
    hub.process_group([(topics.site_state("S01"), encode_msg({"online": True, "last_seq": 10**9}))])
    assert one(hub.conn, "SELECT hold_since_ms FROM sites WHERE code='S01'") is None


def test_a_box_cannot_fall_back_to_an_older_catalog_it_no_longer_holds(hub):
    from hub.catalog import store_catalog
    from protocol.models import CatalogItem

    s = Site(hub.root, "S01")
    v2 = store_catalog(hub.conn, [CatalogItem.model_validate({**ITEM, "promised_days": 3, "legal_days": 5})])
    hub.process_group(
        [(topics.site_state("S01"), encode_msg({"online": True, "last_seq": 0, "config": {"catalog": v2}}))]
    )
    hub.process_group([s.records(reg("S01", 1, catalog_version=v2 - 1))])  # v1's 10/20 days
    row = hub.conn.execute("SELECT promised_days, legal_days, item_check FROM cases").fetchone()
    assert row == (3, 5, "mismatch")
    assert f"已确认持有第{v2}版" in one(hub.conn, "SELECT detail FROM alerts WHERE kind='item_mismatch'")
    # a claim naming no version is held to the current one
    hub.process_group([s.records(reg("S01", 2))])
    assert one(hub.conn, "SELECT item_check FROM cases WHERE case_no LIKE '%-0002'") == "mismatch"


def test_flapping_births_and_mismatch_floods_raise_one_alert_an_hour(hub):
    s = Site(hub.root, "S01")
    hub.process_group([s.records(reg("S01", 1))])
    for i in range(20):
        hub.process_group(
            [(topics.site_state("S01"), encode_msg({"online": True, "epoch": f"e{i % 2}" * 8, "last_seq": 1}))]
        )
    hub.process_group([s.records(*[reg("S01", n, promised_days=20) for n in range(2, 22)])])
    kinds = dict(hub.conn.execute("SELECT kind, count(*) FROM alerts GROUP BY kind"))
    assert kinds.get("epoch_changed") == 1 and kinds.get("item_mismatch") == 1
    assert one(hub.conn, "SELECT count(*) FROM cases WHERE item_check='mismatch'") == 20


def test_device_times_far_outside_the_calendar_are_refused(hub):
    s = Site(hub.root, "S01")
    hb = ("heartbeat", {"at": "9999-01-01T00:00:00+08:00", "backlog": 0, "clock": "ntp"})
    ev = (
        "device.event",
        {"device": "cam1", "event": "window_unattended", "window": "1", "at": "9999-01-01T00:00:00+08:00"},
    )
    hub.process_group([s.records(hb, ev, wall=NOW)])
    assert one(hub.conn, "SELECT count(*) FROM quarantine WHERE reason='bad_body'") == 2
    assert one(hub.conn, "SELECT count(*) FROM device_events") == 0


def test_two_boxes_with_one_identity_keep_their_records_and_raise_one_alert(hub):
    """Box A sends records 1-6, box B (same keys, its own log) 1-9, and both keep going. The
    hub keeps A's history, quarantines B's 1-9 with their bytes (7-9 descend from B's 1-6) and
    tells B where it differs: B knows it diverged, nothing is lost, one alert of each kind."""
    a, b = Site(hub.root, "S01"), Site(hub.root, "S01")
    hb = lambda box, n: ("heartbeat", {"at": NOW.isoformat(), "backlog": 0, "clock": "ntp", "box": box, "n": n})
    out = hub.process_group([a.records(*[hb("A", n) for n in range(6)], wall=NOW)])
    ack_a = out.acks["S01"]
    out = hub.process_group([b.records(*[hb("B", n) for n in range(9)], wall=NOW)])
    ack = out.acks["S01"]
    assert ack["acked"] == 6 == ack_a["acked"] and ack["acked_hash"] == a.prev.hex() != b.prev.hex()
    assert ack["conflict"] == 1
    assert one(hub.conn, "SELECT count(*) FROM quarantine WHERE reason='seq_conflict' AND length(data) > 0") == 9
    assert one(hub.conn, "SELECT count(*) FROM records WHERE site='S01'") == 6
    for i in range(10):  # the boxes keep taking over each other's session
        box = (a, b)[i % 2]
        hub.process_group(
            [(topics.site_state("S01"), encode_msg({"online": True, "epoch": f"epoch-{i % 2}", "last_seq": box.seq}))]
        )
    hub.process_group([b.records(hb("B", 9), wall=NOW)])  # B goes on: still quarantined
    hub.process_group([a.records(hb("A", 6), wall=NOW)])  # A goes on: its history grows
    kinds = dict(hub.conn.execute("SELECT kind, count(*) FROM alerts GROUP BY kind"))
    assert kinds == {"identity_conflict": 1, "epoch_changed": 1}
    assert one(hub.conn, "SELECT acked_seq FROM sites WHERE code='S01'") == 7


def test_cases_from_a_box_whose_clock_jumped_are_flagged(hub):
    """A box whose clock jumped says clock=untrusted; a case dated after its arrival would look
    green until that day: both raise an alert naming the cases (once per site and hour)."""
    s = Site(hub.root, "S01")
    s.clock = "untrusted"
    hub.process_group([s.records(reg("S01", 1), wall=NOW)])
    tomorrow = NOW + timedelta(days=1)
    s.clock = "ntp"
    hub.process_group([s.records(reg("S01", 2, tomorrow), wall=NOW)])
    alerts = dict(hub.conn.execute("SELECT kind, detail FROM alerts WHERE kind LIKE 'clock_%'"))
    assert set(alerts) == {"clock_untrusted", "clock_ahead"}
    assert "S01-20261102-0001" in alerts["clock_untrusted"] and "S01-20261103-0002" in alerts["clock_ahead"]


def test_a_clones_later_batches_are_recognized_even_past_a_gap(hub):
    """The clone has several batches in flight: after its first is turned away, its next one
    starts where the hub holds nothing before it. It links to the turned-away history, so it
    is turned away too; the real box's records go on being the site's history."""
    a = Site(hub.root, "S01")
    hb = lambda box, n: ("heartbeat", {"at": NOW.isoformat(), "backlog": 0, "clock": "ntp", "box": box, "n": n})
    hub.process_group([a.records(*[hb("AB", n) for n in range(5)], wall=NOW)])
    import copy

    b = copy.copy(a)  # the SD card was cloned after record 5
    hub.process_group([a.records(hb("A", 5), wall=NOW)])  # A's 6
    out_b1 = hub.process_group([b.records(*[hb("B", n) for n in range(5, 8)], wall=NOW)])  # B's 6-8
    out_b2 = hub.process_group([b.records(*[hb("B", n) for n in range(8, 11)], wall=NOW)])  # B's 9-11
    hub.process_group([a.records(*[hb("A", n) for n in range(6, 12)], wall=NOW)])  # A's 7-12
    assert one(hub.conn, "SELECT count(*) FROM records WHERE site='S01'") == 12
    assert one(hub.conn, "SELECT acked_seq FROM sites WHERE code='S01'") == 12
    assert one(hub.conn, "SELECT count(*) FROM quarantine WHERE reason='seq_conflict'") == 6
    assert out_b1.acks["S01"]["conflict"] == 6 and out_b2.acks["S01"]["conflict"] == 9
    assert out_b2.acks["S01"]["conflict_hash"] != ""
