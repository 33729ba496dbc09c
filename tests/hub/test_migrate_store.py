"""`jiancha hub migrate-store`: a city's SQLite store moved into PostgreSQL, verified."""

from __future__ import annotations

import pytest

from hub import uplink
from hub.cli import main as hub_main
from hub.config import HubConfig
from hub.db import connect
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.migrate_store import MigrateError, chain_heads, migrate_store
from hub.store import open_db
from iobase.config import load_config
from iobase.sqlite import transaction
from protocol import topics
from protocol.records import decode_record
from provisioning.setup import add_site, init_hub
from tests.craft import SiteSigner, chain, trust_item


@pytest.fixture
def city(tmp_path):
    """A SQLite store with three sites' records, cases, alerts and quarantine."""
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    for code in ("S01", "S02", "S03"):
        add_site(root, code=code, name=code)
    cfg = load_config(root / "hub.yaml", HubConfig)
    url = f"sqlite:{root / 'data' / 'hub.db'}"
    conn = open_db(url)
    trust_item(conn)
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None)
    for code, n in (("S01", 40), ("S02", 7), ("S03", 1)):
        recs, _ = chain(code, n)
        ing.process_group([(topics.site_batch(code), SiteSigner(root, code).seal(recs, 1))])
    ing.process_group([(topics.site_batch("S01"), b"not a batch")])  # a quarantined row
    with transaction(conn):  # a child hub's outbox to its parent (hub/uplink.py)
        for n in (1, 2):
            uplink.append(conn, "card", {"n": n}, 1_794_000_000_000 + n)
    conn.close()
    return url


def _count(conn, sql):
    return conn.execute(sql).fetchone()[0]


@pytest.mark.postgresql
def test_the_copy_has_every_row_and_the_same_chain_heads(city, pg_server, capsys):
    target = pg_server.create_db("moved")
    assert hub_main(["migrate-store", "--from", city, "--to", target]) == 0
    out = capsys.readouterr().out
    assert "records: 48 rows" in out and "3 sites' chain heads equal" in out
    src, dst = connect(city), connect(target)
    try:
        for table in (
            "records",
            "cases",
            "sites",
            "quarantine",
            "counters",
            "catalog_versions",
            "config",
            "uplink_log",
        ):
            assert _count(dst, f"SELECT count(*) FROM {table}") == _count(src, f"SELECT count(*) FROM {table}"), table
        heads = chain_heads(dst)
        assert heads == chain_heads(src) and heads["S01"][0] == 40 and heads["S01"][1]
        # the stores answer the same, and new rows get ids above the copied ones
        q = "SELECT case_no, status, light, due_date FROM cases ORDER BY case_no"
        assert dst.execute(q).fetchall() == src.execute(q).fetchall()
        top = _count(src, "SELECT max(id) FROM quarantine")
        with transaction(dst):
            new = dst.execute("INSERT INTO quarantine(at_ms, reason) VALUES (1, 'malformed') RETURNING id").fetchone()[
                0
            ]
        assert new > top
        with transaction(dst):  # the outbox goes on where it was, linked to its last record
            assert uplink.append(dst, "card", {"n": 3}, 1_794_000_000_003) == 3
        assert decode_record(uplink.read(dst, 3, 3)[0]).prev == uplink.record_hash_at(src, 2)
    finally:
        src.close()
        dst.close()


@pytest.mark.postgresql
def test_a_target_that_is_not_empty_is_refused(city, pg_server):
    target = pg_server.create_db("busy")
    migrate_store(city, target)
    with pytest.raises(MigrateError, match="the target store is not empty .*records: 48"):
        migrate_store(city, target)


@pytest.mark.postgresql
def test_a_source_that_changes_during_the_copy_fails_the_move(city, pg_server):
    """A hub still running writes while the copy is made: the move says so, it does not succeed."""
    writer = connect(city)

    def hub_still_running(line):
        with transaction(writer):
            writer.execute("INSERT INTO alerts(at_ms, site, kind) VALUES (1, 'S01', 'late')")

    try:
        with pytest.raises(MigrateError, match="the source changed while it was copied"):
            migrate_store(city, pg_server.create_db("racing"), progress=hub_still_running)
    finally:
        writer.close()


def test_bad_arguments_are_one_line(city, tmp_path, capsys):
    assert (
        hub_main(["migrate-store", "--from", f"sqlite:{tmp_path / 'nope.db'}", "--to", "postgresql://x@127.0.0.1:1/x"])
        == 2
    )
    assert "no such SQLite store" in capsys.readouterr().err
    assert hub_main(["migrate-store", "--from", city, "--to", "mysql://root:secret@db/x"]) == 2
    err = capsys.readouterr().err
    assert "expected sqlite:PATH or postgresql://" in err and "secret" not in err
