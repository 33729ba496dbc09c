"""One identity, one session (issue 7 section 3, DESIGN §13): the broker names every session after
the certificate's CN (`use_username_as_clientid`), whatever client id is sent. So a stolen box's
certificate cannot throw the hub (or another site) off, take over its persistent session, wipe
its queued batches, or open more sessions under made-up ids; and the broker runner's probe and
retained-message sweep use their own identity, leaving the running hub alone.

Real Mosquitto with the generated config, real paho clients. A client whose session is taken
over would reconnect and take it back (paho's loop), so the clients that are expected to be
thrown off get a long reconnect delay.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import struct

import pytest

from hub.config import Registry
from iobase.config import BROKER_TOOL_IDENTITY, load_config
from protocol import topics
from provisioning.brokerconf import BrokerLayout, acl_text
from provisioning.ca import cert_common_name, load_cert
from tests.provisioning.mqtt_helpers import connect, provision, start_broker, tls_files

# client ids a box could guess: hub/mqtt.py's and agent/sync.py's defaults, the CNs themselves,
# an empty id (the broker makes one up), and anything else
GUESSES = ["hub-140700", "hub", "site-S02", "S02", "jc-broker-tool", "", "anything-else"]


@pytest.fixture
def root(tmp_path):
    return provision(tmp_path / "hub", sites=["S01", "S02"])


def _quiet(client) -> None:
    client.client.reconnect_delay_set(30, 60)  # once thrown off, stay off


def _barrier(hub, sender, n: str) -> None:
    """A batch from `sender` reaches `hub`: both connections are alive and routed."""
    sender.publish(topics.site_batch(sender.name), n.encode())
    hub.wait_for(topics.site_batch(sender.name), payload=n.encode())


def test_a_site_certificate_with_any_client_id_leaves_the_hub_and_the_other_site_alone(root):
    with start_broker(root) as broker:
        hub = connect(root, "hub", broker, client_id="hub-140700", clean_session=False)
        hub.subscribe(topics.ALL_BATCHES)
        s02 = connect(root, "S02", broker, client_id="site-S02")
        for i, cid in enumerate(GUESSES):
            thief = connect(root, "S01", broker, client_id=cid, clean_session=cid == "")
            _quiet(thief)
            _barrier(hub, thief, f"thief-{i}")  # it is connected, as S01 and nothing else
            _barrier(hub, s02, f"s02-{i}")
            assert not hub.disconnected.is_set() and not s02.disconnected.is_set(), cid
            thief.close()
        assert hub.connected.is_set() and s02.connected.is_set()
        hub.close(), s02.close()


def test_the_hubs_queued_batches_survive_a_site_connecting_with_the_hubs_client_id(root):
    """Before the fix a clean-session CONNECT with the hub's client id wiped its session."""
    with start_broker(root) as broker:
        hub = connect(root, "hub", broker, client_id="hub-140700", clean_session=False)
        hub.subscribe(topics.ALL_BATCHES)
        hub.close()  # offline; its session queues
        s02 = connect(root, "S02", broker)
        for n in range(5):
            s02.publish(topics.site_batch("S02"), f"queued-{n}".encode())
        s02.close()
        for cid in ("hub-140700", "hub"):
            for clean in (True, False):
                thief = connect(root, "S01", broker, client_id=cid, clean_session=clean)
                thief.close()
        hub = connect(root, "hub", broker, client_id="hub-140700", clean_session=False)
        assert hub.session_present
        for n in range(5):
            hub.wait_for(topics.site_batch("S02"), payload=f"queued-{n}".encode())
        hub.close()


def test_one_identity_has_exactly_one_session_whatever_ids_it_sends(root):
    with start_broker(root) as broker:
        first = connect(root, "S01", broker, client_id="made-up-1", clean_session=False)
        _quiet(first)
        first.subscribe(topics.site_down_filter("S01"))
        second = connect(root, "S01", broker, client_id="made-up-2", clean_session=False)
        _quiet(second)
        assert second.session_present  # the same session, not a new one
        assert first.disconnected.wait(5)  # and the older connection was closed
        hub = connect(root, "hub", broker)
        hub.publish(topics.site_cmd("S01"), b"to-the-one-session")
        second.wait_for(topics.site_cmd("S01"), payload=b"to-the-one-session")  # inherited sub
        second.close()
        third = connect(root, "S01", broker, client_id="made-up-3", clean_session=False)
        assert third.session_present
        third.close()
        # an empty client id (clean session) is accepted: the broker uses the CN
        anon = connect(root, "S01", broker, client_id="")
        hub.subscribe(topics.ALL_BATCHES)
        _barrier(hub, anon, "empty-id")
        anon.close(), hub.close()


