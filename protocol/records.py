"""The append-only log record, its canonical msgpack encoding and the per-site hash chain.

A record encodes to the msgpack array ``[seq, prev, kind, wall_ms, mono_ns, boot_id, clock,
body]`` with every map's keys sorted (str code-point order == UTF-8 byte order), minimal
integer/str/bin forms as produced by msgpack-python with ``use_bin_type=True``, no floats and
no extension types. Exactly one byte string is valid for each record, so ``record_hash`` of the
encoding is stable across agent, hub and third-party decoders. See docs/protocol.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

GENESIS: bytes = bytes(32)
CLOCK_QUALITIES = ("ntp", "hub", "untrusted")
MAX_RECORD_BYTES = 64 * 1024
MAX_DEPTH = 32  # nesting limit for maps/lists inside a body
MAX_BOOT_ID = 64
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

KIND_RE = re.compile(r"[a-z][a-z0-9_.]{0,31}")
_FIELDS = ("seq", "prev", "kind", "wall_ms", "mono_ns", "boot_id", "clock", "body")


class RecordError(ValueError):
    """A record is invalid, too large, or not in canonical encoding."""


@dataclass(frozen=True, slots=True)
class Record:
    """One entry of a site's append-only log (validated when encoded, not when built)."""

    seq: int
    prev: bytes
    kind: str
    wall_ms: int
    mono_ns: int
    boot_id: str
    clock: str
    body: dict


class _Invalid(Exception):
    """Internal: a value is not allowed; carries the path to it."""

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg
        self.path: list[str] = []

    def where(self, root: str) -> str:
        """Readable 'root.a[0].b: message'."""
        return root + "".join(self.path) + ": " + self.msg


def canonical_value(value: Any, *, allow_float: bool = False, root: str = "value") -> Any:
    """Checked copy of a msgpack value with every map's keys sorted; raises RecordError."""
    try:
        return _canon(value, 0, allow_float)
    except _Invalid as e:
        raise RecordError(e.where(root)) from None


def _canon(v: Any, depth: int, allow_float: bool) -> Any:
    """Recursive worker of canonical_value (fast path on exact types)."""
    t = type(v)
    if t is str or t is bytes or t is bool or v is None:
        return v
    if t is int:
        if I64_MIN <= v <= I64_MAX:
            return v
        raise _Invalid(f"integer {v} outside the signed 64-bit range")
    if t is dict:
        return _canon_map(v, depth + 1, allow_float)
    if t is list:
        return _canon_list(v, depth + 1, allow_float)
    if t is float:
        if allow_float:
            return v
        raise _Invalid("floats are not allowed (use integers, e.g. milli-units)")
    return _canon_subclass(v, depth, allow_float)


def _canon_subclass(v: Any, depth: int, allow_float: bool) -> Any:
    """Normalise subclasses (IntEnum, StrEnum...) to their base type; reject the rest."""
    for base in (bool, int, str, bytes, float):
        if isinstance(v, base):
            return _canon(base(v), depth, allow_float)
    raise _Invalid(f"unsupported type {type(v).__name__}")


def _canon_map(d: dict, depth: int, allow_float: bool) -> dict:
    """Sorted, checked copy of a map with str keys."""
    if depth > MAX_DEPTH:
        raise _Invalid(f"nested deeper than {MAX_DEPTH}")
    for k in d:
        if type(k) is not str:
            raise _Invalid(f"map key {k!r} is not a string")
    out = {}
    for k in sorted(d):
        try:
            out[k] = _canon(d[k], depth, allow_float)
        except _Invalid as e:
            e.path.insert(0, f"[{k!r}]")
            raise
    return out


def _canon_list(items: list, depth: int, allow_float: bool) -> list:
    """Checked copy of a list."""
    if depth > MAX_DEPTH:
        raise _Invalid(f"nested deeper than {MAX_DEPTH}")
    out = []
    for i, x in enumerate(items):
        try:
            out.append(_canon(x, depth, allow_float))
        except _Invalid as e:
            e.path.insert(0, f"[{i}]")
            raise
    return out


