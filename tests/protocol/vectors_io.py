"""Reading the golden vector files (tests/protocol/vectors/*.json), shared by the wire tests."""

from __future__ import annotations

import json
from pathlib import Path

from protocol.records import Record

VECTORS = Path(__file__).parent / "vectors"


def untag(v):
    """Inverse of the vector files' {"$hex": ...} tagging of bytes."""
    if isinstance(v, dict):
        if set(v) == {"$hex"}:
            return bytes.fromhex(v["$hex"])
        return {k: untag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [untag(x) for x in v]
    return v


def golden_rows() -> list[tuple[Record, bytes, bytes]]:
    """(record, encoded, hash) of every record in records.json."""
    data = json.loads((VECTORS / "records.json").read_text("utf-8"))
    return [
        (Record(**untag(row["record"])), bytes.fromhex(row["encoded"]), bytes.fromhex(row["hash"]))
        for row in data["records"]
    ]
