"""Renders the documents (文书) that tickets queued, off the ingest thread.

Rendering a PDF takes a fraction of a second (font loading), so tickets only queue
(ticket_id, kind); this worker issues each one through DocumentStore on its own connection:
the number is allocated and the PDF stored with its hash in one transaction. A failure is
recorded on the queue row and retried on the next pass.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from hub.db import SQLITE, connect, engine_of, sqlite_path
from hub.documents import DocumentStore, facts_from_case, facts_from_complaint, facts_from_followup
from protocol.calendar import CST, local_date

log = logging.getLogger("jiancha.hub.documents")


class DocumentWorker:
    """A thread that drains document_queue."""

    def __init__(
        self, db_path, *, authority: str, prefix: str, calendar, every_s: float = 1.0, files_dir: Path | None = None
    ):
        self.db_path = db_path  # a path or a store URL (hub/db.py)
        if files_dir is None and engine_of(str(db_path)) != SQLITE:
            raise ValueError("DocumentWorker: files_dir is required with a PostgreSQL store (no hub.db folder)")
        self.files_dir = Path(files_dir) if files_dir is not None else sqlite_path(str(db_path)).parent / "documents"
        self.authority = authority
        self.prefix = prefix
        self.calendar = calendar  # () -> WorkCalendar
        self.every_s = every_s
        self.stopping = threading.Event()
        self._retry_at: dict[int, float] = {}
        self.gate = lambda: True  # hub.lease: whether this worker issues documents now
        self._failures: dict[int, int] = {}
        self.thread = threading.Thread(target=self._run, name="documents", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current document."""
        self.stopping.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        conn = connect(self.db_path)
        store = DocumentStore(conn, files_dir=self.files_dir)  # copies outlive the database
        try:
            while not self.stopping.is_set():
                try:
                    if self.gate():  # only the worker holding the lease numbers documents (hub.lease)
                        self.run_once(conn, store)
                except Exception:
                    log.exception("document pass failed")
                self.stopping.wait(self.every_s)
        finally:
            conn.close()

    def run_once(self, conn, store: DocumentStore, now: datetime | None = None) -> int:
        """Issue every pending document; returns how many were issued."""
        now = now or datetime.now(CST)
        pending = conn.execute(
            "SELECT q.id, q.kind, t.id, t.case_no, t.reply_due, t.department, t.subject FROM document_queue q "
            "JOIN tickets t ON t.id = q.ticket_id WHERE q.status IN ('pending', 'failed') ORDER BY q.id"
        ).fetchall()
        done = 0
        mono = time.monotonic()
        for qid, kind, tid, case_no, reply_due, department, subject in pending:
            if self._retry_at.get(qid, 0) > mono:
                continue
            if not self.gate():  # the lease passed on meanwhile (documents_ticket_kind is the backstop)
                break
            # issued before a crash, but the queue row was not marked: never a second number
            existing = conn.execute(
                "SELECT id FROM documents WHERE ticket_id=? AND kind=? LIMIT 1", (tid, kind)
            ).fetchone()
            if existing:
                conn.execute(
                    "UPDATE document_queue SET status='issued', document_id=?, error=NULL WHERE id=?",
                    (existing[0], qid),
                )
                continue
            try:
                facts = subject_facts(
                    conn,
                    subject,
                    case_no,
                    authority=self.authority,
                    issue_date=local_date(now),
                    addressee=department,
                    reply_deadline=_date(reply_due),
                    calendar=self.calendar(),
                )
                doc = store.issue(
                    kind,
                    facts,
                    prefix=self.prefix,
                    year=local_date(now).year,
                    case_no=case_no,
                    ticket_id=tid,
                    actor="system",
                )
                conn.execute(
                    "UPDATE document_queue SET status='issued', document_id=?, error=NULL WHERE id=?", (doc["id"], qid)
                )
                done += 1
                log.info("issued %s %s for ticket %d", kind, doc["number"], tid)
            except Exception as exc:
                conn.execute("UPDATE document_queue SET status='failed', error=? WHERE id=?", (str(exc)[:300], qid))
                self._failures[qid] = self._failures.get(qid, 0) + 1
                self._retry_at[qid] = mono + min(5 * 2 ** self._failures[qid], 3600)
                log.warning("document %s for ticket %d failed: %s", kind, tid, exc)
        return done


def subject_facts(conn, subject: str, key: str, **kw):
    """DocumentFacts of a ticket's subject (hub/tickets.py SUBJECTS): a case's, a complaint's
    (its summary with the complainant's contact details scrubbed, hub/documents/facts.py) or a
    差评 follow-up's; `kw` as facts_from_case takes them."""
    if subject == "complaint":
        args, extra = _complaint(conn, key)
        return facts_from_complaint(*args, **extra, **kw)
    if subject == "followup":
        args, extra = _followup(conn, key)
        return facts_from_followup(*args, **extra, **kw)
    return facts_from_case(_case(conn, key), **kw)


def _complaint(conn, no: str) -> tuple:
    from hub.complaints import ACTION_ZH

    cur = conn.execute("SELECT * FROM complaints WHERE complaint_no=?", (no,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"投诉不存在 (no such complaint): {no}")
    c = dict(zip([d[0] for d in cur.description], row))
    timeline = [
        (datetime.fromtimestamp(at / 1000, CST), ACTION_ZH.get(a, a))
        for at, a in conn.execute(
            "SELECT at_ms, action FROM complaint_events WHERE complaint_id=? ORDER BY id", (c["id"],)
        )
    ]
    private = (c["contact_name"], c["contact_phone"], c["contact_email"])
    return (c,), {"timeline": timeline, "private": private}


def _followup(conn, key: str) -> tuple:
    from hub.followups import ACTION_ZH

    cur = conn.execute("SELECT * FROM followups WHERE id=?", (int(key),))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"回访件不存在 (no such follow-up): {key}")
    f = dict(zip([d[0] for d in cur.description], row))
    timeline = [
        (datetime.fromtimestamp(at / 1000, CST), ACTION_ZH.get(a, a))
        for at, a in conn.execute(
            "SELECT at_ms, action FROM followup_events WHERE followup_id=? ORDER BY id", (f["id"],)
        )
    ]
    return (f,), {"timeline": timeline}


def _case(conn, case_no: str) -> dict:
    cur = conn.execute("SELECT * FROM cases WHERE case_no=?", (case_no,))
    row = dict(zip([c[0] for c in cur.description], cur.fetchone()))
    row["violations"] = json.loads(row["violations"] or "[]")
    row["events"] = [
        json.loads(b)
        for (b,) in conn.execute("SELECT body_json FROM case_events WHERE case_no=? ORDER BY seq", (case_no,))
    ]
    return row


def _date(s):
    from datetime import date

    return date.fromisoformat(s) if s else None
