"""Catalog search for the clerk (事项检索): by code, by name, or by the pinyin initials of the name.

The initials are computed once, when a catalog arrives from the hub (AgentStore.save_config),
and kept beside the catalog in `catalog_search`: "psxk" finds 排水许可, "spjy" 食品经营许可.
A search reads at most MAX_RESULTS rows for a query of at most MAX_QUERY characters.

pypinyin's dictionaries take 30-75 MB of memory once loaded, which a box must not keep for a
job done a few times a year: the agent computes the initials in a short-lived child process
(`python -m agent.catalog_search`, names in and initials out as JSON), in process only when
pypinyin is already loaded (tests, tools) or when the child fails.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import unicodedata
from pathlib import Path

from protocol.models import CatalogItem

MIGRATIONS = [
    (
        "0006_catalog_search",
        """
        CREATE TABLE catalog_search (code TEXT PRIMARY KEY, name TEXT NOT NULL, department TEXT NOT NULL,
            initials TEXT NOT NULL);
    """,
    ),
]

MAX_QUERY = 32
MAX_RESULTS = 20
MAX_INITIALS = 64  # a catalog name is at most 200 characters; its initials are cut here


def initials(name: str) -> str:
    """Lower-case pinyin initials of a name's Chinese characters; letters and digits kept as they
    are (食品经营许可 → spjyxk, 二类医疗器械 → elylqx, ISO9001认证 → iso9001rz)."""
    from pypinyin import Style, lazy_pinyin  # its dictionaries cost ~15 MB: loaded only when a catalog arrives

    out = []
    for part in lazy_pinyin(name, style=Style.FIRST_LETTER, errors=lambda s: list(s)):
        out.extend(c.lower() for c in part if c.isascii() and c.isalnum())
    return "".join(out)[:MAX_INITIALS]


def initials_of(names: list[str], timeout_s: float = 120.0) -> list[str]:
    """The initials of each name, computed in a child process unless pypinyin is loaded here already."""
    if not names or "pypinyin" in sys.modules:
        return [initials(n) for n in names]
    root = str(Path(__file__).resolve().parent.parent)  # this package, wherever it is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agent.catalog_search"],
            input=json.dumps(names, ensure_ascii=False).encode(),
            capture_output=True,
            timeout=timeout_s,
            env=env,
            check=True,
        )
        out = json.loads(done.stdout)
        if isinstance(out, list) and len(out) == len(names) and all(isinstance(x, str) for x in out):
            return [x[:MAX_INITIALS] for x in out]
        raise ValueError("unexpected answer")
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        logging.getLogger("jiancha.agent.catalog").warning(
            "computing pinyin initials in a child process failed (%s); computing them here", str(exc)[:200]
        )
        return [initials(n) for n in names]


def index_rows(items: list[CatalogItem]) -> list[tuple[str, str, str, str]]:
    """(code, name, department, initials) for each item."""
    return [(i.code, i.name, i.department, ini) for i, ini in zip(items, initials_of([i.name for i in items]))]


def rebuild(conn: sqlite3.Connection, rows: list[tuple[str, str, str, str]]) -> None:
    """Replace the index (inside the caller's transaction, with the catalog it belongs to)."""
    conn.execute("DELETE FROM catalog_search")
    conn.executemany("INSERT INTO catalog_search VALUES (?, ?, ?, ?)", rows)


def normalise(query: str) -> str:
    """The query as searched: NFKC (full-width letters become ASCII), trimmed, lower case, bounded."""
    return unicodedata.normalize("NFKC", str(query or "")).strip().lower()[:MAX_QUERY]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn: sqlite3.Connection, query: str, limit: int = MAX_RESULTS) -> list[dict]:
    """Items whose code, name or initials contain the query; exact code and initials prefix first."""
    q = normalise(query)
    if not q:
        return []
    pattern = f"%{_like(q)}%"
    rows = conn.execute(
        "SELECT code, name, department, initials, "
        "CASE WHEN lower(code) = :q THEN 0 WHEN initials LIKE :prefix ESCAPE '\\' THEN 1 ELSE 2 END AS rank "
        "FROM catalog_search WHERE lower(code) LIKE :any ESCAPE '\\' OR name LIKE :any ESCAPE '\\' "
        "OR initials LIKE :any ESCAPE '\\' ORDER BY rank, code LIMIT :n",
        {"q": q, "prefix": f"{_like(q)}%", "any": pattern, "n": min(limit, MAX_RESULTS)},
    ).fetchall()
    return [{"code": r[0], "name": r[1], "department": r[2], "initials": r[3]} for r in rows]


if __name__ == "__main__":  # the child of initials_of: a JSON list of names in, their initials out
    json.dump([initials(str(n)) for n in json.load(sys.stdin)], sys.stdout, ensure_ascii=False)
