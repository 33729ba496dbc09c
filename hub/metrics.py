"""/metrics in Prometheus text format: persistent counters plus gauges read from the database."""

from __future__ import annotations


def _line(name: str, value, labels: dict | None = None) -> str:
    lab = ""
    if labels:
        lab = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return f"{name}{lab} {value}"


def render_metrics(conn, hub) -> str:
    """All metrics as text."""
    out = [
        "# HELP jiancha_records_stored_total Records stored (new, deduplicated by site and seq)",
        "# TYPE jiancha_records_stored_total counter",
    ]
    counters = dict(conn.execute("SELECT name, value FROM counter_totals").fetchall())
    out.append(_line("jiancha_records_stored_total", counters.get("records_stored", 0)))
    out += [
        "# HELP jiancha_records_duplicate_total Records received again (idempotent resend or replay)",
        "# TYPE jiancha_records_duplicate_total counter",
        _line("jiancha_records_duplicate_total", counters.get("records_duplicate", 0)),
        "# TYPE jiancha_batches_received_total counter",
        _line("jiancha_batches_received_total", counters.get("batches_received", 0)),
        "# TYPE jiancha_resend_requests_total counter",
        _line("jiancha_resend_requests_total", counters.get("resend_requests", 0)),
        "# HELP jiancha_rejected_total Messages rejected and quarantined, by reason",
        "# TYPE jiancha_rejected_total counter",
    ]
    for name, value in sorted(counters.items()):
        if name.startswith("rejected_"):
            out.append(_line("jiancha_rejected_total", value, {"reason": name[9:]}))
    out += [
        "# HELP jiancha_clip_chunks_stored_total Clip chunks stored (requested clips only)",
        "# TYPE jiancha_clip_chunks_stored_total counter",
        _line("jiancha_clip_chunks_stored_total", counters.get("clip_chunks_stored", 0)),
        "# HELP jiancha_clip_chunks_dropped_total Clip chunks refused (unrequested, over a cap, too small, forged)",
        "# TYPE jiancha_clip_chunks_dropped_total counter",
        _line("jiancha_clip_chunks_dropped_total", counters.get("clip_chunks_dropped", 0)),
        "# HELP jiancha_clip_chunks_lost_total Stored clip chunks whose file was missing or damaged at "
        "assembly (forgotten: the clip waits for them to be sent again)",
        "# TYPE jiancha_clip_chunks_lost_total counter",
        _line("jiancha_clip_chunks_lost_total", counters.get("clip_chunks_lost", 0)),
        "# HELP jiancha_dropped_bytes_total Bytes received and not stored, by what they were",
        "# TYPE jiancha_dropped_bytes_total counter",
        _line("jiancha_dropped_bytes_total", counters.get("clip_bytes_dropped", 0), {"what": "clip"}),
    ]
    for name, value in sorted(counters.items()):  # e.g. dropped_bytes_quarantine from ingest
        if name.startswith("dropped_bytes_"):
            out.append(_line("jiancha_dropped_bytes_total", value, {"what": name[14:]}))
    out += [
        "# HELP jiancha_quarantine_rows_dropped_total Rejected messages only counted: their site's quarantine "
        "row cap was reached",
        "# TYPE jiancha_quarantine_rows_dropped_total counter",
        _line("jiancha_quarantine_rows_dropped_total", counters.get("quarantine_rows_dropped", 0)),
        "# TYPE jiancha_empty_payloads_ignored_total counter",
        _line("jiancha_empty_payloads_ignored_total", counters.get("empty_payloads_ignored", 0)),
    ]
    out += [
        "# HELP jiancha_clip_bytes Bytes of clips stored per site (complete and in progress)",
        "# TYPE jiancha_clip_bytes gauge",
    ]
    for site, n in conn.execute(
        "SELECT site, COALESCE(SUM(COALESCE(size, stored_bytes, 0)), 0) FROM clips GROUP BY site ORDER BY site"
    ):
        out.append(_line("jiancha_clip_bytes", int(n), {"site": site}))  # SUM: a Decimal on PostgreSQL
    out += ["# TYPE jiancha_alerts_total counter"]
    for name, value in sorted(counters.items()):
        if name.startswith("alerts_"):
            out.append(_line("jiancha_alerts_total", value, {"kind": name[7:]}))
    out += ["# HELP jiancha_cases Cases by light (open cases only)", "# TYPE jiancha_cases gauge"]
    for light, n in conn.execute("SELECT light, count(*) FROM cases WHERE closed=0 GROUP BY light"):
        out.append(_line("jiancha_cases", n, {"light": light}))
    out += [
        "# TYPE jiancha_sites_online gauge",
        _line("jiancha_sites_online", conn.execute("SELECT count(*) FROM sites WHERE online=1").fetchone()[0]),
        "# TYPE jiancha_site_acked_seq gauge",
    ]
    for code, acked in conn.execute("SELECT code, acked_seq FROM sites ORDER BY code"):
        out.append(_line("jiancha_site_acked_seq", acked, {"site": code}))
    out += [
        "# HELP jiancha_notifications Outbox of SMS/e-mail reminders by channel and status",
        "# TYPE jiancha_notifications gauge",
    ]
    for channel, status, n in conn.execute("SELECT channel, status, count(*) FROM notifications GROUP BY 1, 2"):
        out.append(_line("jiancha_notifications", n, {"channel": channel, "status": status}))
    out += ["# TYPE jiancha_tickets gauge"]
    for level, status, n in conn.execute("SELECT level, status, count(*) FROM tickets GROUP BY 1, 2"):
        out.append(_line("jiancha_tickets", n, {"level": level, "status": status}))
    out += _uplink_lines(conn, counters)
    out += _feed_lines(conn)
    out += [
        "# TYPE jiancha_ingest_queue gauge",
        _line("jiancha_ingest_queue", hub.ingest.q.qsize()),
        "# TYPE jiancha_broker_connected gauge",
        _line("jiancha_broker_connected", int(hub.link.connected.is_set())),
    ]
    return "\n".join(out) + "\n"


