"""Losing the hub's database (issue 8 §3): online backup, config versions above what the boxes
hold, document numbers never reused."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading

import pytest

from hub.admin import backup
from hub.catalog import next_config_version, store_catalog
from hub.configpush import ConfigPusher
from hub.store import open_db
from iobase.sqlite import connect, transaction
from jiancha.cli import main
from protocol.crypto import generate_ed25519
from protocol.models import CatalogItem
from protocol.wire import open_config
from provisioning.setup import init_hub

ITEM = {
    "code": "XK-001",
    "name": "营业执照",
    "department": "市场监管局",
    "item_type": "行政许可",
    "case_type": "承诺件",
    "legal_days": 20,
    "promised_days": 10,
    "yellow_days": 2,
}


@pytest.fixture
def hubdir(tmp_path):
    init_hub(tmp_path / "hub", region="140700", name="测试中心", broker_port=18883, http_port=18080)
    return tmp_path / "hub"


def _data(hubdir):
    return hubdir / "data" / "hub.db"


def test_backup_while_writing_is_consistent_and_restores(hubdir, tmp_path):
    conn = open_db(_data(hubdir))
    store_catalog(conn, [CatalogItem.model_validate(ITEM)])
    stop = threading.Event()
    written = []

    def writer():  # like ingest: each transaction stores records and moves a counter with them
        w = connect(_data(hubdir))
        seq = 0
        while not stop.is_set():
            with transaction(w):
                for _ in range(50):
                    seq += 1
                    w.execute(
                        "INSERT INTO records VALUES ('S01', ?, ?, x'00', 'k', 0, 'ntp', 0, ?)",
                        (seq, os.urandom(32), os.urandom(200)),
                    )
                w.execute("INSERT OR REPLACE INTO counters VALUES ('records_stored', ?)", (seq,))
            written.append(seq)
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(written) < 20:
            stop.wait(0.01)
        outs = []
        for i in range(3):  # several copies while the writer keeps going
            out = tmp_path / f"backup-{i}.db"
            info = backup(hubdir / "hub.yaml", out)
            outs.append((out, info))
    finally:
        stop.set()
        t.join()
    for out, info in outs:
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert not list(tmp_path.glob(".backup-*"))  # no temp file left
        assert not os.path.exists(f"{out}-wal")
        copy = sqlite3.connect(out)
        n = copy.execute("SELECT count(*) FROM records").fetchone()[0]
        assert n > 0 and n % 50 == 0  # whole transactions only
        assert copy.execute("SELECT value FROM counters WHERE name='records_stored'").fetchone()[0] == n
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert info["counts"]["records"] == n and info["config"] == {"catalog": 1}
        copy.close()
    # restore: stop the hub, put the file back as data/hub.db, start
    conn.close()
    last, _ = outs[-1]
    for suffix in ("", "-wal", "-shm"):
        p = _data(hubdir).with_name("hub.db" + suffix)
        p.unlink(missing_ok=True)
    _data(hubdir).write_bytes(last.read_bytes())
    restored = open_db(_data(hubdir))
    assert (
        restored.execute("SELECT count(*) FROM records").fetchone()[0]
        == sqlite3.connect(last).execute("SELECT count(*) FROM records").fetchone()[0]
    )
    assert restored.execute("SELECT version FROM config WHERE kind='catalog'").fetchone()[0] == 1
    restored.close()


def test_backup_cli(hubdir, tmp_path, capsys):
    open_db(_data(hubdir)).close()
    out = tmp_path / "b.db"
    assert main(["hub", "backup", "--config", str(hubdir / "hub.yaml"), "--out", str(out)]) == 0
    assert "integrity_check ok" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert main(["hub", "backup", "--config", str(hubdir / "hub.yaml"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["hub", "backup", "--help"])
    assert "jiancha hub backup --config" in capsys.readouterr().out


def _birth(conn, site, catalog, calendar=0):
    conn.execute(
        "INSERT OR REPLACE INTO sites(code, state_json) VALUES (?, ?)",
        (site, json.dumps({"online": True, "config": {"catalog": catalog, "calendar": calendar}})),
    )


class Sites:
    def __init__(self, codes):
        self.codes = codes

    def active(self):
        return self.codes


def test_versions_start_above_what_boxes_report(tmp_path):
    conn = open_db(tmp_path / "hub.db")  # a lost database: empty, the boxes remember
    _birth(conn, "S01", 5, 3)
    _birth(conn, "S02", 7)
    conn.execute("INSERT INTO sites(code, state_json) VALUES ('S03', '{\"config\": {\"catalog\": 99999999999}}')")
    conn.execute("INSERT INTO sites(code, state_json) VALUES ('S04', '{broken')")
    assert next_config_version(conn, "catalog") == 8  # the absurd report is ignored
    assert store_catalog(conn, [CatalogItem.model_validate(ITEM)]) == 8
    from hub.admin import store_calendar_year
    from protocol.calendar import YearTable

    with transaction(conn):
        v = store_calendar_year(
            conn, YearTable.from_dict({"year": 2027, "holidays": ["2027-01-01"], "workdays": []}), "test", "x"
        )
    assert v == 4


def test_pusher_resigns_above_a_box_that_holds_a_version_it_did_not_push(tmp_path):
    conn = open_db(tmp_path / "hub.db")
    key = generate_ed25519()
    sent = []
    pusher = ConfigPusher(conn, Sites(["S01", "S02"]), key, lambda *a: sent.append(a), every_s=0)
    # the catalog re-imported into a lost database before any box announced itself: version 1,
    # which S01 already holds (another content): nothing is pushed before the boxes announce
    assert store_catalog(conn, [CatalogItem.model_validate({**ITEM, "code": "NEW-1"})]) == 1
    assert pusher.tick() == 0
    _birth(conn, "S01", 1)
    _birth(conn, "S02", 0)
    pusher.tick()
    versions = {(t, open_config(p, verify_key=key.public_key()).version) for t, p, *_ in sent}
    assert len(versions) == 2 and {v for _, v in versions} == {2}
    assert conn.execute("SELECT version FROM catalog_versions ORDER BY version DESC").fetchone()[0] == 2
    assert "re-signed version 1 as 2" in conn.execute("SELECT detail FROM config_log ORDER BY id DESC").fetchone()[0]
    # the boxes took it and say so: stable, nothing re-signed again (also after a hub restart)
    _birth(conn, "S01", 2)
    _birth(conn, "S02", 2)
    sent.clear()
    ConfigPusher(conn, Sites(["S01", "S02"]), key, lambda *a: sent.append(a), every_s=0).tick()
    assert {open_config(p, verify_key=key.public_key()).version for _, p, *_ in sent} == {2}
    # a box reports a higher version (the database came from an older backup)
    _birth(conn, "S02", 6)
    sent.clear()
    pusher.tick()
    assert {open_config(p, verify_key=key.public_key()).version for _, p, *_ in sent} == {7}


def test_box_holding_config_the_hub_lacks_raises_one_alert(tmp_path):
    conn = open_db(tmp_path / "hub.db")
    _birth(conn, "S01", 4, 2)
    pusher = ConfigPusher(conn, Sites(["S01"]), generate_ed25519(), lambda *a: None, every_s=0)
    pusher.tick()
    pusher.tick()
    alerts = conn.execute("SELECT site, detail FROM alerts WHERE kind='config_missing' ORDER BY id").fetchall()
    assert len(alerts) == 2 and {a[0] for a in alerts} == {"S01"}
    assert any("事项目录" in d and "第4版" in d for _, d in alerts)


def test_document_numbers_not_reused_after_losing_the_database(tmp_path):
    from hub.documents import DocumentStore
    from tests.hub.documents.conftest import make_facts

    files = tmp_path / "documents"
    facts = make_facts()
    year = facts.issue_date.year
    first = DocumentStore(connect(tmp_path / "a.db"), files_dir=files)
    nums = [
        first.issue("duban", facts, prefix="晋中监察", year=year, case_no=facts.case_no, actor="t")["number"]
        for _ in range(3)
    ]
    assert nums[-1] == f"晋中监察〔{year}〕3号"
    copies = sorted(p.name for p in (files / str(year)).iterdir())
    assert copies == sorted(f"{n}.pdf" for n in nums)
    assert stat.S_IMODE((files / str(year) / copies[0]).stat().st_mode) == 0o600
    # the database is lost: a new one numbers on from the copies on disk
    again = DocumentStore(connect(tmp_path / "b.db"), files_dir=files)
    doc = again.issue("duban", facts, prefix="晋中监察", year=year, case_no=facts.case_no, actor="t")
    assert doc["number"] == f"晋中监察〔{year}〕4号"
    other = again.issue("duban", facts, prefix="别的", year=year, case_no=facts.case_no, actor="t")
    assert other["number"] == f"别的〔{year}〕1号"
