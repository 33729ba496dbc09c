"""init_hub / add_site / revoke_site: files, configs, keys, certificates, refusals."""

from __future__ import annotations

import stat

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from agent.config import AgentConfig, BoardError
from hub.config import HubConfig, Registry
from iobase.config import load_config
from provisioning.brokerconf import BrokerLayout
from provisioning.ca import CertificateAuthority, cert_common_name, load_cert
from provisioning.errors import ProvisioningError
from provisioning.setup import add_site, init_hub, revoke_site


@pytest.fixture
def root(tmp_path):
    init_hub(tmp_path / "hub", region="140700", name="晋中市政务服务中心", broker_port=18883, http_port=18080)
    return tmp_path / "hub"


def _load_key(path, cls):
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, cls)
    return key


def test_init_hub_writes_a_loadable_hub(root):
    hub = load_config(root / "hub.yaml", HubConfig)
    assert (hub.region, hub.level, hub.broker.port, hub.api.port) == ("140700", "city", 18883, 18080)
    assert len(hub.api.admin_token) >= 32
    raw = yaml.safe_load((root / "hub.yaml").read_text())
    assert raw["keys"]["sign_key"] == "hub/sign.key"  # relative in the file, absolute when loaded
    assert hub.keys.sign_key == (root / "hub/sign.key").resolve()
    _load_key(hub.keys.sign_key, ed25519.Ed25519PrivateKey)
    _load_key(hub.keys.seal_key, x25519.X25519PrivateKey)
    assert cert_common_name(load_cert(hub.broker.cert)) == "hub"
    assert load_config(hub.registry, Registry).sites == []
    for key in (
        hub.keys.sign_key,
        hub.keys.seal_key,
        hub.broker.key,
        root / "ca/ca.key",
        root / "broker/server.key",
        root / "broker/tool.key",
    ):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    layout = BrokerLayout(root)
    for f in (layout.conf, layout.acl, layout.server_crt, layout.ca_crt, layout.crl, layout.tool_crt):
        assert f.is_file(), f
    tool = load_cert(layout.tool_crt)
    assert cert_common_name(tool) == "jc-broker-tool"
    tool.verify_directly_issued_by(load_cert(root / "ca/ca.crt"))
    acl = [block.strip() for block in layout.acl.read_text().split("\n\n")]
    # the retained-message sweep's identity: the sites' and child hubs' up-topics and nothing else
    assert "user jc-broker-tool\ntopic readwrite jc/v1/site/+/up/#\ntopic readwrite jc/v1/child/+/up/#" in acl
    assert layout.data.is_dir()


def test_broker_conf_has_the_settings_that_matter(root):
    conf = (root / "broker/mosquitto.conf").read_text()
    lines = set(conf.splitlines())
    for want in (
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        "persistence true",
        "max_queued_messages 10000",
        "max_queued_bytes 67108864",
        "max_packet_size 1114112",
        "max_inflight_messages 100",
        "max_inflight_bytes 8388608",
        "tls_version tlsv1.2",
        "listener 18883 127.0.0.1",
    ):
        assert want in lines, want
    assert f"persistence_location {(root / 'broker/data').resolve()}/" in lines
    assert f"crlfile {(root / 'broker/crl.pem').resolve()}" in lines
    assert [ln for ln in lines if ln.startswith("listener")] == ["listener 18883 127.0.0.1"]


def test_init_hub_refuses_to_overwrite(root):
    before = (root / "hub.yaml").read_text()
    with pytest.raises(ProvisioningError, match="already exists"):
        init_hub(root, region="140700", name="again")
    assert (root / "hub.yaml").read_text() == before


def test_add_site_writes_a_loadable_agent(root):
    path = add_site(root, code="S01", name="东关便民服务中心", board="rpi4-hall-3win")
    agent = load_config(path, AgentConfig)
    assert (agent.site.code, agent.site.board) == ("S01", "rpi4-hall-3win")
    assert (agent.broker.host, agent.broker.port) == ("127.0.0.1", 18883)
    assert len(agent.http.token) >= 32
    site_key = _load_key(agent.sign_key, ed25519.Ed25519PrivateKey)
    assert cert_common_name(load_cert(agent.broker.cert)) == "S01"
    load_cert(agent.broker.cert).verify_directly_issued_by(load_cert(agent.broker.ca))
    assert agent.hub.sign_pub.read_bytes() == (root / "hub/sign.pub").read_bytes()
    assert agent.hub.seal_pub.read_bytes() == (root / "hub/seal.pub").read_bytes()
    serialization.load_pem_public_key(agent.hub.seal_pub.read_bytes())
    [site] = load_config(root / "registry.yaml", Registry).sites
    assert site.code == "S01" and not site.revoked and site.added_at.endswith("+08:00")
    pub = serialization.load_pem_public_key(site.sign_pub.encode())
    assert pub.public_bytes_raw() == site_key.public_key().public_bytes_raw()
    acl = (root / "broker/acl").read_text()
    assert (
        "user S01\ntopic write jc/v1/site/S01/up/batch\ntopic write jc/v1/site/S01/up/state\n"
        "topic write jc/v1/site/S01/up/clip\ntopic read jc/v1/site/S01/down/#\n"
        "topic read jc/v1/hub/state\n"
    ) in acl
    # no wildcard for a site: the only up/# is the broker tool's (for the retained sweep)
    assert [line for line in acl.splitlines() if "up/#" in line] == [
        "topic readwrite jc/v1/site/+/up/#",
        "topic readwrite jc/v1/child/+/up/#",
    ]


