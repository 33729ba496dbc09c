"""Re-check a site's hash chain (记录链校验) at the records a case page shows.

Ingest checks every link once, when a record arrives (hub/ingest.py). The case page checks again,
from what is stored now, so a record altered in the store after ingest (its bytes, or the
columns beside them) shows as broken: the stored bytes must hash to the stored hash, decode to a
record with the same seq, prev, kind, time and clock as the columns, and its prev must be the
stored hash of the site's previous record (the zero hash for seq 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hub.db import in_list
from protocol.records import GENESIS, RecordError, decode_record, record_hash

OK, BROKEN, UNKNOWN = "ok", "broken", "unknown"


@dataclass(frozen=True)
class LinkCheck:
    """The verdict at one record: `state` is OK, BROKEN or UNKNOWN (the previous record is not
    at the hub yet, so the link cannot be checked); `why_zh` says it in Chinese."""

    seq: int
    state: str
    why_zh: str
    clock: str | None = None
    wall_ms: int | None = None
    received_ms: int | None = None
    hash_hex: str = ""


def check_links(conn, site: str, seqs: Iterable[int]) -> dict[int, LinkCheck]:
    """The verdict at each of `seqs` of `site` (one query for the records and their predecessors)."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    need = sorted(set(wanted) | {s - 1 for s in wanted if s > 1})
    where, args = in_list(conn, "seq", need)
    rows = {
        r[0]: r
        for r in conn.execute(
            f"SELECT seq, hash, prev, kind, wall_ms, clock, received_ms, data FROM records WHERE site=? AND {where}",
            (site, *args),
        ).fetchall()
    }
    return {seq: verdict(seq, rows.get(seq), rows.get(seq - 1)) for seq in wanted}


def verdict(seq: int, row: tuple | None, before: tuple | None) -> LinkCheck:
    """The verdict at record `seq` from its stored row and its predecessor's (None: not stored).

    A row is (seq, hash, prev, kind, wall_ms, clock, received_ms, data) as stored."""
    if row is None:
        return LinkCheck(seq, BROKEN, "中心没有这条记录的原始数据（原始记录缺失）")
    _seq, stored_hash, prev, kind, wall_ms, clock, received_ms, data = row
    stored_hash, prev, data = bytes(stored_hash), bytes(prev), bytes(data)
    base = {"clock": clock, "wall_ms": wall_ms, "received_ms": received_ms, "hash_hex": stored_hash.hex()}
    if record_hash(data) != stored_hash:
        return LinkCheck(seq, BROKEN, "记录内容与其哈希值不符：入库后被改动过", **base)
    try:
        rec = decode_record(data)
    except RecordError:
        return LinkCheck(seq, BROKEN, "原始记录无法解码：入库后被改动过", **base)
    if (rec.seq, rec.prev, rec.kind, rec.wall_ms, rec.clock) != (seq, prev, kind, wall_ms, clock):
        return LinkCheck(seq, BROKEN, "记录的序号、时间或时钟与原始数据不符：入库后被改动过", **base)
    if seq == 1:
        if prev != GENESIS:
            return LinkCheck(seq, BROKEN, "第 1 条记录没有从链的起点开始", **base)
        return LinkCheck(seq, OK, "内容与哈希一致，是本站点记录链的第 1 条", **base)
    if before is None:
        return LinkCheck(
            seq, UNKNOWN, f"内容与哈希一致；前一条记录（第 {seq - 1} 条）尚未到达中心，链接暂无法核对", **base
        )
    if bytes(before[1]) != prev:
        return LinkCheck(seq, BROKEN, f"与前一条记录（第 {seq - 1} 条）的哈希值不相连：记录链断裂", **base)
    return LinkCheck(seq, OK, f"内容与哈希一致，并与前一条记录（第 {seq - 1} 条）相连", **base)
