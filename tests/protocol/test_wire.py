"""Wire: sealed/signed batches (golden bytes, independent spec check, tampering), config, msgs."""

from __future__ import annotations

import json
import pickle

import msgpack
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crypto import public_raw
from protocol.records import GENESIS, MAX_RECORD_BYTES, Record, encode_record
from protocol.wire import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    REASONS,
    WIRE_VERSION,
    BatchHeader,
    SignedConfig,
    WireError,
    decode_msg,
    encode_msg,
    open_batch,
    open_config,
    peek_header,
    seal_batch,
    sealed_size_bound,
    sign_config,
)
from tests.protocol.vectors_io import VECTORS, golden_rows, untag

BATCH = json.loads((VECTORS / "batch.json").read_text("utf-8"))
CONFIG = json.loads((VECTORS / "config.json").read_text("utf-8"))
H = bytes.fromhex

SITE_KEY = Ed25519PrivateKey.from_private_bytes(H(BATCH["site_sign_seed"]))
HUB_KEY = X25519PrivateKey.from_private_bytes(H(BATCH["hub_seal_seed"]))
EPH_KEY = X25519PrivateKey.from_private_bytes(H(BATCH["eph_seed"]))
HUB_SIGN = Ed25519PrivateKey.from_private_bytes(H(CONFIG["hub_sign_seed"]))
OTHER_ED = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_X = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
BODIES = st.dictionaries(st.text(max_size=12), VALUES, max_size=8)


def encs(n: int, first: int = 1, body=None) -> list[bytes]:
    """n chained encoded records starting at seq first."""
    out, prev = [], GENESIS
    for seq in range(first, first + n):
        r = Record(
            seq, prev, "case.event", 1_709_251_200_000 + seq, seq, "boot", "ntp", {"n": seq} if body is None else body
        )
        out.append(encode_record(r))
    return out


def seal(records: list[bytes], site: str = "S01", first: int = 1, **kw) -> bytes:
    """seal_batch with the vector keys."""
    return seal_batch(
        site, records, sign_key=SITE_KEY, hub_seal_pub=HUB_KEY.public_key(), sent_ms=1, first_seq=first, **kw
    )


def open_(data: bytes, site: str = "S01", **kw):
    """open_batch with the vector keys."""
    args = dict(site=site, verify_key=SITE_KEY.public_key(), hub_seal_key=HUB_KEY) | kw
    return open_batch(data, **args)


def craft(header: list, items, *, eph=EPH_KEY, nonce=bytes(12), sign=SITE_KEY, version=WIRE_VERSION) -> bytes:
    """Independent implementation of the documented batch format, for any header/payload."""
    header_bytes = msgpack.packb(header, use_bin_type=True)
    eph_raw, hub_raw = public_raw(eph.public_key()), public_raw(HUB_KEY.public_key())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + hub_raw, info=b"jiancha/v1/batch").derive(
        eph.exchange(HUB_KEY.public_key())
    )
    plaintext = items if isinstance(items, bytes) else msgpack.packb(items, use_bin_type=True)
    ct = ChaCha20Poly1305(key).encrypt(nonce, plaintext, header_bytes)
    sig = sign.sign(b"JC1B" + header_bytes + ct)
    return msgpack.packb([version, header_bytes, ct, sig], use_bin_type=True)


def rejected(fn) -> str:
    """The WireError reason fn() raises (fails the test if it raises nothing)."""
    with pytest.raises(WireError) as e:
        fn()
    return e.value.reason


def hdr(first: int, count: int, site: str = "S01") -> list:
    """A header list for craft()."""
    return [1, site, first, first + count - 1, count, 5, public_raw(EPH_KEY.public_key()), bytes(12)]


# ---- golden ---------------------------------------------------------------------------------


def test_golden_batch_seals_to_same_bytes():
    rows = golden_rows()
    sealed = seal_batch(
        BATCH["site"],
        [e for _, e, _ in rows],
        sign_key=SITE_KEY,
        hub_seal_pub=HUB_KEY.public_key(),
        sent_ms=BATCH["sent_ms"],
        first_seq=BATCH["first_seq"],
        eph_key=EPH_KEY,
        nonce=H(BATCH["nonce"]),
    )
    assert sealed.hex() == BATCH["sealed"]


def test_golden_batch_opens_to_expected_records():
    header, got = open_(H(BATCH["sealed"]), site=BATCH["site"])
    rows = golden_rows()
    assert got == [(r, e) for r, e, _ in rows]
    assert header == BatchHeader(
        1, "S01", 1, len(rows), len(rows), BATCH["sent_ms"], H(BATCH["eph_pub"]), H(BATCH["nonce"])
    )
    assert peek_header(H(BATCH["sealed"])) == header


