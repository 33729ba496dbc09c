"""The child hub's forwarder (hub/forwarder.py) stepped by hand with a recording MQTT client,
on both engines: nothing goes before the parent is online, the outbox goes out in seq order,
acks persist the mark, a resend request and silence rewind, an ack that names another history
is refused."""

from __future__ import annotations

from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest

from hub import uplink
from hub.config import HubConfig
from hub.forwarder import Forwarder
from hub.store import open_db
from iobase.config import load_config
from iobase.sqlite import transaction
from protocol import topics
from protocol.crypto import load_private_pem
from protocol.records import record_hash
from protocol.wire import decode_msg, encode_msg, open_batch
from provisioning.child_hub import add_child_hub, install_parent
from provisioning.setup import init_hub

CHILD = "hub-140721"


class Recorder:
    """Stands in for paho's client: records publishes, accepts everything."""

    def __init__(self):
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload, retain))
        return SimpleNamespace(rc=mqtt.MQTT_ERR_SUCCESS, wait_for_publish=lambda t=None: None)

    def subscribe(self, filters):
        self.filters = filters


@pytest.fixture
def fwd(tmp_path, store_url):
    city, county = tmp_path / "city", tmp_path / "county"
    init_hub(city, region="140700", name="晋中市", broker_port=18884)
    init_hub(county, region="140721", name="榆次区", level="county", broker_port=18885)
    install_parent(county, bundle=add_child_hub(city, code="140721", name="榆次区"))
    cfg = load_config(county / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    with transaction(conn):
        for n in range(1, 6):
            uplink.append(conn, "card", {"n": n}, 1_794_000_000_000 + n)
    f = Forwarder(cfg, store_url)
    f.client = Recorder()
    seal = load_private_pem((city / "hub" / "seal.key").read_bytes(), "x25519")
    verify = load_private_pem((county / "parent" / "sign.key").read_bytes(), "ed25519").public_key()
    yield f, conn, seal, verify
    f.conn.close()
    conn.close()


def _batches(f, seal, verify):
    out = []
    for topic, payload, _ in f.client.sent:
        if topic == topics.child_batch(CHILD):
            _, recs = open_batch(payload, site=CHILD, verify_key=verify, hub_seal_key=seal)
            out.append([r.seq for r, _ in recs])
    return out


def _ack(f, conn, acked, **extra):
    h = uplink.record_hash_at(conn, acked).hex() if acked else ""
    f.events.put(("message", (topics.child_ack(CHILD), encode_msg({"acked": acked, "acked_hash": h, **extra}))))
    f.run_once()


def _online(f, ms=1):
    f.events.put(("message", (topics.HUB_STATE, encode_msg({"online": True, "ms": ms}))))
    f.run_once()


def test_drains_in_order_after_the_parent_is_online_and_persists_acks(fwd):
    f, conn, seal, verify = fwd
    f.cfg.batch_max_records = 2
    f.events.put(("connect", mqtt.ReasonCode(mqtt.PacketTypes.CONNACK, identifier=0)))
    f.run_once()
    birth = [decode_msg(p) for t, p, r in f.client.sent if t == topics.child_state(CHILD)]
    assert birth[0]["online"] is True and birth[0]["last_seq"] == 5 and birth[0]["acked_seq"] == 0
    assert _batches(f, seal, verify) == []  # the parent's state has not said online yet
    _online(f)
    assert _batches(f, seal, verify) == [[1, 2], [3, 4], [5]]
    _ack(f, conn, 4)
    assert uplink.acked(conn) == 4 and f.status()["inflight"] == 1
    with transaction(conn):  # a live record while the plan runs: it goes next
        uplink.append(conn, "card", {"n": 6}, 1_794_000_000_006)
    f.run_once()
    assert _batches(f, seal, verify)[-1] == [6]
    _ack(f, conn, 6)
    assert uplink.acked(conn) == 6 and f.status()["inflight"] == 0


def test_resend_request_and_silence_rewind(fwd):
    f, conn, seal, verify = fwd
    f.cfg.ack_timeout_s = 0.01
    f.events.put(("connect", mqtt.ReasonCode(mqtt.PacketTypes.CONNACK, identifier=0)))
    _online(f)
    assert _batches(f, seal, verify) == [[1, 2, 3, 4, 5]]
    _ack(f, conn, 2, resend_from=3)  # the parent lost 3..5 (a gap): sent again
    assert _batches(f, seal, verify)[-1] == [3, 4, 5]
    f.last_progress -= 1.0  # then silence past the ack timeout: from the last ack again
    f.run_once()
    assert _batches(f, seal, verify)[-1] == [3, 4, 5] and f.counters["rewinds"] == 2
    _ack(f, conn, 5)
    assert uplink.acked(conn) == 5


def test_an_ack_naming_another_record_is_refused(fwd):
    f, conn, seal, verify = fwd
    f.events.put(("connect", mqtt.ReasonCode(mqtt.PacketTypes.CONNACK, identifier=0)))
    _online(f)
    f.events.put(("message", (topics.child_ack(CHILD), encode_msg({"acked": 3, "acked_hash": "00" * 32}))))
    f.run_once()
    f.events.put(("message", (topics.child_ack(CHILD), encode_msg({"acked": 9, "acked_hash": ""}))))
    f.run_once()
    assert uplink.acked(conn) == 0 and f.counters["acks_diverged"] == 2
    assert record_hash(uplink.read(conn, 3, 3)[0]) == uplink.record_hash_at(conn, 3)


def test_a_restarted_parent_gets_a_fresh_birth_and_the_drain_restarts(fwd):
    f, conn, seal, verify = fwd
    f.events.put(("connect", mqtt.ReasonCode(mqtt.PacketTypes.CONNACK, identifier=0)))
    _online(f, ms=1)
    _ack(f, conn, 5)
    n_births = sum(t == topics.child_state(CHILD) for t, _, _ in f.client.sent)
    _online(f, ms=2)  # the parent came back (its store restored: it answers with a lower ack)
    assert sum(t == topics.child_state(CHILD) for t, _, _ in f.client.sent) == n_births + 1
    _ack(f, conn, 2, resend_from=3)
    assert _batches(f, seal, verify)[-1] == [3, 4, 5]
