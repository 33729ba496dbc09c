"""`jiancha provision add-child-hub` / `install-parent` and the parent's broker ACL for a child
hub, with real paho clients on a real Mosquitto: a child writes only its own up-topics, reads
only its own down-topics, and revocation cuts it off as it does a site."""

from __future__ import annotations

import pytest
import yaml

from hub.config import HubConfig, Registry
from hub.keys import SiteKeys
from iobase.config import load_config
from protocol import topics
from provisioning.child_hub import add_child_hub, install_parent
from provisioning.errors import ProvisioningError
from provisioning.setup import init_hub, revoke_site
from tests.provisioning.mqtt_helpers import ManagedBroker, TlsFiles, connect, free_port, provision, try_connect

CHILD = "hub-140721"


@pytest.fixture
def parent(tmp_path):
    root = provision(tmp_path / "city", sites=["S01"])
    add_child_hub(root, code="140721", name="榆次区政务服务中心", level="county")
    return root


def _files(root):
    b = root / "children" / CHILD
    return TlsFiles(b / "ca.crt", b / "mqtt.crt", b / "mqtt.key")


def test_bundle_registry_and_install(parent, tmp_path):
    bundle = parent / "children" / CHILD
    assert sorted(p.name for p in bundle.iterdir()) == [
        "ca.crt",
        "mqtt.crt",
        "mqtt.key",
        "parent.yaml",
        "parent_seal.pub",
        "parent_sign.pub",
        "sign.key",
        "sign.pub",
    ]
    assert (bundle / "sign.key").stat().st_mode & 0o777 == 0o600
    assert (bundle / "parent_seal.pub").read_bytes() == (parent / "hub" / "seal.pub").read_bytes()
    reg = load_config(parent / "registry.yaml", Registry)
    entry = next(s for s in reg.sites if s.code == CHILD)
    assert (entry.kind, entry.level, entry.region, entry.name) == ("hub", "county", "140721", "榆次区政务服务中心")
    assert list(reg.active()) == ["S01"] and list(reg.active_children()) == [CHILD]
    keys = SiteKeys(parent / "registry.yaml")
    assert keys.child_key(CHILD) is not None and keys.verify_key(CHILD) is None  # never a site's key
    assert keys.child_key("S01") is None

    child = tmp_path / "county"
    init_hub(child, region="140721", name="榆次区政务服务中心", level="county", broker_port=18999)
    install_parent(child, bundle=bundle)
    cfg = load_config(child / "hub.yaml", HubConfig)
    assert cfg.parent.sender == CHILD
    assert cfg.parent.broker.cert == child / "parent" / "mqtt.crt" and cfg.parent.broker.cert.is_file()
    assert cfg.parent.parent_seal_pub.read_bytes() == (parent / "hub" / "seal.pub").read_bytes()
    assert (child / "parent" / "mqtt.key").stat().st_mode & 0o777 == 0o600
    raw = yaml.safe_load((child / "hub.yaml").read_text(encoding="utf-8"))
    assert raw["parent"]["broker"]["cert"] == "parent/mqtt.crt"  # relative: the directory can move


def test_a_bundle_installs_only_on_the_hub_it_was_issued_for(parent, tmp_path):
    other = tmp_path / "other-county"
    init_hub(other, region="140722", name="太谷区政务服务中心", level="county", broker_port=18998)
    before = (other / "hub.yaml").read_bytes()
    with pytest.raises(ProvisioningError, match="issued for 'hub-140721'.*region is 140722"):
        install_parent(other, bundle=parent / "children" / CHILD)
    assert (other / "hub.yaml").read_bytes() == before and not (other / "parent").exists()
    with pytest.raises(ProvisioningError, match="not a child-hub bundle"):
        install_parent(other, bundle=tmp_path)


@pytest.mark.parametrize(
    ("code", "level", "needle"),
    [("14072", "county", "6-12 digits"), ("14a721", "county", "6-12 digits"), ("140721", "province", "county or city")],
)
def test_bad_arguments_are_refused(parent, code, level, needle):
    with pytest.raises(ProvisioningError, match=needle):
        add_child_hub(parent, code=code, name="x", level=level)


def test_ids_are_never_reused_and_a_city_takes_no_city(parent):
    with pytest.raises(ProvisioningError, match="already in"):
        add_child_hub(parent, code="140721", name="again")
    with pytest.raises(ProvisioningError, match="cannot take a city child"):
        add_child_hub(parent, code="140800", name="x", level="city")


def test_child_acl_own_topics_only_and_revocation(parent):
    with ManagedBroker(parent, port=free_port()) as broker:
        hub = connect(parent, "hub", broker)
        hub.subscribe(f"{topics.ROOT}/#")
        hub.publish(topics.HUB_STATE, b"online", retain=True)
        child = connect(parent, CHILD, broker, files=_files(parent))
        child.subscribe(topics.child_down_filter(CHILD))
        child.subscribe(topics.site_down_filter("S01"))
        child.subscribe(topics.HUB_STATE)
        assert child.wait_for(topics.HUB_STATE).payload == b"online"
        child.publish(topics.site_batch("S01"), b"forged")  # denied: a site's topic
        child.publish(topics.child_batch("hub-140722"), b"forged")  # denied: another child's
        child.publish(topics.child_ack(CHILD), b"forged")  # denied: down-topics are the parent's
        child.publish(topics.child_batch(CHILD), b"mine")
        child.publish(topics.child_state(CHILD), b"born")
        hub.wait_for(topics.child_state(CHILD), payload=b"born")
        assert hub.topics_received() == [topics.HUB_STATE, topics.child_batch(CHILD), topics.child_state(CHILD)]
        hub.publish(topics.site_cmd("S01"), b"not-for-child")
        hub.publish(topics.child_ack(CHILD), b"ack")
        child.wait_for(topics.child_ack(CHILD), payload=b"ack")
        assert child.topics_received() == [topics.HUB_STATE, topics.child_ack(CHILD)]
        child.close()
        revoke_site(parent, code=CHILD)
        broker.sync()
        assert not try_connect(parent, CHILD, broker, files=_files(parent))
        assert try_connect(parent, "S01", broker)
        hub.publish(topics.HUB_STATE, b"", retain=True)
        hub.close()


def test_a_childs_stray_retained_batch_is_cleared_at_broker_start(parent):
    with ManagedBroker(parent, port=free_port()) as broker:
        child = connect(parent, CHILD, broker, files=_files(parent))
        child.publish(topics.child_state(CHILD), b"birth", retain=True)  # the one allowed
        child.publish(topics.child_batch(CHILD), b"b" * 1000, retain=True)  # stray
        child.close()
        broker.restart()
        assert broker.swept == [topics.child_batch(CHILD)]
        hub = connect(parent, "hub", broker)
        hub.subscribe(f"{topics.ROOT}/child/+/up/#")
        hub.wait_for(topics.child_state(CHILD), payload=b"birth")
        hub.subscribe(f"{topics.ROOT}/barrier")  # retained messages come before its SUBACK
        assert hub.topics_received() == [topics.child_state(CHILD)]
        hub.close()
