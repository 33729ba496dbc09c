"""Issue 7, section 3: one township box (its folder: keys and client certificate) must not be
able to exhaust the broker. Real Mosquitto with the generated config, real paho clients."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from protocol import topics
from protocol.wire import MAX_BATCH_BYTES
from provisioning.brokerconf import MAX_HUB_PUBLISH_BYTES, MAX_INFLIGHT_BYTES, MAX_PACKET_SIZE, MAX_QUEUED_BYTES
from tests.provisioning.mqtt_helpers import connect, provision, start_broker

MiB = 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def root(tmp_path):
    return provision(tmp_path / "hub", sites=["S01", "S02"])


def test_the_largest_batch_and_the_hubs_largest_publish_fit(hub_dir, broker):
    hub = connect(hub_dir, "hub", broker)
    hub.subscribe(topics.ALL_BATCHES)
    site = connect(hub_dir, "S01", broker)
    site.subscribe(topics.site_down_filter("S01"))
    batch = os.urandom(MAX_BATCH_BYTES)
    site.publish(topics.site_batch("S01"), batch)
    assert hub.wait_for(topics.site_batch("S01")).payload == batch
    config = os.urandom(MAX_HUB_PUBLISH_BYTES)
    hub.publish(topics.site_config("S01", "catalog"), config)
    assert site.wait_for(topics.site_config("S01", "catalog")).payload == config
    assert hub.connected.is_set() and site.connected.is_set()
    hub.publish(topics.site_config("S01", "catalog"), b"", retain=True)
    hub.close(), site.close()


def test_an_oversize_publish_disconnects_the_site_and_goes_nowhere(hub_dir, broker):
    hub = connect(hub_dir, "hub", broker)
    hub.subscribe(f"{topics.ROOT}/#")
    s1 = connect(hub_dir, "S01", broker)
    s1.client.reconnect_delay_set(30, 60)  # stay down once cut off
    s1.client.publish(topics.site_batch("S01"), b"\0" * MAX_PACKET_SIZE, qos=0)
    assert s1.disconnected.wait(10), "the broker kept a client that sent an oversize packet"
    s2 = connect(hub_dir, "S02", broker)
    s2.publish(topics.site_batch("S02"), b"barrier")
    hub.wait_for(topics.site_batch("S02"), payload=b"barrier")
    assert topics.site_batch("S01") not in hub.topics_received()
    hub.close(), s1.close(), s2.close()


@pytest.mark.parametrize(
    "suffix", ["up/other", "up/batch/x", "up/state/x", "up", "up/clip2", "down/cmd", "down/config/catalog", "x"]
)
def test_a_site_writes_only_its_three_up_topics(hub_dir, broker, suffix):
    hub = connect(hub_dir, "hub", broker)
    hub.subscribe(f"{topics.ROOT}/#")
    s1 = connect(hub_dir, "S01", broker)
    s1.publish(f"{topics.ROOT}/site/S01/{suffix}", b"forbidden")  # PUBACK, but dropped
    for allowed in (topics.site_batch("S01"), topics.site_clip("S01"), topics.site_state("S01")):
        s1.publish(allowed, b"allowed")
        hub.wait_for(allowed, payload=b"allowed")
    assert f"{topics.ROOT}/site/S01/{suffix}" not in hub.topics_received()
    hub.close(), s1.close()


def test_queued_bytes_are_bounded_while_the_hub_is_offline(root):
    """The hub's persistent session is offline; one site publishes 100 full-size batches."""
    with start_broker(root) as broker:
        hub = connect(root, "hub", broker, client_id="hub-session", clean_session=False)
        hub.subscribe(topics.ALL_BATCHES, qos=1)
        hub.close()
        time.sleep(0.2)
        before = _rss(broker.pid)
        site = connect(root, "S01", broker)
        payload = os.urandom(MAX_BATCH_BYTES)
        n = 100  # 100 MiB offered
        for _ in range(n):
            site.publish(topics.site_batch("S01"), payload, timeout=20)
        grown = _rss(broker.pid) - before
        # bounded by max_queued_bytes (+ one message in progress, allocator slack): the same
        # test without the bound grew Mosquitto by ~100 MiB
        assert grown < MAX_QUEUED_BYTES + 16 * MiB, f"broker grew by {grown / MiB:.0f} MiB"
        site.close()
        hub = connect(root, "hub", broker, client_id="hub-session", clean_session=False)
        assert hub.session_present
        deadline = time.monotonic() + 20
        got = 0
        while time.monotonic() < deadline:
            before_n = len(hub.received)
            time.sleep(0.5)
            got = len(hub.received)
            if got and got == before_n:
                break
        # what was kept: at most max_queued_bytes queued (+ what fits in flight); the rest was
        # dropped -- the agents' outbox resends it after ack_timeout_s
        assert 0 < got * MAX_BATCH_BYTES <= MAX_QUEUED_BYTES + MAX_INFLIGHT_BYTES + MAX_BATCH_BYTES, got
        assert got < n
        hub.close()


def test_stray_retained_messages_are_cleared_at_start(root):
    with start_broker(root) as broker:
        s1 = connect(root, "S01", broker)
        s1.publish(topics.site_state("S01"), b"birth", retain=True)  # the one allowed
        s1.publish(topics.site_batch("S01"), b"b" * 1000, retain=True)  # stray
        s1.publish(topics.site_clip("S01"), b"c" * 1000, retain=True)  # stray
        s2 = connect(root, "S02", broker)
        s2.publish(topics.site_state("S02"), b"s" * (64 * 1024 + 1), retain=True)  # oversize state
        s1.close(), s2.close()
        broker.restart()
        assert broker.swept == sorted([topics.site_batch("S01"), topics.site_clip("S01"), topics.site_state("S02")])
        hub = connect(root, "hub", broker)
        hub.subscribe(f"{topics.ROOT}/site/+/up/#")
        hub.wait_for(topics.site_state("S01"), payload=b"birth")
        hub.subscribe(f"{topics.ROOT}/barrier")  # retained come before its SUBACK
        assert hub.topics_received() == [topics.site_state("S01")]
        hub.close()
        broker.restart()
        assert broker.swept == []
