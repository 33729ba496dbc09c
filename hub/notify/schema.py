"""Tables of the notification outbox and the directory, as named migrations for the hub database.

These are the SQLite migrations: `hub.store.all_migrations()` adds them after the hub's own;
names are prefixed `notify_` so they never collide with the hub's. Statements end with ';' at a
line end (see iobase.sqlite.migrate). On PostgreSQL the same tables are created by
`hub/schema_pg.py` (BIGINT, identity ids): a migration added here needs its twin there.
"""

from __future__ import annotations

STATUSES = ("queued", "sending", "sent", "failed", "merged")

MIGRATIONS: list[tuple[str, str]] = [
    (
        "notify_0001_directory_outbox",
        """
        CREATE TABLE directory (id INTEGER PRIMARY KEY, department TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('handler', 'head')), position INTEGER NOT NULL,
            name TEXT NOT NULL, phone TEXT, email TEXT, items_json TEXT NOT NULL DEFAULT '[]',
            updated_ms INTEGER NOT NULL);
        CREATE INDEX directory_department ON directory(department, position);
        CREATE TABLE notifications (id INTEGER PRIMARY KEY,
            dedupe_key TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
            to_addr TEXT NOT NULL,
            template TEXT NOT NULL,
            facts_json TEXT NOT NULL,
            subject TEXT,
            text TEXT NOT NULL,
            line TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'merged')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            lease_until_ms INTEGER,
            last_error TEXT,
            created_ms INTEGER NOT NULL,
            sent_ms INTEGER,
            provider_id TEXT,
            merged_into INTEGER REFERENCES notifications(id));
        CREATE INDEX notifications_due ON notifications(status, next_attempt_ms);
        CREATE INDEX notifications_recipient ON notifications(channel, to_addr, status);
        CREATE INDEX notifications_sent ON notifications(channel, to_addr, sent_ms) WHERE status = 'sent';
        CREATE INDEX notifications_merged ON notifications(merged_into) WHERE merged_into IS NOT NULL;
    """,
    ),
]
