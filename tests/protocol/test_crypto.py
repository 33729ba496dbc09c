"""Key generation, PEM round trips, wrong-type and garbage rejection, key ids."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol.crypto import (
    CryptoKeyError,
    generate_ed25519,
    generate_x25519,
    key_id,
    load_private_pem,
    load_public_pem,
    private_to_pem,
    public_raw,
    public_to_pem,
)

BATCH = json.loads((Path(__file__).parent / "vectors" / "batch.json").read_text("utf-8"))


@pytest.mark.parametrize(
    "kind,gen,priv_t,pub_t",
    [
        ("ed25519", generate_ed25519, Ed25519PrivateKey, Ed25519PublicKey),
        ("x25519", generate_x25519, X25519PrivateKey, X25519PublicKey),
    ],
)
def test_pem_roundtrip(kind, gen, priv_t, pub_t):
    key = gen()
    assert isinstance(key, priv_t)
    pem = private_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    back = load_private_pem(pem, kind)
    assert isinstance(back, priv_t) and private_to_pem(back) == pem
    pub_pem = public_to_pem(key.public_key())
    assert pub_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    pub = load_public_pem(pub_pem, kind)
    assert isinstance(pub, pub_t) and public_raw(pub) == public_raw(key.public_key())
    assert load_public_pem(pub_pem.decode(), kind) == pub  # str PEM accepted too


def test_generated_keys_differ():
    a, b = generate_ed25519(), generate_ed25519()
    assert public_raw(a.public_key()) != public_raw(b.public_key())


def test_wrong_kind_is_rejected_clearly():
    ed, x = generate_ed25519(), generate_x25519()
    with pytest.raises(CryptoKeyError, match="expected an X25519 private key, got Ed25519"):
        load_private_pem(private_to_pem(ed), "x25519")
    with pytest.raises(CryptoKeyError, match="expected an Ed25519 public key, got X25519"):
        load_public_pem(public_to_pem(x.public_key()), "ed25519")
    with pytest.raises(CryptoKeyError, match="holds a public key"):
        load_private_pem(public_to_pem(ed.public_key()), "ed25519")
    with pytest.raises(CryptoKeyError, match="holds a private key"):
        load_public_pem(private_to_pem(ed), "ed25519")


def test_other_algorithms_rejected():
    p256 = ec.generate_private_key(ec.SECP256R1())
    pem = p256.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CryptoKeyError, match="expected an Ed25519 private key"):
        load_private_pem(pem, "ed25519")
    pub = p256.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(CryptoKeyError, match="expected an X25519 public key"):
        load_public_pem(pub, "x25519")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        bytes(range(256)),
        "日本語",
    ],
)
def test_garbage_rejected(data):
    with pytest.raises(CryptoKeyError):
        load_private_pem(data, "ed25519")
    with pytest.raises(CryptoKeyError):
        load_public_pem(data, "x25519")


def test_encrypted_and_non_bytes_rejected():
    enc = generate_ed25519().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"secret")
    )
    with pytest.raises(CryptoKeyError, match="encrypted"):
        load_private_pem(enc, "ed25519")
    with pytest.raises(CryptoKeyError):
        load_private_pem(None, "ed25519")  # type: ignore[arg-type]
    with pytest.raises(CryptoKeyError, match="unknown key kind"):
        load_public_pem(public_to_pem(generate_ed25519().public_key()), "rsa")  # type: ignore


def test_errors_are_value_errors_and_bad_types_raise():
    assert issubclass(CryptoKeyError, ValueError)
    with pytest.raises(TypeError):
        private_to_pem(generate_ed25519().public_key())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        public_to_pem(generate_ed25519())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        public_raw(generate_x25519())  # type: ignore[arg-type]


def test_public_raw_and_key_id():
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(BATCH["site_sign_seed"]))
    raw = public_raw(key.public_key())
    assert len(raw) == 32 and raw.hex() == BATCH["site_verify_pub"]
    kid = key_id(key.public_key())
    assert kid == hashlib.sha256(raw).hexdigest()[:16] == BATCH["site_key_id"]
    x = X25519PrivateKey.from_private_bytes(bytes.fromhex(BATCH["hub_seal_seed"]))
    assert public_raw(x.public_key()).hex() == BATCH["hub_seal_pub"]
    assert len(key_id(x.public_key())) == 16
