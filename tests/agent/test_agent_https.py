"""HTTPS on the box (DESIGN §10): `provision agent-https` issues the LAN certificate from the project
CA; with http.tls set the agent serves HTTPS only (TLS >= 1.2), and a missing or mismatched file
is a clear error before anything starts."""

from __future__ import annotations

import asyncio
import ssl
import stat

import aiohttp
import pytest
import yaml
from cryptography import x509

from agent.api import create_app
from agent.app import serve, start_http
from agent.config import AgentConfig
from agent.httpguard import HttpLimits
from agent.tls import server_context
from iobase.config import ConfigError, load_config
from jiancha.cli import main
from provisioning.agent_https import agent_https
from provisioning.ca import load_cert
from provisioning.errors import ProvisioningError
from provisioning.setup import add_site, init_hub
from tests.agent.clerk_helpers import TOKEN, Clock, cheap_hasher, make_store, make_web


@pytest.fixture
def hub_dir(tmp_path):
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="晋中")
    add_site(root, code="S01", name="东阳镇便民服务中心")
    return root


def test_provision_agent_https_issues_the_box_certificate(hub_dir):
    cert_path = agent_https(hub_dir, code="S01", names=["192.168.1.10", "box-s01.local"])
    cert = load_cert(cert_path)
    cert.verify_directly_issued_by(load_cert(hub_dir / "ca" / "ca.crt"))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"192.168.1.10"}
    assert sans.get_values_for_type(x509.DNSName) == ["box-s01.local"]
    site = hub_dir / "sites" / "S01"
    assert stat.S_IMODE((site / "https.key").stat().st_mode) == 0o600
    raw = yaml.safe_load((site / "agent.yaml").read_text(encoding="utf-8"))
    assert raw["http"]["tls"] == {"cert": "https.crt", "key": "https.key"}  # relative: the folder moves to the box
    cfg = load_config(site / "agent.yaml", AgentConfig)
    assert cfg.http.tls.cert == (site / "https.crt").resolve()


@pytest.mark.parametrize(
    "code, names, says",
    [("S09", ["10.0.0.1"], "not a live site"), ("S01", [], "at least one --name"), ("S01", ["bad name"], "not a DNS")],
)
def test_provision_agent_https_refusals(hub_dir, code, names, says):
    with pytest.raises(ProvisioningError, match=says):
        agent_https(hub_dir, code=code, names=names)
    assert not (hub_dir / "sites" / "S01" / "https.crt").exists()


def test_provision_agent_https_from_the_cli(hub_dir, capsys):
    assert main(["provision", "agent-https", "--dir", str(hub_dir), "--code", "S01", "--name", "127.0.0.1"]) == 0
    assert "HTTPS certificate issued" in capsys.readouterr().out


def _client_ctx(hub_dir, **kw) -> ssl.SSLContext:
    import warnings

    ctx = ssl.create_default_context(cafile=str(hub_dir / "ca" / "ca.crt"))
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is what the test offers
        warnings.simplefilter("ignore", DeprecationWarning)
        for k, v in kw.items():
            setattr(ctx, k, v)
    return ctx


async def test_the_box_serves_https_only_with_tls_12_or_newer(hub_dir, tmp_path, monkeypatch):
    cheap_hasher(monkeypatch)
    agent_https(hub_dir, code="S01", names=["127.0.0.1"])
    cfg = load_config(hub_dir / "sites" / "S01" / "agent.yaml", AgentConfig)
    store = make_store(tmp_path / "agent.db")
    clock = Clock()
    app = create_app(store, TOKEN, now=lambda: clock.now, clerk_web=make_web(store, clock, https=True))
    runner, port = await start_http(app, "127.0.0.1", 0, HttpLimits(), server_context(cfg.http.tls))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/", ssl=_client_ctx(hub_dir)) as r:
                html = await r.text()
                assert r.status == 200 and "窗口人员登录" in html and "未启用 HTTPS" not in html
                assert "Secure" in r.headers["Set-Cookie"]  # cookies only over HTTPS
            with pytest.raises(aiohttp.ClientError):  # plain HTTP on the same port gets no answer
                async with http.get(f"http://127.0.0.1:{port}/api/health") as r:
                    await r.read()
            old = _client_ctx(hub_dir, maximum_version=ssl.TLSVersion.TLSv1_1, minimum_version=ssl.TLSVersion.TLSv1)
            with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
                async with http.get(f"https://127.0.0.1:{port}/api/health", ssl=old) as r:
                    await r.read()
    finally:
        await runner.cleanup()
        store.close()


def _with_tls(hub_dir, cert: str, key: str):
    path = hub_dir / "sites" / "S01" / "agent.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["http"]["tls"] = {"cert": cert, "key": key}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return load_config(path, AgentConfig)


async def test_a_missing_or_mismatched_certificate_stops_the_agent_before_it_starts(hub_dir, tmp_path):
    cfg = _with_tls(hub_dir, "nope.crt", "nope.key")
    with pytest.raises(ConfigError, match=r"http\.tls\.cert: .*nope\.crt: file not found"):
        await asyncio.wait_for(serve(cfg, data_dir=tmp_path / "data"), 30)
    assert not (tmp_path / "data").exists()  # nothing was started or created
    agent_https(hub_dir, code="S01", names=["127.0.0.1"])
    cfg = _with_tls(hub_dir, "https.crt", "mqtt.key")  # the MQTT key is another certificate's
    with pytest.raises(ConfigError, match="not a PEM certificate chain with its matching"):
        server_context(cfg.http.tls)
