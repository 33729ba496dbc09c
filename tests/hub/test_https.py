"""The hub's web over HTTPS (api.tls): served with the project CA's certificate, plain HTTP refused
on that port, Secure session cookies, and clear errors for a bad api.tls."""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiohttp
import pytest
import yaml

from hub import app as hub_app
from hub.api import create_app
from hub.app import PLAIN_HTTP_WARNING, Hub, serve, start_http, tls_context
from hub.config import HubConfig
from iobase.config import ConfigError, load_config
from provisioning.setup import init_hub
from tests.hub.accounts_helpers import PASSWORD, http_login, make_user
from tests.hub.hubapp import close


@pytest.fixture
def root(tmp_path):
    init_hub(
        tmp_path / "hub",
        region="140700",
        name="测试市政务服务中心",
        broker_port=1,
        http_port=1,
        https_names=["localhost", "127.0.0.1"],
    )
    return tmp_path / "hub"


@pytest.fixture
def hub(root):
    h = Hub(load_config(root / "hub.yaml", HubConfig))
    yield h
    close(h)


def _trusting(root) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(root / "ca" / "ca.crt"))


def test_the_hub_answers_over_https_only_and_its_session_cookie_is_secure(root, hub):
    make_user(hub, "zhang", "supervisor")
    assert hub.cfg.api.tls is not None  # init-hub --https-name wrote api.tls

    async def go():
        app = create_app(hub, hub.reader, hub.cfg.api.admin_token)
        runner, port = await start_http(app, "127.0.0.1", 0, ssl_context=tls_context(hub.cfg.api.tls))
        try:
            base = f"https://127.0.0.1:{port}"
            conn = aiohttp.TCPConnector(ssl=_trusting(root))
            async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                async with s.get(base + "/login") as r:
                    assert r.status == 200 and r.url.scheme == "https"
                    assert r.cookies["jc_login_csrf"]["secure"]
                r = await http_login(s, base, "zhang", PASSWORD)
                assert r.status == 302 and r.headers["Location"] == "/"
                session = r.cookies["jc_session"]
                assert session["secure"] and session["httponly"] and session["samesite"] == "Strict"
                async with s.get(base + "/api/me") as r:
                    assert (await r.json())["login"] == "zhang"
            # a client that does not trust the project CA is refused the handshake
            async with aiohttp.ClientSession() as s:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await s.get(base + "/login")
            # plain HTTP on the same port gets no page
            async with aiohttp.ClientSession() as s:
                with pytest.raises(aiohttp.ClientError):
                    async with s.get(f"http://127.0.0.1:{port}/login") as r:
                        await r.read()
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_an_operators_own_certificate_works_the_same_way(tmp_path, root, hub):
    """Any PEM certificate and key named in api.tls: here one from another CA (the operator's)."""
    from provisioning.ca import CertificateAuthority

    other = CertificateAuthority.create(tmp_path / "other-ca", "operator")
    other.issue_web(["localhost", "127.0.0.1"], tmp_path / "own.crt", tmp_path / "own.key")
    raw = yaml.safe_load((root / "hub.yaml").read_text(encoding="utf-8"))
    raw["api"]["tls"] = {"cert": str(tmp_path / "own.crt"), "key": str(tmp_path / "own.key")}
    (root / "hub.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    cfg = load_config(root / "hub.yaml", HubConfig)

    async def go():
        app = create_app(hub, hub.reader, hub.cfg.api.admin_token)
        runner, port = await start_http(app, "127.0.0.1", 0, ssl_context=tls_context(cfg.api.tls))
        try:
            ctx = ssl.create_default_context(cafile=str(other.cert_path))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
                async with s.get(f"https://127.0.0.1:{port}/login") as r:
                    return r.status
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == 200


def _with_tls(root, tls) -> None:
    raw = yaml.safe_load((root / "hub.yaml").read_text(encoding="utf-8"))
    raw["api"]["tls"] = tls
    (root / "hub.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")


def test_a_certificate_without_its_key_is_refused_naming_the_missing_setting(root):
    _with_tls(root, {"cert": "hub/https.crt"})
    with pytest.raises(ConfigError, match=r"api\.tls\.key: Field required"):
        load_config(root / "hub.yaml", HubConfig)
    _with_tls(root, {"key": "hub/https.key"})
    with pytest.raises(ConfigError, match=r"api\.tls\.cert: Field required"):
        load_config(root / "hub.yaml", HubConfig)


def test_a_missing_or_bad_certificate_file_stops_the_hub_at_start_naming_it(root, monkeypatch):
    def no_hub(*a, **k):
        raise AssertionError("the hub was started with a bad api.tls")

    monkeypatch.setattr(hub_app, "Hub", no_hub)
    _with_tls(root, {"cert": "hub/nowhere.crt", "key": "hub/https.key"})
    cfg = load_config(root / "hub.yaml", HubConfig)
    with pytest.raises(ConfigError, match=r"api\.tls\.cert: .*hub/nowhere\.crt: file not found"):
        asyncio.run(serve(cfg))
    _with_tls(root, {"cert": "hub/https.crt", "key": "hub/gone.key"})
    with pytest.raises(ConfigError, match=r"api\.tls\.key: .*hub/gone\.key: file not found"):
        asyncio.run(serve(load_config(root / "hub.yaml", HubConfig)))
    _with_tls(root, {"cert": "hub/https.crt", "key": "hub/mqtt.key"})  # a key that is not the certificate's
    with pytest.raises(ConfigError, match=r"hub/https\.crt and .*hub/mqtt\.key"):
        asyncio.run(serve(load_config(root / "hub.yaml", HubConfig)))
    with pytest.raises(
        ConfigError, match=r"hub/mqtt\.key: not a PEM certificate chain"
    ):  # `hub run --workers N` checks before spawning
        hub_app.run(root / "hub.yaml", workers=2)


def test_plain_http_is_still_possible_with_a_warning_at_start(root, monkeypatch, caplog):
    class Started(Exception):
        pass

    def stop_here(*a, **k):
        raise Started

    monkeypatch.setattr(hub_app, "Hub", stop_here)
    _with_tls(root, None)
    cfg = load_config(root / "hub.yaml", HubConfig)
    assert cfg.api.tls is None
    with caplog.at_level(logging.WARNING, logger="jiancha.hub"), pytest.raises(Started):
        asyncio.run(serve(cfg))
    assert PLAIN_HTTP_WARNING in caplog.text and "in clear" in PLAIN_HTTP_WARNING
    caplog.clear()
    _with_tls(root, {"cert": "hub/https.crt", "key": "hub/https.key"})
    with caplog.at_level(logging.WARNING, logger="jiancha.hub"), pytest.raises(Started):
        asyncio.run(serve(load_config(root / "hub.yaml", HubConfig)))
    assert PLAIN_HTTP_WARNING not in caplog.text