def test_golden_batch_matches_documented_construction():
    """Decrypt the golden batch with raw primitives only, following docs/protocol.md."""
    version, header_bytes, ct, sig = msgpack.unpackb(H(BATCH["sealed"]))
    assert version == 1 and header_bytes.hex() == BATCH["header"]
    pub = Ed25519PublicKey.from_public_bytes(H(BATCH["site_verify_pub"]))
    pub.verify(sig, b"JC1B" + header_bytes + ct)
    header = msgpack.unpackb(header_bytes)
    assert header[:6] == [1, "S01", 1, 5, 5, BATCH["sent_ms"]]
    shared = HUB_KEY.exchange(EPH_KEY.public_key())
    assert shared.hex() == BATCH["shared_secret"]
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=header[6] + H(BATCH["hub_seal_pub"]), info=b"jiancha/v1/batch"
    ).derive(shared)
    assert key.hex() == BATCH["key"]
    items = msgpack.unpackb(ChaCha20Poly1305(key).decrypt(header[7], ct, header_bytes))
    assert items == [e for _, e, _ in golden_rows()]
    nonce = H(BATCH["nonce"])
    assert craft(header, items, nonce=nonce).hex() == BATCH["sealed"]


def test_golden_config():
    signed = sign_config(
        CONFIG["kind"], CONFIG["version"], untag(CONFIG["payload"]), sign_key=HUB_SIGN, issued_ms=CONFIG["issued_ms"]
    )
    assert signed.hex() == CONFIG["signed"]
    cfg = open_config(H(CONFIG["signed"]), verify_key=HUB_SIGN.public_key())
    assert cfg == SignedConfig("catalog", 7, CONFIG["issued_ms"], untag(CONFIG["payload"]))


# ---- round trips ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(BODIES, min_size=1, max_size=20), st.integers(1, 2**62))
def test_batch_roundtrip(bodies, first):
    records = [encode_record(Record(first + i, bytes(32), "vote", i, i, "b", "hub", b)) for i, b in enumerate(bodies)]
    sealed = seal(records, first=first)
    assert len(sealed) <= sealed_size_bound(len(e) for e in records)
    header, got = open_(sealed)
    assert (header.first_seq, header.last_seq, header.count) == (first, first + len(bodies) - 1, len(bodies))
    assert [e for _, e in got] == records
    assert [r.body for r, _ in got] == [Record(*msgpack.unpackb(e)).body for e in records]


def test_fresh_eph_and_nonce_each_time():
    a, b = seal(encs(2)), seal(encs(2))
    assert a != b and peek_header(a).eph != peek_header(b).eph
    assert open_(a)[1] == open_(b)[1]


def test_max_records_batch():
    records = encs(MAX_BATCH_RECORDS, body={})
    header, got = open_(seal(records))
    assert header.count == MAX_BATCH_RECORDS and len(got) == MAX_BATCH_RECORDS


# ---- tampering and rejects ------------------------------------------------------------------


def test_every_byte_flip_is_rejected_before_decryption():
    sealed = seal(encs(3))
    seen = set()
    for i in range(len(sealed)):
        for flip in (0x01, 0x80):
            bad = bytearray(sealed)
            bad[i] ^= flip
            seen.add(rejected(lambda: open_(bytes(bad))))
    assert seen <= {"bad_signature", "malformed", "unsupported_version", "wrong_site"}
    assert {"bad_signature", "malformed"} <= seen


def test_truncations_are_malformed():
    sealed = seal(encs(2))
    for n in range(len(sealed)):
        assert rejected(lambda: open_(sealed[:n])) == "malformed"


def test_wrong_site_wrong_keys():
    sealed = seal(encs(2))
    assert rejected(lambda: open_(sealed, site="S02")) == "wrong_site"
    assert rejected(lambda: open_(sealed, verify_key=OTHER_ED.public_key())) == "bad_signature"
    assert rejected(lambda: open_(sealed, hub_seal_key=OTHER_X)) == "decrypt_failed"
    forged = seal_batch("S01", encs(1), sign_key=OTHER_ED, hub_seal_pub=HUB_KEY.public_key(), sent_ms=1, first_seq=1)
    assert rejected(lambda: open_(forged)) == "bad_signature"


