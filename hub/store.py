"""The hub's SQLite database: records by (site, seq), case projections, sites, quarantine.

Records are stored idempotently by (site, seq). Case rows are a projection: each case is
re-evaluated from its registration and all its events (a pure function), so the order in which
records arrive (live before backlog) never changes the result.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from hub.db import POSTGRESQL, SQLITE, connect, engine, engine_of, executemany_returning, sqlite_path
from iobase.sqlite import migrate
from protocol.calendar import WorkCalendar, YearTable, default_calendar
from protocol.models import CaseRegistered

MIGRATIONS = [
    (
        "0001_sites_records",
        """
        CREATE TABLE sites (code TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
            online INTEGER NOT NULL DEFAULT 0, last_seen_ms INTEGER, acked_seq INTEGER NOT NULL DEFAULT 0,
            acked_hash BLOB, max_seq INTEGER NOT NULL DEFAULT 0, agent_last_seq INTEGER NOT NULL DEFAULT 0,
            clock TEXT, boot_id TEXT, epoch TEXT, software TEXT, state_json TEXT,
            last_progress_ms INTEGER, chain_breaks INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE records (site TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
            prev BLOB NOT NULL, kind TEXT NOT NULL, wall_ms INTEGER NOT NULL, clock TEXT NOT NULL,
            received_ms INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (site, seq)) WITHOUT ROWID;
        CREATE TABLE quarantine (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, site TEXT,
            topic TEXT, reason TEXT NOT NULL, detail TEXT, data BLOB);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    ),
    (
        "0002_cases",
        """
        CREATE TABLE cases (case_no TEXT PRIMARY KEY, site TEXT NOT NULL, item_code TEXT NOT NULL,
            item_name TEXT, department TEXT, query_code TEXT NOT NULL, received_at TEXT NOT NULL,
            reg_seq INTEGER NOT NULL, reg_json TEXT NOT NULL, status TEXT NOT NULL, light TEXT NOT NULL,
            due_date TEXT, due_provisional INTEGER NOT NULL DEFAULT 0, legal_due_date TEXT,
            acceptance_due TEXT, violations TEXT NOT NULL DEFAULT '[]', closed INTEGER NOT NULL DEFAULT 0,
            next_change TEXT, updated_ms INTEGER);
        CREATE INDEX cases_site ON cases(site);
        CREATE INDEX cases_light ON cases(light);
        CREATE INDEX cases_next ON cases(next_change) WHERE closed = 0;
        CREATE TABLE case_events (site TEXT NOT NULL, seq INTEGER NOT NULL, case_no TEXT NOT NULL,
            type TEXT NOT NULL, at TEXT NOT NULL, body_json TEXT NOT NULL, PRIMARY KEY (site, seq));
        CREATE INDEX case_events_case ON case_events(case_no);
        CREATE TABLE alerts (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, site TEXT, case_no TEXT,
            kind TEXT NOT NULL, light TEXT, detail TEXT);
        CREATE INDEX alerts_case ON alerts(case_no);
    """,
    ),
    (
        "0003_catalog_config",
        """
        CREATE TABLE catalog (code TEXT PRIMARY KEY, name TEXT NOT NULL, department TEXT NOT NULL,
            item_json TEXT NOT NULL);
        CREATE TABLE config (kind TEXT PRIMARY KEY, version INTEGER NOT NULL, payload_json TEXT NOT NULL,
            updated_ms INTEGER NOT NULL, actor TEXT);
        CREATE TABLE config_log (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
            version INTEGER NOT NULL, actor TEXT, detail TEXT);
    """,
    ),
    (
        "0004_case_rule_columns",
        """
        ALTER TABLE cases ADD COLUMN case_type TEXT;
        ALTER TABLE cases ADD COLUMN legal_days INTEGER;
        ALTER TABLE cases ADD COLUMN promised_days INTEGER;
        ALTER TABLE cases ADD COLUMN yellow_days INTEGER;
        ALTER TABLE cases ADD COLUMN yellow_cards INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE cases ADD COLUMN red_cards INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE case_events ADD COLUMN recorded_ms INTEGER;
        UPDATE cases SET case_type = json_extract(reg_json, '$.item.case_type'),
            legal_days = json_extract(reg_json, '$.item.legal_days'),
            promised_days = json_extract(reg_json, '$.item.promised_days'),
            yellow_days = json_extract(reg_json, '$.item.yellow_days');
        CREATE INDEX cases_department ON cases(department);
    """,
    ),
    (
        "0005_quarantine_sha",
        """
        ALTER TABLE quarantine ADD COLUMN sha BLOB;
        CREATE INDEX quarantine_sha ON quarantine(sha);
    """,
    ),
    (
        "0006_trust_and_bounds",
        """
        -- every catalog version the hub ever signed: a case is checked against the one its box used
        CREATE TABLE catalog_versions (version INTEGER PRIMARY KEY, payload_json TEXT NOT NULL,
            at_ms INTEGER NOT NULL);
        INSERT INTO catalog_versions SELECT version, payload_json, updated_ms FROM config WHERE kind='catalog';
        -- NULL: the item matches the hub's catalog; 'mismatch': the hub's values are used;
        -- 'unknown_item': no catalog the hub signed has it (not projected, never carded)
        ALTER TABLE cases ADD COLUMN item_check TEXT;
        -- back-entered (补录) cases waiting for their grace time to pass before they are judged
        CREATE TABLE projection_held (case_no TEXT PRIMARY KEY, site TEXT NOT NULL, until_ms INTEGER NOT NULL);
        CREATE INDEX projection_held_until ON projection_held(until_ms);
        -- a site's hold (its announced backlog is still arriving): since when, and the mark then;
        -- at release its cases registered or moved after that mark are judged once
        ALTER TABLE sites ADD COLUMN hold_since_ms INTEGER;
        ALTER TABLE sites ADD COLUMN hold_from_seq INTEGER;
        -- when the contiguous mark last moved, and no new hold before (after an incomplete one)
        ALTER TABLE sites ADD COLUMN acked_progress_ms INTEGER;
        ALTER TABLE sites ADD COLUMN hold_blocked_until_ms INTEGER;
        -- the seq whose record does not link to the one before: the contiguous mark stops there
        ALTER TABLE sites ADD COLUMN chain_break_at INTEGER;
        -- where another history under a site's identity ends (the last record of each batch
        -- quarantined as seq_conflict): its next batches, which link there, are recognized
        CREATE TABLE conflict_heads (site TEXT NOT NULL, hash BLOB NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (site, hash)) WITHOUT ROWID;
        -- the catalog version a site said (at birth) it holds, and its last seq then: records
        -- written after that must name this version or a newer one
        ALTER TABLE sites ADD COLUMN catalog_seen INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sites ADD COLUMN catalog_seen_seq INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX alerts_site_kind ON alerts(site, kind, at_ms);
        CREATE INDEX sites_hold ON sites(code) WHERE hold_since_ms IS NOT NULL;
        -- what each site made us keep in quarantine (rows, payload bytes), for the caps
        CREATE TABLE quarantine_usage (site TEXT PRIMARY KEY, rows INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0);
        INSERT INTO quarantine_usage SELECT COALESCE(site, ''), count(*), COALESCE(sum(length(data)), 0)
            FROM quarantine GROUP BY COALESCE(site, '');
    """,
    ),
]


