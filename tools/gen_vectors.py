"""Generate the golden protocol vectors in tests/protocol/vectors/ (deliberately, not in CI).

    python tools/gen_vectors.py           # (re)write the JSON files
    python tools/gen_vectors.py --check   # exit 1 if the files differ from what would be written

Keys come from fixed 32-byte seeds (sha256 of a label), so every byte is reproducible. JSON
cannot hold bytes: a bytes value is written as {"$hex": "..."} wherever it appears.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from protocol.crypto import key_id, public_raw  # noqa: E402
from protocol.records import GENESIS, Record, encode_record, record_hash  # noqa: E402
from protocol.wire import _batch_key, seal_batch, sign_config  # noqa: E402

OUT = ROOT / "tests" / "protocol" / "vectors"
SITE = "S01"


def seed(label: str) -> bytes:
    """Fixed 32-byte seed from a label."""
    return hashlib.sha256(b"jiancha test vector: " + label.encode()).digest()


def tag(v):
    """JSON-safe form of a value: bytes become {"$hex": ...}."""
    if isinstance(v, bytes):
        return {"$hex": v.hex()}
    if isinstance(v, dict):
        return {k: tag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tag(x) for x in v]
    return v


def sample_records() -> list[Record]:
    """A small chain covering every value type, Unicode, unsorted keys and int widths."""
    bodies = [
        (
            "case.registered",
            "ntp",
            {"case_no": "S01-20240301-0001", "item": "330100-001", "applicant": "张三", "window": 3, "urgent": False},
        ),
        (
            "case.event",
            "ntp",
            {
                "step": "accept",
                "case_no": "S01-20240301-0001",
                "by": {"user": "clerk7", "name": "李四"},
                "note": None,
                "attachments": [b"\x00\x01\xff", "收据.pdf"],
            },
        ),
        (
            "vote",
            "hub",
            {"case_no": "S01-20240301-0001", "level": 1, "keys": 5, "map": {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}},
        ),
        (
            "device",
            "untrusted",
            {"z": -1, "y": -129, "x": -(2**63), "w": 2**63 - 1, "v": 2**32, "u": 255, "t": [], "s": {}, "r": ""},
        ),
        ("heartbeat", "untrusted", {}),
    ]
    out, prev = [], GENESIS
    for i, (kind, clock, body) in enumerate(bodies):
        r = Record(
            seq=i + 1,
            prev=prev,
            kind=kind,
            wall_ms=1709251200000 + i * 61_000,
            mono_ns=123_456_789 + i * 61_000_000_000,
            boot_id="b3f1c2d4-boot",
            clock=clock,
            body=body,
        )
        prev = record_hash(encode_record(r))
        out.append(r)
    return out


def record_fields(r: Record) -> dict:
    """A record as a JSON-safe dict of its fields."""
    return tag(
        {
            "seq": r.seq,
            "prev": r.prev,
            "kind": r.kind,
            "wall_ms": r.wall_ms,
            "mono_ns": r.mono_ns,
            "boot_id": r.boot_id,
            "clock": r.clock,
            "body": r.body,
        }
    )


def records_vector() -> dict:
    """records.json: fields, canonical encoding and hash of each sample record."""
    rows = []
    for r in sample_records():
        enc = encode_record(r)
        rows.append({"record": record_fields(r), "encoded": enc.hex(), "hash": record_hash(enc).hex()})
    return {"about": "canonical record encodings and SHA-256 chain; see docs/protocol.md", "records": rows}


def rejects_vector() -> dict:
    """rejects.json: encodings a decoder must refuse, with why."""
    good = [1, GENESIS, "vote", 1, 2, "b", "ntp"]
    pack = lambda v: msgpack.packb(v, use_bin_type=True)
    cases = {
        "map keys not sorted": pack(good + [{"b": 1, "a": 2}]),
        "float in body": pack(good + [{"a": 1.5}]),
        "non-minimal integer (uint16 for 1)": bytes([0x98, 0xCD, 0, 1]) + pack(good + [{}])[2:],
        "trailing byte": pack(good + [{}]) + b"\x00",
        "nine items": pack(good + [{}, 0]),
        "bin map key": pack(good + [{b"a": 1}]),
        "prev of 31 bytes": pack([1, bytes(31)] + good[2:] + [{}]),
        "str instead of bin for prev": pack([1, "0" * 32] + good[2:] + [{}]),
        "seq 0": pack([0] + good[1:] + [{}]),
        "unknown clock": pack(good[:6] + ["gps", {}]),
        "kind with capital": pack(good[:2] + ["Vote"] + good[3:] + [{}]),
        "int above signed 64-bit": pack(good + [{"a": 2**64 - 1}]),
        "ext type": pack(good + [{"a": msgpack.ExtType(1, b"x")}]),
        "str8 where fixstr fits": bytes([0x98]) + b"".join(pack(x) for x in good[:6]) + b"\xd9\x03ntp" + pack({}),
    }
    return {
        "about": "encodings decode_record must reject",
        "rejects": [{"why": k, "encoded": v.hex()} for k, v in cases.items()],
    }


def batch_vector() -> dict:
    """batch.json: a sealed batch of the sample records with fixed keys, eph key and nonce."""
    sign = Ed25519PrivateKey.from_private_bytes(seed("site S01 ed25519"))
    hub = X25519PrivateKey.from_private_bytes(seed("hub x25519"))
    eph = X25519PrivateKey.from_private_bytes(seed("batch eph x25519"))
    nonce = seed("batch nonce")[:12]
    encs = [encode_record(r) for r in sample_records()]
    sealed = seal_batch(
        SITE,
        encs,
        sign_key=sign,
        hub_seal_pub=hub.public_key(),
        sent_ms=1709251500000,
        first_seq=1,
        eph_key=eph,
        nonce=nonce,
    )
    env = msgpack.unpackb(sealed)
    eph_raw, hub_raw = public_raw(eph.public_key()), public_raw(hub.public_key())
    key = _batch_key(eph.exchange(hub.public_key()), eph_raw, hub_raw)
    return {
        "about": "sealed batch of records.json; intermediate values for implementers",
        "site": SITE,
        "first_seq": 1,
        "sent_ms": 1709251500000,
        "site_sign_seed": seed("site S01 ed25519").hex(),
        "site_verify_pub": public_raw(sign.public_key()).hex(),
        "site_key_id": key_id(sign.public_key()),
        "hub_seal_seed": seed("hub x25519").hex(),
        "hub_seal_pub": hub_raw.hex(),
        "eph_seed": seed("batch eph x25519").hex(),
        "eph_pub": eph_raw.hex(),
        "nonce": nonce.hex(),
        "shared_secret": eph.exchange(hub.public_key()).hex(),
        "key": key.hex(),
        "header": env[1].hex(),
        "signature": env[3].hex(),
        "sealed": sealed.hex(),
    }


def config_vector() -> dict:
    """config.json: a hub-signed config with a fixed key."""
    sign = Ed25519PrivateKey.from_private_bytes(seed("hub ed25519"))
    payload = {
        "thresholds": {"yellow_days": 1, "ratio": 0.8},
        "items": [{"code": "330100-001", "name": "个体工商户设立登记", "limit_days": 5}],
    }
    signed = sign_config("catalog", 7, payload, sign_key=sign, issued_ms=1709251200000)
    return {
        "about": "hub-signed config (floats allowed in payloads)",
        "hub_sign_seed": seed("hub ed25519").hex(),
        "hub_verify_pub": public_raw(sign.public_key()).hex(),
        "kind": "catalog",
        "version": 7,
        "issued_ms": 1709251200000,
        "payload": payload,
        "signed": signed.hex(),
    }


def build() -> dict[str, str]:
    """File name -> JSON text of every vector file."""
    vectors = {
        "records.json": records_vector(),
        "rejects.json": rejects_vector(),
        "batch.json": batch_vector(),
        "config.json": config_vector(),
    }
    return {name: json.dumps(v, ensure_ascii=False, indent=1) + "\n" for name, v in vectors.items()}


def main(argv: list[str]) -> int:
    """Write the vectors, or with --check compare them."""
    files = build()
    if "--check" in argv:
        stale = [n for n, t in files.items() if not (OUT / n).exists() or (OUT / n).read_text("utf-8") != t]
        print("stale vectors: " + ", ".join(stale) if stale else "vectors up to date")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, "utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
