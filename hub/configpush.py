"""Push signed config (catalog, calendar) to every active site as retained messages.

Runs as an idle task in the ingest thread: it notices a new version in the `config` table
(written by `jiancha catalog import` or the API) or a newly added site, and publishes.

Versions survive a lost hub database. A box ignores a config whose version is not newer than
the one it holds, and after the hub's database was lost (or restored from an older backup) the
hub's own numbering restarts low. So the hub pushes a version to a site only once it knows
(from the site's birth in this database, sites.state_json `config`) which version the site
holds, and before pushing it re-signs its current config above any version a site holds that
this database did not give it: a higher one, or an equal one this database never pushed to
that site (the same number, perhaps another content). What this database pushed to each site
is kept in `counters` as `config_pushed:KIND:SITE`. A box holding a config of a kind the hub
has none of raises one alert a day (`config_missing`).
"""

from __future__ import annotations

import json
import logging
import time

from hub.catalog import CONFIG_KINDS, next_config_version, reported_configs
from hub.store import CATALOG_VERSION_UPSERT, bump
from iobase.sqlite import transaction
from protocol import topics
from protocol.wire import sign_config

log = logging.getLogger("jiancha.hub.config")
KIND_ZH = {"catalog": "事项目录", "calendar": "工作日历"}
MISSING_ALERT_REPEAT_MS = 24 * 3_600_000


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

    def held(self) -> dict[str, dict[str, int]]:
        """{site: {kind: version it said (at its last birth) it holds}} for the sites whose last
        state named them; a site missing here has not told this database yet."""
        return reported_configs(self.conn)

    def _pushed(self) -> dict[tuple[str, str], int]:
        return {
            (name.split(":", 2)[2], name.split(":", 2)[1]): v
            for name, v in self.conn.execute(
                "SELECT name, value FROM counters WHERE name >= 'config_pushed:' AND name < 'config_pushed;'"
            )
        }

    def tick(self) -> int:
        """Publish what changed; returns the number of messages sent."""
        if time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.every_s
        held = self.held()
        pushed = self._pushed()
        self._above_held(held, pushed)
        versions = self._versions()
        row = self.conn.execute("SELECT value FROM counters WHERE name='calendar_projected'").fetchone()
        self._calendar_version = row[0] if row else 0  # read each time: another hub worker may have led
        if versions.get("calendar", 0) != self._calendar_version:
            self._calendar_version = versions.get("calendar", 0)
            if self.on_calendar_change:
                self.on_calendar_change()
            self.conn.execute(
                "INSERT INTO counters(name, value) VALUES ('calendar_projected', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (self._calendar_version,),
            )
        sent = 0
        for site in self.sites.active():
            holds = held.get(site)
            if holds is None:  # what it holds is unknown: wait for its birth (never long:
                continue  # a box announces itself at connect and when the hub comes online)
            for kind, version in versions.items():
                if self._sent.get((site, kind)) == version or kind not in holds:
                    continue
                self.publish(topics.site_config(site, kind), self._payload(kind, version), 1, True)
                self._sent[(site, kind)] = version
                if pushed.get((site, kind)) != version:
                    self.conn.execute(
                        "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                        (f"config_pushed:{kind}:{site}", version),
                    )
                sent += 1
        if sent:
            log.info("pushed %d config message(s)", sent)
        return sent

    def _above_held(self, held: dict[str, dict[str, int]], pushed: dict[tuple[str, str], int]) -> None:
        """Re-sign a kind above what the sites hold when one holds a version this database did not
        give it: a box ignores a config not newer than its own, and would silently keep one the
        hub no longer has. Without a config of that kind the hub cannot: alert."""
        current = self._versions()
        for kind in CONFIG_KINDS:
            own = current.get(kind)
            foreign = [
                (v, site)
                for site, h in held.items()
                if (v := h.get(kind, 0)) > 0
                and (own is None or v > own or (v == own and pushed.get((site, kind)) != own))
            ]
            if not foreign:
                continue
            reported, site = max(foreign)
            now_ms = int(time.time() * 1000)
            with transaction(self.conn):
                if own is None:
                    self._alert_missing(kind, site, reported, now_ms)
                    continue
                version = max(next_config_version(self.conn, kind), reported + 1)
                payload = self.conn.execute("SELECT payload_json FROM config WHERE kind=?", (kind,)).fetchone()[0]
                self.conn.execute("UPDATE config SET version=?, updated_ms=? WHERE kind=?", (version, now_ms, kind))
                if kind == "catalog":
                    self.conn.execute(CATALOG_VERSION_UPSERT, (version, payload, now_ms))
                why = "a higher version" if reported > own else "the same version number, not pushed by this database"
                self.conn.execute(
                    "INSERT INTO config_log(at_ms, kind, version, actor, detail) VALUES (?, ?, ?, 'hub', ?)",
                    (
                        now_ms,
                        kind,
                        version,
                        f"re-signed version {own} as {version}: site {site} holds version "
                        f"{reported} ({why}; the hub's database was lost or restored?)",
                    ),
                )
                bump(self.conn, "config_resigned")
            log.warning(
                "site %s holds %s version %d (%s); the hub had %d: re-signed it as version %d",
                site,
                kind,
                reported,
                why,
                own,
                version,
            )

    def _alert_missing(self, kind: str, site: str, reported: int, now_ms: int) -> None:
        recent = self.conn.execute(
            "SELECT 1 FROM alerts WHERE kind='config_missing' AND detail LIKE ? AND at_ms > ? LIMIT 1",
            (f"{KIND_ZH[kind]}%", now_ms - MISSING_ALERT_REPEAT_MS),
        ).fetchone()
        if recent:
            return
        log.error(
            "site %s holds %s version %d but the hub has no %s: import it (jiancha %s import)",
            site,
            kind,
            reported,
            kind,
            kind,
        )
        self.conn.execute(
            "INSERT INTO alerts(at_ms, site, case_no, kind, light, detail) VALUES (?, ?, NULL, 'config_missing', "
            "'yellow', ?)",
            (
                now_ms,
                site,
                f"{KIND_ZH[kind]}：站点 {site} 持有第{reported}版，中心没有{KIND_ZH[kind]}"
                f"（数据库丢失或从旧备份恢复？）；请重新导入：jiancha {kind} import",
            ),
        )
        bump(self.conn, "alerts_config_missing")

    def _payload(self, kind: str, version: int) -> bytes:
        key = (kind, version)
        if key not in self._signed:
            row = self.conn.execute("SELECT payload_json, updated_ms FROM config WHERE kind=?", (kind,)).fetchone()
            self._signed[key] = sign_config(kind, version, json.loads(row[0]), sign_key=self.sign_key, issued_ms=row[1])
        return self._signed[key]