# upserts of the config tables, in the SQL both engines speak (hub/db.py)
CONFIG_UPSERT = (
    "ON CONFLICT(kind) DO UPDATE SET version = excluded.version, payload_json = excluded.payload_json, "
    "updated_ms = excluded.updated_ms, actor = excluded.actor"
)
CATALOG_VERSION_UPSERT = (
    "INSERT INTO catalog_versions VALUES (?, ?, ?) "
    "ON CONFLICT(version) DO UPDATE SET payload_json = excluded.payload_json, at_ms = excluded.at_ms"
)


# Several ingest workers on one store (issue 10, docs/architecture.md "Several workers"):
# leases (one worker runs the sweep, notifications and documents), counters sharded per worker
# (no hot row every worker updates), and the resend back-off per site kept in the store (any
# worker may receive the site's next batch). The same tables in hub/schema_pg.py.
WORKER_MIGRATIONS = [
    (
        "0007_workers",
        """
        CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms INTEGER NOT NULL,
            since_ms INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE counter_shards (shard TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
            PRIMARY KEY (shard, name));
        CREATE VIEW counter_totals AS SELECT name, CAST(SUM(value) AS BIGINT) AS value FROM
            (SELECT name, value FROM counters UNION ALL SELECT name, value FROM counter_shards) AS t GROUP BY name;
        ALTER TABLE sites ADD COLUMN resend_asks INTEGER NOT NULL DEFAULT 0;
        -- when the site's current gap appeared (the wait for a resend runs from then, not from
        -- the mark's last move: batches reaching workers out of order are not a loss)
        ALTER TABLE sites ADD COLUMN gap_since_ms INTEGER;
        -- one document of a kind per ticket, even if two leaders overlap (a paused one)
        CREATE UNIQUE INDEX documents_ticket_kind ON documents(ticket_id, kind) WHERE ticket_id IS NOT NULL;
    """,
    ),
]


