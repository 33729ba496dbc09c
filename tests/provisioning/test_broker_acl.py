"""The generated Mosquitto config with real paho clients: who may publish and read what."""

from __future__ import annotations

from protocol import topics
from provisioning.ca import CertificateAuthority
from tests.provisioning.mqtt_helpers import TlsFiles, connect, tls_files, try_connect


def test_site_publishes_to_its_own_up_topic_and_the_hub_receives_it(hub_dir, broker):
    hub = connect(hub_dir, "hub", broker)
    hub.subscribe(topics.ALL_BATCHES)
    site = connect(hub_dir, "S01", broker)
    site.publish(topics.site_batch("S01"), b"batch-1")
    msg = hub.wait_for(topics.site_batch("S01"))
    assert msg.payload == b"batch-1"
    hub.close(), site.close()


def test_site_cannot_publish_as_another_site(hub_dir, broker):
    hub = connect(hub_dir, "hub", broker)
    hub.subscribe(f"{topics.ROOT}/#")
    a = connect(hub_dir, "S01", broker)
    a.publish(topics.site_batch("S02"), b"forged")  # denied by the ACL
    a.publish(topics.site_state("S02"), b"forged")  # denied
    a.publish(topics.HUB_STATE, b"forged")  # denied: sites only read it
    a.publish(topics.site_ack("S01"), b"forged")  # denied: down-topics are the hub's
    a.publish(topics.site_batch("S01"), b"barrier")  # allowed; arrives after the above would
    hub.wait_for(topics.site_batch("S01"), payload=b"barrier")
    assert hub.topics_received() == [topics.site_batch("S01")]
    hub.close(), a.close()


def test_site_reads_only_its_own_down_topics_and_hub_state(hub_dir, broker):
    hub = connect(hub_dir, "hub", broker)
    hub.publish(topics.HUB_STATE, b"online", retain=True)
    a = connect(hub_dir, "S01", broker)
    a.subscribe(topics.site_down_filter("S01"))
    a.subscribe(topics.site_down_filter("S02"))
    a.subscribe(topics.ALL_BATCHES)
    a.subscribe(topics.HUB_STATE)
    assert a.wait_for(topics.HUB_STATE).payload == b"online"  # retained, readable
    hub.publish(topics.site_cmd("S02"), b"for-S02")
    hub.publish(topics.site_config("S02", "catalog"), b"for-S02")
    b = connect(hub_dir, "S02", broker)
    b.publish(topics.site_batch("S02"), b"S02-batch")  # PUBACK: already routed (or denied)
    hub.publish(topics.site_ack("S01"), b"for-S01")  # arrives after anything routed before
    a.wait_for(topics.site_ack("S01"), payload=b"for-S01")
    hub.publish(topics.site_cmd("S01"), b"last")
    a.wait_for(topics.site_cmd("S01"), payload=b"last")
    assert a.topics_received() == [topics.HUB_STATE, topics.site_ack("S01"), topics.site_cmd("S01")]
    hub.publish(topics.HUB_STATE, b"", retain=True)
    hub.close(), a.close(), b.close()


def test_site_cannot_subscribe_outside_its_own_topics(hub_dir, broker):
    a = connect(hub_dir, "S01", broker)
    a.subscribe(f"{topics.ROOT}/#")
    # Mosquitto 2.0.11 grants this SUBACK but filters every delivery through the read ACL.
    hub = connect(hub_dir, "hub", broker)
    hub.publish(topics.site_cmd("S02"), b"secret")
    hub.publish(topics.site_cmd("S01"), b"mine")
    a.wait_for(topics.site_cmd("S01"), payload=b"mine")
    assert topics.site_cmd("S02") not in a.topics_received()
    a.close(), hub.close()


def test_client_without_certificate_is_refused(hub_dir, broker):
    files = tls_files(hub_dir, "S01")
    assert not try_connect(hub_dir, "S01", broker, files=TlsFiles(files.ca, None, None))


def test_certificate_from_another_ca_is_refused(hub_dir, broker, tmp_path):
    other = CertificateAuthority.create(tmp_path / "other-ca", "999999")
    other.issue_client("S01", tmp_path / "s01.crt", tmp_path / "s01.key")
    files = TlsFiles(hub_dir / "ca" / "ca.crt", tmp_path / "s01.crt", tmp_path / "s01.key")
    assert not try_connect(hub_dir, "S01", broker, files=files)
    assert try_connect(hub_dir, "S01", broker)  # the real one still works


def test_hub_certificate_used_as_server_is_not_trusted_by_site(hub_dir, broker, tmp_path):
    """A site only trusts the hub's CA: a broker certificate from another CA fails the handshake."""
    other = CertificateAuthority.create(tmp_path / "other-ca", "999999")
    files = tls_files(hub_dir, "S01")
    assert not try_connect(hub_dir, "S01", broker, files=TlsFiles(other.cert_path, files.cert, files.key))
