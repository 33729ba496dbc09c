"""`provision init-hub --https-name` and `provision hub-https`: the web's certificate from the project CA."""

from __future__ import annotations

import stat

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hub.config import HubConfig
from iobase.config import load_config
from jiancha.cli import main
from provisioning.ca import CertificateAuthority, load_cert
from provisioning.errors import ProvisioningError
from provisioning.setup import hub_https, init_hub


def _sans(cert: x509.Certificate) -> set:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {str(a) for a in ext.get_values_for_type(x509.IPAddress)}


def _check_chain(root, cert_path) -> x509.Certificate:
    cert = load_cert(cert_path)
    ca = load_cert(root / "ca" / "ca.crt")
    cert.verify_directly_issued_by(ca)  # raises if not signed by the project CA
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    return cert


def test_init_hub_with_https_names_issues_the_webs_certificate(tmp_path):
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="晋中", https_names=["jiancha.jz.gov.cn", "10.1.2.3", "localhost", "::1"])
    cert = _check_chain(root, root / "hub" / "https.crt")
    assert _sans(cert) == {"jiancha.jz.gov.cn", "10.1.2.3", "localhost", "::1"}
    assert stat.S_IMODE((root / "hub" / "https.key").stat().st_mode) == 0o600
    raw = yaml.safe_load((root / "hub.yaml").read_text(encoding="utf-8"))
    assert raw["api"]["tls"] == {"cert": "hub/https.crt", "key": "hub/https.key"}  # relative, like the others
    cfg = load_config(root / "hub.yaml", HubConfig)
    assert cfg.api.tls.cert == (root / "hub/https.crt").resolve()
    assert cfg.api.tls.key == (root / "hub/https.key").resolve()
    assert any(e.identity == "web:jiancha.jz.gov.cn" for e in CertificateAuthority(root / "ca").issued())


def test_init_hub_without_https_names_stays_plain_http(tmp_path):
    init_hub(tmp_path / "hub", region="140700", name="晋中")
    assert load_config(tmp_path / "hub" / "hub.yaml", HubConfig).api.tls is None
    assert not (tmp_path / "hub" / "hub" / "https.crt").exists()


@pytest.mark.parametrize(
    "bad, says",
    [
        ("", "must not be empty"),
        ("  ", "must not be empty"),
        ("bad name", "not a DNS name"),
        ("a..b", "not a DNS name"),
        ("-x.cn", "not a DNS name"),
        ("x_y.cn", "not a DNS name"),
        ("1.2.3.999", "not a DNS name"),
        ("监察.cn", "punycode"),
    ],
)
def test_bad_https_names_are_refused_before_anything_is_written(tmp_path, bad, says):
    with pytest.raises(ProvisioningError, match=says):
        init_hub(tmp_path / "hub", region="140700", name="晋中", https_names=["ok.example.cn", bad])
    assert not (tmp_path / "hub" / "hub.yaml").exists() and not (tmp_path / "hub" / "ca").exists()


def test_hub_https_issues_or_renews_for_an_existing_hub(tmp_path, capsys):
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="晋中")
    assert main(["provision", "hub-https", "--dir", str(root), "--name", "hub.example.cn"]) == 0
    assert "hub.example.cn" in capsys.readouterr().out
    first = _check_chain(root, root / "hub" / "https.crt")
    assert _sans(first) == {"hub.example.cn"}
    cfg = load_config(root / "hub.yaml", HubConfig)
    assert cfg.api.tls is not None and cfg.api.tls.cert == (root / "hub/https.crt").resolve()
    assert cfg.api.admin_token  # the rest of hub.yaml is kept
    key_before = (root / "hub" / "https.key").read_bytes()
    hub_https(root, names=["hub.example.cn", "10.0.0.7"])  # renew with one more name
    second = _check_chain(root, root / "hub" / "https.crt")
    assert second.serial_number != first.serial_number and _sans(second) == {"hub.example.cn", "10.0.0.7"}
    assert (root / "hub" / "https.key").read_bytes() != key_before
    assert stat.S_IMODE((root / "hub" / "https.key").stat().st_mode) == 0o600
    with pytest.raises(ProvisioningError, match="not a DNS name"):
        hub_https(root, names=["no spaces.cn"])
    assert _sans(load_cert(root / "hub" / "https.crt")) == {"hub.example.cn", "10.0.0.7"}  # unchanged
    assert main(["provision", "hub-https", "--dir", str(root), "--name", ""]) == 2
    assert "must not be empty" in capsys.readouterr().err


def test_init_hub_cli_takes_https_names(tmp_path):
    root = tmp_path / "hub"
    argv = ["provision", "init-hub", "--dir", str(root), "--region", "140700", "--name", "晋中"]
    assert main([*argv, "--https-name", "127.0.0.1", "--https-name", "localhost"]) == 0
    assert _sans(_check_chain(root, root / "hub" / "https.crt")) == {"127.0.0.1", "localhost"}
