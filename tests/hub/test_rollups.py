"""Hourly roll-ups (issue 14): a county hub counts each changed China hour per region and
department into its uplink outbox; a late record re-emits its hour with a higher revision; the
parent keeps the highest revision whatever order they arrive in; a city relays them and the
province's totals equal the county's records. Both engines; times are fixed, never today's."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from hub import rollups, uplink
from hub.config import HubConfig, Supervision
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.rollups import RollupProducer
from hub.store import open_db
from hub.supervision import Supervisor
from hub.uplink import Uplink
from iobase.config import load_config
from protocol import topics
from protocol.calendar import CST
from protocol.records import GENESIS, Record, decode_record, encode_record, record_hash
from protocol.uplink import KIND_ROLLUP
from provisioning.child_hub import add_child_hub
from provisioning.setup import add_site, init_hub
from tests.craft import SiteSigner, registration, trust_item
from tests.hub.test_uplink import PERSONAL, _bundle_keys, _level, _seal, _store

CHILD = "hub-140721"
DEPT = "市场监督管理局"


def _ms(*ymdhm) -> int:
    return int(datetime(*ymdhm, tzinfo=CST).timestamp() * 1000)


def _reg(n, *ymdhm):
    body = registration("S01", n, datetime(*ymdhm, tzinfo=CST))
    body["applicant"] = {"name": "王五", "id_no": "110101199003077777", "phone": "13800138000"}
    return ("case.registered", body)


def _event(n, type_, *ymdhm):
    return ("case.event", {"case_no": f"S01-20261120-{n:04d}", "type": type_,
                           "at": datetime(*ymdhm, tzinfo=CST).isoformat(), "actor": "赵六"})  # fmt: skip


def _vote(level, *ymdhm):
    names = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
    return ("vote", {"window": "1号窗口", "department": DEPT, "key": str(level), "level": level,
                     "level_name": names[level - 1], "mapping_version": "v1", "pressed_wall_ms": _ms(*ymdhm)})  # fmt: skip


class Site:
    """Seals a site's records (mixed kinds) in order, as its agent would."""

    def __init__(self, root):
        self.signer, self.seq, self.prev = SiteSigner(root, "S01"), 0, GENESIS

    def batch(self, items) -> tuple[str, bytes]:
        encs, first = [], self.seq + 1
        for kind, body in items:
            self.seq += 1
            enc = encode_record(Record(self.seq, self.prev, kind, _ms(2026, 11, 2, 9, 0), 0, "b", "ntp", body))
            encs.append(enc)
            self.prev = record_hash(enc)
        return topics.site_batch("S01"), self.signer.seal(encs, first)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def county(tmp_path, store_url):
    root = tmp_path / "county"
    init_hub(root, region="140721", name="榆次区", level="county", broker_port=18893)
    add_site(root, code="S01", name="S01")
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    trust_item(conn)
    clock = Clock(datetime(2026, 11, 6, 9, 30, tzinfo=CST))
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None, now=clock)
    ing.supervisor = Supervisor(Supervision(), calendar=lambda: ing.calendar)
    ing.uplink = ing.supervisor.uplink = Uplink(True)
    producer = RollupProducer(conn, lambda: ing.calendar, "140721", now=clock)
    yield ing, conn, clock, producer, Site(root), root
    conn.close()


# Mon 2026-11-02 .. Fri 11-06, no holiday: working days 11-02 → 11-04 = 2, 11-02 → 11-05 = 3
WEEK = [
    _reg(1, 2026, 11, 2, 9, 10),
    _reg(2, 2026, 11, 2, 9, 40),
    _reg(3, 2026, 11, 2, 10, 5),
    _vote(1, 2026, 11, 2, 9, 20),
    _vote(2, 2026, 11, 2, 9, 25),
    _vote(3, 2026, 11, 2, 10, 59),
    _event(1, "accept", 2026, 11, 2, 9, 15),
    _event(1, "approve", 2026, 11, 4, 15, 0),
    _event(2, "accept", 2026, 11, 2, 9, 45),
    _event(2, "approve", 2026, 11, 5, 15, 30),
]


def _rollups(conn) -> list[dict]:
    rows = conn.execute("SELECT data FROM uplink_log WHERE kind = ? ORDER BY seq", (KIND_ROLLUP,)).fetchall()
    return [decode_record(bytes(r[0])).body for r in rows]


