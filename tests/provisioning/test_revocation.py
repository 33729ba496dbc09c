"""revoke-site against a running broker: the live connection is cut off by the ACL reload,
and the CRL reload makes Mosquitto refuse new handshakes -- without restarting anything."""

from __future__ import annotations

from protocol import topics
from provisioning.setup import add_site, revoke_site
from tests.provisioning.mqtt_helpers import connect, provision, start_broker, try_connect


def test_revoked_site_is_cut_off_without_restart(tmp_path):
    root = provision(tmp_path / "hub", sites=["S01", "S02"])
    with start_broker(root, watch=False) as broker:  # only signal_reload (broker.pid) reloads it
        pid = broker.pid
        hub = connect(root, "hub", broker, client_id="hub-ingest")
        hub.subscribe(f"{topics.ROOT}/#")
        s01 = connect(root, "S01", broker)
        s01.subscribe(topics.site_down_filter("S01"))
        s02 = connect(root, "S02", broker)
        s01.publish(topics.site_batch("S01"), b"before")
        hub.wait_for(topics.site_batch("S01"), payload=b"before")

        revoke_site(root, code="S01")
        assert broker.ping()  # SIGHUP has been handled once this round trip completes

        assert broker.pid == pid and hub.connected.is_set()  # nothing was restarted
        s01.publish(topics.site_batch("S01"), b"after")  # same connection, now denied
        s02.publish(topics.site_batch("S02"), b"barrier")
        hub.wait_for(topics.site_batch("S02"), payload=b"barrier")
        assert [m.payload for m in hub.received if m.topic == topics.site_batch("S01")] == [b"before"]

        hub.publish(topics.site_cmd("S01"), b"to-revoked")  # its subscription is dead too
        s02.subscribe(topics.site_cmd("S02"))
        hub.publish(topics.site_cmd("S02"), b"barrier")
        s02.wait_for(topics.site_cmd("S02"), payload=b"barrier")
        hub.publish(topics.site_cmd("S02"), b"barrier2")
        s02.wait_for(topics.site_cmd("S02"), payload=b"barrier2")
        assert s01.received == []

        assert not try_connect(root, "S01", broker)  # CRL re-read: new handshakes fail
        assert try_connect(root, "S02", broker)
        for c in (hub, s01, s02):
            c.close()


def test_added_site_can_connect_without_restart(tmp_path):
    root = provision(tmp_path / "hub", sites=["S01"])
    with start_broker(root, watch=False) as broker:
        hub = connect(root, "hub", broker)
        hub.subscribe(topics.ALL_BATCHES)
        add_site(root, code="S07", name="新站")
        assert broker.ping()
        s07 = connect(root, "S07", broker)
        s07.publish(topics.site_batch("S07"), b"hello")
        hub.wait_for(topics.site_batch("S07"), payload=b"hello")
        hub.close(), s07.close()
