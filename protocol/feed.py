"""The feed for a third-party platform (docs/feed.md): acks and the consumer's checks, pure.

The feed carries the hub's uplink records (hub/uplink.py: the very records a parent hub gets,
kinds in protocol/uplink.py) in the batch format of protocol/wire.py, sealed to the feed's
X25519 key and signed by the hub's Ed25519 key. `FeedReader` is the consumer's side: it opens
batches, checks the hash chain record by record and reports gaps, duplicates and bad batches;
`decoded` turns a record into the JSON object `jiancha feed tail`/`decode` print.

Acks travel as small JSON objects (a platform can send one with `mosquitto_pub`):

    {"acked": 41, "acked_hash": "<64 hex>", "resend": true}

`acked`: the highest seq the consumer holds with every seq before it; `acked_hash` (optional)
that record's hash, checked by the hub; `resend: true` asks the hub to send again from
acked + 1 (without `acked`: from the hub's stored cursor).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .records import GENESIS, I64_MAX, Record, record_hash
from .wire import WireError, open_batch

FEED_SCHEMA = 1  # the version of the JSON objects below and of the record bodies (docs/feed.md)
MAX_ACK_BYTES = 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AckError(ValueError):
    """An ack message the hub refuses (the message says why)."""


@dataclass(frozen=True)
class Ack:
    acked: int | None
    acked_hash: bytes | None
    resend: bool


def encode_ack(acked: int | None, acked_hash: bytes | None = None, resend: bool = False) -> bytes:
    """The JSON bytes of an ack."""
    d: dict = {}
    if acked is not None:
        d["acked"] = acked
    if acked_hash is not None:
        d["acked_hash"] = acked_hash.hex()
    if resend:
        d["resend"] = True
    return json.dumps(d, separators=(",", ":")).encode()


def parse_ack(data: bytes) -> Ack:
    """Strictly parse an ack; AckError with a readable reason."""
    if len(data) > MAX_ACK_BYTES:
        raise AckError(f"ack is {len(data)} bytes, limit {MAX_ACK_BYTES}")
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AckError("ack is not a JSON object") from None
    if type(d) is not dict:
        raise AckError("ack is not a JSON object")
    unknown = set(d) - {"acked", "acked_hash", "resend"}
    if unknown:
        raise AckError(f"unknown ack field(s): {', '.join(sorted(unknown))}")
    acked = d.get("acked")
    if acked is not None and not (type(acked) is int and 0 <= acked <= I64_MAX):
        raise AckError("acked must be an integer >= 0")
    h = d.get("acked_hash")
    if h is not None and not (type(h) is str and _HEX64.fullmatch(h)):
        raise AckError("acked_hash must be 64 lowercase hex digits")
    if h is not None and acked is None:
        raise AckError("acked_hash without acked")
    resend = d.get("resend", False)
    if type(resend) is not bool:
        raise AckError("resend must be true or false")
    if acked is None and not resend:
        raise AckError("an ack names `acked`, or asks `resend`")
    return Ack(acked, bytes.fromhex(h) if h else None, resend)


def decoded(feed: str, hub: str, rec: Record, enc: bytes) -> dict:
    """One record as the JSON object the tools print (docs/feed.md: the message schema)."""
    return {
        "schema": FEED_SCHEMA,
        "feed": feed,
        "hub": hub,
        "seq": rec.seq,
        "kind": rec.kind,
        "at_ms": rec.wall_ms,
        "body": rec.body,
        "hash": record_hash(enc).hex(),
        "prev": rec.prev.hex(),
    }


@dataclass
class FeedReader:
    """The consumer's checks over a stream of batches: signature (before decrypting), seal,
    chain and order. `accept` returns the records to deliver, in order, each exactly once;
    `problems` collects what went wrong (gap, chain break, bad batch), one line each."""

    feed: str
    hub: str
    verify_key: Ed25519PublicKey
    seal_key: X25519PrivateKey
    next_seq: int | None = None  # None: take the first record seen as the start
    last_hash: bytes | None = None
    keep_after_gap: bool = False  # a file has no resend: deliver past a gap (reported)
    problems: list[str] = field(default_factory=list)
    duplicates: int = 0

    def accept(self, payload: bytes) -> list[dict]:
        """Records of one raw MQTT payload that extend the verified chain."""
        try:
            h, recs = open_batch(payload, site=self.hub, verify_key=self.verify_key, hub_seal_key=self.seal_key)
        except WireError as exc:
            what = {"bad_signature": "BAD SIGNATURE", "decrypt_failed": "CANNOT DECRYPT"}.get(exc.reason, "BAD BATCH")
            self.problems.append(f"{what}: {exc} (batch dropped)")
            return []
        out = []
        for rec, enc in recs:
            if self.next_seq is None:
                self.next_seq = rec.seq
                if rec.seq == 1:
                    self.last_hash = GENESIS
            if rec.seq < self.next_seq:
                self.duplicates += 1  # redelivered: already delivered once
                continue
            if rec.seq > self.next_seq:
                self.problems.append(f"GAP: expected seq {self.next_seq}, got {rec.seq}")
                if not self.keep_after_gap:
                    return out
                self.last_hash = None  # the chain cannot be checked across the hole
            if self.last_hash is not None and rec.prev != self.last_hash:
                self.problems.append(f"CHAIN BREAK at seq {rec.seq}: prev does not match seq {rec.seq - 1}'s hash")
                return out
            self.last_hash = record_hash(enc)
            self.next_seq = rec.seq + 1
            out.append(decoded(self.feed, self.hub, rec, enc))
        return out

    @property
    def acked(self) -> int:
        """The highest seq delivered with all before it (0: none)."""
        return (self.next_seq or 1) - 1
