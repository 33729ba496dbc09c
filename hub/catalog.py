"""Item catalog (事项目录): import from CSV or YAML, store, and build the signed push payload."""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from agent.db import transaction

from protocol.models import CatalogItem

# Chinese column headers accepted on import
HEADER_LABELS = {
    "事项编码": "code", "编码": "code", "事项名称": "name", "名称": "name",
    "实施部门": "department", "部门": "department", "事项类型": "item_type",
    "办件类型": "case_type", "法定时限": "legal_days", "承诺时限": "promised_days",
    "预警天数": "yellow_days", "黄牌天数": "yellow_days", "收费": "fee", "收费标准": "fee",
    "申请材料": "materials", "材料": "materials", "设定依据": "basis", "依据": "basis",
    "咨询电话": "phone", "电话": "phone",
}


class CatalogError(ValueError):
    """The catalog file has problems; the message lists them by row and field."""


def read_catalog(path: Path) -> list[CatalogItem]:
    """Parse and validate a catalog file (.csv with a header row, or .yaml/.yml)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CatalogError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text (save the file as UTF-8)") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        where = "row {n} (line {line})"
    elif suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text)
        rows = data.get("items") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise CatalogError(f"{path}: expected a list of items (or a mapping with 'items:')")
        where = "item {n}"
    else:
        raise CatalogError(f"{path}: unsupported file type {suffix!r}; use .csv or .yaml")
    items, errors, seen = [], [], set()
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            errors.append(f"{where.format(n=n, line=n + 1)}: expected a mapping")
            continue
        clean = {HEADER_LABELS.get(str(k).strip(), str(k).strip()): _blank(v) for k, v in row.items() if k}
        try:
            item = CatalogItem.model_validate(clean)
        except ValidationError as exc:
            for e in exc.errors():
                field = ".".join(str(p) for p in e["loc"]) or "(row)"
                errors.append(f"{where.format(n=n, line=n + 1)} {field}: {e['msg']}")
            continue
        if item.code in seen:
            errors.append(f"{where.format(n=n, line=n + 1)} code: duplicate {item.code!r}")
        seen.add(item.code)
        items.append(item)
    if errors:
        raise CatalogError(f"{path}: {len(errors)} problem(s)\n  " + "\n  ".join(errors))
    if not items:
        raise CatalogError(f"{path}: no items")
    return items


def _blank(v):
    return None if isinstance(v, str) and not v.strip() else v


def store_catalog(conn, items: list[CatalogItem], actor: str = "cli") -> int:
    """Replace the catalog and bump its config version; returns the new version."""
    now_ms = int(time.time() * 1000)
    with transaction(conn):
        conn.execute("DELETE FROM catalog")
        conn.executemany("INSERT INTO catalog VALUES (?, ?, ?, ?)",
                         [(i.code, i.name, i.department, i.model_dump_json()) for i in items])
        row = conn.execute("SELECT version FROM config WHERE kind='catalog'").fetchone()
        version = (row[0] if row else 0) + 1
        payload = {"items": [i.model_dump(mode="json", exclude_none=True) for i in items]}
        conn.execute("INSERT OR REPLACE INTO config VALUES ('catalog', ?, ?, ?, ?)",
                     (version, json.dumps(payload, ensure_ascii=False), now_ms, actor))
        conn.execute("INSERT INTO config_log(at_ms, kind, version, actor, detail) VALUES (?, 'catalog', ?, ?, ?)",
                     (now_ms, version, actor, f"{len(items)} items"))
    return version
