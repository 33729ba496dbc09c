"""Operator actions that write the hub database directly (used by the CLI; the running hub
notices new config versions within a second and pushes them)."""
from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

import yaml

from agent.db import transaction
from hub.catalog import read_catalog, store_catalog
from hub.store import open_db
from protocol.calendar import CalendarError, YearTable
from provisioning.config import HubConfig, load_config


def import_catalog(config: Path, file: Path) -> tuple[int, int]:
    """Validate and store a catalog file; returns (version, number of items)."""
    cfg = load_config(config, HubConfig)
    items = read_catalog(file)
    conn = open_db(Path(cfg.data_dir) / "hub.db")
    try:
        return store_catalog(conn, items, actor=_actor()), len(items)
    finally:
        conn.close()


def import_directory(config: Path, file: Path) -> int:
    """Validate and store the recipients directory; returns the number of people."""
    from hub.notify import load_directory, save_directory
    cfg = load_config(config, HubConfig)
    directory = load_directory(file)
    conn = open_db(Path(cfg.data_dir) / "hub.db")
    try:
        with transaction(conn):
            return save_directory(conn, directory, now_ms=int(time.time() * 1000))
    finally:
        conn.close()


def import_calendar(config: Path, file: Path) -> tuple[int, int]:
    """Store one year's holiday table (replacing that year); returns (version, year)."""
    cfg = load_config(config, HubConfig)
    try:
        raw = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{file}: file not found") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: expected a mapping with year, holidays, workdays")
    raw = {k: ([str(d) for d in v] if isinstance(v, list) else v) for k, v in raw.items()}
    try:
        table = YearTable.from_dict(raw)
    except CalendarError as exc:
        raise ValueError(f"{file}: {exc}") from None
    conn = open_db(Path(cfg.data_dir) / "hub.db")
    try:
        with transaction(conn):
            version = store_calendar_year(conn, table, _actor(), Path(file).name)
        return version, table.year
    finally:
        conn.close()


def store_calendar_year(conn, table: YearTable, actor: str, source: str) -> int:
    """Replace one year in the calendar config (inside the caller's transaction); returns the
    new version. The running hub notices it, recomputes open cases and pushes it to agents."""
    row = conn.execute("SELECT version, payload_json FROM config WHERE kind='calendar'").fetchone()
    years = {t["year"]: t for t in (json.loads(row[1])["years"] if row else [])}
    years[table.year] = table.to_dict()
    version = (row[0] if row else 0) + 1
    now_ms = int(time.time() * 1000)
    payload = {"years": [years[y] for y in sorted(years)]}
    conn.execute("INSERT OR REPLACE INTO config VALUES ('calendar', ?, ?, ?, ?)",
                 (version, json.dumps(payload, ensure_ascii=False), now_ms, actor))
    conn.execute("INSERT INTO config_log(at_ms, kind, version, actor, detail) VALUES (?, 'calendar', ?, ?, ?)",
                 (now_ms, version, actor, f"year {table.year} ({len(table.holidays)} holidays, "
                                          f"{len(table.workdays)} 调休 working days) from {source}"))
    return version


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
