"""Wire formats: sealed + signed record batches, signed hub config, small plain messages.

Batch envelope (msgpack): ``[WIRE_VERSION, header_bytes, ciphertext, signature]``; the header
is msgpack ``[v, site, first_seq, last_seq, count, sent_ms, eph_pub(32), nonce(12)]``. The
plaintext (a msgpack array of encoded records) is encrypted with ChaCha20-Poly1305 under a key
derived by HKDF-SHA256 from an ephemeral X25519 exchange with the hub's key, header as AAD; the
site's Ed25519 key signs ``b"JC1B" + header_bytes + ciphertext``. See docs/protocol.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .crypto import public_raw
from .records import (
    I64_MAX,
    I64_MIN,
    KIND_RE,
    MAX_RECORD_BYTES,
    Record,
    RecordError,
    canonical_value,
    decode_record,
    peek_seq,
)

REASONS = (
    "malformed",
    "oversize",
    "unsupported_version",
    "wrong_site",
    "bad_signature",
    "decrypt_failed",
    "bad_record",
    "count_mismatch",
)
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_RECORDS = 2000
# largest signed config message the hub publishes (a catalog of ~5,000 items); the broker's
# packet limit (provisioning/brokerconf.py) is set above it, `jiancha catalog import` refuses more
MAX_CONFIG_BYTES = MAX_BATCH_BYTES
WIRE_VERSION = 1
CONFIG_VERSION = 1
MAX_SITE_CHARS = 64
BATCH_OVERHEAD = 512  # upper bound of envelope bytes beyond the records (see sealed_size_bound)
RECORD_OVERHEAD = 5  # upper bound of framing bytes per record inside the plaintext
HKDF_INFO = b"jiancha/v1/batch"
BATCH_SIG_PREFIX = b"JC1B"
CONFIG_SIG_PREFIX = b"JC1C"


class WireError(Exception):
    """Rejected wire input; .reason is one of REASONS (a counter label), .detail explains."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in REASONS:
            raise ValueError(f"unknown WireError reason {reason!r}")
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


@dataclass(frozen=True)
class BatchHeader:
    """The authenticated, unencrypted part of a batch."""

    v: int
    site: str
    first_seq: int
    last_seq: int
    count: int
    sent_ms: int
    eph: bytes
    nonce: bytes


@dataclass(frozen=True)
class SignedConfig:
    """Hub-signed configuration (catalog, calendar, thresholds, devices...)."""

    kind: str
    version: int
    issued_ms: int
    payload: dict


