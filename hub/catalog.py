"""Item catalog (事项目录): import from CSV or YAML, store, and build the signed push payload."""

from __future__ import annotations

import csv
import io
import json
import operator
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from hub.portal_guide import GUIDE_HEADERS, Guide, read_forms, store_guides
from hub.store import CATALOG_VERSION_UPSERT, CONFIG_UPSERT
from iobase.sqlite import transaction
from protocol.models import CatalogItem

# Chinese column headers accepted on import
HEADER_LABELS = {
    "事项编码": "code",
    "编码": "code",
    "事项名称": "name",
    "名称": "name",
    "实施部门": "department",
    "部门": "department",
    "事项类型": "item_type",
    "办件类型": "case_type",
    "法定时限": "legal_days",
    "承诺时限": "promised_days",
    "预警天数": "yellow_days",
    "黄牌天数": "yellow_days",
    "收费": "fee",
    "收费标准": "fee",
    "申请材料": "materials",
    "材料": "materials",
    "设定依据": "basis",
    "依据": "basis",
    "咨询电话": "phone",
    "电话": "phone",
    **GUIDE_HEADERS,  # the portal-only fields (办事指南), kept at the hub: hub/portal_guide.py
}


class CatalogError(ValueError):
    """The catalog file has problems; the message lists them by row and field."""


def read_catalog(path: Path) -> list[CatalogItem]:
    """Parse and validate a catalog file (.csv with a header row, or .yaml/.yml)."""
    return read_catalog_guides(path)[0]


def read_catalog_guides(path: Path) -> tuple[list[CatalogItem], dict[str, Guide], dict[str, bytes]]:
    """(items, portal guides by code, form files by name) of a catalog file; forms are read
    from the `forms/` folder beside it (docs/portal.md)."""
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
    items, errors, seen, guides = [], [], set(), {}
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            errors.append(f"{where.format(n=n, line=n + 1)}: expected a mapping")
            continue
        clean = {HEADER_LABELS.get(str(k).strip(), str(k).strip()): _blank(v) for k, v in row.items() if k}
        guide = {k: clean.pop(k) for k in list(clean) if k in Guide.model_fields}
        unknown = sorted(k for k in clean if k not in CatalogItem.model_fields)
        if unknown:
            raise CatalogError(
                f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; accepted: " + accepted_headers()
            )
        try:
            item = CatalogItem.model_validate(clean)
            guides[item.code] = Guide.model_validate(guide)
        except ValidationError as exc:
            for e in exc.errors():
                field = ".".join(str(p) for p in e["loc"]) or "(row)"
                errors.append(f"{where.format(n=n, line=n + 1)} {field}: {e['msg']}")
            continue
        if item.code in seen:
            errors.append(f"{where.format(n=n, line=n + 1)} code: duplicate {item.code!r}")
        seen.add(item.code)
        items.append(item)
    forms, problems = read_forms(path, [i.materials for i in items])
    errors += problems
    if errors:
        raise CatalogError(f"{path}: {len(errors)} problem(s)\n  " + "\n  ".join(errors))
    if not items:
        raise CatalogError(f"{path}: no items")
    return items, guides, forms


def accepted_headers() -> str:
    """The accepted column names, English with their Chinese alternatives."""
    zh: dict[str, list[str]] = {}
    for label, name in HEADER_LABELS.items():
        zh.setdefault(name, []).append(label)
    return ", ".join(
        f"{name} ({'/'.join(zh.get(name, []))})" if zh.get(name) else name
        for name in (*CatalogItem.model_fields, *Guide.model_fields)
    )


def _blank(v):
    return None if isinstance(v, str) and not v.strip() else v