# The case indexes a province-sized store needs (bench/province.py, docs/benchmarks.md "Province
# scale"): every list and count the operators' pages ask for reads an index in its own order
# instead of sorting or scanning every case. The same in hub/schema_pg.py (pg_0003).
URGENCY_ONE_LIGHT = "due_date, received_at"
URGENCY = f"CASE light WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 ELSE 2 END, {URGENCY_ONE_LIGHT}"
CASE_INDEX_SQL = f"""
        DROP INDEX cases_site;
        CREATE INDEX cases_site_received ON cases(site, received_at);
        DROP INDEX cases_department;
        CREATE INDEX cases_department_status ON cases(department, status, received_at);
        CREATE INDEX cases_received ON cases(received_at);
        -- the wall: open cases per site and light, and the open cases most urgent first
        CREATE INDEX cases_open_site_light ON cases(site, light) WHERE closed = 0;
        CREATE INDEX cases_open_urgency ON cases({URGENCY}) WHERE closed = 0;
        CREATE INDEX cases_open_light ON cases(light, {URGENCY_ONE_LIGHT}) WHERE closed = 0;
        -- cards per department read from the index alone
        CREATE INDEX cases_department_cards ON cases(department, yellow_cards, red_cards);
"""
CASE_INDEX_MIGRATIONS = [("0008_case_indexes", CASE_INDEX_SQL)]


def all_migrations(engine: str = SQLITE) -> list[tuple[str, str]]:
    """Core migrations plus those of the supervision parts, in order (per engine: hub/db.py)."""
    if engine == POSTGRESQL:
        from hub.feeds import PG_MIGRATIONS as FEEDS_PG
        from hub.followups import PG_MIGRATIONS as FOLLOWUP_PG
        from hub.portal_guide import PG_MIGRATIONS as PORTAL_GUIDE_PG
        from hub.ratings import PG_MIGRATIONS as PORTAL_RATINGS_PG
        from hub.rollups import PG_MIGRATIONS as ROLLUPS_PG
        from hub.schema_pg import MIGRATIONS as PG
        from hub.scores import PG_MIGRATIONS as SCORES_PG
        from hub.stats import PG_MIGRATIONS as STATS_PG
        from hub.supervision import PG_SUBJECT_MIGRATIONS as TICKET_SUBJECT_PG
        from hub.uplink import PG_MIGRATIONS as UPLINK_PG

        return [
            *PG,
            *FOLLOWUP_PG,
            *PORTAL_GUIDE_PG,
            *PORTAL_RATINGS_PG,
            *TICKET_SUBJECT_PG,
            *SCORES_PG,
            *STATS_PG,
            *UPLINK_PG,
            *FEEDS_PG,
            *ROLLUPS_PG,
        ]
    from hub.accounts import MIGRATIONS as ACCOUNTS
    from hub.clips import MIGRATIONS as CLIPS
    from hub.complaints import MIGRATIONS as COMPLAINTS
    from hub.devices import MIGRATIONS as DEVICES
    from hub.documents import MIGRATIONS as DOCUMENTS
    from hub.feeds import MIGRATIONS as FEEDS
    from hub.followups import MIGRATIONS as FOLLOWUP_MIGRATIONS
    from hub.notify import MIGRATIONS as NOTIFY
    from hub.portal_guide import MIGRATIONS as PORTAL_GUIDE
    from hub.ratings import MIGRATIONS as PORTAL_RATINGS
    from hub.rollups import MIGRATIONS as ROLLUPS
    from hub.scores import MIGRATIONS as SCORES
    from hub.stats import MIGRATIONS as STATS
    from hub.supervision import MIGRATIONS as SUPERVISION
    from hub.supervision import SUBJECT_MIGRATIONS as TICKET_SUBJECT
    from hub.uplink import MIGRATIONS as UPLINK
    from hub.wall import MIGRATIONS as WALL

    return [
        *MIGRATIONS,
        *SUPERVISION,
        *DEVICES,
        *DOCUMENTS,
        *NOTIFY,
        *CLIPS,
        *WORKER_MIGRATIONS,
        *CASE_INDEX_MIGRATIONS,
        *ACCOUNTS,
        *WALL,
        *COMPLAINTS,
        *FOLLOWUP_MIGRATIONS,
        *PORTAL_GUIDE,
        *PORTAL_RATINGS,
        *TICKET_SUBJECT,  # after the complaints and follow-ups: tickets name their subject
        *SCORES,
        *STATS,  # indexes the statistics read by (hub/stats.py)
        *UPLINK,
        *FEEDS,
        *ROLLUPS,
    ]


MIGRATE_LOCK_KEY = 0x6A636D67  # "jcmg": the session lock around migrations on PostgreSQL


def open_db(url: str | Path):
    """Open (and migrate) the hub's store: a path or sqlite:PATH (SQLite), or postgresql://…"""
    url = str(url)
    if engine_of(url) == SQLITE:
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(url)
    if engine(conn) == POSTGRESQL:  # several workers starting at once on a new store: one migrates
        conn.execute("SELECT pg_advisory_lock(?)", (MIGRATE_LOCK_KEY,))
        try:
            migrate(conn, all_migrations(POSTGRESQL))
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATE_LOCK_KEY,))
    else:
        migrate(conn, all_migrations(engine(conn)))
    return conn