def _unpack(data: bytes, limit: int, *, arrays: int | None = None) -> Any:
    """Bounded msgpack.unpackb; any failure becomes WireError('malformed')."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            timestamp=0,
            max_bin_len=limit,
            max_str_len=limit,
            max_array_len=arrays or limit,
            max_map_len=limit,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises many exception types on garbage
        raise WireError("malformed", f"invalid msgpack: {type(e).__name__}: {e}") from None


def _is_int(x: Any, lo: int, hi: int) -> bool:
    """Exact int (not bool) within [lo, hi]."""
    return type(x) is int and lo <= x <= hi


def _check_size(data: Any, limit: int, what: str) -> bytes:
    """Bytes-like input within the size limit, as bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError("malformed", f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise WireError("oversize", f"{what} is {len(data)} bytes, limit {limit}")
    return data if type(data) is bytes else bytes(data)


def _parse_envelope(data: Any) -> tuple[BatchHeader, bytes, bytes, bytes]:
    """Header, header_bytes, ciphertext and signature of a batch envelope (no crypto)."""
    data = _check_size(data, MAX_BATCH_BYTES, "batch")
    env = _unpack(data, MAX_BATCH_BYTES, arrays=16)
    if type(env) is not list or not env or type(env[0]) is not int:
        raise WireError("malformed", "batch envelope is not [version, header, ciphertext, sig]")
    if env[0] != WIRE_VERSION:
        raise WireError("unsupported_version", f"batch version {env[0]}, expected {WIRE_VERSION}")
    if len(env) != 4 or not all(type(x) is bytes for x in env[1:]):
        raise WireError("malformed", "batch envelope is not [version, header, ciphertext, sig]")
    _, header_bytes, ciphertext, sig = env
    if len(sig) != 64:
        raise WireError("malformed", f"signature is {len(sig)} bytes, expected 64")
    return _parse_header(header_bytes), header_bytes, ciphertext, sig


def _parse_header(header_bytes: bytes) -> BatchHeader:
    """Strictly typed BatchHeader from its msgpack bytes."""
    h = _unpack(header_bytes, 1024, arrays=16)
    if type(h) is not list or len(h) != 8:
        raise WireError("malformed", "batch header is not an array of 8 items")
    v, site, first, last, count, sent_ms, eph, nonce = h
    if type(v) is not int or v != WIRE_VERSION:
        raise WireError("unsupported_version", f"header version {v!r}, expected {WIRE_VERSION}")
    if type(site) is not str or not 0 < len(site) <= MAX_SITE_CHARS:
        raise WireError("malformed", "header site must be a str of 1..64 characters")
    if not (
        _is_int(first, 1, I64_MAX)
        and _is_int(count, 0, I64_MAX)
        and _is_int(last, 1, I64_MAX)
        and _is_int(sent_ms, I64_MIN, I64_MAX)
    ):
        raise WireError("malformed", "header seq, count and sent_ms must be 64-bit ints")
    if count > MAX_BATCH_RECORDS:
        raise WireError("oversize", f"batch claims {count} records, limit {MAX_BATCH_RECORDS}")
    if count < 1 or last != first + count - 1:
        raise WireError("malformed", f"header range {first}..{last} does not hold {count} records")
    if type(eph) is not bytes or len(eph) != 32 or type(nonce) is not bytes or len(nonce) != 12:
        raise WireError("malformed", "header eph must be 32 bytes and nonce 12 bytes")
    return BatchHeader(v, site, first, last, count, sent_ms, eph, nonce)


def peek_header(data: bytes) -> BatchHeader:
    """Parse a batch envelope and header only (no crypto): for routing and logging."""
    return _parse_envelope(data)[0]


def _batch_key(shared: bytes, eph_raw: bytes, hub_raw: bytes) -> bytes:
    """HKDF-SHA256 of the X25519 shared secret into a 32-byte ChaCha20-Poly1305 key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + hub_raw, info=HKDF_INFO).derive(shared)


def sealed_size_bound(record_sizes: Iterable[int]) -> int:
    """Upper bound of the sealed batch size for records of these encoded sizes."""
    return BATCH_OVERHEAD + sum(n + RECORD_OVERHEAD for n in record_sizes)


def _check_seal_args(site: str, encoded_records: Sequence[bytes], first_seq: int, sent_ms: int) -> None:
    """Validate seal_batch inputs (ValueError) and limits (WireError('oversize'))."""
    if type(site) is not str or not 0 < len(site) <= MAX_SITE_CHARS:
        raise ValueError("site must be a str of 1..64 characters")
    if not _is_int(first_seq, 1, I64_MAX) or not _is_int(sent_ms, I64_MIN, I64_MAX):
        raise ValueError("first_seq must be >= 1 and sent_ms a 64-bit int")
    n = len(encoded_records)
    if n == 0:
        raise ValueError("a batch needs at least one record")
    if n > MAX_BATCH_RECORDS:
        raise WireError("oversize", f"{n} records, limit {MAX_BATCH_RECORDS}")
    for i, enc in enumerate(encoded_records):
        if type(enc) is not bytes or len(enc) > MAX_RECORD_BYTES:
            raise ValueError(f"record {i} must be encoded bytes of at most {MAX_RECORD_BYTES}")
        try:
            seq = peek_seq(enc)
        except RecordError as e:
            raise ValueError(f"record {i}: {e}") from None
        if seq != first_seq + i:
            raise ValueError(f"record {i} has seq {seq}, expected {first_seq + i} (contiguous)")


def seal_batch(
    site: str,
    encoded_records: Sequence[bytes],
    *,
    sign_key: Ed25519PrivateKey,
    hub_seal_pub: X25519PublicKey,
    sent_ms: int,
    first_seq: int,
    eph_key: X25519PrivateKey | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Encrypt contiguous encoded records to the hub and sign them as the site."""
    _check_seal_args(site, encoded_records, first_seq, sent_ms)
    eph_key = eph_key or X25519PrivateKey.generate()
    nonce = os.urandom(12) if nonce is None else nonce
    if type(nonce) is not bytes or len(nonce) != 12:
        raise ValueError("nonce must be 12 bytes")
    eph_raw, hub_raw = public_raw(eph_key.public_key()), public_raw(hub_seal_pub)
    count = len(encoded_records)
    header_bytes = msgpack.packb(
        [WIRE_VERSION, site, first_seq, first_seq + count - 1, count, sent_ms, eph_raw, nonce], use_bin_type=True
    )
    key = _batch_key(eph_key.exchange(hub_seal_pub), eph_raw, hub_raw)
    plaintext = msgpack.packb(list(encoded_records), use_bin_type=True)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, plaintext, header_bytes)
    sig = sign_key.sign(BATCH_SIG_PREFIX + header_bytes + ciphertext)
    out = msgpack.packb([WIRE_VERSION, header_bytes, ciphertext, sig], use_bin_type=True)
    if len(out) > MAX_BATCH_BYTES:
        raise WireError("oversize", f"sealed batch is {len(out)} bytes, limit {MAX_BATCH_BYTES}")
    return out


