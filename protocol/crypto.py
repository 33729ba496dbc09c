"""Key handling: Ed25519 (signing) and X25519 (sealing) keys, PEM in and out, key ids.

Pure: PEM data comes in and goes out as bytes; callers do the file I/O.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

KeyKind = Literal["ed25519", "x25519"]
PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey

_PRIVATE = {"ed25519": Ed25519PrivateKey, "x25519": X25519PrivateKey}
_PUBLIC = {"ed25519": Ed25519PublicKey, "x25519": X25519PublicKey}
_LABEL = {"ed25519": "an Ed25519", "x25519": "an X25519"}


class CryptoKeyError(ValueError):
    """Key material is unreadable or of the wrong type."""


def generate_ed25519() -> Ed25519PrivateKey:
    """A new random Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def generate_x25519() -> X25519PrivateKey:
    """A new random X25519 key-agreement key."""
    return X25519PrivateKey.generate()


def private_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of a private key."""
    if not isinstance(key, (Ed25519PrivateKey, X25519PrivateKey)):
        raise TypeError(f"expected an Ed25519/X25519 private key, got {type(key).__name__}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_to_pem(pub: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key."""
    if not isinstance(pub, (Ed25519PublicKey, X25519PublicKey)):
        raise TypeError(f"expected an Ed25519/X25519 public key, got {type(pub).__name__}")
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _as_bytes(data: bytes | str) -> bytes:
    """PEM text as bytes."""
    if isinstance(data, str):
        return data.encode("ascii", "replace")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise CryptoKeyError(f"PEM data must be bytes, got {type(data).__name__}")


def _check_kind(kind: str) -> None:
    """Reject unknown kind names."""
    if kind not in _PRIVATE:
        raise CryptoKeyError(f"unknown key kind {kind!r}; expected 'ed25519' or 'x25519'")


def _name(key: object) -> str:
    """Readable name of a key object's type."""
    return (
        type(key).__name__.removeprefix("_").replace("PrivateKey", " private key").replace("PublicKey", " public key")
    )


def load_private_pem(data: bytes, kind: KeyKind) -> PrivateKey:
    """Load an unencrypted PEM private key of the given kind; raises CryptoKeyError."""
    _check_kind(kind)
    raw = _as_bytes(data)
    if b"-----BEGIN PUBLIC KEY-----" in raw and b"PRIVATE KEY-----" not in raw:
        raise CryptoKeyError(f"expected {_LABEL[kind]} private key but the PEM holds a public key")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        raise CryptoKeyError("the PEM private key is encrypted; an unencrypted key is required") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CryptoKeyError(f"not a readable PEM private key: {e}") from None
    if not isinstance(key, _PRIVATE[kind]):
        raise CryptoKeyError(f"expected {_LABEL[kind]} private key, got {_name(key)}")
    return key


def load_public_pem(data: bytes, kind: KeyKind) -> PublicKey:
    """Load a SubjectPublicKeyInfo PEM public key of the given kind; raises CryptoKeyError."""
    _check_kind(kind)
    raw = _as_bytes(data)
    if b"PRIVATE KEY-----" in raw:
        raise CryptoKeyError(f"expected {_LABEL[kind]} public key but the PEM holds a private key")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CryptoKeyError(f"not a readable PEM public key: {e}") from None
    if not isinstance(key, _PUBLIC[kind]):
        raise CryptoKeyError(f"expected {_LABEL[kind]} public key, got {_name(key)}")
    return key


def public_raw(pub: PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 or X25519 public key."""
    if not isinstance(pub, (Ed25519PublicKey, X25519PublicKey)):
        raise TypeError(f"expected an Ed25519/X25519 public key, got {type(pub).__name__}")
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub: PublicKey) -> str:
    """Short fingerprint: first 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(public_raw(pub)).hexdigest()[:16]
