"""The feed for a third-party platform (issue 14, docs/feed.md) on a real Mosquitto with TLS and
the generated ACL: `jiancha provision add-feed`, the hub's feed publisher (hub/feeds.py) over
the uplink outbox, consumed with plain `mosquitto_sub` + `jiancha feed decode` and with
`jiancha feed tail`; the durable per-feed cursor on both engines; gap and bad-signature reports;
no personal data in any decrypted byte. Times are fixed (a frozen clock), never today's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from hub import feeds, uplink
from hub.config import HubConfig, Registry, Supervision
from hub.feeds import FeedPublisher, has_feeds
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.metrics import render_metrics
from hub.store import open_db
from hub.supervision import Supervisor
from hub.uplink import Uplink
from iobase.config import load_config
from protocol import topics
from protocol.calendar import CST
from protocol.crypto import generate_ed25519, load_private_pem, load_public_pem
from protocol.feed import AckError, encode_ack, parse_ack
from protocol.wire import seal_batch
from provisioning.errors import ProvisioningError
from provisioning.feed import add_feed
from provisioning.setup import add_site, init_hub, revoke_site
from tests.craft import SiteSigner, chain, registration, trust_item
from tests.provisioning.mqtt_helpers import ManagedBroker, TlsFiles, connect, free_port, try_connect

FEED = "feed-platform"
HUB = "hub-140700"
PERSONAL = ["王五", "赵六", "110101199003077777", "13800138000", "00000001"]
WORKTREE = Path(__file__).resolve().parents[2]
SCREEN_DIR = os.environ.get("JIANCHA_FEED_EXAMPLE")  # write docs/feed-example/ (docs/feed.md's worked example)


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _registration(seq):
    body = registration("S01", seq, datetime(2026, 11, 2, 9, 0, tzinfo=CST))
    body["applicant"] = {"name": "王五", "id_no": "110101199003077777", "phone": "13800138000"}
    return body


def _files(root: Path) -> TlsFiles:
    b = root / "feeds" / FEED
    return TlsFiles(b / "ca.crt", b / "mqtt.crt", b / "mqtt.key")


@pytest.fixture
def city(tmp_path):
    root = tmp_path / "city"
    init_hub(root, region="140700", name="晋中市政务服务中心", level="city", broker_port=free_port())
    add_site(root, code="S01", name="S01")
    add_feed(root, name="platform", title="山西省一体化政务服务平台")
    return root


def _produce(root: Path, conn) -> tuple[Ingestor, Clock]:
    """The hub's real ingest and supervision: a case received Mon 2026-11-02 turns yellow, then red
    (a 责令说明理由 ticket opens), the department replies naming the applicant, the reply is
    rejected (escalated: a second ticket). Six outbox records, as in tests/hub/test_uplink.py."""
    cfg = load_config(root / "hub.yaml", HubConfig)
    trust_item(conn)
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=CST))
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None, now=clock)
    ing.supervisor = Supervisor(Supervision(), calendar=lambda: ing.calendar)
    ing.uplink = ing.supervisor.uplink = Uplink(has_feeds(cfg.registry))  # no parent: the feed turns it on
    recs, _ = chain("S01", 1, body=_registration)
    ing.process_group([(topics.site_batch("S01"), SiteSigner(root, "S01").seal(recs, 1))])
    for day, hour in ((6, 10), (10, 0)):
        clock.t = datetime(2026, 11, day, hour, 0, 1, tzinfo=CST)
        ing.sweep()
    now = datetime(2026, 11, 11, 10, 0, tzinfo=CST)
    tid = conn.execute("SELECT id FROM tickets").fetchone()[0]
    ing.supervisor.reply(conn, tid, "王科长", "申请人王五电话13800138000，已联系", now)
    ing.supervisor.review(conn, tid, "reject", "监察员李", "理由不成立", now)
    return ing, clock


# what the six records say, by hand (the case's story above)
EXPECTED = [
    (1, "card", "yellow"),
    (2, "card", "red"),
    (3, "ticket.step", ("order_explain", "open")),
    (4, "ticket.step", ("order_explain", "reply")),
    (5, "ticket.step", ("order_explain", "reject")),
    (6, "ticket.step", ("suggestion", "open")),
]


def _summary(lines: list[dict]) -> list[tuple]:
    out = []
    for d in lines:
        b = d["body"]
        out.append((d["seq"], d["kind"], b["card"] if d["kind"] == "card" else (b["level"], b["action"])))
    return out


def _jiancha(*args, input_=None, timeout=30):
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    return subprocess.run(
        [sys.executable, "-m", "jiancha.cli", *args], input=input_, capture_output=True, timeout=timeout, env=env
    )


def _lines(stdout: bytes) -> list[dict]:
    return [json.loads(x) for x in stdout.decode().splitlines() if x.strip()]


def _mosquitto_sub(root: Path, port: int, *extra: str, timeout=20):
    f = _files(root)
    cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "--cafile", str(f.ca), "--cert", str(f.cert)]
    cmd += ["--key", str(f.key), "-i", FEED, "-c", "-q", "1", "-t", topics.feed_batch(FEED), *extra]
    return subprocess.run(cmd, capture_output=True, timeout=timeout)


def test_add_feed_bundle_registry_and_bad_names(city):
    bundle = city / "feeds" / FEED
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["FEED.yaml", "ca.crt", "hub_sign.pub", "mqtt.crt", "mqtt.key", "seal.key", "seal.pub"]
    assert (bundle / "seal.key").stat().st_mode & 0o777 == 0o600
    assert (bundle / "hub_sign.pub").read_bytes() == (city / "hub" / "sign.pub").read_bytes()
    raw = yaml.safe_load((bundle / "FEED.yaml").read_text(encoding="utf-8"))
    assert (raw["feed"], raw["hub"], raw["seal_key"], raw["broker"]["cert"]) == (FEED, HUB, "seal.key", "mqtt.crt")
    reg = load_config(city / "registry.yaml", Registry)
    entry = next(s for s in reg.sites if s.code == FEED)
    assert (entry.kind, entry.name, entry.sign_pub) == ("feed", "山西省一体化政务服务平台", "")
    assert entry.seal_pub == (bundle / "seal.pub").read_text()
    assert list(reg.active()) == ["S01"] and list(reg.active_feeds()) == [FEED]
    keys = SiteKeys(city / "registry.yaml")
    assert keys.verify_key(FEED) is None and keys.child_key(FEED) is None  # a feed sends no records
    assert (city / "hub" / "jc-feed.crt").is_file()
    with pytest.raises(ProvisioningError, match="already in"):
        add_feed(city, name="platform")
    for bad in ("Platform", "平台", "", "a b", "x" * 28):
        with pytest.raises(ProvisioningError, match="lowercase letters"):
            add_feed(city, name=bad)


def test_feed_acl_reads_only_its_batches_writes_only_its_acks_and_revocation(city):
    cfg = load_config(city / "hub.yaml", HubConfig)
    with ManagedBroker(city, port=cfg.broker.port) as broker:
        hub = connect(city, "hub", broker)
        hub.subscribe(f"{topics.ROOT}/#")
        hub.publish(topics.HUB_STATE, b"online", retain=True)
        pub = connect(city, "jc-feed", broker, files=TlsFiles(cfg.broker.ca, *feeds.publisher_cert_paths(cfg)))
        pub.subscribe(topics.ALL_FEED_ACKS)
        feed = connect(city, FEED, broker, files=_files(city))
        for t in (topics.site_down_filter("S01"), topics.ALL_BATCHES, topics.HUB_STATE, topics.feed_ack(FEED)):
            feed.subscribe(t)  # accepted by the broker, but nothing may arrive on them
        feed.subscribe(topics.feed_batch(FEED))
        feed.publish(topics.site_batch("S01"), b"forged")  # denied: a site's topic
        feed.publish(topics.HUB_STATE, b"forged")  # denied: the hub's
        feed.publish(topics.feed_batch(FEED), b"forged")  # denied: its down-topic is the hub's
        feed.publish(topics.feed_ack("feed-other"), b"forged")  # denied: another feed's
        feed.publish(topics.feed_ack(FEED), b"mine")
        pub.wait_for(topics.feed_ack(FEED), payload=b"mine")
        assert pub.topics_received() == [topics.feed_ack(FEED)]
        hub.wait_for(topics.feed_ack(FEED), payload=b"mine")  # (the hub reads everything)
        assert hub.topics_received() == [topics.HUB_STATE, topics.feed_ack(FEED)]
        hub.publish(topics.site_cmd("S01"), b"not-for-the-feed")
        hub.publish(topics.site_batch("S01"), b"a site's batch")
        pub.publish(topics.feed_batch(FEED), b"batch")
        feed.wait_for(topics.feed_batch(FEED), payload=b"batch")
        assert feed.topics_received() == [topics.feed_batch(FEED)]
        pub.publish(topics.site_cmd("S01"), b"x")  # the publisher may not speak for the hub
        pub.publish(topics.feed_batch(FEED), b"after")
        hub.wait_for(topics.feed_batch(FEED), payload=b"after")
        assert hub.topics_received().count(topics.site_cmd("S01")) == 1  # the hub's own, not the publisher's
        feed.close()
        revoke_site(city, code=FEED)
        broker.sync()
        assert not try_connect(city, FEED, broker, files=_files(city))
        hub.publish(topics.HUB_STATE, b"", retain=True)
        hub.close()
        pub.close()


def test_the_feed_end_to_end_mosquitto_sub_decode_tail_and_ack_later(city, store_url):
    cfg = load_config(city / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    with ManagedBroker(city, port=cfg.broker.port) as broker:
        # the platform's persistent session exists first: the broker keeps what comes while it is away
        r = _mosquitto_sub(city, broker.port, "-E")
        assert r.returncode == 0, r.stderr
        ing, clock = _produce(city, conn)
        assert uplink.head(conn) == 6
        pub = FeedPublisher(cfg, store_url, sign_key=HubKeys.load(cfg).sign_key, batch_records=2)
        pub.start()
        try:
            # 1. plain mosquitto_sub (three batches of two) + the decoder
            r = _mosquitto_sub(city, broker.port, "-N", "-C", "3", "-W", "15")
            assert r.returncode == 0, r.stderr
            raw = r.stdout
            d = _jiancha("feed", "decode", "--config", str(city / "feeds" / FEED / "FEED.yaml"), input_=raw)
            assert d.returncode == 0 and d.stderr == b"", d.stderr
            decoded = _lines(d.stdout)
            assert _summary(decoded) == EXPECTED
            assert all(x["schema"] == 1 and x["feed"] == FEED and x["hub"] == HUB for x in decoded)
            assert decoded[0]["prev"] == "00" * 32 and all(
                decoded[i]["prev"] == decoded[i - 1]["hash"] for i in range(1, 6)
            )
            assert decoded[1]["at_ms"] == 1_794_240_001_000  # 2026-11-10 00:00:01 +08:00: the red card
            assert decoded[1]["body"]["case"]["case_no"] == "S01-20261120-0001"
            assert (
                d.stdout
                == _jiancha("feed", "decode", "--config", str(city / "feeds" / FEED / "FEED.yaml"), input_=raw).stdout
            )  # the same bytes decode the same
            blob = d.stdout.decode()
            for p in PERSONAL:  # every decrypted byte: no applicant's name, ID number, phone
                assert p not in blob, p
            for p in PERSONAL:
                assert p.encode() not in raw
            if SCREEN_DIR:
                Path(SCREEN_DIR).mkdir(parents=True, exist_ok=True)
                ex = Path(SCREEN_DIR)
                (ex / "raw.bin").write_bytes(raw)
                (ex / "decoded.jsonl").write_bytes(d.stdout)
                for f in ("seal.key", "seal.pub", "hub_sign.pub"):  # a throwaway test hub's keys
                    (ex / f).write_bytes((city / "feeds" / FEED / f).read_bytes())
                fc = yaml.safe_load((city / "feeds" / FEED / "FEED.yaml").read_text(encoding="utf-8"))
                fc["broker"].update(host="hub.example.gov.cn", port=8883)
                (ex / "FEED.yaml").write_text(yaml.safe_dump(fc, allow_unicode=True, sort_keys=False))

            # 2. `jiancha feed tail` from seq 1 without acking: all six, the cursor stays
            fy = str(city / "feeds" / FEED / "FEED.yaml")
            t = _jiancha("feed", "tail", "--config", fy, "--from", "1", "--count", "6", "--idle", "10")
            assert t.returncode == 0, t.stderr
            assert _summary(_lines(t.stdout)) == EXPECTED and t.stderr == b""
            assert feeds.cursor(conn, FEED) == 0

            # 3. a platform with plain mosquitto tools acks seq 1 (with its hash) ...
            f = _files(city)
            m = subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "--cafile", str(f.ca), "--cert",
                 str(f.cert), "--key", str(f.key), "-q", "1", "-t", topics.feed_ack(FEED),
                 "-m", json.dumps({"acked": 1, "acked_hash": decoded[0]["hash"]})],
                capture_output=True, timeout=20,
            )  # fmt: skip
            assert m.returncode == 0, m.stderr
            _wait(lambda: feeds.cursor(conn, FEED) == 1)
            # ... a consumer that reads from the cursor, acks two records and goes away ...
            t = _jiancha("feed", "tail", "--config", fy, "--ack", "--count", "2", "--idle", "10")
            assert _summary(_lines(t.stdout)) == EXPECTED[1:3], t.stderr
            _wait(lambda: feeds.cursor(conn, FEED) == 3)
            # ... while the hub goes on: the 督办建议 (reply due 11-16) is not answered by 11-20 →
            # its no_reply step and the 督办决定 it escalates to: seqs 7 and 8
            clock.t = datetime(2026, 11, 20, 0, 0, 1, tzinfo=CST)
            ing.sweep()
            head = uplink.head(conn)
            assert head == 8
            # ... comes back and gets the rest, exactly once, in order, then acks it all
            t = _jiancha("feed", "tail", "--config", fy, "--ack", "--count", str(head - 3), "--idle", "10")
            got = _lines(t.stdout)
            assert [x["seq"] for x in got] == list(range(4, head + 1)), t.stderr
            assert _summary(got)[:3] == EXPECTED[3:] and t.stderr == b""
            assert _summary(got)[3:] == [
                (7, "ticket.step", ("suggestion", "no_reply")),
                (8, "ticket.step", ("decision", "open")),
            ]
            _wait(lambda: feeds.cursor(conn, FEED) == head)
            assert pub.counters["acks_refused"] == 0
        finally:
            pub.stop()
    conn.close()
    # the cursor is durable: a new publisher (a hub restart) starts from it
    conn = open_db(store_url)
    assert feeds.cursor(conn, FEED) == head
    conn.close()


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_documented_example_decodes_as_documented():
    """docs/feed-example/: real bytes of a test run (three batches from mosquitto_sub -N) with that
    run's keys; decoded by hand in docs/feed.md."""
    ex = WORKTREE / "docs" / "feed-example"
    d = _jiancha("feed", "decode", "--config", str(ex / "FEED.yaml"), str(ex / "raw.bin"))
    assert d.returncode == 0 and d.stderr == b""
    assert d.stdout == (ex / "decoded.jsonl").read_bytes()
    assert _summary(_lines(d.stdout)) == EXPECTED
    red = _lines(d.stdout)[1]
    assert red["at_ms"] == 1_794_240_001_000 and red["body"]["previous"] == "yellow"
    assert red["body"]["case"]["violations"] == ["acceptance_timeout"]