def _decrypt(h: BatchHeader, header_bytes: bytes, ciphertext: bytes, hub_seal_key: X25519PrivateKey) -> bytes:
    """Plaintext of a batch; WireError('decrypt_failed') on any failure."""
    try:
        eph_pub = X25519PublicKey.from_public_bytes(h.eph)
        shared = hub_seal_key.exchange(eph_pub)
        key = _batch_key(shared, h.eph, public_raw(hub_seal_key.public_key()))
        return ChaCha20Poly1305(key).decrypt(h.nonce, ciphertext, header_bytes)
    except (InvalidTag, ValueError) as e:
        raise WireError("decrypt_failed", f"cannot decrypt batch: {type(e).__name__}") from None


def _decode_all(h: BatchHeader, plaintext: bytes) -> list[tuple[Record, bytes]]:
    """Decode the plaintext's records and check count and seq range against the header."""
    items = _unpack(plaintext, MAX_BATCH_BYTES, arrays=MAX_BATCH_RECORDS)
    if type(items) is not list:
        raise WireError("malformed", "batch plaintext is not an array")
    out = []
    for i, enc in enumerate(items):
        if type(enc) is not bytes:
            raise WireError("bad_record", f"item {i} is not a bin")
        try:
            out.append((decode_record(enc), enc))
        except RecordError as e:
            raise WireError("bad_record", f"record {i}: {e}") from None
    if len(out) != h.count:
        raise WireError("count_mismatch", f"header says {h.count} records, batch holds {len(out)}")
    for i, (rec, _) in enumerate(out):
        if rec.seq != h.first_seq + i:
            raise WireError("count_mismatch", f"record {i} has seq {rec.seq}, expected {h.first_seq + i}")
    return out


def open_batch(
    data: bytes, *, site: str, verify_key: Ed25519PublicKey, hub_seal_key: X25519PrivateKey
) -> tuple[BatchHeader, list[tuple[Record, bytes]]]:
    """Verify (before decrypting), decrypt and decode a batch from the given site."""
    h, header_bytes, ciphertext, sig = _parse_envelope(data)
    if h.site != site:
        raise WireError("wrong_site", f"batch is from {h.site!r}, expected {site!r}")
    try:
        verify_key.verify(sig, BATCH_SIG_PREFIX + header_bytes + ciphertext)
    except InvalidSignature:
        raise WireError("bad_signature", f"batch not signed by the key of {site!r}") from None
    plaintext = _decrypt(h, header_bytes, ciphertext, hub_seal_key)
    return h, _decode_all(h, plaintext)