def store_catalog(
    conn,
    items: list[CatalogItem],
    actor: str = "cli",
    guides: dict[str, Guide] | None = None,
    forms: dict[str, bytes] | None = None,
) -> int:
    """Replace the catalog (with its portal guides and forms) and bump its config version;
    returns the new version."""
    now_ms = int(time.time() * 1000)
    with transaction(conn):
        conn.execute("DELETE FROM catalog")
        conn.executemany(
            "INSERT INTO catalog VALUES (?, ?, ?, ?)",
            [(i.code, i.name, i.department, i.model_dump_json()) for i in items],
        )
        store_guides(conn, items, guides or {}, forms or {})
        version = next_config_version(conn, "catalog")
        payload = {"items": [i.model_dump(mode="json", exclude_none=True) for i in items]}
        conn.execute(
            "INSERT INTO config VALUES ('catalog', ?, ?, ?, ?) " + CONFIG_UPSERT,
            (version, json.dumps(payload, ensure_ascii=False), now_ms, actor),
        )
        conn.execute(
            CATALOG_VERSION_UPSERT,
            (version, json.dumps(payload, ensure_ascii=False), now_ms),
        )
        conn.execute(
            "INSERT INTO config_log(at_ms, kind, version, actor, detail) VALUES (?, 'catalog', ?, ?, ?)",
            (now_ms, version, actor, f"{len(items)} items"),
        )
    return version


# A box reports the config versions it holds in its birth (up/state `config`); the hub keeps the
# last one in sites.state_json (and the catalog's in sites.catalog_seen). Reports above this are
# ignored: a box may not push the hub's version numbers towards the 64-bit limit.
MAX_REPORTED_VERSION = 2**31 - 1
CONFIG_KINDS = ("catalog", "calendar")


def reported_configs(conn) -> dict[str, dict[str, int]]:
    """{site: {kind: version}} as each site's last state (its birth) said it holds; sites whose
    state named no config are missing. Read in Python (the sites table is small) so both store
    engines give the same answer without SQL JSON functions."""
    out: dict[str, dict[str, int]] = {}
    for code, state in conn.execute("SELECT code, state_json FROM sites WHERE state_json IS NOT NULL"):
        try:
            config = json.loads(state).get("config")
        except (ValueError, AttributeError):
            continue
        if not isinstance(config, dict):
            continue
        out[code] = {k: v for k in CONFIG_KINDS if type(v := config.get(k)) is int and 0 <= v <= MAX_REPORTED_VERSION}
    return out


def reported_config_versions(conn, kind: str) -> tuple[int, str | None]:
    """(the highest version of `kind` any site reported holding, that site), (0, None) if none."""
    if kind not in CONFIG_KINDS:
        raise ValueError(f"unknown config kind {kind!r}")
    best = (0, None)
    for code, held in reported_configs(conn).items():
        v = held.get(kind)
        if v is not None and 1 <= v and (v > best[0] or (v == best[0] and code < best[1])):
            best = (v, code)
    if kind == "catalog":  # kept by ingest even when a later death message had no config
        row = conn.execute(
            "SELECT catalog_seen, code FROM sites WHERE catalog_seen BETWEEN 1 AND ? "
            "ORDER BY catalog_seen DESC, code LIMIT 1",
            (MAX_REPORTED_VERSION,),
        ).fetchone()
        if row and row[0] > best[0]:
            best = (row[0], row[1])
    return best


def next_config_version(conn, kind: str) -> int:
    """The version the hub signs next for `kind`: above every version it signed (as far as its
    database remembers) and above every version a box reported holding. After the hub's
    database was lost or restored from an older backup, its own counter restarts low, but the
    boxes still hold the higher versions and ignore a config that is not newer than theirs."""
    own = conn.execute(
        "SELECT max(v) FROM (SELECT version AS v FROM config WHERE kind=? "
        "UNION ALL SELECT max(version) FROM config_log WHERE kind=?) AS own",
        (kind, kind),
    ).fetchone()[0]
    if kind == "catalog":
        signed = conn.execute("SELECT max(version) FROM catalog_versions").fetchone()[0]
        own = max(own or 0, signed or 0)
    return max(own or 0, reported_config_versions(conn, kind)[0]) + 1