def test_oversize_rejected_without_parsing():
    assert rejected(lambda: peek_header(b"\x00" * (MAX_BATCH_BYTES + 1))) == "oversize"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_raises_wire_error_only(data):
    assert rejected(lambda: open_(data)) in REASONS


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "malformed"),
        (b"\x90", "malformed"),
        (msgpack.packb({"v": 1}), "malformed"),
        (msgpack.packb([2, b"", b"", b""]), "unsupported_version"),
        (msgpack.packb([1, b"", b"", b""]), "malformed"),
        (msgpack.packb([1, "h", b"", bytes(64)]), "malformed"),
        ("not bytes", "malformed"),
    ],
)
def test_envelope_rejects(data, reason):
    assert rejected(lambda: peek_header(data)) == reason


def _envelope(header: list) -> bytes:
    return msgpack.packb([1, msgpack.packb(header, use_bin_type=True), b"", bytes(64)], use_bin_type=True)


@pytest.mark.parametrize(
    "change,reason",
    [
        ({0: 2}, "unsupported_version"),
        ({1: ""}, "malformed"),
        ({1: b"S01"}, "malformed"),
        ({1: "x" * 65}, "malformed"),
        ({2: 0}, "malformed"),
        ({2: True}, "malformed"),
        ({3: 9}, "malformed"),
        ({4: 0, 3: 0}, "malformed"),
        ({4: 2001, 3: 2001}, "oversize"),
        ({5: 1.0}, "malformed"),
        ({6: bytes(31)}, "malformed"),
        ({7: bytes(8)}, "malformed"),
    ],
)
def test_header_rejects(change, reason):
    header = hdr(1, 1)
    for i, v in change.items():
        header[i] = v
    assert rejected(lambda: peek_header(_envelope(header))) == reason
    assert peek_header(_envelope(hdr(1, 1))).site == "S01"


def test_validly_signed_bad_contents():
    three = encs(3)
    cases = [
        (craft(hdr(1, 3), three[:2]), "count_mismatch"),
        (craft(hdr(1, 2), three), "count_mismatch"),
        (craft(hdr(1, 3), [three[0], three[2], three[1]]), "count_mismatch"),
        (craft(hdr(2, 3), three), "count_mismatch"),
        (craft(hdr(1, 1), [b"\x98garbage"]), "bad_record"),
        (craft(hdr(1, 1), [msgpack.packb([1, bytes(32), "vote", 1, 2, "b", "ntp", {"b": 1, "a": 2}])]), "bad_record"),
        (craft(hdr(1, 1), ["a str, not bin"]), "bad_record"),
        (craft(hdr(1, 1), {"not": "a list"}), "malformed"),
        (craft(hdr(1, 1), b"\xc1"), "malformed"),
        (craft(hdr(1, 1), three[:1], version=2), "unsupported_version"),
    ]
    assert open_(craft(hdr(1, 3), three))[1][2][1] == three[2]  # the crafting itself is valid
    for data, reason in cases:
        assert rejected(lambda: open_(data)) == reason


def test_low_order_eph_point_fails_cleanly():
    header = hdr(1, 1)
    header[6] = bytes(32)  # all-zero point: X25519 gives an all-zero secret
    header_bytes = msgpack.packb(header, use_bin_type=True)
    ct = bytes(40)
    sig = SITE_KEY.sign(b"JC1B" + header_bytes + ct)
    data = msgpack.packb([1, header_bytes, ct, sig], use_bin_type=True)
    assert rejected(lambda: open_(data)) == "decrypt_failed"


# ---- seal_batch argument checks -------------------------------------------------------------


def test_seal_rejects_bad_input():
    with pytest.raises(ValueError, match="seq"):
        seal(encs(3)[::2])
    with pytest.raises(ValueError, match="seq"):
        seal(encs(2), first=5)
    with pytest.raises(ValueError):
        seal([])
    with pytest.raises(ValueError):
        seal(encs(1), nonce=b"short")
    with pytest.raises(ValueError):
        seal(encs(1), site="")
    with pytest.raises(ValueError):
        seal([b"not a record"])
    assert rejected(lambda: seal(encs(MAX_BATCH_RECORDS + 1, body={}))) == "oversize"


def test_seal_rejects_oversize_envelope():
    big = encs(17, body={"blob": bytes(MAX_RECORD_BYTES - 200)})
    assert sealed_size_bound(len(e) for e in big) > MAX_BATCH_BYTES
    assert rejected(lambda: seal(big)) == "oversize"
    sealed = seal(big[:15])
    assert len(sealed) <= sealed_size_bound(len(e) for e in big[:15]) <= MAX_BATCH_BYTES
    assert len(open_(sealed)[1]) == 15


# ---- config ---------------------------------------------------------------------------------


