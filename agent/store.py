"""The agent's case store: one append-only, hash-chained log (the outbox) plus projections.

Every write is one SQLite transaction that appends a record to `log` and updates the case
projection; the HTTP API answers only after the commit (WAL, synchronous=FULL), so an
acknowledged case survives a power cut. Nothing in `log` is ever updated or deleted.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent import catalog_search, clerks, integrity
from iobase.sqlite import connect, migrate, transaction
from protocol.calendar import CST, WorkCalendar, YearTable, default_calendar, local_date
from protocol.caseclock import Event, check_event, evaluate
from protocol.caseno import make_case_no
from protocol.models import (
    KIND_CASE_EVENT,
    KIND_CASE_REGISTERED,
    CaseEventBody,
    CaseRegistered,
    CatalogItem,
    ItemSnapshot,
    NewCase,
    NewEvent,
)
from protocol.records import GENESIS, Record, decode_record, encode_record, record_hash

MIGRATIONS = [
    (
        "0001_log",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE log (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, kind TEXT NOT NULL,
                          data BLOB NOT NULL);
    """,
    ),
    (
        "0002_cases",
        """
        CREATE TABLE cases (case_no TEXT PRIMARY KEY, item_code TEXT NOT NULL,
                            query_code TEXT NOT NULL, received_at TEXT NOT NULL,
                            status TEXT NOT NULL, window TEXT, clerk TEXT,
                            registered_seq INTEGER NOT NULL, item_json TEXT NOT NULL);
        CREATE TABLE case_events (seq INTEGER PRIMARY KEY, case_no TEXT NOT NULL,
                                  body_json TEXT NOT NULL);
        CREATE INDEX case_events_case ON case_events(case_no, seq);
        CREATE TABLE day_counters (day TEXT PRIMARY KEY, n INTEGER NOT NULL);
    """,
    ),
    (
        "0003_config",
        """
        CREATE TABLE config (kind TEXT PRIMARY KEY, version INTEGER NOT NULL,
                             issued_ms INTEGER NOT NULL, payload_json TEXT NOT NULL,
                             raw BLOB NOT NULL);
        CREATE TABLE catalog (code TEXT PRIMARY KEY, item_json TEXT NOT NULL);
    """,
    ),
    (
        "0004_window_indexes",
        """
        CREATE INDEX cases_received ON cases(received_at);
        CREATE INDEX cases_window ON cases(window, status);
    """,
    ),
    *clerks.MIGRATIONS,  # the clerk's window page: accounts and sessions (agent/clerks.py)
    *catalog_search.MIGRATIONS,  # pinyin initials of the catalog (agent/catalog_search.py)
]


