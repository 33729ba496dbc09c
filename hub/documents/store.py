"""DocumentStore: issued documents in the hub's store (numbers, PDF bytes, sha256), on SQLite or
PostgreSQL (hub/db.py).

Numbering: one sequence per (prefix, year) shared by all kinds — a 发文字号 names the issuing
authority and the year, not the kind, so two documents of one authority in one year never share a
number. An authority wanting separate sequences per kind configures a distinct prefix per kind.
The number is taken in the same write transaction (BEGIN IMMEDIATE) that stores the document, so
concurrent issuers never get the same number and a failed render leaves no gap. On PostgreSQL,
BEGIN IMMEDIATE takes the hub's advisory write lock (hub/db.py), so issuers are serialised the same
way, and each statement under it (READ COMMITTED) sees every number committed before. To keep the
hub's write lock short, the PDF is rendered before that transaction with the number expected next
and re-rendered if another issuer took it meanwhile (UNIQUE(prefix, year, seq) is the last guard).

Copies on disk: with `files_dir` (the hub passes DATA/documents) every issued PDF is also
written there as YEAR/NUMBER.pdf (0600, fsync'd, before the transaction commits). They outlive
a lost or replaced database: numbering never goes below the highest number found there, so a
number sent to a department is never given to another case after the database is lost or
restored from an older backup (a number whose commit then failed is skipped, not reused).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from hub.documents.facts import DocumentFacts
from hub.documents.kinds import REPORTS, check_prefix, format_number, kind_title, parse_number
from hub.documents.render import render_pdf
from iobase.files import fsync_path

# (name, SQL) for iobase.sqlite.migrate / hub.store.MIGRATIONS (SQLite); names are namespaced so they
# cannot collide with the hub's own numbered migrations. On PostgreSQL the table is in hub/schema_pg.py.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "documents_0001",
        """
        CREATE TABLE IF NOT EXISTS documents (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            number TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            year INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            case_no TEXT NOT NULL,
            ticket_id,
            actor TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            facts_json TEXT NOT NULL,
            pdf BLOB NOT NULL,
            UNIQUE (prefix, year, seq));
        CREATE INDEX IF NOT EXISTS documents_case ON documents(case_no);
    """,
    ),
]

_META = "id, number, kind, sha256, size, created_ms, case_no, ticket_id, actor, prefix, year, seq"


class DocumentIntegrityError(RuntimeError):
    """A stored document whose bytes no longer match its recorded sha256."""


def _apply_migrations(conn) -> None:
    """Apply MIGRATIONS through the project's migration runner (idempotent, by name). On
    PostgreSQL the hub's schema is one migration (hub/schema_pg.py): that one, documents included."""
    from hub.db import POSTGRESQL, engine
    from iobase.sqlite import migrate

    if conn.in_transaction:
        raise RuntimeError("DocumentStore: cannot create its tables inside an open transaction")
    if engine(conn) == POSTGRESQL:
        from hub.store import all_migrations

        migrate(conn, all_migrations(POSTGRESQL))
    else:
        migrate(conn, MIGRATIONS)


