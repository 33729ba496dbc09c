"""Ingest: verify, decrypt, dedupe by (site, seq), check the chain, project cases, ack.

One writer thread owns the database connection. Messages from paho's thread queue up and are
processed in groups inside one transaction; acks are published only after the commit, so an
acked record is durable. Bad input is quarantined with a counted reason and never stops ingest.

Several ingest workers may share one PostgreSQL store (`jiancha hub run --workers N`): a group's
transaction then holds the locks of the sites it touches (hub.db.site_transaction) and touches
nothing of other sites; what is not one site's (the sweep over every case, holds and back-entries
whose time is up, the config push) runs in the worker holding the leader lease (hub.lease).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from hub import children, followups, rollups
from hub import devices as dev
from hub import store as db
from hub.catalog import CatalogHistory
from hub.clockcheck import flag_clock
from hub.db import POSTGRESQL, engine, retryable_errors, site_transaction
from hub.keys import HubKeys, SiteKeys
from hub.projection import due_for_sweep, project_cases
from hub.uplink import Uplink
from hub.wall import WALL_COUNTER
from iobase.sqlite import is_disk_full, transaction
from protocol import topics
from protocol.calendar import CST
from protocol.caseno import case_site, owned_by
from protocol.models import (
    KIND_CASE_EVENT,
    KIND_CASE_REGISTERED,
    KIND_DEVICE_EVENT,
    KIND_HEARTBEAT,
    KIND_VOTE,
    CaseEventBody,
    CaseRegistered,
    DeviceEvent,
    Heartbeat,
    VoteCast,
)
from protocol.records import GENESIS, record_hash
from protocol.wire import MAX_BATCH_BYTES, WireError, decode_msg, open_batch

log = logging.getLogger("jiancha.hub.ingest")

GAP_WAIT_MS = 3000  # a gap older than this (no progress) triggers a resend request,
GAP_WAIT_MAX_MS = 300_000  # doubling while the same gap persists (a batch rejected for good)
GROUP_MAX = 64  # messages per transaction ...
ADVANCE_PAGE = 5000  # records read at a time when moving the contiguous mark
GROUP_BYTES = 1_000_000  # ... and about this many payload bytes (~3,000 records): short transactions
# keep ack latency and garbage-collector work small
QUARANTINE_SITE_BYTES = 64 * 2**20  # payload bytes kept in quarantine per site; beyond, reason only
QUARANTINE_SITE_ROWS = 10_000  # quarantine rows per site; beyond, only the counters move
ALERT_REPEAT_MS = 3_600_000  # one alert of a kind per site and hour for repeated attacks
HOLD_STALL_MS = 600_000  # a backlog that makes no progress this long stops holding supervision
HOLD_MAX_MS = 6 * 3_600_000  # ... and none holds longer than this after the birth that announced it
HOLD_BLOCK_MS = 24 * 3_600_000  # after a hold ended incomplete, that site gets no new one for this long
BACKENTRY_AFTER_MS = 600_000  # a case recorded this long after its receipt is a back-entry (补录) ...
BACKENTRY_GRACE_MS = 1_800_000  # ... judged this long after it was recorded, once its steps are in


@dataclass
class Outcome:
    """What processing one group produced: acks to publish after the commit."""

    acks: dict[str, dict] = field(default_factory=dict)
    extra: list[tuple[str, dict]] = field(default_factory=list)  # other messages to send after commit
    changed_cases: set[str] = field(default_factory=set)


class Ingestor:
    """Single-writer ingest thread."""

    def __init__(
        self,
        conn,
        hub_keys: HubKeys,
        sites: SiteKeys,
        publish,
        *,
        default_yellow: int = 1,
        sweep_interval_s: float = 30.0,
        now=None,
        supervisor=None,
        backdate_tolerance=None,
    ):
        self.conn = conn
        self.keys = hub_keys
        self.sites = sites
        self.publish = publish  # publish(topic, payload, qos, retain)
        self.default_yellow = default_yellow
        self.sweep_interval_s = sweep_interval_s
        self.now = now or (lambda: datetime.now(CST))
        self.calendar = db.load_calendar(conn)
        self.q: queue.Queue = queue.Queue(maxsize=10000)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self.on_idle = []  # callables run in this thread between groups
        self._next_sweep = 0.0
        self._fresh_regs: dict[str, CaseRegistered] = {}
        self.supervisor = supervisor  # hub.supervision.Supervisor (cards, tickets, SMS)
        self.ratings = None  # hub.config.Ratings: 差评 follow-up limits (hub/followups.py)
        self.clips = None  # hub.clips.ClipReceiver
        self.leader = lambda: True  # whether this worker runs the once-only work (hub.lease)
        self.on_idle_leader = []  # callables run between groups, only while leader
        self.site_scoped = engine(conn) == POSTGRESQL  # groups lock and touch only their own sites
        self._retryable = retryable_errors()
        self._pending_regs: list = []  # the current batch's registrations and events, inserted together
        self._pending_events: list = []
        self.backdate_tolerance = backdate_tolerance
        self.catalogs = CatalogHistory(conn)
        self._floor: dict[str, tuple[int, int]] = {}
        self.quarantine_site_bytes = QUARANTINE_SITE_BYTES
        self.quarantine_site_rows = QUARANTINE_SITE_ROWS
        self.hold_stall_ms = HOLD_STALL_MS
        self.hold_max_ms = HOLD_MAX_MS
        self.backentry_grace_ms = BACKENTRY_GRACE_MS
        self.uplink = Uplink(False)  # a child hub's outbox to its parent (hub/uplink.py)

    # -- thread plumbing ------------------------------------------------------------------------
    def submit(self, topic: str, payload: bytes) -> None:
        """Queue a message (called from paho's thread; blocks when 10,000 are waiting)."""
        self.q.put((topic, payload))

    def start(self) -> None:
        """Start the writer thread."""
        self.thread.start()

    def stop(self) -> None:
        """Finish queued work and stop."""
        self.stopping.set()
        self.q.put(None)
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            try:
                first = self.q.get(timeout=0.5)
            except queue.Empty:
                first = ()
            group = [first] if first else []
            size = len(first[1]) if first else 0
            while first is not None and len(group) < GROUP_MAX and size < GROUP_BYTES:
                try:
                    m = self.q.get_nowait()
                except queue.Empty:
                    break
                if m is None:
                    first = None
                    break
                group.append(m)
                size += len(m[1])
            group = [m for m in group if m]
            if group:
                self.process_safely(group)
            leader = self.leader()
            for fn in self.on_idle + (self.on_idle_leader if leader else []):
                try:
                    fn()
                except Exception:
                    log.exception("idle task failed")
            if leader and time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.sweep_interval_s
                try:
                    self.sweep()
                except Exception:
                    log.exception("sweep failed")
            if first is None and self.stopping.is_set() and self.q.empty():
                return

    # -- processing -----------------------------------------------------------------------------
    def process_safely(self, group: list[tuple[str, bytes]]) -> None:
        """Process a group; if it fails, each message alone, so one poison message (an
        unexpected error, not a rejected input) is quarantined instead of blocking the rest.
        A group the store rolled back to break a deadlock with another worker runs again."""
        for attempt in range(6):
            try:
                self.process_group(group)
                return
            except self._retryable:
                self._fresh_regs.clear()
                log.warning("ingest group of %d rolled back by the store (attempt %d)", len(group), attempt + 1)
                time.sleep(0.01 * 2**attempt)
            except Exception as exc:
                self._fresh_regs.clear()  # rolled back with the group
                if is_store_full(exc):  # not the message's fault: nothing stored, nothing acked
                    return self._store_full(len(group), exc)
                if len(group) == 1:
                    return self._poison(group[0])
                log.exception("ingest group of %d failed; retrying one by one", len(group))
                break
        for msg in group:
            for attempt in range(6):
                try:
                    self.process_group([msg])
                    break
                except self._retryable:
                    self._fresh_regs.clear()
                    time.sleep(0.01 * 2**attempt)
                except Exception as exc:
                    self._fresh_regs.clear()
                    if is_store_full(exc):
                        return self._store_full(1, exc)
                    self._poison(msg)
                    break

    def _store_full(self, n: int, exc: BaseException) -> None:
        """The store refused the write for lack of space (issue 15): one clear line a minute,
        no quarantine row (it would be a good batch counted as a rejection, and more bytes on a
        full disk). Nothing was acknowledged, so each box resends when space returns."""
        now = time.monotonic()
        if now >= getattr(self, "_full_logged", 0.0):
            self._full_logged = now + 60.0
            log.error(
                "hub store is full (%s): %d message(s) not stored and not acknowledged; the boxes "
                "resend them once space is freed (docs/operations.md)",
                str(exc).strip().splitlines()[0][:200],
                n,
            )

    def _poison(self, msg: tuple[str, bytes]) -> None:
        import traceback

        topic, payload = msg
        log.exception("message on %s failed alone: quarantined", topic)
        parsed = topics.parse_site_topic(topic) or topics.parse_child_topic(topic)
        try:
            with transaction(self.conn):
                self._quarantine(
                    int(time.time() * 1000),
                    parsed[0] if parsed else None,
                    topic,
                    "internal_error",
                    traceback.format_exc(limit=3)[-500:],
                    payload,
                )
        except Exception:
            log.exception("could not quarantine the message")

    def process_group(self, group: list[tuple[str, bytes]]) -> Outcome:
        """Process messages in one transaction, then publish acks."""
        out = Outcome()
        now = self.now()
        now_ms = int(now.timestamp() * 1000)
        self.sites.maybe_reload()
        self._floor = {}
        self.catalogs.begin()
        sites = {p[0] for t, _ in group if (p := topics.parse_site_topic(t) or topics.parse_child_topic(t))}
        with site_transaction(self.conn, sites), db.deferred_counters(self.conn):
            if self.site_scoped:  # another worker may lead and have imported a calendar
                self.refresh_calendar(force=True)
            for topic, payload in group:
                self._dispatch(topic, payload, now_ms, out)
            self._project(out.changed_cases, now, now_ms, scope=sites if self.site_scoped else None)
        for site, ack in out.acks.items():
            self.publish(topics.site_ack(site), ack, 1, False)
        for topic, msg in out.extra:
            self.publish(topic, msg, 1, False)
        return out

    def _dispatch(self, topic: str, payload: bytes, now_ms: int, out: Outcome) -> None:
        child = topics.parse_child_topic(topic)
        if child is not None:  # a child hub's uplink (hub/children.py)
            return children.handle(self, child[0], child[1], topic, payload, now_ms, out)
        parsed = topics.parse_site_topic(topic)
        if parsed is None:
            return self._quarantine(now_ms, None, topic, "bad_topic", "", payload)
        site, rest = parsed
        if rest == "up/state":
            return self._state(site, payload, now_ms, out)
        if not payload and rest in ("up/batch", "up/clip"):
            return db.bump(self.conn, "empty_payloads_ignored")  # the broker's retained-message sweep
        if rest == "up/clip":
            return self._clip(site, topic, payload, now_ms, out)
        if rest != "up/batch":
            return self._quarantine(now_ms, site, topic, "bad_topic", "", payload)
        self._batch(site, topic, payload, now_ms, out)

    def _clip(self, site: str, topic: str, payload: bytes, now_ms: int, out: Outcome) -> None:
        """A chunk of a clip the hub asked for: verify, store, ack."""
        key = self.sites.verify_key(site)
        if key is None or self.clips is None:
            return self._quarantine(now_ms, site, topic, "unknown_site" if key is None else "bad_topic", "clip", b"")
        try:
            ack_topic, ack = self.clips.handle(self.conn, site, payload, key, now_ms)
        except WireError as exc:
            return self._quarantine(now_ms, site, topic, exc.reason, str(exc), b"")
        out.extra.append((ack_topic, ack))
        db.bump(self.conn, "clip_chunks_stored")

    def _quarantine(self, now_ms, site, topic, reason, detail, payload) -> None:
        """Count a rejected input and keep it for inspection, within per-site caps: past the
        byte cap the reason is kept without the payload, past the row cap only the counters
        move (a box in a public hall must not be able to fill the hub's disk)."""
        db.bump(self.conn, f"rejected_{reason}")
        sha = record_hash(payload) if payload else None
        if sha and self.conn.execute("SELECT 1 FROM quarantine WHERE sha=? LIMIT 1", (sha,)).fetchone():
            return  # the same bytes again (a resend loop): counted, not stored twice
        key = site or ""
        used = self.conn.execute("SELECT rows, bytes FROM quarantine_usage WHERE site=?", (key,)).fetchone() or (0, 0)
        if used[0] >= self.quarantine_site_rows:
            db.bump(self.conn, "quarantine_rows_dropped")
            db.bump(self.conn, "dropped_bytes_quarantine", len(payload))
            return
        data = payload[:MAX_BATCH_BYTES]
        if used[1] + len(data) > self.quarantine_site_bytes:
            db.bump(self.conn, "dropped_bytes_quarantine", len(payload))
            data = b""
        elif len(payload) > len(data):
            db.bump(self.conn, "dropped_bytes_quarantine", len(payload) - len(data))
        log.warning("quarantined message from %s on %s: %s %s", site, topic, reason, detail)
        self.conn.execute(
            "INSERT INTO quarantine(at_ms, site, topic, reason, detail, data, sha) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now_ms, site, topic, reason, detail[:500], data, sha),
        )
        self.conn.execute(
            "INSERT INTO quarantine_usage(site, rows, bytes) VALUES (?, 1, ?) ON CONFLICT(site) "
            "DO UPDATE SET rows = quarantine_usage.rows + 1, bytes = quarantine_usage.bytes + excluded.bytes",
            (key, len(data)),
        )

    def _batch(self, site: str, topic: str, payload: bytes, now_ms: int, out: Outcome) -> None:
        key = self.sites.verify_key(site)
        if key is None:
            reason = "revoked_site" if self.sites.is_revoked(site) else "unknown_site"
            return self._quarantine(now_ms, site, topic, reason, "", payload)
        try:
            header, records = open_batch(payload, site=site, verify_key=key, hub_seal_key=self.keys.seal_key)
        except WireError as exc:
            return self._quarantine(now_ms, site, topic, exc.reason, str(exc), payload)
        for i in range(1, len(records)):
            if records[i][0].prev != _h(records[i - 1][1]):
                return self._quarantine(
                    now_ms, site, topic, "chain_break", f"inside batch at seq {records[i][0].seq}", payload
                )
        db.bump(self.conn, "batches_received")
        srow = self._site_row(site, now_ms)
        existing = dict(  # the batch's seqs and the one before it, in one round trip
            self.conn.execute(
                "SELECT seq, hash FROM records WHERE site=? AND seq BETWEEN ? AND ?",
                (site, header.first_seq - 1, header.last_seq),
            ).fetchall()
        )
        fresh, conflict = [], None
        if records and records[0][0].seq > 1:  # the batch must link to the record we hold before it,
            first = records[0][0]  # and not to another history we turned away
            before = (existing[first.seq - 1],) if first.seq - 1 in existing else None
            if (before is not None and before[0] != first.prev) or (
                before is None
                and self.conn.execute(
                    "SELECT 1 FROM conflict_heads WHERE site=? AND hash=?", (site, first.prev)
                ).fetchone()
            ):
                conflict = first.seq
        for rec, enc in records:
            h = _h(enc)
            old = existing.get(rec.seq)
            if conflict is None and old is not None and old != h:
                conflict = rec.seq
            if conflict is not None:  # another history under this identity: kept, never mixed in
                self._quarantine(
                    now_ms,
                    site,
                    topic,
                    "seq_conflict",
                    f"seq {rec.seq} {'differs' if rec.seq == conflict else 'follows a differing record'}",
                    enc,
                )
            elif old is None:
                fresh.append((rec, enc, h))
            else:
                db.bump(self.conn, "records_duplicate")
        if conflict is not None:
            last_rec, last_enc = records[-1]
            self.conn.execute(
                "INSERT INTO conflict_heads(site, hash, seq) VALUES (?, ?, ?) "
                "ON CONFLICT(site, hash) DO UPDATE SET seq = excluded.seq",
                (site, _h(last_enc), last_rec.seq),
            )
            self.conn.execute(
                "DELETE FROM conflict_heads WHERE site=? AND hash NOT IN (SELECT hash FROM "
                "conflict_heads WHERE site=? ORDER BY seq DESC LIMIT 256)",
                (site, site),
            )
            conflict_hash = next(_h(e) for r, e in records if r.seq == conflict)
            self._alert_once(
                now_ms,
                site,
                "identity_conflict",
                "red",
                f"站点 {site} 报送的第 {conflict} 条记录与中心已收到的记录链不同：同一站点身份可能被两台设备使用，"
                f"或设备被重置后沿用原编码。两边的记录都已保留；请按运维文档处理",
            )
        self.conn.executemany(
            "INSERT INTO records(site, seq, hash, prev, kind, wall_ms, clock, received_ms, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(site, r.seq, h, r.prev, r.kind, r.wall_ms, r.clock, now_ms, enc) for r, enc, h in fresh],
        )
        if fresh:
            db.bump(self.conn, "records_stored", len(fresh))
            flag_clock(self.conn, site, [r for r, _, _ in fresh], now_ms, self._alert_once)
        self._pending_regs, self._pending_events = [], []
        for rec, _enc, _hash in fresh:
            self._apply(site, rec, now_ms, out, topic)
        self._insert_pending(site, now_ms, out, topic)
        self._advance(
            site,
            srow,
            now_ms,
            out,
            last_clock=records[-1][0].clock if records else None,
            fresh=[(r.seq, h, r.prev) for r, _enc, h in fresh],
        )
        if conflict is not None:  # tell that box (by its record's hash): it is not the hub's history
            out.acks[site]["conflict"] = conflict
            out.acks[site]["conflict_hash"] = conflict_hash.hex()

    def _apply(self, site, rec, now_ms, out: Outcome, topic) -> None:
        """Project one fresh record (registration or event); bad bodies are flagged, not lost."""
        try:
            if rec.kind == KIND_CASE_REGISTERED:
                reg = CaseRegistered.model_validate(rec.body)
                if not owned_by(reg.case_no, site):
                    return self._foreign(now_ms, site, topic, f"seq {rec.seq} registers case {reg.case_no}")
                if not 2000 <= reg.received_at.year <= 2100:
                    return self._quarantine(now_ms, site, topic, "bad_body", f"received_at {reg.received_at}", b"")
                floor = self._floor.get(site) or self._catalog_floor(site)
                trusted, check, why = self.catalogs.check(reg.item, floor[0] if rec.seq > floor[1] else 0)
                # inserted with the rest of the batch's registrations (_insert_pending)
                self._pending_regs.append((rec, reg, _json_body(rec.body), trusted, check, why))
            elif rec.kind == KIND_CASE_EVENT:
                ev = CaseEventBody.model_validate(rec.body)
                if not owned_by(ev.case_no, site):  # a site acts only on its own cases
                    return self._foreign(now_ms, site, topic, f"seq {rec.seq}: {ev.type} for case {ev.case_no}")
                if not 2000 <= ev.at.year <= 2100:
                    return self._quarantine(now_ms, site, topic, "bad_body", f"event at {ev.at}", b"")
                self._pending_events.append(
                    (
                        site,
                        rec.seq,
                        ev.case_no,
                        ev.type,
                        ev.at.isoformat(),
                        ev.model_dump_json(exclude_none=True),
                        rec.wall_ms,
                    )
                )
                out.changed_cases.add(ev.case_no)
            elif rec.kind == KIND_VOTE:
                vote = VoteCast.model_validate(rec.body)
                if vote.case_no and not owned_by(vote.case_no, site):
                    return self._foreign(now_ms, site, topic, f"seq {rec.seq}: vote for case {vote.case_no}")
                dev.store_vote(self.conn, site, rec.seq, vote)
                if self.uplink.enabled:
                    rollups.mark(self.conn, [rollups.hour_of_ms(vote.pressed_wall_ms)])
                notify = self.supervisor.notify if self.supervisor is not None else None
                followups.open_for_vote(self.conn, site, rec.seq, vote, self.now(), self.calendar, self.ratings, notify)
            elif rec.kind in (KIND_DEVICE_EVENT, KIND_HEARTBEAT):
                body = (DeviceEvent if rec.kind == KIND_DEVICE_EVENT else Heartbeat).model_validate(rec.body)
                if not 2000 <= body.at.year <= 2100:  # one far-future time would pin the site page
                    return self._quarantine(now_ms, site, topic, "bad_body", f"seq {rec.seq}: at {body.at}", b"")
                store = dev.store_device_event if rec.kind == KIND_DEVICE_EVENT else dev.store_heartbeat
                store(self.conn, site, rec.seq, body)
            else:  # a newer agent's kind: kept in `records` for completeness, counted (one fixed name)
                db.bump(self.conn, "records_kind_unknown")
        except ValidationError as exc:  # the error names the field, never its value (personal data)
            self._quarantine(now_ms, site, topic, "bad_body", f"seq {rec.seq}: {_field_error(exc)}", b"")

    def _insert_pending(self, site: str, now_ms: int, out: Outcome, topic: str) -> None:
        """The batch's registrations and events, each kind in one statement per few hundred
        rows (a round trip per record is most of PostgreSQL's cost); then what each new case
        needs, in record order. A case number already stored is quarantined, as before."""
        regs, self._pending_regs = self._pending_regs, []
        events, self._pending_events = self._pending_events, []
        if events:
            self.conn.executemany(
                "INSERT INTO case_events (site, seq, case_no, type, at, body_json, recorded_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                events,
            )
        if not regs:
            return
        inserted = db.insert_registrations(
            self.conn, [(site, rec.seq, reg, raw, trusted, check) for rec, reg, raw, trusted, check, _ in regs]
        )
        for rec, reg, _raw, _trusted, check, why in regs:
            if reg.case_no not in inserted:
                self._quarantine(now_ms, site, topic, "duplicate_case_no", reg.case_no, b"")
                continue
            inserted.discard(reg.case_no)  # a second registration of it in this batch is a duplicate
            if check is not None:  # the case row is marked; the wall is told once an hour
                self._alert_once(now_ms, site, f"item_{check}", "red", f"{reg.case_no}：{why}")
            if check != "unknown_item":  # nothing trustworthy to run a clock on
                self._fresh_regs[reg.case_no] = reg
                out.changed_cases.add(reg.case_no)
                self._grace_backentry(site, reg, rec.wall_ms, now_ms)

    def _catalog_floor(self, site: str) -> tuple[int, int]:
        """(the catalog version the site said it held at its last birth, its last seq then):
        records after that seq may not name an older version. Read once per group."""
        row = self.conn.execute("SELECT catalog_seen, catalog_seen_seq FROM sites WHERE code=?", (site,)).fetchone()
        self._floor[site] = (row[0], row[1]) if row else (0, 0)
        return self._floor[site]

    def _grace_backentry(self, site: str, reg: CaseRegistered, wall_ms: int, now_ms: int) -> None:
        """A paper case entered later (补录) comes with its steps in the next minutes; judging it
        before they are in would card a missed acceptance that never happened. Such a case waits
        until `backentry_grace_ms` after it was recorded (never later than from now)."""
        received_ms = int(reg.received_at.timestamp() * 1000)
        if wall_ms - received_ms > BACKENTRY_AFTER_MS:
            until = min(wall_ms, now_ms) + self.backentry_grace_ms
            if until > now_ms:
                self.conn.execute(
                    "INSERT INTO projection_held(case_no, site, until_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT(case_no) DO UPDATE SET site = excluded.site, until_ms = excluded.until_ms",
                    (reg.case_no, site, until),
                )

    def _foreign(self, now_ms, site, topic, detail) -> None:
        """A site tried to act on another site's case: refused, quarantined, and a supervisor told."""
        self._quarantine(now_ms, site, topic, "wrong_site", detail, b"")
        self._alert_once(now_ms, site, "wrong_site", "red", f"站点 {site} 试图操作其他站点的办件：{detail}")

    def _alert_once(self, now_ms, site, kind, light, detail) -> None:
        """An alert, at most once per site, kind and hour (repeated attempts only count)."""
        recent = self.conn.execute(
            "SELECT 1 FROM alerts WHERE site=? AND kind=? AND at_ms > ? LIMIT 1", (site, kind, now_ms - ALERT_REPEAT_MS)
        ).fetchone()
        if recent:
            db.bump(self.conn, f"alerts_{kind}_repeated")
        else:
            self._alert(now_ms, site, None, kind, light, detail)

    def _site_row(self, site: str, now_ms: int) -> dict:
        sql = (
            "SELECT acked_seq, acked_hash, max_seq, last_progress_ms, chain_break_at, resend_asks, gap_since_ms "
            "FROM sites WHERE code=?"
        )
        r = self.conn.execute(sql, (site,)).fetchone()
        if r is None:  # the site's first message (we hold its lock: nobody else inserts it now)
            self.conn.execute(
                "INSERT INTO sites(code, name, last_progress_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (site, self.sites.name(site), now_ms),
            )
            r = self.conn.execute(sql, (site,)).fetchone()
        return {
            "acked": r[0],
            "hash": r[1] or GENESIS,
            "max": r[2],
            "progress": r[3] or now_ms,
            "break_at": r[4],
            "asks": r[5],
            "gap_since": r[6],
        }

    def _advance(self, site: str, s: dict, now_ms: int, out: Outcome, last_clock=None, fresh=None) -> None:
        """Move the contiguous high-water mark, checking each link of the hash chain. The mark
        stops at a record that does not link to the one before (two boxes with one identity, or
        a box reset under its old code): the history past it is not one chain, so it is never
        acknowledged as synced, and the ack names the hash at the mark so each box can tell
        whether its own record is the one the hub holds."""
        acked, h = s["acked"], s["hash"]
        breaks, broke_at = 0, None
        # sites.max_seq is the top of what was stored before this batch (kept below)
        max_seq = max(s["max"], max((seq for seq, _, _ in fresh or ()), default=0))
        page = 64
        if fresh and len(fresh) == max_seq - acked and all(seq == acked + 1 + i for i, (seq, _, _) in enumerate(fresh)):
            # the usual case: the batch just stored is exactly the run from the mark to the top, so
            # the store holds nothing else there; check its links here instead of reading them back
            for seq, rh, prev in fresh:
                if prev != h:
                    broke_at = seq
                    break
                acked, h = seq, rh
        else:  # anything else reads the stored top itself (and so mends a max_seq left too low)
            top = self.conn.execute("SELECT max(seq) FROM records WHERE site=?", (site,)).fetchone()[0] or 0
            max_seq = max(s["max"], top)
        while acked < max_seq and broke_at is None:  # read only the contiguous run after the mark, in growing pages:
            rows = self.conn.execute(  # records stored past a gap must not cost every later message
                "SELECT seq, hash, prev FROM records WHERE site=? AND seq > ? ORDER BY seq LIMIT ?", (site, acked, page)
            ).fetchall()
            for seq, rh, prev in rows:
                if seq != acked + 1:
                    break
                if prev != h:
                    broke_at = seq
                    break
                acked, h = seq, rh
            if broke_at or len(rows) < page or acked != rows[-1][0]:
                break
            page = min(page * 4, ADVANCE_PAGE)
        if broke_at and broke_at != s["break_at"]:
            breaks = 1
            self._alert_once(
                now_ms,
                site,
                "chain_break",
                "red",
                f"记录链在第 {broke_at} 条断开：其后的记录不接续已收到的记录（同一站点身份被两台设备使用，"
                f"或设备被重置后沿用原编码）。已确认至第 {acked} 条；请按运维文档处理",
            )
        progress = s["progress"]
        if acked > s["acked"]:
            progress = now_ms
        ack = {"acked": acked, "hub_ms": now_ms}
        # resend requests for a persisting gap, later and later; the count is kept in the store,
        # since the site's next batch may reach another worker
        asks = s["asks"] if acked == s["acked"] else 0
        # the wait runs from when this gap appeared: a site idle for a while whose batches reach
        # two workers out of order has lost nothing yet
        gap_since = None if max_seq <= acked else (s["gap_since"] if acked == s["acked"] and s["gap_since"] else now_ms)
        waited = now_ms - max(progress, gap_since or 0)
        if max_seq > acked and waited > min(GAP_WAIT_MS * 2 ** min(asks, 20), GAP_WAIT_MAX_MS):
            ack["resend_from"] = acked + 1  # ask again later and later while the gap persists
            progress = now_ms
            asks += 1
            db.bump(self.conn, "resend_requests")
        self.conn.execute(
            "UPDATE sites SET acked_seq=?, acked_hash=?, max_seq=?, last_seen_ms=?, online=1, "
            "last_progress_ms=?, chain_breaks=chain_breaks+?, clock=COALESCE(?, clock), "
            "acked_progress_ms=CASE WHEN ? <> 0 THEN ? ELSE acked_progress_ms END, "
            "chain_break_at=COALESCE(?, chain_break_at), resend_asks=?, gap_since_ms=? WHERE code=?",
            (
                acked,
                h,
                max_seq,
                now_ms,
                progress,
                breaks,
                last_clock,
                int(acked > s["acked"]),
                now_ms,
                broke_at,
                asks,
                gap_since,
                site,
            ),
        )
        ack["acked_hash"] = h.hex() if acked else ""
        out.acks[site] = ack

    def _state(self, site: str, payload: bytes, now_ms: int, out: Outcome) -> None:
        """Birth/death of a site (retained up/state)."""
        if self.sites.verify_key(site) is None:
            if payload:
                self._quarantine(now_ms, site, topics.site_state(site), "unknown_site", "state", payload)
            return
        if not payload:
            return
        try:
            st = decode_msg(payload)
        except WireError as exc:
            return self._quarantine(now_ms, site, topics.site_state(site), exc.reason, str(exc), payload)
        srow = self._site_row(site, now_ms)
        online = bool(st.get("online"))
        old_epoch = self.conn.execute("SELECT epoch FROM sites WHERE code=?", (site,)).fetchone()[0]
        new_epoch = _str(st.get("epoch"))
        if online and old_epoch and new_epoch and new_epoch != old_epoch and srow["acked"] > 0:
            self._alert_once(
                now_ms,
                site,
                "epoch_changed",
                "red",
                f"log epoch {old_epoch[:8]} → {new_epoch[:8]} with {srow['acked']} records held: "
                f"the box was reset; its new records collide with the old ones",
            )
        last_seq = _int(st.get("last_seq"))
        # a birth that announces records we lack starts a hold: cards, tickets and SMS for this
        # site wait until its backlog is in, so no light is judged on a partial history
        blocked = self.conn.execute("SELECT hold_blocked_until_ms FROM sites WHERE code=?", (site,)).fetchone()[0]
        holds = online and last_seq is not None and last_seq > srow["acked"] and (blocked or 0) <= now_ms
        catalog = _int((st.get("config") or {}).get("catalog")) if isinstance(st.get("config"), dict) else None
        if online and catalog is not None and last_seq is not None:
            self.conn.execute(
                "UPDATE sites SET catalog_seen=?, catalog_seen_seq=? WHERE code=? AND catalog_seen < ?",
                (catalog, last_seq, site, catalog),
            )
            self._floor.pop(site, None)
        self.conn.execute(
            "UPDATE sites SET online=?, last_seen_ms=?, agent_last_seq=COALESCE(?, agent_last_seq), "
            "clock=COALESCE(?, clock), boot_id=COALESCE(?, boot_id), epoch=COALESCE(?, epoch), "
            "software=COALESCE(?, software), state_json=?, "
            "hold_from_seq=CASE WHEN ? <> 0 AND hold_since_ms IS NULL THEN ? ELSE hold_from_seq END, "
            "hold_since_ms=CASE WHEN ? <> 0 THEN COALESCE(hold_since_ms, ?) ELSE hold_since_ms END WHERE code=?",
            (
                int(online),
                now_ms,
                last_seq,
                _str(st.get("clock")),
                _str(st.get("boot_id")),
                _str(st.get("epoch")),
                _str(st.get("software")),
                _json(st),
                int(holds),
                srow["acked"],
                int(holds),
                now_ms,
                site,
            ),
        )
        db.bump(self.conn, WALL_COUNTER)  # online/offline shows on the wall
        if online:
            # tell a (re)born agent where we stand, so it resends exactly what we lack; if it
            # believes more was acked than we hold (our database was restored), ask for it again
            self._advance(site, srow, now_ms, out)
            ack = out.acks[site]
            agent_acked = _int(st.get("acked_seq"))
            if agent_acked is not None and agent_acked > ack["acked"]:
                ack["resend_from"] = ack["acked"] + 1
                db.bump(self.conn, "resend_requests")

    def _alert(self, now_ms, site, case_no, kind, light, detail) -> None:
        self.conn.execute(
            "INSERT INTO alerts(at_ms, site, case_no, kind, light, detail) VALUES "
            "(?, COALESCE(?, (SELECT site FROM cases WHERE case_no=?)), ?, ?, ?, ?)",
            (now_ms, site, case_no, case_no, kind, light, detail),
        )
        db.bump(self.conn, f"alerts_{kind}")

    # -- projection and sweep -------------------------------------------------------------------------
    def _held_sites(self, now_ms: int, scope: set[str] | None = None) -> tuple[set[str], dict[str, int]]:
        """(sites whose announced backlog is still arriving, {site whose hold ends now: the mark
        when it began}), among the sites in `scope` (all when None)."""
        held, released = set(), {}
        sql = (
            "SELECT code, acked_seq, agent_last_seq, hold_since_ms, acked_progress_ms, hold_from_seq FROM sites "
            "WHERE hold_since_ms IS NOT NULL"
        )
        rows = (
            self.conn.execute(sql).fetchall()
            if scope is None
            else [r for chunk in _chunks(sorted(scope)) for r in self.conn.execute(_in(sql, "code", chunk), chunk)]
        )
        for code, acked, last, since, progress, from_seq in rows:
            if acked >= last:
                reason = None
            elif now_ms - max(progress or 0, since) > self.hold_stall_ms:  # only the mark moving is progress
                reason = f"补传停滞：已收到至 {acked}，盒子报告至 {last}"
            elif now_ms - since > self.hold_max_ms:
                reason = f"补传超时：已收到至 {acked}，盒子报告至 {last}"
            else:
                held.add(code)
                continue
            if reason:  # judged on what arrived; the supervisor is told the history is incomplete,
                # and this site gets no new hold for a day (a box cannot keep its cards held)
                log.warning("site %s: supervision resumes on an incomplete backlog (%s)", code, reason)
                self._alert(now_ms, code, None, "backlog_incomplete", "yellow", reason)
                self.conn.execute(
                    "UPDATE sites SET hold_blocked_until_ms=? WHERE code=?", (now_ms + HOLD_BLOCK_MS, code)
                )
            self.conn.execute("UPDATE sites SET hold_since_ms=NULL, hold_from_seq=NULL WHERE code=?", (code,))
            released[code] = from_seq or 0
        return held, released

    def _project(self, case_nos: set[str], now: datetime, now_ms: int, scope: set[str] | None = None) -> None:
        """Project `case_nos` and react to their light changes. With a `scope` (an ingest worker's
        group on a shared store) only those sites' holds and back-entries are looked at; the
        sweep, which holds the store's write lock alone, looks at all."""
        held, released = self._held_sites(now_ms, scope)
        asked = set(case_nos)  # what the caller stored or wants judged
        case_nos = set(asked)
        if case_nos or released:  # open walls refetch (hub/wall_events.py polls this counter)
            db.bump(self.conn, WALL_COUNTER)
        for site, from_seq in released.items():  # a backlog is in: judge once, on the whole history,
            case_nos.update(
                r[0]
                for r in self.conn.execute(  # what it registered or moved meanwhile
                    "SELECT case_no FROM cases WHERE site=? AND reg_seq > ? UNION "
                    "SELECT case_no FROM case_events WHERE site=? AND seq > ?",
                    (site, from_seq, site, from_seq),
                )
            )
        if self._graced:
            sql = "DELETE FROM projection_held WHERE until_ms <= ?"
            for chunk in [None] if scope is None else _chunks(sorted(scope)):
                rows = self.conn.execute(
                    (sql if chunk is None else _in(sql, "site", chunk)) + " RETURNING case_no",
                    (now_ms,) + tuple(chunk or ()),
                )
                case_nos.update(r[0] for r in rows.fetchall())  # back-entries whose grace is over
        if held:  # (cases of such a site due at the sweep meanwhile stay due, and are judged after)
            case_nos = {c for c in case_nos if case_site(c) not in held}
        if case_nos and self._graced:
            case_nos -= self._in_grace(case_nos)
        regs, self._fresh_regs = self._fresh_regs, {}
        known = {c: "green" for c in regs if c in case_nos}  # a fresh registration starts green
        transitions = project_cases(
            self.conn,
            case_nos,
            now,
            self.calendar,
            self.default_yellow,
            now_ms,
            backdate_tolerance=self.backdate_tolerance,
            known_light=known,
        )
        if self.uplink.enabled and (asked or case_nos):
            # the hours of what changed (stored now, or projected now: a held site's backlog is
            # projected when released) are recounted into roll-ups (hub/rollups.py)
            rollups.mark_cases(self.conn, asked | case_nos)
        for t in transitions:
            if t.new in ("yellow", "red"):
                self._alert(now_ms, t.site, t.case_no, f"light_{t.new}", t.new, f"{t.old} → {t.new}")
                self.uplink.card(self.conn, t.case_no, t.new, t.old, now_ms)  # same transaction as the card
        if transitions and self.supervisor is not None:
            self.supervisor.on_transitions(self.conn, transitions, now)

    @property
    def _graced(self) -> bool:
        """Any back-entry waiting (one indexed probe; most groups have none)."""
        return self.conn.execute("SELECT 1 FROM projection_held LIMIT 1").fetchone() is not None

    def _in_grace(self, case_nos: set[str]) -> set[str]:
        """Those of `case_nos` that still wait (a back-entry in its grace time)."""
        ids, out = list(case_nos), set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out.update(
                r[0]
                for r in self.conn.execute(
                    f"SELECT case_no FROM projection_held WHERE case_no IN ({','.join('?' * len(chunk))})", chunk
                )
            )
        return out

    def sweep(self) -> int:
        """Recompute cases whose next light change is due (index on next_change)."""
        now = self.now()
        now_ms = int(now.timestamp() * 1000)
        due = due_for_sweep(self.conn, now)
        with transaction(self.conn):
            self._project(set(due), now, now_ms)
            if self.supervisor is not None:
                self.supervisor.sweep(self.conn, now)
            followups.sweep(self.conn, now, self.calendar, self.ratings, self.supervisor)
        return len(due)

    def refresh_calendar(self, force: bool = False) -> None:
        """Take up a calendar another worker (the leader) imported: checked in each group's
        transaction on a shared store (one key lookup), so no case is judged by the old one
        after the leader recomputed them all with the new."""
        if not force and time.monotonic() < getattr(self, "_calendar_checked", 0.0):
            return
        self._calendar_checked = time.monotonic() + 5.0
        row = self.conn.execute("SELECT version FROM config WHERE kind='calendar'").fetchone()
        version = row[0] if row else 0
        if version != getattr(self, "_calendar_version", 0):
            self._calendar_version = version
            self.calendar = db.load_calendar(self.conn)

    def reload_calendar(self) -> None:
        """Reload the calendar and recompute every open case (provisional dates may change)."""
        self.calendar = db.load_calendar(self.conn)
        now = self.now()
        open_cases = {r[0] for r in self.conn.execute("SELECT case_no FROM cases WHERE closed=0")}
        with transaction(self.conn):
            self._project(open_cases, now, int(now.timestamp() * 1000))


_h = record_hash


def is_store_full(exc: BaseException) -> bool:
    """True when the store failed for lack of space: SQLite's SQLITE_FULL, PostgreSQL's
    disk_full (SQLSTATE 53100)."""
    return is_disk_full(exc) or getattr(exc, "sqlstate", None) == "53100"


def _chunks(items: list, n: int = 500):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _in(sql: str, column: str, values) -> str:
    """`sql` (which has a WHERE) with `AND column IN (?, …)` for `values`."""
    return f"{sql} AND {column} IN ({','.join('?' * len(values))})"


def _field_error(exc: ValidationError) -> str:
    """The first validation error by field and message, without the offending value."""
    e = exc.errors()[0]
    return f"{'.'.join(str(p) for p in e.get('loc', ())) or '(body)'}: {e.get('msg', '')}"[:300]


def _json_body(body: dict) -> str:
    import json

    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v):
    return v[:100] if isinstance(v, str) else None


def _json(d: dict) -> str:
    import json

    return json.dumps(d, ensure_ascii=False, default=repr)[:4000]