def _uplink_lines(conn, counters: dict) -> list[str]:
    """Three levels (docs/rollup.md): this hub's outbox to its parent, and its children's marks."""
    h, a = conn.execute(
        "SELECT COALESCE((SELECT seq FROM uplink_head), 0), COALESCE((SELECT seq FROM uplink_acked), 0)"
    ).fetchone()
    out = [
        "# HELP jiancha_uplink_seq This hub's uplink outbox: last record appended, last acknowledged by the parent",
        "# TYPE jiancha_uplink_seq gauge",
        _line("jiancha_uplink_seq", h, {"mark": "head"}),
        _line("jiancha_uplink_seq", a, {"mark": "acked"}),
        "# TYPE jiancha_child_records_stored_total counter",
        _line("jiancha_child_records_stored_total", counters.get("child_records_stored", 0)),
        "# TYPE jiancha_child_records_duplicate_total counter",
        _line("jiancha_child_records_duplicate_total", counters.get("child_records_duplicate", 0)),
        "# HELP jiancha_child_acked_seq Highest contiguous seq held per child hub",
        "# TYPE jiancha_child_acked_seq gauge",
    ]
    for code, acked in conn.execute("SELECT code, acked_seq FROM child_hubs ORDER BY code"):
        out.append(_line("jiancha_child_acked_seq", acked, {"child": code}))
    return out


def _feed_lines(conn) -> list[str]:
    """Third-party feeds (docs/feed.md): each feed's acknowledged cursor (head - cursor = its backlog)."""
    out = [
        "# HELP jiancha_feed_acked_seq Highest contiguous seq a feed consumer acknowledged",
        "# TYPE jiancha_feed_acked_seq gauge",
    ]
    for feed, acked in conn.execute("SELECT feed, acked_seq FROM feed_cursor ORDER BY feed"):
        out.append(_line("jiancha_feed_acked_seq", acked, {"feed": feed}))
    return out
