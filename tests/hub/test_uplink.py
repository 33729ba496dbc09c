"""A child hub's uplink (issue 14): the outbox on the child (cards and 督办 steps appended in the
same transaction, contiguous seq, hash chain, no personal data) and the parent's ingest of the
child's sealed batches (verify, store once by (child, seq), ack, resend from a gap, quarantine),
on both engines. Times are fixed (a frozen clock passed in), never today's."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from types import SimpleNamespace

import msgpack
import pytest

from hub import uplink
from hub.config import HubConfig, Supervision
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.metrics import render_metrics
from hub.store import open_db
from hub.supervision import Supervisor
from hub.uplink import Uplink
from iobase.config import load_config
from protocol import topics
from protocol.calendar import CST
from protocol.crypto import load_private_pem, load_public_pem
from protocol.records import GENESIS, Record, decode_record, encode_record, record_hash
from protocol.uplink import KIND_CARD, KIND_TICKET_STEP
from protocol.wire import open_batch, seal_batch
from provisioning.child_hub import add_child_hub
from provisioning.setup import add_site, init_hub, revoke_site
from tests.craft import SiteSigner, chain, registration, trust_item

CHILD = "hub-140721"
CASE = "S01-20261120-0001"
# the personal data of the case's applicant (tests/craft.py registration), as registered
PERSONAL = ["王五", "赵六", "110101199003077777", "13800138000", "00000001"]


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _registration(seq):
    body = registration("S01", seq, datetime(2026, 11, 2, 9, 0, tzinfo=CST))
    body["applicant"] = {"name": "王五", "id_no": "110101199003077777", "phone": "13800138000"}
    return body


@pytest.fixture
def county(tmp_path, store_url):
    """A county hub with a parent (uplink on), one site, one case received Mon 2026-11-02."""
    root = tmp_path / "county"
    init_hub(root, region="140721", name="榆次区", level="county", broker_port=18883)
    add_site(root, code="S01", name="S01")
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    trust_item(conn)
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=CST))
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None, now=clock)
    ing.supervisor = Supervisor(Supervision(), calendar=lambda: ing.calendar)
    ing.uplink = ing.supervisor.uplink = Uplink(True)
    recs, _ = chain("S01", 1, body=_registration)
    ing.process_group([(topics.site_batch("S01"), SiteSigner(root, "S01").seal(recs, 1))])
    yield ing, conn, clock
    conn.close()


def _at(ing, clock, *ymdh):
    clock.t = datetime(*ymdh, 0, 1, tzinfo=CST)
    ing.sweep()


def _log(conn):
    return [decode_record(bytes(r[0])) for r in conn.execute("SELECT data FROM uplink_log ORDER BY seq")]


def test_cards_and_ticket_steps_are_appended_in_order_with_a_chain(county):
    ing, conn, clock = county
    _at(ing, clock, 2026, 11, 6, 10)  # 1 working day left on the acceptance clock → yellow
    _at(ing, clock, 2026, 11, 10, 0)  # not accepted by 11/09 → red, a 责令说明理由 ticket opens
    now = datetime(2026, 11, 11, 10, 0, tzinfo=CST)
    tid = conn.execute("SELECT id FROM tickets").fetchone()[0]
    ing.supervisor.reply(conn, tid, "王科长", "申请人王五电话13800138000，已联系", now)
    ing.supervisor.review(conn, tid, "reject", "监察员李", "理由不成立", now)
    recs = _log(conn)
    assert [r.seq for r in recs] == [1, 2, 3, 4, 5, 6]  # from 1, no gap
    prev = GENESIS
    for r in recs:  # each links to the one before
        assert r.prev == prev
        prev = record_hash(encode_record(r))
    assert bytes(conn.execute("SELECT hash FROM uplink_head").fetchone()[0]) == prev
    got = [(r.kind, r.body.get("card") or (r.body["level"], r.body["action"], r.body["status"])) for r in recs]
    assert got == [
        (KIND_CARD, "yellow"),
        (KIND_CARD, "red"),
        (KIND_TICKET_STEP, ("order_explain", "open", "open")),
        (KIND_TICKET_STEP, ("order_explain", "reply", "replied")),
        (KIND_TICKET_STEP, ("order_explain", "reject", "escalated")),
        (KIND_TICKET_STEP, ("suggestion", "open", "open")),
    ]
    red = recs[1].body
    assert red["previous"] == "yellow" and red["at_ms"] == 1_794_240_001_000  # 2026-11-10 00:00:01 +08:00
    case = red["case"]
    assert (case["case_no"], case["site"], case["item_code"], case["light"]) == (CASE, "S01", "XK-001", "red")
    assert case["received_at"].startswith("2026-11-02T09:00:00") and case["red_cards"] == 1
    assert case["department"] == "市场监督管理局"
    assert recs[2].body["by_system"] is True and recs[3].body["by_system"] is False
    assert recs[5].body["parent_ticket"] == tid
    blob = b"".join(bytes(r[0]) for r in conn.execute("SELECT data FROM uplink_log"))
    for p in PERSONAL:  # the reply text named the applicant: it stays at the child
        assert p.encode() not in blob, p
    assert uplink.head(conn) == 6 and uplink.acked(conn) == 0


def test_no_parent_no_outbox(county):
    ing, conn, clock = county
    ing.uplink.enabled = False
    _at(ing, clock, 2026, 11, 10, 0)
    assert conn.execute("SELECT count(*) FROM alerts WHERE kind='light_red'").fetchone()[0] == 1
    assert uplink.head(conn) == 0 and _log(conn) == []


def test_an_outbox_record_rolls_back_with_its_card(county):
    ing, conn, clock = county
    clock.t = datetime(2026, 11, 10, 0, 1, tzinfo=CST)
    boom = ing.supervisor.on_transitions

    def fail(*a):
        boom(*a)
        raise RuntimeError("the card's transaction fails after the outbox write")

    ing.supervisor.on_transitions = fail
    with pytest.raises(RuntimeError):
        ing.sweep()
    assert uplink.head(conn) == 0 and _log(conn) == []  # no record without its card
    ing.supervisor.on_transitions = boom
    ing.sweep()
    assert [r.seq for r in _log(conn)] == [1, 2]  # the red card and its ticket, from seq 1


# -- the parent's side ---------------------------------------------------------------------------


@pytest.fixture
def parent(tmp_path, store_url, request):
    """A city hub (parent) with child hub-140721 provisioned, on the same engine as the child."""
    root = tmp_path / "city"
    init_hub(root, region="140700", name="晋中市", level="city", broker_port=18884)
    bundle = add_child_hub(root, code="140721", name="榆次区政务服务中心")
    cfg = load_config(root / "hub.yaml", HubConfig)
    if store_url.startswith("sqlite:"):
        url = f"sqlite:{tmp_path / 'city.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = server.create_db("city", template=server.hub_template)
    conn = open_db(url)
    sent = []
    keys = SiteKeys(cfg.registry, check_every_s=0)
    ing = Ingestor(conn, HubKeys.load(cfg), keys, lambda t, p, q, r: sent.append((t, p)), now=lambda: NOW)
    sign = load_private_pem((bundle / "sign.key").read_bytes(), "ed25519")
    seal = load_public_pem((bundle / "parent_seal.pub").read_bytes(), "x25519")
    yield ing, conn, sent, sign, seal, root
    conn.close()


NOW = datetime(2026, 11, 10, 9, 0, tzinfo=CST)


def _summary(n: int) -> dict:
    return {
        "case_no": f"S01-20261120-{n:04d}",
        "site": "S01",
        "item_code": "XK-001",
        "item_name": "食品经营许可",
        "department": "市场监督管理局",
        "case_type": "promised",
        "received_at": "2026-11-02T09:00:00+08:00",
        "due_date": "2026-11-16",
        "legal_due_date": None,
        "status": "accepted",
        "light": "red",
        "violations": ["acceptance_overdue"],
        "yellow_cards": 0,
        "red_cards": 1,
    }


def _card(n: int, card: str = "red", **extra) -> dict:
    return {"card": card, "previous": "green", "at_ms": 1_794_000_000_000 + n, "case": _summary(n), **extra}


def _records(bodies, start=1, prev=GENESIS, kind=KIND_CARD):
    out = []
    for i, body in enumerate(bodies):
        enc = encode_record(Record(start + i, prev, kind, 1_794_000_000_000, 0, "", "ntp", body))
        out.append(enc)
        prev = record_hash(enc)
    return out


def _seal(sign, seal, encs, first, sender=CHILD):
    return seal_batch(sender, encs, sign_key=sign, hub_seal_pub=seal, sent_ms=0, first_seq=first)


def _acks(sent):
    return [p for t, p in sent if t == topics.child_ack(CHILD)]  # dicts: HubLink.publish encodes them


def test_parent_stores_once_acks_and_counts_a_card_once(parent):
    ing, conn, sent, sign, seal, _ = parent
    encs = _records([_card(1), _card(2, "yellow"), _card(1)])  # case 1's red card sent twice (seq 1, 3)
    batch = _seal(sign, seal, encs, 1)
    ing.process_group([(topics.child_batch(CHILD), batch)])
    ing.process_group([(topics.child_batch(CHILD), batch)])  # redelivered: stored once
    assert conn.execute("SELECT count(*) FROM child_records").fetchone()[0] == 3
    assert [a["acked"] for a in _acks(sent)] == [3, 3]
    assert _acks(sent)[-1]["acked_hash"] == record_hash(encs[2]).hex()
    cards = conn.execute(
        "SELECT child, case_no, kind, first_seq, records FROM child_cards ORDER BY case_no, kind"
    ).fetchall()
    assert [tuple(r) for r in cards] == [
        (CHILD, "S01-20261120-0001", "red", 1, 2),
        (CHILD, "S01-20261120-0002", "yellow", 2, 1),
    ]
    row = conn.execute("SELECT acked_seq, max_seq, online FROM child_hubs WHERE code=?", (CHILD,)).fetchone()
    assert tuple(row) == (3, 3, 1)
    assert json.loads(conn.execute("SELECT body_json FROM child_records WHERE seq=2").fetchone()[0])["card"] == "yellow"
    text = render_metrics(conn, SimpleNamespace(ingest=ing, link=SimpleNamespace(connected=threading.Event())))
    for line in (
        'jiancha_child_acked_seq{child="hub-140721"} 3',
        "jiancha_child_records_stored_total 3",
        "jiancha_child_records_duplicate_total 3",  # the whole batch again
        'jiancha_uplink_seq{mark="head"} 0',  # this city has no parent: its own outbox stays empty
    ):
        assert line in text.splitlines(), line


def test_parent_asks_for_a_gap_and_fills_it(parent):
    ing, conn, sent, sign, seal, _ = parent
    encs = _records([_card(n) for n in range(1, 7)])
    ing.process_group([(topics.child_batch(CHILD), _seal(sign, seal, encs[3:], 4))])  # 4..6 before 1..3
    assert _acks(sent)[-1]["acked"] == 0 and "resend_from" not in _acks(sent)[-1]
    ing.now = lambda: datetime(2026, 11, 10, 9, 0, 10, tzinfo=CST)  # the gap persisted 10 s
    ing.process_group([(topics.child_state(CHILD), msgpack.packb({"online": True, "last_seq": 6}))])
    assert _acks(sent)[-1]["resend_from"] == 1
    ing.process_group([(topics.child_batch(CHILD), _seal(sign, seal, encs[:3], 1))])
    assert _acks(sent)[-1]["acked"] == 6 and "resend_from" not in _acks(sent)[-1]
    seqs = [r[0] for r in conn.execute("SELECT seq FROM child_records ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5, 6]


def _quarantined(conn):
    return [tuple(r) for r in conn.execute("SELECT site, reason FROM quarantine ORDER BY id")]


def test_parent_quarantines_bad_batches_with_a_reason(parent, tmp_path):
    ing, conn, sent, sign, seal, root = parent
    encs = _records([_card(1)])
    other = load_private_pem((root / "hub" / "sign.key").read_bytes(), "ed25519")  # not the child's key
    ing.process_group([(topics.child_batch(CHILD), _seal(other, seal, encs, 1))])
    ing.process_group([(topics.child_batch("hub-999999"), _seal(sign, seal, encs, 1, "hub-999999"))])
    ing.process_group([(topics.child_batch(CHILD), b"\x93garbage")])
    # a site's batch on a child's topic, or the child's on a site's: the keys never cross
    ing.process_group([(topics.site_batch(CHILD), _seal(sign, seal, encs, 1))])
    forged = _records([_card(1)], prev=b"\x01" * 32)  # seq 1 must link to the genesis
    ing.process_group([(topics.child_batch(CHILD), _seal(sign, seal, forged, 1))])
    assert _quarantined(conn) == [
        (CHILD, "bad_signature"),
        ("hub-999999", "unknown_site"),
        (CHILD, "malformed"),
        (CHILD, "unknown_site"),
        (CHILD, "seq_conflict"),
    ]
    assert conn.execute("SELECT count(*) FROM child_records").fetchone()[0] == 0
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    assert counters["rejected_bad_signature"] == 1 and counters["rejected_seq_conflict"] == 1
    ing.process_group([(topics.child_batch(CHILD), _seal(sign, seal, encs, 1))])  # the good one still goes in
    assert _acks(sent)[-1]["acked"] == 1
    revoke_site(root, code=CHILD)
    ing.process_group(
        [(topics.child_batch(CHILD), _seal(sign, seal, _records([_card(2)], 2, record_hash(encs[0])), 2))]
    )
    assert _quarantined(conn)[-1] == (CHILD, "revoked_site")


def test_parent_refuses_a_body_with_personal_data_but_keeps_the_chain(parent):
    ing, conn, sent, sign, seal, _ = parent
    bad = _card(2)
    bad["case"]["applicant"] = "王五"  # a field no uplink body has
    encs = _records([_card(1), bad, _card(3)])
    ing.process_group([(topics.child_batch(CHILD), _seal(sign, seal, encs, 1))])
    assert _acks(sent)[-1]["acked"] == 3  # the chain goes on: the child is not stuck resending
    rows = conn.execute("SELECT seq, case_no, body_json, length(data) FROM child_records ORDER BY seq").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, "S01-20261120-0001"), (2, None), (3, "S01-20261120-0003")]
    assert rows[1][2] == "{}" and rows[1][3] == 0  # kept as a link, its content not stored
    q = conn.execute("SELECT reason, detail FROM quarantine").fetchall()
    assert [r[0] for r in q] == ["bad_body"] and "applicant" in q[0][1] and "王五" not in q[0][1]
    blob = repr(conn.execute("SELECT * FROM child_records").fetchall()) + repr(
        conn.execute("SELECT * FROM quarantine").fetchall()
    )
    assert "王五" not in blob


def test_child_outbox_to_parent_end_to_end_in_process(county, parent):
    """The county's real outbox, sealed as the forwarder seals it, opened by the parent."""
    ing_c, conn_c, clock = county
    ing_p, conn_p, sent, sign, seal, _ = parent
    _at(ing_c, clock, 2026, 11, 6, 10)
    _at(ing_c, clock, 2026, 11, 10, 0)
    encs = uplink.read(conn_c, 1, uplink.head(conn_c))
    batch = _seal(sign, seal, encs, 1)
    # what travels: decrypt at the parent's side (as the parent does) and grep every byte
    _, opened = open_batch(batch, site=CHILD, verify_key=sign.public_key(), hub_seal_key=ing_p.keys.seal_key)
    plain = batch + b"".join(e for _, e in opened)
    for p in PERSONAL:
        assert p.encode() not in plain, p
    ing_p.process_group([(topics.child_batch(CHILD), batch)])
    assert _acks(sent)[-1]["acked"] == 3
    assert [tuple(r) for r in conn_p.execute("SELECT kind, case_no FROM child_cards ORDER BY kind")] == [
        ("red", CASE),
        ("yellow", CASE),
    ]