def test_cursor_moves_only_forward(store_url):
    conn = open_db(store_url)
    from iobase.sqlite import transaction

    with transaction(conn):
        assert feeds.set_cursor(conn, FEED, 5, b"h" * 32, 1)
        assert not feeds.set_cursor(conn, FEED, 3, b"g" * 32, 2)  # an older ack never moves it back
        assert feeds.cursor(conn, FEED) == 5 and feeds.cursor(conn, "feed-other") == 0
    conn.close()


def test_decode_reports_a_gap_and_a_bad_signature(city, db):
    """Batches sealed as the publisher does, one left out and one signed with another key."""
    _produce(city, db)
    cfg = load_config(city / "hub.yaml", HubConfig)
    sign = load_private_pem((city / "hub" / "sign.key").read_bytes(), "ed25519")
    seal_pub = load_public_pem((city / "feeds" / FEED / "seal.pub").read_bytes(), "x25519")
    recs = uplink.read(db, 1, 6)

    def batch(first, last, key=sign):
        return seal_batch(HUB, recs[first - 1 : last], sign_key=key, hub_seal_pub=seal_pub, sent_ms=0, first_seq=first)

    fy = str(city / "feeds" / FEED / "FEED.yaml")
    d = _jiancha("feed", "decode", "--config", fy, input_=batch(1, 2) + batch(5, 6))  # 3..4 missing
    assert d.returncode == 1
    assert [x["seq"] for x in _lines(d.stdout)] == [1, 2, 5, 6]
    assert d.stderr.decode() == "feed: GAP: expected seq 3, got 5\n"
    d = _jiancha("feed", "decode", "--config", fy, input_=batch(1, 2) + batch(3, 4, generate_ed25519()))
    assert d.returncode == 1 and [x["seq"] for x in _lines(d.stdout)] == [1, 2]
    assert d.stderr.decode().startswith("feed: BAD SIGNATURE: bad_signature")
    d = _jiancha("feed", "decode", "--config", fy, input_=batch(1, 2) + b"\x94\x01")  # a torn payload
    assert d.returncode == 1 and "trailing bytes" in d.stderr.decode()
    _ = cfg


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"nope", "not a JSON object"),
        (b"[1]", "not a JSON object"),
        (b'{"acked": -1}', "integer >= 0"),
        (b'{"acked": true}', "integer >= 0"),
        (b'{"acked": 1, "acked_hash": "zz"}', "64 lowercase hex"),
        (b'{"acked": 1, "x": 1}', "unknown ack field"),
        (b"{}", "names `acked`"),
        (b'{"resend": "yes"}', "true or false"),
        (b"{" + b" " * 2000 + b"}", "limit 1024"),
    ],
)
def test_bad_acks_are_refused_with_a_reason(raw, needle):
    with pytest.raises(AckError, match=needle):
        parse_ack(raw)