@pytest.mark.parametrize(
    "code",
    [
        "",
        "x",
        "hub",
        "HUB",
        "a/b",
        "S 1",
        "S+1",
        "-S1",
        "S#",
        "中文",
        "a" * 33,
        "S01\n",
        "S01\r\n",
        "\nS01",
        "S01\x00",
        "S０1",
    ],
)
def test_bad_site_codes_are_refused(root, code):
    with pytest.raises(ProvisioningError, match="site code"):
        add_site(root, code=code, name="x")
    assert not (root / "sites").exists() or not any((root / "sites").iterdir())


def test_duplicate_codes_are_refused_even_after_revocation(root):
    add_site(root, code="S01", name="a")
    with pytest.raises(ProvisioningError, match="already"):
        add_site(root, code="S01", name="b")
    with pytest.raises(ProvisioningError, match="already"):
        add_site(root, code="s01", name="b")  # same code up to case: confusing, refused
    revoke_site(root, code="S01")
    with pytest.raises(ProvisioningError, match="never reused"):
        add_site(root, code="S01", name="c")


def test_unknown_board_is_refused(root):
    with pytest.raises(BoardError, match="unknown board 'nope'.*rpi4-hall-3win"):
        add_site(root, code="S01", name="a", board="nope")
    assert load_config(root / "registry.yaml", Registry).sites == []


def test_revoke_site(root):
    add_site(root, code="S01", name="a")
    add_site(root, code="S02", name="b")
    serial = load_cert(root / "sites/S01/mqtt.crt").serial_number
    revoke_site(root, code="S01")
    reg = load_config(root / "registry.yaml", Registry)
    assert set(reg.active()) == {"S02"}
    s01 = next(s for s in reg.sites if s.code == "S01")
    assert s01.revoked and s01.revoked_at
    assert CertificateAuthority(root / "ca").revoked_serials() == [serial]
    assert (root / "broker/crl.pem").read_bytes() == (root / "ca/crl.pem").read_bytes()
    acl = (root / "broker/acl").read_text()
    assert "S01" not in acl and "user S02" in acl
    with pytest.raises(ProvisioningError, match="already revoked"):
        revoke_site(root, code="S01")
    with pytest.raises(ProvisioningError, match="not in"):
        revoke_site(root, code="S09")


def test_commands_on_a_missing_hub_say_init_hub(tmp_path):
    with pytest.raises(ProvisioningError, match="init-hub"):
        add_site(tmp_path, code="S01", name="a")
    with pytest.raises(ProvisioningError, match="init-hub"):
        revoke_site(tmp_path, code="S01")


def test_client_ids_are_unguessable_and_distinct(tmp_path):
    """The broker names sessions after the certificate CN (`use_username_as_clientid`, see
    test_broker_sessions.py); the configured ids still differ, for a broker without it."""
    from agent.config import AgentConfig
    from hub.config import HubConfig
    from iobase.config import load_config
    from provisioning.setup import add_site, init_hub

    root = tmp_path / "h"
    init_hub(root, region="140700", name="x")
    add_site(root, code="S01", name="a")
    add_site(root, code="S02", name="b")
    hub = load_config(root / "hub.yaml", HubConfig).broker.client_id
    s1 = load_config(root / "sites/S01/agent.yaml", AgentConfig).broker.client_id
    s2 = load_config(root / "sites/S02/agent.yaml", AgentConfig).broker.client_id
    assert hub.startswith("hub-") and len(hub) == 20
    assert s1.startswith("site-S01-") and s2.startswith("site-S02-")
    assert len({hub, s1, s2}) == 3


@pytest.mark.parametrize("code", ["hub", "HUB", "jc-broker-tool", "JC-Broker-Tool", "jc-hub-2", "jc-x"])
def test_the_hubs_own_identities_are_never_site_codes(root, code):
    with pytest.raises(ProvisioningError, match="must not be 'hub' nor start with 'jc-'"):
        add_site(root, code=code, name="x")
