"""Push signed config (catalog, calendar) to every active site as retained messages.

Runs as an idle task in the ingest thread: it notices a new version in the `config` table
(written by `jiancha catalog import` or the API) or a newly added site, and publishes.
"""
from __future__ import annotations

import json
import logging
import time

from protocol import topics
from protocol.wire import sign_config

log = logging.getLogger("jiancha.hub.config")


class ConfigPusher:
    """Keeps every active site's retained config at the current version."""

    def __init__(self, conn, sites, sign_key, publish, on_calendar_change=None, every_s: float = 1.0):
        self.conn = conn
        self.sites = sites
        self.sign_key = sign_key
        self.publish = publish
        self.on_calendar_change = on_calendar_change
        self.every_s = every_s
        self._next = 0.0
        self._sent: dict[tuple[str, str], int] = {}
        self._signed: dict[tuple[str, int], bytes] = {}
        # the calendar version the open cases were last projected with (persisted: a calendar
        # imported while the hub was stopped is applied at the next start)
        row = conn.execute("SELECT value FROM counters WHERE name='calendar_projected'").fetchone()
        self._calendar_version = row[0] if row else 0

    def _versions(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT kind, version FROM config").fetchall())

    def tick(self) -> int:
        """Publish what changed; returns the number of messages sent."""
        if time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.every_s
        versions = self._versions()
        if versions.get("calendar", 0) != self._calendar_version:
            self._calendar_version = versions.get("calendar", 0)
            if self.on_calendar_change:
                self.on_calendar_change()
            self.conn.execute("INSERT OR REPLACE INTO counters(name, value) VALUES ('calendar_projected', ?)",
                              (self._calendar_version,))
        sent = 0
        for site in self.sites.active():
            for kind, version in versions.items():
                if self._sent.get((site, kind)) == version:
                    continue
                self.publish(topics.site_config(site, kind), self._payload(kind, version), 1, True)
                self._sent[(site, kind)] = version
                sent += 1
        if sent:
            log.info("pushed %d config message(s)", sent)
        return sent

    def _payload(self, kind: str, version: int) -> bytes:
        key = (kind, version)
        if key not in self._signed:
            row = self.conn.execute("SELECT payload_json, updated_ms FROM config WHERE kind=?",
                                    (kind,)).fetchone()
            self._signed[key] = sign_config(kind, version, json.loads(row[0]), sign_key=self.sign_key,
                                            issued_ms=row[1])
        return self._signed[key]