def load_calendar(conn: sqlite3.Connection) -> WorkCalendar:
    """Seeded years plus the year tables operators imported."""
    cal = default_calendar()
    row = conn.execute("SELECT payload_json FROM config WHERE kind='calendar'").fetchone()
    if row:
        for t in json.loads(row[0]).get("years", []):
            cal = cal.with_year(YearTable.from_dict(t))
    return cal


_DEFERRED: dict[int, dict[str, int]] = {}  # id(connection) -> counts not yet written (deferred_counters)


def bump(conn: sqlite3.Connection, name: str, n: int = 1) -> None:
    """Increment a persistent counter (inside the caller's transaction). A connection with a
    `counter_shard` (an ingest worker's, on PostgreSQL) adds to its own row of `counter_shards`,
    so workers never wait on one another's counter rows; read totals from `counter_totals`.
    Inside `deferred_counters(conn)` the increment is written when that block ends."""
    pending = _DEFERRED.get(id(conn))
    if pending is not None:
        pending[name] = pending.get(name, 0) + n
        return
    _write_counts(conn, [(name, n)])


def _write_counts(conn, counts: list[tuple[str, int]]) -> None:
    shard = getattr(conn, "counter_shard", None)
    if shard is not None:
        conn.executemany(
            "INSERT INTO counter_shards(shard, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT(shard, name) DO UPDATE SET value = counter_shards.value + excluded.value",
            [(shard, name, n) for name, n in counts],
        )
        return
    conn.executemany(
        "INSERT INTO counters(name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
        counts,
    )


@contextmanager
def deferred_counters(conn):
    """Collect the counter increments of a block and write each counter once when it ends (use
    it inside the transaction: the counts commit with the rows they count, or roll back with
    them). Ingest bumps two or three counters per message: on PostgreSQL each was a round trip."""
    key = id(conn)
    if key in _DEFERRED:  # nested: the outer block writes them
        yield
        return
    _DEFERRED[key] = {}
    try:
        yield
    except BaseException:
        _DEFERRED.pop(key)  # the transaction rolls back: so do they
        raise
    counts = sorted((name, n) for name, n in _DEFERRED.pop(key).items() if n)
    if counts:
        _write_counts(conn, counts)


def counter_totals(conn) -> dict[str, int]:
    """Every counter's total over the single-writer table and the workers' shards."""
    return {name: int(value) for name, value in conn.execute("SELECT name, value FROM counter_totals")}


def insert_registration(
    conn: sqlite3.Connection,
    site: str,
    seq: int,
    reg: CaseRegistered,
    raw_json: str | None = None,
    *,
    trusted=None,
    item_check: str | None = None,
) -> bool:
    """Create the case row for a registration; False if the case number already exists.

    `trusted` is the hub's own catalog item (name, department, case type, limits) used for the
    case's columns, which drive deadlines, SMS and documents; the box's claim stays in reg_json.
    Without it (an item no signed catalog has) those columns stay empty: nothing the box said
    about the item is used."""
    return reg.case_no in insert_registrations(conn, [(site, seq, reg, raw_json, trusted, item_check)])


_REG_COLUMNS = (
    "case_no, site, item_code, item_name, department, query_code, received_at, reg_seq, reg_json, status, light, "
    "case_type, legal_days, promised_days, yellow_days, item_check"
)


def insert_registrations(conn, rows: list[tuple]) -> set[str]:
    """Create the case rows of several registrations (on PostgreSQL in one pipeline: one round
    trip instead of one per case); returns the case numbers inserted. `rows` are (site, seq,
    reg, raw_json, trusted, item_check) as for insert_registration; a case number already
    stored (or twice in `rows`: the first wins) is left out of the result."""
    params = []
    for site, seq, reg, raw_json, trusted, item_check in rows:
        it = trusted if trusted is not None else _NO_ITEM
        params.append(
            (
                reg.case_no,
                site,
                reg.item.code,
                it.name,
                it.department,
                reg.query_code,
                reg.received_at.isoformat(),
                seq,
                raw_json or reg.model_dump_json(),
                it.case_type,
                it.legal_days,
                it.promised_days,
                it.yellow_days,
                item_check,
            )
        )
    sql = (
        f"INSERT INTO cases ({_REG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', 'green', ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING RETURNING case_no"
    )
    return {r[0] for r in executemany_returning(conn, sql, params)}


class _NoItem:
    name = department = case_type = legal_days = promised_days = yellow_days = None


_NO_ITEM = _NoItem()


def _d(d) -> str | None:
    return d.isoformat() if d else None