def test_ack_round_trip():
    a = parse_ack(encode_ack(7, b"\x01" * 32, resend=True))
    assert (a.acked, a.acked_hash, a.resend) == (7, b"\x01" * 32, True)
    assert parse_ack(b'{"resend": true}').acked is None


def test_the_publisher_moves_the_cursor_only_on_its_own_records_and_rewinds_on_request(city, db, store_url):
    """hub/feeds.py on_ack stepped by hand (no broker): acks checked against the outbox's hashes;
    /metrics shows the cursor."""
    ing, _ = _produce(city, db)
    cfg = load_config(city / "hub.yaml", HubConfig)
    pub = FeedPublisher(cfg, store_url, sign_key=HubKeys.load(cfg).sign_key)
    try:
        f = pub.feeds[FEED]
        f.next = 7  # everything sent
        h3 = uplink.record_hash_at(db, 3)
        ack = topics.feed_ack(FEED)
        pub.on_ack(ack, encode_ack(3, h3))
        assert (feeds.cursor(db, FEED), f.acked, f.next) == (3, 3, 7)  # a plain ack does not rewind
        pub.on_ack(ack, encode_ack(4, b"\x00" * 32))  # not our record's hash
        pub.on_ack(ack, encode_ack(9))  # beyond the head
        pub.on_ack(ack, b'{"acked": "4"}')  # malformed
        pub.on_ack(topics.feed_ack("feed-unknown"), encode_ack(5))  # no such feed: ignored
        assert feeds.cursor(db, FEED) == 3 and pub.counters["acks_refused"] == 3
        pub.on_ack(ack, encode_ack(2))  # an older ack: the cursor stays
        assert feeds.cursor(db, FEED) == 3
        pub.on_ack(ack, encode_ack(2, resend=True))  # a consumer that lost 3: from 3 again
        assert (f.acked, f.next) == (3, 3)
        pub.on_ack(ack, encode_ack(None, resend=True))  # "from your cursor"
        assert f.next == 4
        pub.on_ack(ack, encode_ack(6, uplink.record_hash_at(db, 6)))
        assert (feeds.cursor(db, FEED), f.next) == (6, 7)
        text = render_metrics(db, SimpleNamespace(ingest=ing, link=SimpleNamespace(connected=threading.Event())))
        assert 'jiancha_feed_acked_seq{feed="feed-platform"} 6' in text.splitlines()
        assert 'jiancha_uplink_seq{mark="head"} 6' in text.splitlines()
    finally:
        pub.conn.close()