def _status_direct(conn, lo: str, hi: str) -> dict:
    rows = conn.execute(
        "SELECT status, count(*) FROM cases WHERE received_at >= ? AND received_at < ? GROUP BY status", (lo, hi)
    ).fetchall()
    return {s: n for s, n in rows}


def test_rollups_equal_a_direct_count_and_only_ended_hours_go(county):
    ing, conn, clock, producer, site, _ = county
    ing.process_group([site.batch(WEEK)])
    assert producer.tick() > 0
    got = {(b["region"], b["department"], b["hour"]): b for b in _rollups(conn)}
    assert sorted(got) == [
        ("S01", DEPT, "2026-11-02T09"),
        ("S01", DEPT, "2026-11-02T10"),
        ("S01", DEPT, "2026-11-04T15"),
        ("S01", DEPT, "2026-11-05T15"),
    ]
    h9, h10 = got[("S01", DEPT, "2026-11-02T09")], got[("S01", DEPT, "2026-11-02T10")]
    assert (h9["received"], h9["revision"], h9["keypad"], h9["concluded"]) == (2, 1, [1, 1, 0, 0, 0], 0)
    assert (h10["received"], h10["keypad"]) == (1, [0, 0, 1, 0, 0])
    # status and light of those cases now, exactly as the store holds them
    assert h9["status"] == _status_direct(conn, "2026-11-02T09", "2026-11-02T10")
    assert h10["status"] == _status_direct(conn, "2026-11-02T10", "2026-11-02T11")
    assert sum(h9["light"].values()) == 2 and sum(h10["light"].values()) == 1
    c4, c5 = got[("S01", DEPT, "2026-11-04T15")], got[("S01", DEPT, "2026-11-05T15")]
    assert (c4["concluded"], c4["on_time"], c4["late"], c4["days_sum"], c4["received"]) == (1, 1, 0, 2, 0)
    assert (c5["concluded"], c5["on_time"], c5["days_sum"]) == (1, 1, 3)
    assert c5["durations"] == [{"days": 3, "on_time": True, "promised": 10, "legal": 20, "n": 1}]
    assert conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0] == 0
    assert producer.tick() == 0 and len(_rollups(conn)) == 4  # nothing changed: nothing re-sent
    # the current hour waits until it has ended
    clock.t = datetime(2026, 11, 6, 9, 50, tzinfo=CST)
    ing.process_group([site.batch([_vote(1, 2026, 11, 6, 9, 40)])])
    assert producer.tick() == 0
    assert producer.tick(datetime(2026, 11, 6, 10, 0, 5, tzinfo=CST)) == 1
    assert _rollups(conn)[-1]["hour"] == "2026-11-06T09" and _rollups(conn)[-1]["keypad"] == [1, 0, 0, 0, 0]
    blob = b"".join(bytes(r[0]) for r in conn.execute("SELECT data FROM uplink_log"))
    for p in PERSONAL + ["赵六"]:
        assert p.encode() not in blob, p


def test_a_late_record_reemits_its_hour_and_the_parent_keeps_the_highest(county, tmp_path, store_url, request):
    ing, conn, clock, producer, site, _ = county
    ing.process_group([site.batch(WEEK)])
    producer.tick()
    first = len(_rollups(conn))
    # a case received on Monday 09:55 arrives only now (its site was offline)
    ing.process_group([site.batch([_reg(4, 2026, 11, 2, 9, 55)])])
    producer.tick()
    late = _rollups(conn)[first:]
    assert [(b["hour"], b["revision"], b["received"]) for b in late] == [("2026-11-02T09", 2, 3)]
    # the parent gets the newer revision first, the older one after: it keeps revision 2
    city_root = tmp_path / "city"
    init_hub(city_root, region="140700", name="晋中市", level="city", broker_port=18894)
    sign, seal = _bundle_keys(add_child_hub(city_root, code="140721", name="榆次区政务服务中心"))
    city_db = _store(tmp_path, store_url, request, "cityr")
    sent = []
    city = _level(city_root, city_db, sent, False)
    try:
        encs = uplink.read(conn, 1, uplink.head(conn))
        seq_late = next(i for i, e in enumerate(encs, 1) if decode_record(e).body.get("revision") == 2)
        city.process_group([(topics.child_batch(CHILD), _seal(sign, seal, encs[seq_late - 1 :], seq_late))])
        city.process_group([(topics.child_batch(CHILD), _seal(sign, seal, encs[: seq_late - 1], 1))])
        row = city_db.execute(
            "SELECT revision, body_json, child FROM child_rollups WHERE hour = '2026-11-02T09'"
        ).fetchone()
        assert (row[0], json.loads(row[1])["received"], row[2]) == (2, 3, CHILD)
        t = rollups.totals(city_db, date(2026, 11, 1), date(2026, 11, 30))[(CHILD, None)]
        assert (t["received"], t["concluded"], t["on_time"], t["ratings"], t["satisfied"]) == (4, 2, 2, 3, 3)
        assert (t["mean_days"], t["median_days"]) == (2.5, 2.5)
    finally:
        city_db.close()


