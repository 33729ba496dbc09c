"""The CA: key types, names, validity, extensions, serial index, CRL."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from provisioning.ca import CertificateAuthority, cert_common_name
from provisioning.errors import CAError


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority.create(tmp_path / "ca", "140700")


def test_ca_certificate(ca):
    cert = ca.cert
    assert cert_common_name(cert) == "Jiancha CA 140700"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    years = (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365
    assert 10 <= years < 10.1
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600


def test_create_refuses_to_replace(ca):
    with pytest.raises(CAError, match="refusing"):
        CertificateAuthority.create(ca.folder, "140700")


def test_missing_ca_is_a_clear_error(tmp_path):
    with pytest.raises(CAError, match="init-hub"):
        CertificateAuthority(tmp_path / "nothing")


@pytest.mark.parametrize(
    "host, dns, ips",
    [
        ("127.0.0.1", {"localhost"}, {"127.0.0.1"}),
        ("hub.example.gov.cn", {"localhost", "hub.example.gov.cn"}, {"127.0.0.1"}),
        ("10.1.2.3", {"localhost"}, {"127.0.0.1", "10.1.2.3"}),
    ],
)
def test_server_certificate_sans(ca, tmp_path, host, dns, ips):
    cert = ca.issue_server(host, tmp_path / "s.crt", tmp_path / "s.key")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == dns
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == ips
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert stat.S_IMODE((tmp_path / "s.key").stat().st_mode) == 0o600


def test_client_certificate(ca, tmp_path):
    cert = ca.issue_client("S01", tmp_path / "c.crt", tmp_path / "c.key")
    assert cert_common_name(cert) == "S01"
    assert cert.issuer == ca.cert.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.cert)
    [entry] = ca.issued()
    assert (entry.serial, entry.identity, entry.status) == (cert.serial_number, "S01", "V")


def test_revocation_lists_serials_in_crl(ca, tmp_path):
    a = ca.issue_client("S01", tmp_path / "a.crt", tmp_path / "a.key")
    b = ca.issue_client("S02", tmp_path / "b.crt", tmp_path / "b.key")
    assert ca.revoke_identity("S01") == [a.serial_number]
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number(a.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(b.serial_number) is None
    assert crl.next_update_utc.year - crl.last_update_utc.year >= 9  # never expires in service
    assert ca.revoked_serials() == [a.serial_number]
    # a fresh CA object reads the same index
    assert CertificateAuthority(ca.folder).revoked_serials() == [a.serial_number]