def test_the_reader_holds_back_after_a_gap_until_the_resend_fills_it(city, db):
    """protocol/feed.py FeedReader as `tail` uses it: nothing past a gap, each seq once."""
    from protocol.feed import FeedReader

    _produce(city, db)
    sign = load_private_pem((city / "hub" / "sign.key").read_bytes(), "ed25519")
    seal_pub = load_public_pem((city / "feeds" / FEED / "seal.pub").read_bytes(), "x25519")
    recs = uplink.read(db, 1, 6)

    def batch(first, last):
        return seal_batch(HUB, recs[first - 1 : last], sign_key=sign, hub_seal_pub=seal_pub, sent_ms=0, first_seq=first)

    reader = FeedReader(
        FEED,
        HUB,
        load_public_pem((city / "hub" / "sign.pub").read_bytes(), "ed25519"),
        load_private_pem((city / "feeds" / FEED / "seal.key").read_bytes(), "x25519"),
        next_seq=1,
    )
    assert [r["seq"] for r in reader.accept(batch(1, 2))] == [1, 2]
    assert reader.accept(batch(5, 6)) == [] and reader.problems == ["GAP: expected seq 3, got 5"]
    assert reader.acked == 2  # what tail asks the resend from
    assert [r["seq"] for r in reader.accept(batch(2, 4))] == [3, 4]  # 2 again: dropped
    assert [r["seq"] for r in reader.accept(batch(5, 6))] == [5, 6]
    assert reader.duplicates == 1 and reader.acked == 6
