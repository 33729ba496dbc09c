"""Records: canonical encoding (golden bytes), strict decoding, hash chain."""

from __future__ import annotations

import enum
import json
import random

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.records import (
    CLOCK_QUALITIES,
    GENESIS,
    MAX_DEPTH,
    MAX_RECORD_BYTES,
    Record,
    RecordError,
    chain_next,
    decode_record,
    encode_record,
    peek_seq,
    record_hash,
    verify_chain,
)
from tests.protocol.vectors_io import VECTORS, golden_rows


def rec(body=None, **kw) -> Record:
    """A valid record with overridable fields (body defaults to {})."""
    fields = dict(
        seq=1,
        prev=GENESIS,
        kind="case.event",
        wall_ms=1_709_251_200_000,
        mono_ns=5,
        boot_id="boot",
        clock="ntp",
        body={} if body is None else body,
    )
    fields.update(kw)
    return Record(**fields)


# ---- golden vectors -------------------------------------------------------------------------


def test_golden_encodings_and_hashes():
    for r, enc, h in golden_rows():
        assert encode_record(r) == enc
        assert record_hash(enc) == h
        assert decode_record(enc) == r


def test_golden_chain_links():
    rows = golden_rows()
    assert rows[0][0].prev == GENESIS
    for (_, _, h), (nxt, _, _) in zip(rows, rows[1:]):
        assert nxt.prev == h
    assert verify_chain(GENESIS, [(r, e) for r, e, _ in rows]) is None


def test_golden_rejects():
    data = json.loads((VECTORS / "rejects.json").read_text("utf-8"))
    assert len(data["rejects"]) >= 10
    for case in data["rejects"]:
        with pytest.raises(RecordError):
            decode_record(bytes.fromhex(case["encoded"]))


def test_encoding_layout_is_documented_array():
    r, enc, _ = golden_rows()[1]
    items = msgpack.unpackb(enc)
    assert items[:7] == [r.seq, r.prev, r.kind, r.wall_ms, r.mono_ns, r.boot_id, r.clock]
    assert list(items[7]) == sorted(r.body)


# ---- round trips ----------------------------------------------------------------------------

I64 = st.integers(-(2**63), 2**63 - 1)
SCALARS = st.none() | st.booleans() | I64 | st.text(max_size=20) | st.binary(max_size=20)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
BODIES = st.dictionaries(st.text(max_size=12), VALUES, max_size=8)
RECORDS = st.builds(
    Record,
    seq=st.integers(1, 2**63 - 1),
    prev=st.binary(min_size=32, max_size=32),
    kind=st.from_regex(r"\A[a-z][a-z0-9_.]{0,31}\Z"),
    wall_ms=I64,
    mono_ns=st.integers(0, 2**63 - 1),
    boot_id=st.text(max_size=64),
    clock=st.sampled_from(CLOCK_QUALITIES),
    body=BODIES,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_roundtrip(r):
    enc = encode_record(r)
    back = decode_record(enc)
    assert back == r
    assert encode_record(back) == enc
    assert peek_seq(enc) == r.seq


@settings(max_examples=100, deadline=None)
@given(BODIES, st.randoms())
def test_encoding_ignores_insertion_order(body, rnd):
    keys = list(body)
    rnd.shuffle(keys)
    assert encode_record(rec({k: body[k] for k in keys})) == encode_record(rec(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_raises_record_error_only(data):
    try:
        r = decode_record(data)
    except RecordError:
        return
    assert encode_record(r) == data


@settings(max_examples=200, deadline=None)
@given(RECORDS, st.data())
def test_byte_flips_never_escape_as_other_errors(r, data):
    enc = bytearray(encode_record(r))
    i = data.draw(st.integers(0, len(enc) - 1))
    enc[i] ^= data.draw(st.integers(1, 255))
    try:
        back = decode_record(bytes(enc))
    except RecordError:
        return
    assert encode_record(back) == bytes(enc) and back != r


# ---- encode rejects -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"seq": 0},
        {"seq": 2**63},
        {"seq": True},
        {"seq": 1.0},
        {"prev": bytes(31)},
        {"prev": "x" * 32},
        {"kind": "Case"},
        {"kind": "1case"},
        {"kind": "a" * 33},
        {"kind": "case\n"},
        {"wall_ms": 2**63},
        {"wall_ms": 1.5},
        {"mono_ns": -1},
        {"boot_id": "x" * 65},
        {"boot_id": None},
        {"clock": "gps"},
        {"body": []},
        {"body": ()},
    ],
)
def test_encode_rejects_bad_fields(kw):
    with pytest.raises(RecordError):
        encode_record(rec(**kw))


def test_encode_rejects_none_body_and_non_record():
    with pytest.raises(RecordError):
        encode_record(Record(1, GENESIS, "vote", 0, 0, "", "ntp", None))  # type: ignore[arg-type]
    with pytest.raises(RecordError):
        encode_record({"seq": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        {"a": 1.5},
        {"a": [1, 2.0]},
        {"a": {"b": float("nan")}},
        {1: "int key"},
        {b"k": 1},
        {"a": (1, 2)},
        {"a": {1, 2}},
        {"a": 2**63},
        {"a": -(2**63) - 1},
        {"a": bytearray(b"x")},
        {"a": "\ud800"},
        {"a": {"b": {1: 2}}},
        {"a": object()},
    ],
)
def test_encode_rejects_bad_body_values(body):
    with pytest.raises(RecordError):
        encode_record(rec(body))


def test_error_names_the_path():
    with pytest.raises(RecordError, match=r"body\['a'\]\[1\]\['b'\]: floats"):
        encode_record(rec({"a": [0, {"b": 0.5}]}))


def test_nesting_limit():
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(RecordError, match="nested deeper"):
        encode_record(rec(deep))
    ok: dict = {}
    node = ok
    for _ in range(MAX_DEPTH - 2):
        node["x"] = {}
        node = node["x"]
    assert decode_record(encode_record(rec(ok))).body == ok


def test_size_limit():
    small = encode_record(rec({"blob": b""}))
    fits = rec({"blob": bytes(MAX_RECORD_BYTES - len(small) - 1)})  # bin8 -> bin16 header
    assert len(encode_record(fits)) == MAX_RECORD_BYTES
    assert decode_record(encode_record(fits)) == fits
    with pytest.raises(RecordError, match="limit"):
        encode_record(rec({"blob": bytes(MAX_RECORD_BYTES)}))
    with pytest.raises(RecordError, match="limit"):
        decode_record(bytes(MAX_RECORD_BYTES + 1))


def test_enum_subclasses_are_normalised():
    class Level(enum.IntEnum):
        GOOD = 1

    class Step(enum.StrEnum):
        ACCEPT = "accept"

    enc = encode_record(rec({"level": Level.GOOD, "step": Step.ACCEPT}))
    assert enc == encode_record(rec({"level": 1, "step": "accept"}))
    assert type(decode_record(enc).body["level"]) is int


# ---- decode rejects -------------------------------------------------------------------------


def _pack(items) -> bytes:
    return msgpack.packb(items, use_bin_type=True)


FIELDS = [1, GENESIS, "vote", 1, 2, "b", "ntp"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x98",
        _pack(FIELDS),
        _pack(FIELDS + [{}, 1]),
        _pack({"seq": 1}),
        _pack(FIELDS + [{"b": 1, "a": 2}]),
        _pack(FIELDS + [{"a": {"d": 1, "c": 2}}]),
        _pack(FIELDS + [{"a": 1.0}]),
        _pack(FIELDS + [{"a": [0.5]}]),
        _pack(FIELDS + [{1: 1}]),
        _pack(FIELDS + [{"a": msgpack.ExtType(5, b"")}]),
        _pack(FIELDS + [{}]) + b"\x00",
        msgpack.packb(FIELDS + [{}], use_bin_type=False),  # prev as str (old raw format)
        bytes([0x98, 0xCF]) + (1).to_bytes(8, "big") + _pack(FIELDS + [{}])[2:],
        bytes([0xDC, 0, 8]) + _pack(FIELDS + [{}])[1:],  # array16 header for 8 items
    ],
)
def test_decode_rejects(data):
    with pytest.raises(RecordError):
        decode_record(data)


