"""A hub with the demo catalog (guides and a form) and a few cases, for the portal's tests."""

from __future__ import annotations

import json
from pathlib import Path

from hub.api import Limiter
from hub.catalog import read_catalog_guides, store_catalog
from tests.craft import registration
from tests.hub.hubapp import provisioned_hub

DEMO = Path(__file__).resolve().parents[2] / "jiancha" / "templates" / "catalog-demo.csv"
SITE = "140702-001"
HALL = "城区政务服务中心"
DONE_CASE, OPEN_CASE, LATE_CASE = (f"{SITE}-20261120-{n:04d}" for n in (1, 2, 3))
CODE = "00000001"  # the query code of DONE_CASE (the OpenAPI document's example)


def wide_limiter() -> Limiter:
    """A lookup limiter the tests' own lookups never reach."""
    return Limiter(n=10_000, global_n=100_000)


def add_case(c, case_no: str, status: str, events: list[tuple[str, str]], due: str = "2026-12-04", code: str = CODE):
    """A case of XK-001 at SITE, with its events (type, at)."""
    reg = registration(SITE, 1)
    reg.update(case_no=case_no, query_code=code)
    c.execute(
        "INSERT INTO cases (case_no, site, item_code, item_name, department, query_code, received_at, "
        "reg_seq, reg_json, status, light, due_date, legal_due_date) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (case_no, SITE, "XK-001", "食品经营许可", "市场监督管理局", code, reg["received_at"], 1,
         json.dumps(reg, ensure_ascii=False), status, "green", due, "2026-12-18"),
    )  # fmt: skip
    base = c.execute("SELECT coalesce(max(seq), 0) FROM case_events WHERE site=?", (SITE,)).fetchone()[0]
    for i, (kind, at) in enumerate(events, start=1):
        c.execute(
            "INSERT INTO case_events (site, seq, case_no, type, at, body_json) VALUES (?, ?, ?, ?, ?, '{}')",
            (SITE, base + i, case_no, kind, at),
        )


def portal_hub(root: Path, store_url: str):
    """The hub: demo catalog, the hall SITE, a finished case, an open one and a late one."""
    hub = provisioned_hub(root, sites=(SITE,), store_url=store_url)
    items, guides, forms = read_catalog_guides(DEMO)
    store_catalog(hub.conn, items, actor="test", guides=guides, forms=forms)

    def seed(c):
        c.execute(
            "INSERT INTO sites (code, name) VALUES (?, ?) ON CONFLICT (code) DO UPDATE SET name = ?", (SITE, HALL, HALL)
        )
        accepted = ("accept", "2026-11-20T09:30:00+08:00")
        add_case(c, DONE_CASE, "completed", [accepted, ("complete", "2026-12-01T15:00:00+08:00")])
        add_case(c, OPEN_CASE, "accepted", [accepted], code="00000002")
        add_case(c, LATE_CASE, "completed", [accepted, ("complete", "2026-12-08T10:00:00+08:00")], code="00000003")

    hub.write(seed)
    return hub