def test_province_totals_equal_the_countys_records_through_a_city(county, tmp_path, store_url, request):
    """county → city → province in process: the city relays each roll-up once, origin kept;
    the province's totals equal a direct count of the county's store."""
    ing, conn, clock, producer, site, _ = county
    ing.process_group([site.batch(WEEK)])
    producer.tick()
    ing.process_group([site.batch([_reg(4, 2026, 11, 2, 9, 55), _event(3, "approve", 2026, 11, 3, 11, 0)])])
    producer.tick()
    prov_root, city_root = tmp_path / "province", tmp_path / "city3"
    init_hub(prov_root, region="140000", name="山西省", level="province", broker_port=18895)
    init_hub(city_root, region="140700", name="晋中市", level="city", broker_port=18896)
    city_keys = _bundle_keys(add_child_hub(prov_root, code="140700", name="晋中市政务服务中心", level="city"))
    county_keys = _bundle_keys(add_child_hub(city_root, code="140721", name="榆次区政务服务中心"))
    city_db, prov_db = _store(tmp_path, store_url, request, "city3"), _store(tmp_path, store_url, request, "prov3")
    city_sent, prov_sent = [], []
    city, province = _level(city_root, city_db, city_sent, True), _level(prov_root, prov_db, prov_sent, False)
    try:
        encs = uplink.read(conn, 1, uplink.head(conn))
        city.process_group([(topics.child_batch(CHILD), _seal(*county_keys, encs, 1))])
        city.process_group([(topics.child_batch(CHILD), _seal(*county_keys, encs, 1))])  # redelivered
        relayed = uplink.read(city_db, 1, uplink.head(city_db))
        assert len(relayed) == len(encs)  # each once
        assert {decode_record(e).body["origin"] for e in relayed} == {CHILD}
        province.process_group([(topics.child_batch("hub-140700"), _seal(*city_keys, relayed, 1, "hub-140700"))])
        t = rollups.totals(prov_db, date(2026, 11, 1), date(2026, 11, 30))
        assert list(t) == [("hub-140700", CHILD)]
        got = t[("hub-140700", CHILD)]
        direct_received = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
        assert got["received"] == direct_received == 4
        # concluded: cases 1 (2 days), 2 (3 days), 3 (received 11-02 10:05, approved 11-03: 1 day)
        assert (got["concluded"], got["on_time"], got["mean_days"], got["median_days"]) == (3, 3, 2.0, 2.0)
        assert got["status"] == _status_direct(conn, "2000", "2100") and got["keypad"] == [1, 1, 1, 0, 0]
    finally:
        city_db.close()
        prov_db.close()


def test_a_group_too_big_for_a_record_is_refused_alone(county, monkeypatch):
    """An hour whose duration histogram could not fit a record (1,501 bins) is logged and
    counted; the other groups of the tick still go, and the dirty hours are cleared."""
    ing, conn, clock, producer, site, _ = county
    ing.process_group([site.batch(WEEK)])
    real = rollups.count_day

    def huge(conn_, day, hours, cal, home):
        got = real(conn_, day, hours, cal, home)
        for key, fig in got.items():
            if key[2] == "2026-11-02T09":
                fig["durations"] = [{"days": d, "on_time": True, "promised": 10, "legal": 20, "n": 1}
                                    for d in range(1501)]  # fmt: skip
        return got

    monkeypatch.setattr(rollups, "count_day", huge)
    producer.tick()
    assert sorted(b["hour"] for b in _rollups(conn)) == ["2026-11-02T10", "2026-11-04T15", "2026-11-05T15"]
    assert conn.execute("SELECT value FROM counters WHERE name='rollups_refused'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0] == 0