def sign_config(kind: str, version: int, payload: dict, *, sign_key: Ed25519PrivateKey, issued_ms: int) -> bytes:
    """Signed config: msgpack [1, body_bytes, sig]; body = [kind, version, issued_ms, payload]."""
    if type(kind) is not str or not KIND_RE.fullmatch(kind):
        raise ValueError(f"config kind {kind!r} must match ^[a-z][a-z0-9_.]{{0,31}}$")
    if not _is_int(version, 0, I64_MAX) or not _is_int(issued_ms, I64_MIN, I64_MAX):
        raise ValueError("version must be >= 0 and issued_ms a 64-bit int")
    if type(payload) is not dict:
        raise ValueError("config payload must be a dict")
    body = canonical_value(payload, allow_float=True, root="payload")
    body_bytes = msgpack.packb([kind, version, issued_ms, body], use_bin_type=True)
    sig = sign_key.sign(CONFIG_SIG_PREFIX + body_bytes)
    return msgpack.packb([CONFIG_VERSION, body_bytes, sig], use_bin_type=True)


def open_config(data: bytes, *, verify_key: Ed25519PublicKey, max_bytes: int = 4_194_304) -> SignedConfig:
    """Verify and decode hub-signed config; WireError('bad_signature') if not from that key."""
    data = _check_size(data, max_bytes, "config")
    env = _unpack(data, max_bytes, arrays=16)
    if type(env) is not list or not env or type(env[0]) is not int:
        raise WireError("malformed", "config envelope is not [version, body, sig]")
    if env[0] != CONFIG_VERSION:
        raise WireError("unsupported_version", f"config version {env[0]}, expected 1")
    if len(env) != 3 or type(env[1]) is not bytes or type(env[2]) is not bytes:
        raise WireError("malformed", "config envelope is not [version, body, sig]")
    try:
        verify_key.verify(env[2], CONFIG_SIG_PREFIX + env[1])
    except InvalidSignature:
        raise WireError("bad_signature", "config is not signed by the hub key") from None
    return _config_body(env[1], max_bytes)


def _config_body(body_bytes: bytes, max_bytes: int) -> SignedConfig:
    """Strictly typed SignedConfig from verified body bytes."""
    body = _unpack(body_bytes, max_bytes)
    if type(body) is not list or len(body) != 4:
        raise WireError("malformed", "config body is not [kind, version, issued_ms, payload]")
    kind, version, issued_ms, payload = body
    if (
        type(kind) is not str
        or not KIND_RE.fullmatch(kind)
        or not _is_int(version, 0, I64_MAX)
        or not _is_int(issued_ms, I64_MIN, I64_MAX)
        or type(payload) is not dict
    ):
        raise WireError("malformed", "config body fields have wrong types")
    return SignedConfig(kind, version, issued_ms, _plain(payload, "payload"))


def _plain(d: dict, root: str) -> dict:
    """Check a decoded map (str keys, plain values incl. floats); WireError('malformed')."""
    try:
        return canonical_value(d, allow_float=True, root=root)
    except RecordError as e:
        raise WireError("malformed", str(e)) from None


def encode_msg(d: dict) -> bytes:
    """msgpack map of a small plain message (str keys; floats allowed); ValueError if invalid."""
    if type(d) is not dict:
        raise ValueError(f"a message is a dict, got {type(d).__name__}")
    canonical_value(d, allow_float=True, root="message")
    return msgpack.packb(d, use_bin_type=True)


def decode_msg(data: bytes, max_bytes: int = 65536) -> dict:
    """Strictly decode a small plain message: a map with str keys; else WireError."""
    data = _check_size(data, max_bytes, "message")
    d = _unpack(data, max_bytes)
    if type(d) is not dict:
        raise WireError("malformed", f"a message is a map, got {type(d).__name__}")
    _plain(d, "message")
    return d
