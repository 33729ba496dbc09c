"""The hub's certificate authority (认证中心): CA, broker server certificate, client certificates, CRL.

ECDSA P-256 throughout. The CA lives in one folder:

    ca.key           CA private key (PKCS8 PEM, 0600)
    ca.crt           CA certificate, CN "Jiancha CA <region>", 10 years
    crl.pem          certificate revocation list, re-signed on every revocation
    serials/index    one line per issued certificate: serial, status, identity, issued, revoked

Client certificates carry the identity (``hub`` or a site code) as CN and the clientAuth
extended key usage; Mosquitto's ``use_identity_as_username`` turns the CN into the MQTT
username that the ACL is written for.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iobase import files
from provisioning.errors import CAError

CA_YEARS = 10
LEAF_YEARS = 10  # sites run unattended for years; revocation, not expiry, ends a site
WEB_DAYS = 825  # the web's HTTPS certificate: the longest macOS/iOS accept even from a private CA
CRL_DAYS = 3650  # an expired CRL makes OpenSSL refuse *every* client, so keep it far out
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class IssuedCert:
    """One line of serials/index."""

    serial: int
    status: str  # "V" valid, "R" revoked
    identity: str
    issued_at: str
    revoked_at: str = ""

    def to_line(self) -> str:
        return "\t".join([f"{self.serial:x}", self.status, self.identity, self.issued_at, self.revoked_at or "-"])

    @classmethod
    def from_line(cls, line: str) -> IssuedCert:
        serial, status, identity, issued, revoked = line.rstrip("\n").split("\t")
        return cls(int(serial, 16), status, identity, issued, "" if revoked == "-" else revoked)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only (0600, in a 0700 folder), atomically."""
    files.private_dir(path.parent)
    files.write_private(path, data)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate, public key or CRL (0644, in a 0700 folder), atomically."""
    files.private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def ec_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS8 PEM, unencrypted (Mosquitto and paho read it without a passphrase)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(path: Path) -> x509.Certificate:
    """Read a PEM certificate."""
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def cert_common_name(cert: x509.Certificate) -> str:
    """The CN of a certificate's subject."""
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _server_sans(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    else:
        if addr != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(addr))
    return names


_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