def test_config_roundtrip_and_rejects():
    payload = {"days": [{"date": "2024-10-01", "off": True}], "ratio": 0.75, "raw": b"\x00"}
    signed = sign_config("calendar", 3, payload, sign_key=HUB_SIGN, issued_ms=-5)
    assert open_config(signed, verify_key=HUB_SIGN.public_key()) == SignedConfig("calendar", 3, -5, payload)
    assert rejected(lambda: open_config(signed, verify_key=OTHER_ED.public_key())) == "bad_signature"
    hub_pub = HUB_SIGN.public_key()
    assert rejected(lambda: open_config(signed, verify_key=hub_pub, max_bytes=len(signed) - 1)) == "oversize"
    for i in range(len(signed)):
        bad = bytearray(signed)
        bad[i] ^= 0x04
        assert rejected(lambda: open_config(bytes(bad), verify_key=hub_pub)) in (
            "bad_signature",
            "malformed",
            "unsupported_version",
        )


def test_config_not_confusable_with_batch_signature():
    body = msgpack.packb(["catalog", 1, 1, {}], use_bin_type=True)
    sig = SITE_KEY.sign(b"JC1B" + body)  # a batch-domain signature over config-like bytes
    data = msgpack.packb([1, body, sig])
    assert rejected(lambda: open_config(data, verify_key=SITE_KEY.public_key())) == "bad_signature"


@pytest.mark.parametrize(
    "body,reason",
    [
        (["catalog", 1, 1], "malformed"),
        (["Catalog", 1, 1, {}], "malformed"),
        (["catalog", -1, 1, {}], "malformed"),
        (["catalog", 1, 1, []], "malformed"),
        (["catalog", 1, 1, {"a": {1: 2}}], "malformed"),
    ],
)
def test_config_signed_but_malformed(body, reason):
    body_bytes = msgpack.packb(body, use_bin_type=True, strict_types=False)
    data = msgpack.packb([1, body_bytes, HUB_SIGN.sign(b"JC1C" + body_bytes)])
    assert rejected(lambda: open_config(data, verify_key=HUB_SIGN.public_key())) == reason
    v9 = msgpack.packb([9, body_bytes, b""])
    assert rejected(lambda: open_config(v9, verify_key=HUB_SIGN.public_key())) == "unsupported_version"


def test_sign_config_rejects_bad_args():
    for args in [
        ("Bad", 1, {}),
        ("catalog", -1, {}),
        ("catalog", 1, []),
        ("catalog", 1, {1: "x"}),
        ("catalog", 1, {"x": {1, 2}}),
    ]:
        with pytest.raises(ValueError):
            sign_config(*args, sign_key=HUB_SIGN, issued_ms=0)


# ---- small messages -------------------------------------------------------------------------


def test_msg_roundtrip():
    msg = {"t": "ack", "seq": 2**63 - 1, "hub_ms": 1, "resend_from": None, "x": [1.5, b"\x00"]}
    assert decode_msg(encode_msg(msg)) == msg


@pytest.mark.parametrize(
    "data,reason",
    [
        (msgpack.packb([1, 2]), "malformed"),
        (msgpack.packb({1: 2}), "malformed"),
        (msgpack.packb({b"k": 2}, use_bin_type=True), "malformed"),
        (msgpack.packb({"a": {b"k": 2}}, use_bin_type=True), "malformed"),
        (msgpack.packb({"a": msgpack.ExtType(1, b"")}), "malformed"),
        (msgpack.packb({"a": 1}) + b"\x00", "malformed"),
        (b"", "malformed"),
        (msgpack.packb({"a": "x" * 70000}), "oversize"),
        (None, "malformed"),
    ],
)
def test_msg_rejects(data, reason):
    assert rejected(lambda: decode_msg(data)) == reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_msg_garbage_raises_wire_error_only(data):
    try:
        assert isinstance(decode_msg(data), dict)
    except WireError as e:
        assert e.reason in ("malformed", "oversize")


def test_encode_msg_rejects():
    for bad in ([1], {1: 2}, {"a": object()}, {"a": {b"k": 1}}):
        with pytest.raises(ValueError):
            encode_msg(bad)  # type: ignore[arg-type]


def test_wire_error_shape():
    e = WireError("wrong_site", "batch is from 'S02'")
    assert e.reason == "wrong_site" and str(e) == "wrong_site: batch is from 'S02'"
    assert str(WireError("malformed")) == "malformed"
    back = pickle.loads(pickle.dumps(e))
    assert (back.reason, back.detail) == (e.reason, e.detail)
    with pytest.raises(ValueError):
        WireError("nonsense")