def _store(tmp_path, store_url, request, name):
    """Another empty hub store on the same engine as `store_url`."""
    if store_url.startswith("sqlite:"):
        return open_db(f"sqlite:{tmp_path / (name + '.db')}")
    server = request.getfixturevalue("pg_server")
    return open_db(server.create_db(name, template=server.hub_template))


def _level(root, store, sent, uplink_on):
    cfg = load_config(root / "hub.yaml", HubConfig)
    keys = SiteKeys(cfg.registry, check_every_s=0)
    ing = Ingestor(store, HubKeys.load(cfg), keys, lambda t, p, q, r: sent.append((t, p)), now=lambda: NOW)
    ing.uplink = Uplink(uplink_on)
    return ing


def _bundle_keys(bundle):
    return (
        load_private_pem((bundle / "sign.key").read_bytes(), "ed25519"),
        load_public_pem((bundle / "parent_seal.pub").read_bytes(), "x25519"),
    )


def test_a_city_relays_its_countys_records_to_the_province_once(county, tmp_path, store_url, request):
    """county → city → province in process: the city stores the county's records and appends
    each once to its own outbox (origin kept); the province sees the county's cards under the
    city, named by origin; a redelivery to the city relays nothing again."""
    ing_c, conn_c, clock = county
    _at(ing_c, clock, 2026, 11, 6, 10)
    _at(ing_c, clock, 2026, 11, 10, 0)
    prov_root, city_root = tmp_path / "province", tmp_path / "city2"
    init_hub(prov_root, region="140000", name="山西省", level="province", broker_port=18886)
    init_hub(city_root, region="140700", name="晋中市", level="city", broker_port=18887)
    city_bundle = add_child_hub(prov_root, code="140700", name="晋中市政务服务中心", level="city")
    county_bundle = add_child_hub(city_root, code="140721", name="榆次区政务服务中心")
    city_db, prov_db = _store(tmp_path, store_url, request, "city2"), _store(tmp_path, store_url, request, "prov")
    city_sent, prov_sent = [], []
    city, province = _level(city_root, city_db, city_sent, True), _level(prov_root, prov_db, prov_sent, False)
    try:
        encs = uplink.read(conn_c, 1, uplink.head(conn_c))  # yellow card, red card, ticket opened
        keys = _bundle_keys(county_bundle)
        city.process_group([(topics.child_batch(CHILD), _seal(*keys, encs[1:], 2))])  # 2..3 first
        assert uplink.head(city_db) == 0  # nothing relayed past a gap
        city.process_group([(topics.child_batch(CHILD), _seal(*keys, encs[:1], 1))])
        city.process_group([(topics.child_batch(CHILD), _seal(*keys, encs, 1))])  # all redelivered
        relayed = uplink.read(city_db, 1, uplink.head(city_db))
        got = [(r.kind, r.body.get("card"), r.body["origin"]) for r in map(decode_record, relayed)]
        assert got == [(KIND_CARD, "yellow", CHILD), (KIND_CARD, "red", CHILD), (KIND_TICKET_STEP, None, CHILD)]
        sign, seal = _bundle_keys(city_bundle)
        province.process_group([(topics.child_batch("hub-140700"), _seal(sign, seal, relayed, 1, "hub-140700"))])
        assert [p["acked"] for t, p in prov_sent if t == topics.child_ack("hub-140700")] == [3]
        rows = prov_db.execute("SELECT child, origin, case_no, kind, records FROM child_cards ORDER BY kind").fetchall()
        assert [tuple(r) for r in rows] == [
            ("hub-140700", CHILD, CASE, "red", 1),
            ("hub-140700", CHILD, CASE, "yellow", 1),
        ]
        step = prov_db.execute("SELECT origin, action, ticket FROM child_records WHERE kind='ticket.step'").fetchone()
        assert tuple(step)[:2] == (CHILD, "open")
        for p in PERSONAL:  # nothing personal at the province either
            assert p.encode() not in b"".join(relayed), p
    finally:
        city_db.close()
        prov_db.close()
