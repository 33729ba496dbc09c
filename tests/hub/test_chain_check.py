"""The chain verdict at one stored record (hub/chain_check.verdict, pure), and the masks of personal
data (hub/case_view): one line per case."""

from __future__ import annotations

import pytest

from hub.case_view import mask_applicant, mask_digits, mask_name
from hub.chain_check import BROKEN, OK, UNKNOWN, verdict
from protocol.records import GENESIS, Record, encode_record, record_hash

COLUMNS = ("seq", "hash", "prev", "kind", "wall_ms", "clock", "received_ms", "data")  # as stored


def _row(seq: int, prev: bytes, body: dict | None = None) -> tuple:
    rec = Record(seq, prev, "case.event", 1_790_000_000_000 + seq, 7, "boot", "ntp", body or {"n": seq})
    enc = encode_record(rec)
    return (seq, record_hash(enc), prev, rec.kind, rec.wall_ms, rec.clock, 1, enc)


def edit(row: tuple, **columns) -> tuple:
    """The row with some stored columns changed (as someone with the database might)."""
    return tuple(columns.get(name, value) for name, value in zip(COLUMNS, row))


FIRST = _row(1, GENESIS)
SECOND = _row(2, FIRST[1])
FORGED = _row(2, FIRST[1], {"n": 99})  # the same record with another body


@pytest.mark.parametrize(
    "seq, row, before, state, why",
    [
        (1, FIRST, None, OK, "第 1 条"),
        (2, SECOND, FIRST, OK, "相连"),
        (2, SECOND, None, UNKNOWN, "尚未到达"),
        (2, None, FIRST, BROKEN, "原始记录缺失"),
        (2, edit(SECOND, data=FORGED[7]), FIRST, BROKEN, "哈希值不符"),  # bytes changed, hash kept
        (2, SECOND, _row(1, GENESIS, {"other": 1}), BROKEN, "不相连"),  # the record before it was replaced
        (2, edit(SECOND, prev=b"x" * 32), FIRST, BROKEN, "不符"),  # the prev column edited
        (2, edit(SECOND, clock="untrusted"), FIRST, BROKEN, "时钟"),  # the clock column edited
        (2, edit(SECOND, wall_ms=1), FIRST, BROKEN, "时间"),  # the time column edited
        (1, _row(1, b"\x01" * 32), None, BROKEN, "起点"),
        (2, edit(SECOND, data=b"\x98not msgpack"), FIRST, BROKEN, "哈希值不符"),
    ],
)
def test_verdict(seq, row, before, state, why):
    got = verdict(seq, row, before)
    assert got.state == state and why in got.why_zh, got


def test_undecodable_bytes_with_a_matching_hash_are_broken():
    junk = b"\x98not msgpack"
    row = edit(SECOND, hash=record_hash(junk), data=junk)
    got = verdict(2, row, FIRST)
    assert got.state == BROKEN and "无法解码" in got.why_zh


@pytest.mark.parametrize(
    "value, masked",
    [(mask_name("张三"), "张*"), (mask_name("欧阳修"), "欧**"), (mask_name(""), ""), (mask_name(None), None),
     (mask_digits("13800000000", 3, 4), "138****0000"), (mask_digits("140702199001011234", 3, 4), "140***********1234"),
     (mask_digits("1234567", 3, 4), "*******"), (mask_digits(None, 3, 4), None)],
)  # fmt: skip
def test_masks(value, masked):
    assert value == masked


def test_mask_applicant_keeps_other_fields():
    got = mask_applicant({"name": "李四", "id_no": None, "phone": "13912345678", "kind": "person"})
    assert got == {"name": "李*", "id_no": None, "phone": "139****5678", "kind": "person"}