def _check_fields(r: Record) -> None:
    """Type and range checks of the fixed record fields."""
    if type(r.seq) is not int or not 1 <= r.seq <= I64_MAX:
        raise RecordError(f"seq must be an int in 1..2**63-1, got {r.seq!r}")
    if type(r.prev) is not bytes or len(r.prev) != 32:
        raise RecordError("prev must be 32 bytes")
    if type(r.kind) is not str or not KIND_RE.fullmatch(r.kind):
        raise RecordError(f"kind {r.kind!r} must match ^[a-z][a-z0-9_.]{{0,31}}$")
    if type(r.wall_ms) is not int or not I64_MIN <= r.wall_ms <= I64_MAX:
        raise RecordError(f"wall_ms must be a signed 64-bit int, got {r.wall_ms!r}")
    if type(r.mono_ns) is not int or not 0 <= r.mono_ns <= I64_MAX:
        raise RecordError(f"mono_ns must be an int in 0..2**63-1, got {r.mono_ns!r}")
    if type(r.boot_id) is not str or len(r.boot_id) > MAX_BOOT_ID:
        raise RecordError(f"boot_id must be a str of at most {MAX_BOOT_ID} characters")
    if r.clock not in CLOCK_QUALITIES or type(r.clock) is not str:
        raise RecordError(f"clock {r.clock!r} must be one of {CLOCK_QUALITIES}")
    if type(r.body) is not dict:
        raise RecordError(f"body must be a dict, got {type(r.body).__name__}")


def encode_record(r: Record) -> bytes:
    """Canonical msgpack bytes of a record; raises RecordError if invalid or too large."""
    if not isinstance(r, Record):
        raise RecordError(f"expected a Record, got {type(r).__name__}")
    _check_fields(r)
    body = canonical_value(r.body, root="body")
    try:
        data = msgpack.packb([r.seq, r.prev, r.kind, r.wall_ms, r.mono_ns, r.boot_id, r.clock, body], use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as e:  # e.g. lone surrogates in a str
        raise RecordError(f"cannot encode record: {e}") from None
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"record is {len(data)} bytes, limit {MAX_RECORD_BYTES}")
    return data


def _unpack(data: bytes, limit: int) -> Any:
    """msgpack.unpackb with every length bounded by limit; raises RecordError."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            timestamp=0,
            max_bin_len=limit,
            max_str_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises many types on garbage
        raise RecordError(f"not valid msgpack: {type(e).__name__}: {e}") from None


def decode_record(data: bytes) -> Record:
    """Strictly decode canonical record bytes; raises RecordError on anything else."""
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise RecordError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"record is {len(data)} bytes, limit {MAX_RECORD_BYTES}")
    obj = _unpack(data, MAX_RECORD_BYTES)
    if type(obj) is not list or len(obj) != len(_FIELDS):
        raise RecordError(f"a record is an array of {len(_FIELDS)} items")
    r = Record(*obj)
    if encode_record(r) != data:
        raise RecordError("non-canonical encoding (map order, integer or string form)")
    return r


def peek_seq(encoded: bytes) -> int:
    """The seq of an encoded record, read from its first bytes without a full decode."""
    if len(encoded) < 2 or encoded[0] != 0x98:
        raise RecordError("not an encoded record (expected an 8-item array)")
    b = encoded[1]
    if 0 < b < 0x80:
        return b
    width = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}.get(b)
    if width is None or len(encoded) < 2 + width:
        raise RecordError("not an encoded record (seq is not an unsigned int)")
    return int.from_bytes(encoded[2 : 2 + width], "big")


def record_hash(encoded: bytes) -> bytes:
    """SHA-256 digest of a record's canonical encoding (the next record's prev)."""
    return hashlib.sha256(encoded).digest()


def chain_next(prev_hash: bytes, encoded: bytes) -> bytes:
    """Chain value after appending encoded (== record_hash(encoded); prev is inside it)."""
    return hashlib.sha256(encoded).digest()


def verify_chain(prev_hash: bytes, records: Sequence[tuple[Record, bytes]]) -> int | None:
    """Index of the first record whose prev does not link to its predecessor, else None."""
    expected = prev_hash
    for i, (rec, encoded) in enumerate(records):
        if rec.prev != expected:
            return i
        expected = hashlib.sha256(encoded).digest()
    return None