# what a box says about an item that the hub checks against its own signed catalog
CHECKED_FIELDS = ("name", "department", "item_type", "case_type", "legal_days", "promised_days", "yellow_days")
FIELD_ZH = {
    "name": "事项名称",
    "department": "实施部门",
    "item_type": "事项类型",
    "case_type": "办件类型",
    "legal_days": "法定时限",
    "promised_days": "承诺时限",
    "yellow_days": "预警天数",
}


class CatalogHistory:
    """The catalog versions the hub signed, read on demand; versions never change once written,
    so a few parsed ones are cached."""

    def __init__(self, conn, cache_versions: int = 8):
        self.conn = conn
        self.cache: dict[int, dict[str, CatalogItem]] = {}
        self.cache_versions = cache_versions
        self._latest: int | None = None
        self._latest_known = False

    def begin(self) -> None:
        """Forget the current version (read again at most once per ingest group: an import
        may have signed a new one meanwhile)."""
        self._latest_known = False

    def items(self, version: int) -> dict[str, CatalogItem] | None:
        """Items of one signed version by code (None when the hub never signed that version)."""
        if version in self.cache:
            return self.cache[version]
        row = self.conn.execute("SELECT payload_json FROM catalog_versions WHERE version=?", (version,)).fetchone()
        if row is None:
            return None
        items = {i["code"]: CatalogItem.model_validate(i) for i in json.loads(row[0]).get("items", [])}
        if len(self.cache) >= self.cache_versions:
            self.cache.pop(next(iter(self.cache)))
        self.cache[version] = items
        return items

    def latest(self) -> int | None:
        """The current (newest) signed version."""
        if not self._latest_known:
            row = self.conn.execute("SELECT max(version) FROM catalog_versions").fetchone()
            self._latest, self._latest_known = (row[0] if row and row[0] is not None else None), True
        return self._latest

    def check(self, claim, min_version: int = 0) -> tuple[CatalogItem | None, str | None, str]:
        """Check a box's item snapshot: (the hub's item, check, detail).

        The claim is compared with the version it names. It may not name a version older than
        `min_version` (the one the box said it held before it wrote the record), nor one the hub
        never signed; a claim naming none (an agent older than this check, or a forgery) is
        compared with the current version. check is None when the claim equals the hub's item;
        'mismatch' when it differs (the hub's item is returned and must be used); 'unknown_item'
        when the hub has no such item (nothing trustworthy to use)."""
        latest = self.latest()
        v, note = claim.catalog_version, ""
        if v is None:
            target, note = latest, "报送未注明目录版本"
        elif v < min_version:
            target, note = min_version, f"盒子已确认持有第{min_version}版，却按第{v}版登记"
        elif self.items(v) is None:
            target, note = latest, f"中心从未签发第{v}版"
        else:
            target = v
        item = (self.items(target) or {}).get(claim.code) if target else None
        if item is None and target != latest and latest:
            target, item = latest, (self.items(latest) or {}).get(claim.code)
        if item is None:
            return (
                None,
                "unknown_item",
                f"事项 {claim.code} 不在中心签发的事项目录中{('（' + note + '）') if note else ''}",
            )
        if _key(claim) == _key(item):  # the common case: one tuple comparison
            return item, None, ""
        diffs = _differs(claim, item)
        text = "；".join(
            f"{FIELD_ZH[f]} 报送“{getattr(claim, f)}”，目录第{target}版为“{getattr(item, f)}”" for f in diffs
        )
        return item, "mismatch", f"事项 {claim.code} 与中心目录不符：{text}{('（' + note + '）') if note else ''}"


_key = operator.attrgetter(*CHECKED_FIELDS)


def _differs(claim, item: CatalogItem) -> list[str]:
    return [f for f in CHECKED_FIELDS if getattr(claim, f) != getattr(item, f)]