def test_decode_duplicate_keys_rejected():
    good = _pack(FIELDS + [{"a": 1, "b": 2}])
    dup = good.replace(b"\xa1b", b"\xa1a")  # second key renamed to duplicate the first
    with pytest.raises(RecordError):
        decode_record(dup)


def test_decode_accepts_memoryview_and_rejects_non_bytes():
    enc = encode_record(rec({"a": 1}))
    assert decode_record(memoryview(enc)) == rec({"a": 1})
    with pytest.raises(RecordError):
        decode_record("not bytes")  # type: ignore[arg-type]


# ---- chain ----------------------------------------------------------------------------------


def make_chain(n: int, start: bytes = GENESIS) -> list[tuple[Record, bytes]]:
    out, prev = [], start
    for i in range(n):
        r = rec({"i": i}, seq=i + 1, prev=prev)
        enc = encode_record(r)
        out.append((r, enc))
        prev = chain_next(prev, enc)
    return out


def test_chain_next_is_record_hash():
    _, enc = make_chain(1)[0]
    assert chain_next(GENESIS, enc) == record_hash(enc) and len(record_hash(enc)) == 32


def test_verify_chain_accepts_intact_and_empty():
    chain = make_chain(20)
    assert verify_chain(GENESIS, chain) is None
    assert verify_chain(GENESIS, []) is None
    assert verify_chain(record_hash(chain[9][1]), chain[10:]) is None


def test_verify_chain_detects_broken_links():
    chain = make_chain(10)
    assert verify_chain(bytes([1]) * 32, chain) == 0
    bad = list(chain)
    r5 = rec({"i": "forged"}, seq=6, prev=chain[5][0].prev)
    bad[5] = (r5, encode_record(r5))  # rewritten record: its successor no longer links
    assert verify_chain(GENESIS, bad) == 6
    del bad[3]  # dropped record
    assert verify_chain(GENESIS, bad) == 3
    swapped = chain[:]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    assert verify_chain(GENESIS, swapped) == 2


def test_verify_chain_random_break():
    chain = make_chain(30)
    rng = random.Random(7)
    for _ in range(10):
        i = rng.randrange(1, 30)
        r = chain[i][0]
        forged = Record(r.seq, bytes(32), r.kind, r.wall_ms, r.mono_ns, r.boot_id, r.clock, r.body)
        broken = chain[:i] + [(forged, encode_record(forged))] + chain[i + 1 :]
        assert verify_chain(GENESIS, broken) == i


def test_peek_seq_widths_and_garbage():
    for seq in (1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**63 - 1):
        assert peek_seq(encode_record(rec(seq=seq))) == seq
    for junk in (b"", b"\x98", b"\x97\x01", b"\x98\xa1", b"\x98\xcf\x00"):
        with pytest.raises(RecordError):
            peek_seq(junk)