def test_probe_and_sweep_run_while_the_hub_is_connected_without_touching_it(root):
    with start_broker(root) as broker:
        hub = connect(root, "hub", broker, client_id="hub-140700", clean_session=False)
        hub.subscribe(topics.ALL_BATCHES)
        s01 = connect(root, "S01", broker)
        s01.publish(topics.site_batch("S01"), b"x" * 100, retain=True)  # a stray to sweep
        hub.wait_for(topics.site_batch("S01"), payload=b"x" * 100)
        for _ in range(3):
            assert broker.ping()
        assert broker.sweep_retained() == [topics.site_batch("S01")]
        hub.wait_for(topics.site_batch("S01"), payload=b"")  # the delete, to the hub
        assert broker.sweep_retained() == []
        broker.reload()
        _barrier(hub, s01, "after")
        assert not hub.disconnected.is_set() and hub.connected.is_set()
        # and across a restart (probe + sweep at start) the hub's queued batches stay queued
        s01.close(), hub.close()
        s01 = connect(root, "S01", broker)
        for n in range(3):
            s01.publish(topics.site_batch("S01"), f"q{n}".encode())
        s01.close()
        broker.restart()
        hub = connect(root, "hub", broker, client_id="hub-140700", clean_session=False)
        assert hub.session_present
        for n in range(3):
            hub.wait_for(topics.site_batch("S01"), payload=f"q{n}".encode())
        hub.close()


def test_the_broker_tool_can_only_read_and_write_the_sites_up_topics(root):
    with start_broker(root) as broker:
        hub = connect(root, "hub", broker)
        hub.subscribe(f"{topics.ROOT}/#")
        s01 = connect(root, "S01", broker)
        s01.subscribe(topics.site_down_filter("S01"))
        s01.subscribe(topics.HUB_STATE)
        tool = connect(root, BROKER_TOOL_IDENTITY, broker)
        tool.subscribe(f"{topics.ROOT}/#")  # granted; deliveries filtered by the read ACL
        for t in (
            topics.HUB_STATE,
            topics.site_cmd("S01"),
            topics.site_ack("S01"),
            topics.site_config("S01", "catalog"),
        ):
            tool.publish(t, b"forged")  # denied (PUBACK, dropped)
        tool.publish(topics.site_batch("S02"), b"allowed")  # the sweep's deletes go here
        hub.wait_for(topics.site_batch("S02"), payload=b"allowed")
        assert hub.topics_received() == [topics.site_batch("S02")]  # same publisher: in order
        hub.publish(topics.site_cmd("S01"), b"barrier")  # routed after the tool's (PUBACKed)
        s01.wait_for(topics.site_cmd("S01"), payload=b"barrier")
        assert s01.topics_received() == [topics.site_cmd("S01")]
        s01.publish(topics.site_batch("S01"), b"up")
        tool.wait_for(topics.site_batch("S01"), payload=b"up")
        assert set(tool.topics_received()) == {topics.site_batch("S02"), topics.site_batch("S01")}
        hub.close(), s01.close(), tool.close()


def test_an_older_hub_directory_gets_the_tool_identity_at_the_next_broker_start(root):
    layout = BrokerLayout(root)
    layout.tool_crt.unlink(), layout.tool_key.unlink()
    registry = load_config(root / "registry.yaml", Registry)
    old_acl = "\n".join(
        line
        for line in acl_text(registry).splitlines()
        if BROKER_TOOL_IDENTITY not in line and "site/+/up/#" not in line
    )
    layout.acl.write_text(old_acl)
    with start_broker(root) as broker:
        assert cert_common_name(load_cert(layout.tool_crt)) == BROKER_TOOL_IDENTITY
        assert stat.S_IMODE(os.stat(layout.tool_key).st_mode) == 0o600
        assert f"user {BROKER_TOOL_IDENTITY}" in layout.acl.read_text().splitlines()
        assert "broker tool's identity" in layout.log.read_text()
        s01 = connect(root, "S01", broker)
        s01.publish(topics.site_clip("S01"), b"c" * 10, retain=True)
        s01.close()
        assert broker.sweep_retained() == [topics.site_clip("S01")]  # the ACL lets it sweep
        serials = load_cert(layout.tool_crt).serial_number
    with start_broker(root):  # present now: nothing is reissued
        assert load_cert(layout.tool_crt).serial_number == serials


def _raw_connack(root, port: int, identity: str, client_id: str, clean: bool) -> int:
    """CONNACK return code of a hand-made MQTT 3.1.1 CONNECT (paho refuses an empty id with a
    persistent session before sending it)."""
    files = tls_files(root, identity)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(files.cert), str(files.key))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        cid = client_id.encode()
        var = b"\x00\x04MQTT\x04" + bytes([0x02 if clean else 0x00]) + b"\x00\x0a" + struct.pack("!H", len(cid)) + cid
        tls.sendall(b"\x10" + bytes([len(var)]) + var)
        connack = tls.recv(4)
        assert connack[:2] == b"\x20\x02", connack
        return connack[3]


def test_an_empty_client_id_is_named_after_the_certificate_or_refused_for_a_persistent_session(root):
    with start_broker(root) as broker:
        assert _raw_connack(root, broker.port, "S01", "", clean=True) == 0
        assert _raw_connack(root, broker.port, "S01", "", clean=False) == 2  # identifier rejected
        assert _raw_connack(root, broker.port, "S01", "hub", clean=False) == 0
        hub = connect(root, "hub", broker, clean_session=False)
        assert not hub.session_present  # S01's persistent "hub" was S01's own
        hub.close()
        assert "as S01 (p2, c0, k10, u'S01')" in broker.layout.log.read_text()