class DocumentStore:
    """Issue, fetch and list documents. Takes an open connection to the hub's store (hub/db.py:
    a sqlite3.Connection or a PgConnection).

    `ensure_schema=True` applies MIGRATIONS itself (recorded in `_migrations` under the same
    names, so adding MIGRATIONS to hub.store later is a no-op for an existing database).
    `clock` returns milliseconds since the epoch (tests pass a fixed one).
    """

    OPTIMISTIC_TRIES = 3  # renders outside the write lock before rendering under it

    def __init__(self, conn, *, ensure_schema: bool = True, clock=None, files_dir: Path | str | None = None) -> None:
        self.conn = conn
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.files_dir = Path(files_dir) if files_dir is not None else None
        self._disk_floor: dict[tuple[str, int], int] = {}
        if ensure_schema:
            _apply_migrations(conn)

    def issue(
        self,
        kind: str,
        facts: DocumentFacts,
        *,
        prefix: str,
        year: int,
        case_no: str,
        ticket_id: Any = None,
        actor: str,
    ) -> dict:
        """Allocate the next number of (prefix, year), render, store bytes + sha256.

        Returns {id, number, kind, sha256, size, created_ms}. ValueError for an unknown kind,
        a bad prefix/year, a year other than facts.issue_date's, a missing actor, or case_no
        differing from facts.case_no.
        """
        kind_title(kind)
        check_prefix(prefix)
        format_number(prefix, year, 1)  # validates the year
        if not isinstance(facts, DocumentFacts):
            raise TypeError(f"facts must be DocumentFacts, got {type(facts).__name__}")
        if not actor or not str(actor).strip():
            raise ValueError("actor (who issues the document) is required")
        if year != facts.issue_date.year:
            raise ValueError(
                f"year {year} differs from the year of facts.issue_date "
                f"{facts.issue_date.isoformat()} (the 发文字号 carries the 成文日期's year)"
            )
        if case_no != facts.case_no:
            raise ValueError(f"case_no {case_no!r} differs from facts.case_no {facts.case_no!r}")
        facts_json = facts.to_json()
        conn = self.conn
        if conn.in_transaction:  # the caller's transaction: a savepoint, rendered under its lock
            conn.execute("SAVEPOINT documents_issue")
            try:
                seq = self._next_seq(prefix, year)
                number, pdf, digest = self._render(kind, prefix, year, seq, facts)
                doc_id, created = self._insert(
                    kind, number, prefix, year, seq, case_no, ticket_id, actor, digest, facts_json, pdf
                )
                self._write_copy(year, number, pdf)
                conn.execute("RELEASE documents_issue")
            except BaseException:
                conn.execute("ROLLBACK TO documents_issue")
                conn.execute("RELEASE documents_issue")
                raise
        else:
            # Render outside the write lock (a render takes a few hundred ms), then allocate under
            # BEGIN IMMEDIATE only if nobody took that number meanwhile; else render again. The
            # last try renders under the lock, so issuing always ends.
            for attempt in range(self.OPTIMISTIC_TRIES + 1):
                under_lock = attempt == self.OPTIMISTIC_TRIES
                if not under_lock:
                    seq = self._next_seq(prefix, year)
                    number, pdf, digest = self._render(kind, prefix, year, seq, facts)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    current = self._next_seq(prefix, year)
                    if under_lock:
                        seq = current
                        number, pdf, digest = self._render(kind, prefix, year, seq, facts)
                    elif current != seq:  # another issuer took the number: render again
                        conn.execute("ROLLBACK")
                        continue
                    doc_id, created = self._insert(
                        kind, number, prefix, year, seq, case_no, ticket_id, actor, digest, facts_json, pdf
                    )
                    copy = self._write_copy(year, number, pdf)
                    try:
                        conn.execute("COMMIT")
                    except BaseException:
                        if copy is not None and conn.in_transaction:  # surely not issued: no copy
                            copy.unlink(missing_ok=True)
                        raise
                    break
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        return {"id": doc_id, "number": number, "kind": kind, "sha256": digest, "size": len(pdf), "created_ms": created}

    def find_report(self, kind: str, key: str) -> tuple[dict, bytes] | None:
        """A report (kinds.REPORTS) issued before under `key` (stored in case_no), or None."""
        row = self.conn.execute("SELECT id FROM documents WHERE kind=? AND case_no=?", (kind, key)).fetchone()
        return None if row is None else self.get(row[0])

    def issue_report(self, kind: str, key: str, render, *, prefix: str, year: int, actor: str, facts_json: str) -> dict:
        """Number and store a report that is not about one case (the monthly bulletin): inside the
        caller's write transaction, the next number of (prefix, year) -- the sequence every
        document shares -- is given to `render(number) -> PDF bytes`; `key` (e.g.
        bulletin:2026-11:ALL) goes where a case number goes, so find_report finds it again."""
        if kind not in REPORTS:
            raise ValueError(f"unknown report kind {kind!r}; known: {', '.join(REPORTS)}")
        check_prefix(prefix)
        if not self.conn.in_transaction:
            raise RuntimeError("issue_report runs inside the caller's write transaction")
        seq = self._next_seq(prefix, year)
        number = format_number(prefix, year, seq)
        pdf = bytes(render(number))
        digest = hashlib.sha256(pdf).hexdigest()
        doc_id, created = self._insert(kind, number, prefix, year, seq, key, None, actor, digest, facts_json, pdf)
        self._write_copy(year, number, pdf)
        return {"id": doc_id, "number": number, "kind": kind, "sha256": digest, "size": len(pdf), "created_ms": created}

    def _next_seq(self, prefix: str, year: int) -> int:
        (last,) = self.conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM documents WHERE prefix=? AND year=?", (prefix, year)
        ).fetchone()
        return max(last, self.disk_floor(prefix, year)) + 1

    def disk_floor(self, prefix: str, year: int) -> int:
        """The highest number of (prefix, year) among the copies on disk (0 without files_dir).
        Read once per store: afterwards the database knows every number this hub issues."""
        key = (prefix, year)
        if key not in self._disk_floor:
            top = 0
            folder = self.files_dir / str(year) if self.files_dir is not None else None
            if folder is not None and folder.is_dir():
                for f in folder.iterdir():
                    if f.suffix != ".pdf":
                        continue
                    try:
                        p, y, n = parse_number(_unquote(f.stem))
                    except ValueError:
                        continue
                    if p == prefix and y == year:
                        top = max(top, n)
            self._disk_floor[key] = top
        return self._disk_floor[key]

    def copy_path(self, year: int, number: str) -> Path | None:
        """Where the copy of a document lives (None without files_dir)."""
        return self.files_dir / str(year) / f"{_quote(number)}.pdf" if self.files_dir is not None else None

    def _write_copy(self, year: int, number: str, pdf: bytes) -> Path | None:
        """Write the PDF's copy (0600 in 0700 folders): temp file, fsync, rename, fsync folder."""
        path = self.copy_path(year, number)
        if path is None:
            return None
        for d in (self.files_dir, path.parent):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(pdf)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_path(path.parent)
        return path

    @staticmethod
    def _render(kind: str, prefix: str, year: int, seq: int, facts: DocumentFacts) -> tuple[str, bytes, str]:
        number = format_number(prefix, year, seq)
        pdf = render_pdf(kind, number, facts)
        return number, pdf, hashlib.sha256(pdf).hexdigest()

    def _insert(
        self, kind, number, prefix, year, seq, case_no, ticket_id, actor, digest, facts_json, pdf
    ) -> tuple[int, int]:
        created = int(self.clock())
        cur = self.conn.execute(
            "INSERT INTO documents (kind, number, prefix, year, seq, case_no, ticket_id, actor,"
            " created_ms, sha256, size, facts_json, pdf) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (
                kind,
                number,
                prefix,
                year,
                seq,
                case_no,
                ticket_id,
                str(actor),
                created,
                digest,
                len(pdf),
                facts_json,
                bytes(pdf),
            ),
        )
        return cur.fetchone()[0], created

    @staticmethod
    def _meta(row: tuple) -> dict:
        keys = [k.strip() for k in _META.split(",")]
        d = dict(zip(keys, row))
        d["title"] = kind_title(d["kind"]) if d["kind"] else d["kind"]
        return d

    def get(self, doc_id: int) -> tuple[dict, bytes] | None:
        """(metadata incl. facts, PDF bytes) or None; DocumentIntegrityError when the stored bytes
        do not hash to the stored sha256."""
        row = self.conn.execute(f"SELECT {_META}, facts_json, pdf FROM documents WHERE id=?", (doc_id,)).fetchone()
        if row is None:
            return None
        meta = self._meta(row[:-2])
        meta["facts"] = json.loads(row[-2])
        pdf = bytes(row[-1])
        actual = hashlib.sha256(pdf).hexdigest()
        if actual != meta["sha256"] or len(pdf) != meta["size"]:
            raise DocumentIntegrityError(
                f"document {doc_id} ({meta['number']}): stored PDF hashes to {actual}, "
                f"recorded {meta['sha256']} — the stored bytes were altered or damaged"
            )
        return meta, pdf

    def list(self, case_no: str | None = None) -> list[dict]:
        """Metadata of documents (no bytes), oldest first; only one case's when case_no is given."""
        sql = f"SELECT {_META} FROM documents"
        args: tuple = ()
        if case_no is not None:
            sql += " WHERE case_no=?"
            args = (case_no,)
        return [self._meta(r) for r in self.conn.execute(sql + " ORDER BY id", args).fetchall()]


def _quote(number: str) -> str:
    """A document number as a file name ('/' cannot be in one)."""
    return number.replace("%", "%25").replace("/", "%2F")


def _unquote(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")