class StoreError(Exception):
    """A request the store refuses; `status` is the HTTP status the API should answer with."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass(frozen=True)
class ClockInfo:
    """What the agent knows about its own clock when it writes a record."""

    wall_ms: int
    mono_ns: int
    boot_id: str
    quality: str


class AgentStore:
    """Single-writer store; safe to call from the event loop and the sync thread."""

    def __init__(self, path: Path, site: str, clock=None, *, check: bool = True):
        """Open the store at `path`. With `check` (always, for running) the file is checked first
        (agent/integrity.py): a damaged, emptied, vanished or rolled-back store raises
        integrity.StoreDamaged and is never opened, let alone replaced by a fresh one."""
        self.path = Path(path)
        self.site = site
        verdict = integrity.check_store(self.path) if check else None
        self.conn = connect(self.path, cache_kb=1024)
        if "0006_catalog_search" in migrate(self.conn, MIGRATIONS) and self.config_version("catalog"):
            self._index_catalog()  # a catalog stored before the index existed
        self.lock = threading.RLock()
        self._clock = clock or (
            lambda: ClockInfo(time.time_ns() // 1_000_000, time.monotonic_ns(), "unknown", "untrusted")
        )
        row = self.conn.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        self.head_seq, self.head_hash = (row[0], row[1]) if row else (0, GENESIS)
        self.epoch = self._meta("epoch") or self._set_meta_new("epoch", uuid.uuid4().hex)
        self.head_every_s = integrity.HEAD_EVERY_S
        self._head_written: tuple[int, float] | None = None  # (seq, monotonic time) of the head file
        self._head_failing = False
        if verdict is not None and verdict.state == "adopt":
            logging.getLogger("jiancha.agent.store").warning(
                "%s has no head file yet (written before this version); checked and adopted", self.path
            )
        if verdict is not None and (verdict.state != "ok" or verdict.head_file_seq != self.head_seq):
            self._write_head()  # a new store: from now on its absence is noticed; or catch up
        self.calendar: WorkCalendar = default_calendar()
        self.reader = connect(self.path, readonly=True, cache_kb=1024)
        self.on_append: list = []  # fn(record) after any commit: wakes the syncer
        self.on_case_event: list = []  # fn(case_view, event_type) after a case event commits

    # -- meta -------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta_new(self, key: str, value: str) -> str:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        return value

    def acked_seq(self) -> int:
        """Highest seq the hub has acknowledged as stored contiguously."""
        v = self._meta("acked_seq")
        return int(v) if v else 0

    def set_acked(self, seq: int) -> None:
        """Remember the hub's ack (never moves backwards)."""
        with self.lock:
            if seq > self.acked_seq():
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('acked_seq', ?)", (str(min(seq, self.head_seq)),)
                )

    # -- log --------------------------------------------------------------------------------
    def _append(self, kind: str, body: dict) -> Record:
        """Append one record inside the caller's transaction."""
        c = self._clock()
        rec = Record(
            seq=self.head_seq + 1,
            prev=self.head_hash,
            kind=kind,
            wall_ms=c.wall_ms,
            mono_ns=c.mono_ns,
            boot_id=c.boot_id,
            clock=c.quality,
            body=body,
        )
        data = encode_record(rec)
        h = record_hash(data)
        self.conn.execute("INSERT INTO log(seq, hash, kind, data) VALUES (?, ?, ?, ?)", (rec.seq, h, kind, data))
        self._pending_head = (rec.seq, h)
        return rec

    def _transaction(self, fn):
        with self.lock:
            self._pending_head = None
            with transaction(self.conn):
                result = fn()
            if self._pending_head:
                self.head_seq, self.head_hash = self._pending_head
                if self._head_written is None or time.monotonic() - self._head_written[1] >= self.head_every_s:
                    self._write_head()
            return result

    def flush_head(self) -> None:
        """Write the head file if the log moved on since it was last written (the running agent
        calls this every second; close() calls it too)."""
        with self.lock:
            if self._head_written is None or self._head_written[0] != self.head_seq:
                self._write_head()

    def _write_head(self) -> None:
        """Record the committed chain head beside the database (agent/integrity.py). A failure
        (full disk) is logged and retried later, never raised: the commit itself succeeded."""
        try:
            integrity.write_head(self.path, self.epoch, self.head_seq, self.head_hash)
        except OSError as exc:
            if not self._head_failing:
                logging.getLogger("jiancha.agent.store").warning(
                    "cannot write the head file of %s (retried every %.0f s): %s", self.path, self.head_every_s, exc
                )
            self._head_failing = True
            self._head_written = (-1, time.monotonic())
            return
        self._head_failing = False
        self._head_written = (self.head_seq, time.monotonic())

    def append(self, kind: str, body: dict) -> Record:
        """Append a non-case record (vote, device event, heartbeat): durable when this returns."""
        rec = self._transaction(lambda: self._append(kind, body))
        for fn in self.on_append:
            fn(rec)
        return rec

    def last_wall_ms(self) -> int | None:
        """Wall time written in the newest record (a floor for the box clock)."""
        data = self.read_log(self.head_seq, self.head_seq) if self.head_seq else []
        return decode_record(data[0]).wall_ms if data else None

    def read_log(self, first: int, last: int) -> list[bytes]:
        """Encoded records first..last (inclusive) in order."""
        rows = self.reader.execute(
            "SELECT data FROM log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
        ).fetchall()
        return [r[0] for r in rows]

    # -- catalog and config -----------------------------------------------------------------
    def item(self, code: str) -> CatalogItem | None:
        """The catalog item with that code, if the hub has pushed it."""
        row = self.conn.execute("SELECT item_json FROM catalog WHERE code=?", (code,)).fetchone()
        return CatalogItem.model_validate_json(row[0]) if row else None

    def catalog(self) -> list[CatalogItem]:
        """All catalog items the hub pushed."""
        return [
            CatalogItem.model_validate_json(r[0])
            for r in self.conn.execute("SELECT item_json FROM catalog ORDER BY code")
        ]

    def _index_catalog(self) -> None:
        """Rebuild the catalog's search index from the stored catalog."""
        items = self.catalog()
        with transaction(self.conn):
            catalog_search.rebuild(self.conn, catalog_search.index_rows(items))

    def search_catalog(self, query: str) -> list[dict]:
        """Catalog items matching a code, name or pinyin initials (agent/catalog_search.py)."""
        with self.lock:
            return catalog_search.search(self.conn, query)

    def config_version(self, kind: str) -> int:
        """Version of the stored config of that kind (0 when none)."""
        row = self.conn.execute("SELECT version FROM config WHERE kind=?", (kind,)).fetchone()
        return row[0] if row else 0

    def save_config(self, kind: str, version: int, issued_ms: int, payload: dict, raw: bytes) -> bool:
        """Store a verified config if newer; apply catalog/calendar. Returns True when applied."""
        items = [CatalogItem.model_validate(i) for i in payload.get("items", [])] if kind == "catalog" else []
        # the search index only for a newer catalog (the hub may push the same one again)
        index = catalog_search.index_rows(items) if kind == "catalog" and version > self.config_version(kind) else []
        if kind == "calendar":  # validate before storing: a bad table must never brick start-up
            for t in payload.get("years", []):
                YearTable.from_dict(t)

        def tx():
            if version <= self.config_version(kind):
                return False
            self.conn.execute(
                "INSERT OR REPLACE INTO config VALUES (?, ?, ?, ?, ?)",
                (kind, version, issued_ms, json.dumps(payload, ensure_ascii=False), raw),
            )
            if kind == "catalog":
                self.conn.execute("DELETE FROM catalog")
                self.conn.executemany(
                    "INSERT INTO catalog VALUES (?, ?)", [(i.code, i.model_dump_json()) for i in items]
                )
                catalog_search.rebuild(self.conn, index)
            return True

        applied = self._transaction(tx)
        if applied and kind == "calendar":
            self.load_calendar()
        return applied

    def load_calendar(self) -> None:
        """Seeded years plus any year tables the hub pushed (a bad table is skipped, logged)."""
        cal = default_calendar()
        row = self.conn.execute("SELECT payload_json FROM config WHERE kind='calendar'").fetchone()
        if row:
            for t in json.loads(row[0]).get("years", []):
                try:
                    cal = cal.with_year(YearTable.from_dict(t))
                except ValueError as exc:
                    logging.getLogger("jiancha.agent.store").error("skipping a stored calendar year: %s", exc)
        self.calendar = cal

    # -- cases ------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The best-known time of the store's clock (agent/clock.py: corrected after a jump,
        the hub's time when the wall clock is off): the default for case numbers and times."""
        return datetime.fromtimestamp(self._clock().wall_ms / 1000, CST)

    def _next_case_no(self, day: str) -> str:
        """The next number of `day` (the day of the best-known time, never of a clock that jumped
        ahead): each day has its own counter, so a counter left for a later day by a wrong clock
        never moves today's numbers, and that day's numbers continue after it (no duplicates)."""
        row = self.conn.execute("SELECT n FROM day_counters WHERE day=?", (day,)).fetchone()
        n = (row[0] if row else 0) + 1
        self.conn.execute("INSERT OR REPLACE INTO day_counters(day, n) VALUES (?, ?)", (day, n))
        return make_case_no(self.site, day, n)

    def register(self, req: NewCase, now: datetime | None = None) -> dict:
        """收件: register a case; returns the case view. Raises StoreError(422) for unknown items.
        `now` (default: the clock's best-known time) dates the case number and `received_at`."""
        now = now or self.now()
        item = self.item(req.item_code)
        if item is None:
            raise StoreError(422, f"未知事项 (unknown item): {req.item_code!r} is not in the catalog", "item_code")
        received = (req.received_at or now).astimezone(CST)
        if received > now.astimezone(CST).replace(microsecond=0) + _tolerance():
            raise StoreError(422, "收件时间不能晚于当前时间 (received_at is in the future)", "received_at")
        snapshot = ItemSnapshot(**item.model_dump(include=set(ItemSnapshot.model_fields)))

        def tx():
            case_no = self._next_case_no(local_date(now).strftime("%Y%m%d"))
            item_seen = snapshot.model_copy(update={"catalog_version": self.config_version("catalog")})
            body = CaseRegistered(
                case_no=case_no,
                query_code=_query_code(),
                item=item_seen,
                applicant=req.applicant,
                window=req.window,
                clerk=req.clerk,
                received_at=received,
            )
            rec = self._append(KIND_CASE_REGISTERED, body.model_dump(mode="json"))
            self.conn.execute(
                "INSERT INTO cases VALUES (?, ?, ?, ?, 'received', ?, ?, ?, ?)",
                (
                    case_no,
                    item.code,
                    body.query_code,
                    received.isoformat(),
                    req.window,
                    req.clerk,
                    rec.seq,
                    snapshot.model_dump_json(),
                ),
            )
            return case_no

        case_no = self._transaction(tx)
        return self.case_view(case_no, now)

    def add_event(self, case_no: str, req: NewEvent, now: datetime | None = None) -> dict:
        """Append a case event after checking the transition; StoreError(404/409) otherwise.
        `now` (default: the clock's best-known time) is the default of the event's `at`."""
        now = now or self.now()
        if req.at is not None and req.at > now + _tolerance():
            raise StoreError(422, "办理时间不能晚于当前时间 (event time `at` is in the future)", "at")

        def tx():
            case = self._case_row(case_no)
            at = (req.at or now).astimezone(CST)
            body = CaseEventBody(case_no=case_no, at=at, **req.model_dump(exclude={"at"}, exclude_none=True))
            events = self._events(case_no)
            new = _event_from_body(body, 0)
            try:
                check_event(case["rule"], case["received_at"], events, new, self.calendar)
            except ValueError as exc:
                raise StoreError(409, str(exc)) from None
            rec = self._append(KIND_CASE_EVENT, body.model_dump(mode="json", exclude_none=True))
            self.conn.execute(
                "INSERT INTO case_events VALUES (?, ?, ?)", (rec.seq, case_no, body.model_dump_json(exclude_none=True))
            )
            view = evaluate(
                case["rule"], case["received_at"], events + [_event_from_body(body, rec.seq)], now, self.calendar
            )
            self.conn.execute("UPDATE cases SET status=? WHERE case_no=?", (view.status, case_no))

        self._transaction(tx)
        view = self.case_view(case_no, now)
        for fn in self.on_case_event:
            try:
                fn(view, req.type)
            except Exception:
                logging.getLogger("jiancha.agent.store").exception("case event listener failed")
        return view

    def _case_row(self, case_no: str) -> dict:
        row = self.conn.execute(
            "SELECT case_no, query_code, received_at, item_json, window, clerk, registered_seq "
            "FROM cases WHERE case_no=?",
            (case_no,),
        ).fetchone()
        if row is None:
            raise StoreError(404, f"案件不存在 (no such case): {case_no}")
        item = ItemSnapshot.model_validate_json(row[3])
        return {
            "case_no": row[0],
            "query_code": row[1],
            "received_at": datetime.fromisoformat(row[2]),
            "item": item,
            "rule": item.rule(),
            "window": row[4],
            "clerk": row[5],
            "seq": row[6],
        }

    def _events(self, case_no: str) -> list[Event]:
        rows = self.conn.execute(
            "SELECT seq, body_json FROM case_events WHERE case_no=? ORDER BY seq", (case_no,)
        ).fetchall()
        return [_event_from_body(CaseEventBody.model_validate_json(b), s) for s, b in rows]

    def case_view(self, case_no: str, now: datetime) -> dict:
        """The case as the clerk sees it: status, light, due dates, events."""
        with self.lock:
            case = self._case_row(case_no)
            events = self._events(case_no)
        v = evaluate(case["rule"], case["received_at"], events, now, self.calendar)
        return {
            "case_no": case_no,
            "query_code": case["query_code"],
            "site": self.site,
            "item_code": case["item"].code,
            "item_name": case["item"].name,
            "received_at": case["received_at"].isoformat(),
            "status": v.status,
            "light": v.light,
            "due_date": _d(v.due_date),
            "due_provisional": v.due_provisional,
            "legal_due_date": _d(v.legal_due_date),
            "acceptance_due": _d(v.acceptance_due),
            "delivery_due": _d(v.delivery_due),
            "remaining_days": v.remaining_days,
            "violations": list(v.violations),
            "seq": case["seq"],
            "window": case["window"],
            "clerk": case["clerk"],
            "department": case["item"].department,
            "events": [{"type": e.type, "at": e.at.isoformat(), "seq": e.seq} for e in events],
        }

    def window_lights(self, now: datetime, windows: set[str] | None = None) -> dict[str, list[str]]:
        """Lights of the open cases of each window (for the window lamps); only `windows` if given."""
        if windows is not None and not windows:
            return {}
        only = f" AND window IN ({','.join('?' * len(windows))})" if windows else ""
        with self.lock:
            rows = self.conn.execute(
                "SELECT case_no, window FROM cases WHERE window IS NOT NULL AND status NOT IN "
                "('completed', 'delivered', 'rejected', 'denied', 'withdrawn', 'transferred')" + only,
                tuple(windows or ()),
            ).fetchall()
        out: dict[str, list[str]] = {}
        for case_no, window in rows:
            out.setdefault(window, []).append(self.case_view(case_no, now)["light"])
        return out

    def open_cases(self, window: str, now: datetime, limit: int = 1000) -> list[dict]:
        """The open cases of one window (窗口在办件), as case views, newest first (at most `limit`)."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT case_no FROM cases WHERE window=? AND status NOT IN "
                "('completed', 'delivered', 'rejected', 'denied', 'withdrawn', 'transferred') "
                "ORDER BY registered_seq DESC LIMIT ?",
                (window, limit),
            ).fetchall()
        return [self.case_view(r[0], now) for r in rows]

    def case_detail(self, case_no: str) -> dict:
        """What the clerk's page needs beyond the view: the rule, receipt time, applicant, events."""
        with self.lock:
            case = self._case_row(case_no)
            events = self._events(case_no)
            reg = self.conn.execute("SELECT data FROM log WHERE seq=?", (case["seq"],)).fetchone()
        applicant = CaseRegistered.model_validate(decode_record(reg[0]).body).applicant if reg else None
        return {**case, "events": events, "applicant": applicant}

    def local_write(self, fn):
        """Run fn(conn) in one transaction on the write connection, for the box's own tables
        (clerks, sessions) that are not records: nothing is appended to the log."""
        with self.lock, transaction(self.conn):
            return fn(self.conn)

    def staff_on_duty(self, now: datetime) -> dict[str, str]:
        """Per window: the clerk of the latest case received there today (shown on the sign)."""
        day = local_date(now).isoformat()
        with self.lock:
            # SQLite takes the bare column `clerk` from the row holding max(registered_seq)
            rows = self.conn.execute(
                "SELECT window, clerk, max(registered_seq) FROM cases WHERE received_at >= ? AND received_at < ? "
                "AND clerk IS NOT NULL AND window IS NOT NULL GROUP BY window",
                _day_bounds(day),
            ).fetchall()
        return {w: c for w, c, _ in rows}

    def today_counts(self, now: datetime) -> dict[str, dict[str, int]]:
        """Per window: cases received and closed today (for the LED signs)."""
        day = local_date(now).isoformat()
        out: dict[str, dict[str, int]] = {}
        with self.lock:
            for window, n in self.conn.execute(
                "SELECT window, count(*) FROM cases WHERE received_at >= ? AND received_at < ? GROUP BY window",
                _day_bounds(day),
            ):
                out.setdefault(window or "", {})["received"] = n
            for window, n in self.conn.execute(
                "SELECT c.window, count(*) FROM case_events e JOIN cases c USING (case_no) "
                "WHERE json_extract(e.body_json, '$.type') IN ('complete', 'deliver') "
                "AND substr(json_extract(e.body_json, '$.at'), 1, 10) = ? GROUP BY c.window",
                (day,),
            ):
                out.setdefault(window or "", {})["completed"] = n
        return out

    def counts(self) -> dict:
        """Numbers for /api/health and the birth message."""
        acked = self.acked_seq()
        n_cases = self.reader.execute("SELECT count(*) FROM cases").fetchone()[0]
        return {
            "last_seq": self.head_seq,
            "acked_seq": acked,
            "backlog": self.head_seq - acked,
            "cases": n_cases,
            "catalog_version": self.config_version("catalog"),
            "calendar_version": self.config_version("calendar"),
        }

    def close(self) -> None:
        """Write the head file, close both connections."""
        try:
            self.flush_head()
        except Exception:
            pass
        self.reader.close()
        self.conn.close()


def _event_from_body(b: CaseEventBody, seq: int) -> Event:
    return Event(
        type=b.type,
        at=b.at,
        seq=seq,
        actor=b.actor,
        reason=b.reason,
        days=b.days,
        procedure=b.procedure,
        step=b.step,
        approver=b.approver,
        link=b.link,
    )


def _day_bounds(day: str) -> tuple[str, str]:
    """ISO range of one China day: received_at is stored as ISO text with +08:00, so a range
    comparison uses the index (a substr() would read every case)."""
    return f"{day}T00:00:00+08:00", f"{day}T24:00:00+08:00"


def _query_code() -> str:
    """8-digit query code (查询码) a citizen types on the portal."""
    return f"{secrets.randbelow(10**8):08d}"


def _tolerance():
    from datetime import timedelta

    return timedelta(minutes=5)


def _d(d) -> str | None:
    return d.isoformat() if d else None
