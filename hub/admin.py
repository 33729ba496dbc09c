"""Operator actions that write the hub database directly (used by the CLI; the running hub
notices new config versions within a second and pushes them)."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import time
from pathlib import Path

import yaml

from hub.catalog import next_config_version, read_catalog_guides, store_catalog
from hub.config import HubConfig
from hub.store import CONFIG_UPSERT, open_db
from iobase.config import load_config
from iobase.files import fsync_path
from iobase.sqlite import transaction
from protocol.calendar import CalendarError, YearTable


def import_catalog(config: Path, file: Path) -> tuple[int, int]:
    """Validate and store a catalog file; returns (version, number of items)."""
    cfg = load_config(config, HubConfig)
    items, guides, forms = read_catalog_guides(file)
    conn = open_db(cfg.store_url())
    try:
        return store_catalog(conn, items, actor=_actor(), guides=guides, forms=forms), len(items)
    finally:
        conn.close()


def import_directory(config: Path, file: Path) -> int:
    """Validate and store the recipients directory; returns the number of people."""
    from hub.notify import load_directory, save_directory

    cfg = load_config(config, HubConfig)
    directory = load_directory(file)
    conn = open_db(cfg.store_url())
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
    conn = open_db(cfg.store_url())
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
    version = next_config_version(conn, "calendar")
    now_ms = int(time.time() * 1000)
    payload = {"years": [years[y] for y in sorted(years)]}
    conn.execute(
        "INSERT INTO config VALUES ('calendar', ?, ?, ?, ?) " + CONFIG_UPSERT,
        (version, json.dumps(payload, ensure_ascii=False), now_ms, actor),
    )
    conn.execute(
        "INSERT INTO config_log(at_ms, kind, version, actor, detail) VALUES (?, 'calendar', ?, ?, ?)",
        (
            now_ms,
            version,
            actor,
            f"year {table.year} ({len(table.holidays)} holidays, "
            f"{len(table.workdays)} 调休 working days) from {source}",
        ),
    )
    return version


BACKUP_MODE = 0o600  # the copy holds every site's applicants: names, ID numbers, phones


def backup(config: Path, out: Path) -> dict:
    """Copy the hub database to `out` with SQLite's online backup API, consistent while the hub
    runs: the copy is one read transaction of the WAL database (the hub keeps writing; it is
    never blocked). Written to a temporary file beside `out` (mode 0600), checked with
    `PRAGMA integrity_check`, switched to a single self-contained file (journal_mode=DELETE),
    fsync'd, then renamed over `out`. Returns a summary (path, bytes, row counts, versions)."""
    cfg = load_config(config, HubConfig)
    from hub.db import SQLITE, engine_of, sqlite_path

    url = cfg.store_url()
    if engine_of(url) != SQLITE:
        raise ValueError(
            f"{config}: the store is PostgreSQL (store.url); back it up with PostgreSQL's own tools "
            "(pg_dump, or continuous archiving), see docs/operations.md; `jiancha hub backup` copies a SQLite store"
        )
    src_path = sqlite_path(url)
    if not src_path.is_file():
        raise ValueError(f"{src_path}: no hub database to back up")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; give the backup file's name, e.g. {out / 'hub-backup.db'}")
    if not out.parent.is_dir():
        raise ValueError(f"{out.parent}: no such folder")
    if out.resolve() in {src_path.resolve(), Path(f"{src_path}-wal").resolve()}:
        raise ValueError(f"{out}: is the live database; back up to another file")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BACKUP_MODE)  # 0600 before any byte
    os.close(fd)
    try:
        src = sqlite3.connect(str(src_path), timeout=30, isolation_level=None)  # reads only
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            src.backup(dst, pages=-1)  # one step: one snapshot, whatever the hub writes meanwhile
        finally:
            src.close()
        try:
            dst.execute("PRAGMA journal_mode=DELETE")  # a single file, no -wal beside it
            problems = [r[0] for r in dst.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                raise ValueError(f"{src_path}: the copy fails PRAGMA integrity_check: {'; '.join(problems[:5])}")
            summary = _summary(dst)
        finally:
            dst.close()
        fsync_path(tmp)
        os.chmod(tmp, BACKUP_MODE)
        os.replace(tmp, out)
        fsync_path(out.parent)
    except BaseException:
        for p in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        raise
    return {"path": str(out), "bytes": out.stat().st_size, **summary}


def _summary(conn) -> dict:
    def count(table: str) -> int | None:
        try:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:
            return None

    versions = dict(conn.execute("SELECT kind, version FROM config").fetchall())
    return {"counts": {t: count(t) for t in ("records", "cases", "tickets", "documents")}, "config": versions}


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _store(config: Path):
    cfg = load_config(config, HubConfig)
    return open_db(cfg.store_url())


def user_add(config: Path, login: str, role: str, scope: str | None, password: str, display_name: str | None = None):
    """Create an operator account in the hub's store (jiancha user add)."""
    from hub.accounts import add_user

    conn = _store(config)
    try:
        with transaction(conn):
            return add_user(conn, login, role, scope, password, int(time.time() * 1000), display_name)
    finally:
        conn.close()


def user_list(config: Path):
    """Every operator account (jiancha user list)."""
    from hub.accounts import list_users

    conn = _store(config)
    try:
        return list_users(conn)
    finally:
        conn.close()


def user_disable(config: Path, login: str):
    """Disable an account; its sessions end at once (jiancha user disable)."""
    from hub.accounts import disable_user

    conn = _store(config)
    try:
        with transaction(conn):
            return disable_user(conn, login, int(time.time() * 1000))
    except LookupError as exc:
        raise ValueError(str(exc.args[0])) from None
    finally:
        conn.close()


def user_reset(config: Path, login: str, password: str):
    """Set a new password (and enable the account); its sessions end (jiancha user reset)."""
    from hub.accounts import reset_password

    conn = _store(config)
    try:
        with transaction(conn):
            return reset_password(conn, login, password, int(time.time() * 1000), enable=True)
    except LookupError as exc:
        raise ValueError(str(exc.args[0])) from None
    finally:
        conn.close()


def stats_bulletin(config: Path, month: str, out: Path, now=None) -> dict:
    """jiancha stats bulletin: the month's 月度通报 of the whole hub (issued once, then the same),
    written to `out` atomically; returns its metadata (number, sha256, size)."""
    from datetime import datetime

    from hub.access import ADMIN, Actor
    from hub.stats import Filter, month_period
    from hub.stats_bulletin import bulletin
    from hub.store import load_calendar
    from protocol.calendar import CST

    cfg = load_config(config, HubConfig)
    first, last = month_period(month)
    now = now or datetime.now(CST)
    if last >= now.astimezone(CST).date():
        raise ValueError(f"{month}: 只能生成已结束月份的通报 (the month has not ended yet)")
    conn = open_db(cfg.store_url())
    try:
        cal = load_calendar(conn)
        names = dict(conn.execute("SELECT code, name FROM sites").fetchall())
        with transaction(conn):
            meta, pdf = bulletin(conn, month, Filter(Actor(_actor(), ADMIN)), cal, now, authority=cfg.name,
                                 prefix=cfg.doc_prefix, files_dir=Path(cfg.data_dir) / "documents",
                                 site_names=names, actor=_actor(), reply_days=cfg.complaints.reply_days)  # fmt: skip
    finally:
        conn.close()
    tmp = Path(out).with_name(f".{Path(out).name}.tmp")
    tmp.write_bytes(pdf)
    tmp.replace(out)
    return meta
