"""Craft records and sealed batches the way an agent does, for wire-fault tests."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from protocol.calendar import CST
from protocol.crypto import load_private_pem, load_public_pem
from protocol.records import GENESIS, Record, encode_record, record_hash
from protocol.wire import seal_batch

ITEM = {
    "code": "XK-001",
    "name": "食品经营许可",
    "department": "市场监督管理局",
    "item_type": "licensing",
    "case_type": "promised",
    "legal_days": 20,
    "promised_days": 10,
    "yellow_days": 2,
}


def registration(site: str, n: int, received: datetime | None = None) -> dict:
    """A case.registered body."""
    received = received or datetime(2026, 11, 20, 9, 0, tzinfo=CST)
    return {
        "case_no": f"{site}-20261120-{n:04d}",
        "query_code": f"{n:08d}",
        "item": ITEM,
        "applicant": {"name": "王五", "id_no": None, "phone": None},
        "window": "1号窗口",
        "clerk": "赵六",
        "received_at": received.isoformat(),
    }


def chain(
    site: str, n: int, start_seq: int = 1, prev: bytes = GENESIS, body=None, kind: str = "case.registered"
) -> tuple[list[bytes], bytes]:
    """n encoded case.registered records from start_seq; returns (records, hash of the last)."""
    out = []
    for i in range(n):
        seq = start_seq + i
        rec = Record(
            seq=seq,
            prev=prev,
            kind=kind,
            wall_ms=int(time.time() * 1000),
            mono_ns=time.monotonic_ns(),
            boot_id="test-boot",
            clock="ntp",
            body=body(seq) if body else registration(site, seq),
        )
        enc = encode_record(rec)
        out.append(enc)
        prev = record_hash(enc)
    return out, prev


class SiteSigner:
    """Seals batches with a provisioned site's own keys (as its agent would)."""

    def __init__(self, root: Path, code: str):
        d = Path(root) / "sites" / code
        self.code = code
        self.sign_key = load_private_pem((d / "sign.key").read_bytes(), "ed25519")
        self.hub_seal = load_public_pem((d / "hub_seal.pub").read_bytes(), "x25519")

    def seal(self, records: list[bytes], first_seq: int, site: str | None = None) -> bytes:
        """A sealed, signed batch (header site = `site` or our own code)."""
        return seal_batch(
            site or self.code,
            records,
            sign_key=self.sign_key,
            hub_seal_pub=self.hub_seal,
            sent_ms=int(time.time() * 1000),
            first_seq=first_seq,
        )


def trust_item(conn, *items: dict) -> int:
    """Sign a catalog at the hub holding ITEM (and `items`), as `jiancha catalog import` would:
    the hub takes an item's name, department and limits only from its own catalog."""
    from hub.catalog import store_catalog
    from protocol.models import CatalogItem

    return store_catalog(conn, [CatalogItem.model_validate(i) for i in (ITEM, *items)], actor="test")