def web_san(name: str) -> x509.GeneralName:
    """One subjectAltName of the hub's web certificate: an IP address (v4 or v6) or a DNS name
    (letters, digits, hyphens; a leading ``*.`` wildcard); CAError saying what is wrong otherwise."""
    text = name.strip()
    if not text:
        raise CAError(
            "an HTTPS name must not be empty (give a DNS name such as jiancha.example.gov.cn or an IP address)"
        )
    try:
        return x509.IPAddress(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    if not text.isascii():
        raise CAError(f"HTTPS name {name!r}: not ASCII; give an internationalised domain in its xn-- (punycode) form")
    host = text[:-1] if text.endswith(".") else text
    labels = host.split(".")
    wildcard = labels[0] == "*" and len(labels) > 2
    if wildcard:
        labels = labels[1:]
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise CAError(
            f"HTTPS name {name!r}: not a DNS name or IP address (labels of letters, digits and hyphens "
            f"separated by dots, e.g. jiancha.example.gov.cn, or an address such as 10.1.2.3)"
        )
    return x509.DNSName(("*." if wildcard else "") + ".".join(labels).lower())


class CertificateAuthority:
    """A CA on disk: issue server and client certificates, revoke them, write the CRL."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            self.key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            self.cert = load_cert(self.cert_path)
        except FileNotFoundError as exc:
            raise CAError(
                f"{self.folder}: no CA here ({exc.filename} is missing); run `jiancha provision init-hub` first"
            ) from None

    key_path = property(lambda self: self.folder / "ca.key")
    cert_path = property(lambda self: self.folder / "ca.crt")
    crl_path = property(lambda self: self.folder / "crl.pem")
    index_path = property(lambda self: self.folder / "serials" / "index")

    @classmethod
    def create(cls, folder: Path, region: str) -> CertificateAuthority:
        """Make a new CA (ECDSA P-256, 10 years) with an empty CRL; refuses to replace one."""
        folder = Path(folder)
        if (folder / "ca.key").exists():
            raise CAError(f"{folder / 'ca.key'} already exists; refusing to replace a CA")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"Jiancha CA {region}"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Jiancha"),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS + 2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(folder / "ca.key", ec_key_pem(key))
        write_public(folder / "ca.crt", cert_pem(cert))
        files.private_dir(folder / "serials")
        (folder / "serials" / "index").touch()
        ca = cls(folder)
        ca.write_crl()
        return ca

    # -- serial index -----------------------------------------------------------------------

    def issued(self) -> list[IssuedCert]:
        """Every certificate this CA has issued, oldest first."""
        if not self.index_path.exists():
            return []
        return [
            IssuedCert.from_line(line)
            for line in self.index_path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]

    def _write_index(self, entries: list[IssuedCert]) -> None:
        text = "".join(e.to_line() + "\n" for e in entries)
        write_public(self.index_path, text.encode("utf-8"))

    # -- issuing ----------------------------------------------------------------------------

    def _issue(
        self,
        cn: str,
        public_key,
        sans: list[x509.GeneralName] | None,
        eku: list[x509.ObjectIdentifier],
        identity: str,
        days: int = 365 * LEAF_YEARS,
    ) -> x509.Certificate:
        entries = self.issued()
        used = {e.serial for e in entries}
        serial = x509.random_serial_number()
        while serial in used:
            serial = x509.random_serial_number()
        now = _now()
        not_after = min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - _DAY)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        entries.append(IssuedCert(serial, "V", identity, now.isoformat()))
        self._write_index(entries)
        return cert

    def issue_server(self, host: str, cert_path: Path, key_path: Path) -> x509.Certificate:
        """Broker certificate: SANs localhost, 127.0.0.1 and `host` (as DNS name or IP)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(
            host or "localhost",
            key.public_key(),
            _server_sans(host),
            [ExtendedKeyUsageOID.SERVER_AUTH],
            identity=f"server:{host}",
        )
        write_private(key_path, ec_key_pem(key))
        write_public(cert_path, cert_pem(cert))
        return cert

    def issue_web(self, names: list[str], cert_path: Path, key_path: Path) -> x509.Certificate:
        """The hub web's HTTPS certificate: subjectAltName exactly `names` (DNS names and/or IP
        addresses, validated by web_san), CN the first of them, serverAuth, WEB_DAYS; key 0600."""
        if not names:
            raise CAError("give at least one HTTPS name (a DNS name or IP address the operators' browsers use)")
        sans: list[x509.GeneralName] = []
        for name in names:
            san = web_san(name)
            if san not in sans:
                sans.append(san)
        key = ec.generate_private_key(ec.SECP256R1())
        cn = str(sans[0].value)
        cert = self._issue(
            cn, key.public_key(), sans, [ExtendedKeyUsageOID.SERVER_AUTH], identity=f"web:{cn}", days=WEB_DAYS
        )
        write_private(key_path, ec_key_pem(key))
        write_public(cert_path, cert_pem(cert))
        return cert

    def issue_client(self, identity: str, cert_path: Path, key_path: Path) -> x509.Certificate:
        """Client certificate with CN = identity ("hub" or a site code) and clientAuth EKU."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(identity, key.public_key(), None, [ExtendedKeyUsageOID.CLIENT_AUTH], identity=identity)
        write_private(key_path, ec_key_pem(key))
        write_public(cert_path, cert_pem(cert))
        return cert

    # -- revocation -------------------------------------------------------------------------

    def revoke_identity(self, identity: str) -> list[int]:
        """Mark every valid certificate of `identity` revoked and re-sign the CRL; returns serials."""
        entries = self.issued()
        now = _now().isoformat()
        revoked: list[int] = []
        for i, e in enumerate(entries):
            if e.identity == identity and e.status == "V":
                entries[i] = IssuedCert(e.serial, "R", e.identity, e.issued_at, now)
                revoked.append(e.serial)
        self._write_index(entries)
        self.write_crl()
        return revoked

    def revoked_serials(self) -> list[int]:
        """Serials listed in the CRL."""
        return [e.serial for e in self.issued() if e.status == "R"]

    def build_crl(self) -> x509.CertificateRevocationList:
        """A CRL listing every revoked serial, valid for CRL_DAYS."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=CRL_DAYS))
            .add_extension(x509.CRLNumber(time.time_ns() // 1000), critical=False)
        )
        for e in self.issued():
            if e.status != "R":
                continue
            when = dt.datetime.fromisoformat(e.revoked_at) if e.revoked_at else now
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(e.serial).revocation_date(when).build()
            )
        return builder.sign(self.key, hashes.SHA256())

    def write_crl(self, path: Path | None = None) -> Path:
        """Write the CRL (PEM) to ca/crl.pem, or to `path`."""
        path = Path(path) if path else self.crl_path
        write_public(path, self.build_crl().public_bytes(serialization.Encoding.PEM))
        return path
