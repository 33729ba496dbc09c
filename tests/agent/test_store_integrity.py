"""A damaged, emptied, vanished or rolled-back case store is refused at start (issue 8, §2).

The refusals run the real start-up: `python -m agent run --config …` in a subprocess, as
systemd runs it. Each must exit 65 (the unit's RestartPreventExitStatus), name the file, say
what is wrong and point to docs/box.md, without a traceback. A store merely behind its head
file (kill -9 mid-write) starts; `agent reset-store` moves files aside and the next start
begins a new epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from agent import integrity
from agent.integrity import EXIT_STORE_DAMAGED, StoreDamaged, check_store, head_path, read_head
from agent.store import AgentStore
from jiancha.cli import main
from protocol.calendar import CST
from protocol.models import CatalogItem, NewCase
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ITEM = CatalogItem(
    code="XK-001",
    name="食品经营许可",
    department="市场监督管理局",
    item_type="licensing",
    case_type="promised",
    legal_days=20,
    promised_days=10,
)
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory):
    from provisioning.setup import add_site, init_hub

    root = tmp_path_factory.mktemp("prov")
    init_hub(root / "h", region="1", name="x")
    cfg = add_site(root / "h", code="S01", name="a")
    return Path(cfg).parent


@pytest.fixture
def site(provisioned, tmp_path):
    """(agent.yaml, data dir) of a site whose agent runs without devices and without a broker."""
    folder = tmp_path / "S01"
    shutil.copytree(provisioned, folder)
    cfg = folder / "agent.yaml"
    raw = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    raw["devices"] = {**(raw.get("devices") or {}), "mode": "off"}
    raw["data_dir"] = str(folder / "data")
    # a port this worker holds and nothing listens on: never the machine's own broker on 8883
    raw["broker"] = {**raw["broker"], "port": free_port()}
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    (folder / "data").mkdir(exist_ok=True)
    return cfg, folder / "data"


def _fill(db: Path, n: int, acked: int = 0) -> tuple[int, str]:
    """Register n cases through the store; (head seq, epoch)."""
    s = AgentStore(db, "S01")
    if not s.item("XK-001"):
        s.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"raw")
    for _ in range(n):
        s.register(NewCase(item_code="XK-001", applicant={"name": "李四", "phone": "13800000000"}), NOW)
    if acked:
        s.set_acked(acked)
    head, epoch = s.head_seq, s.epoch
    s.close()
    return head, epoch


def _run_agent(cfg: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg), "--http-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _start_agent_until_ready(cfg: Path, log: Path, timeout: float = 60) -> subprocess.Popen:
    f = open(log, "wb")
    p = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg), "--http-port", str(free_port())],
        stdout=f,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    f.close()
    deadline = time.monotonic() + timeout
    while "ready on http" not in log.read_text(errors="replace"):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"agent did not start (rc {p.poll()}):\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return p


def _stop(p: subprocess.Popen, log: Path | None = None) -> int:
    """SIGTERM, and the agent's exit code; its log is shown when it does not stop cleanly."""
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    if rc != 0 and log is not None:
        print(f"agent exit {rc}; its log:\n{log.read_text(errors='replace')}")
    return rc


# -- the damage kinds of issue 8 -------------------------------------------------------------------
def _truncate(db: Path, data: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def _zero(db: Path, data: Path) -> None:
    db.write_bytes(bytes(db.stat().st_size))


def _random(db: Path, data: Path) -> None:
    db.write_bytes(random.Random(8).randbytes(db.stat().st_size))


def _flip_last_pages(db: Path, data: Path) -> None:
    b, page = bytearray(db.read_bytes()), 4096
    for k in (1, 2):
        off = len(b) - k * page + page // 2
        for i in range(16):
            b[off + i] ^= 0xFF
    db.write_bytes(bytes(b))


def _flip_64_mid_file(db: Path, data: Path) -> None:
    """64 bytes flipped at the start of the page in the middle of the file: its b-tree header.
    (The middle byte itself may fall in a page's unused space, where a flip is harmless and
    SQLite rightly sees nothing: which page is in the middle depends on the tables there are.)"""
    b = bytearray(db.read_bytes())
    off = len(b) // 2 // 4096 * 4096
    for i in range(64):
        b[off + i] ^= 0xFF
    db.write_bytes(bytes(b))


def _empty(db: Path, data: Path) -> None:
    db.write_bytes(b"")


def _delete(db: Path, data: Path) -> None:
    db.unlink()


def _roll_back(db: Path, data: Path) -> None:
    """An older copy of agent.db put back (a restored backup, a card image): the head file is ahead."""
    db.replace(data / "agent.db.new")
    shutil.copyfile(data / "old-copy.db", db)


DAMAGE = {
    "truncated": (_truncate, "truncated"),
    "zeroed": (_zero, "zeros"),
    "random": (_random, "not a SQLite database"),
    "flipped bytes in the last pages": (_flip_last_pages, "log record seq"),
    # an index page's header is found by quick_check, a table page's already when SQLite reads it
    "64 flipped bytes mid-file": (_flip_64_mid_file, ("quick_check finds the database damaged", "SQLite cannot read")),
    "0-byte file": (_empty, "empty (0 bytes)"),
    "deleted, head file remains": (_delete, "missing"),
    "rolled back to an older copy": (_roll_back, "behind its head file"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_store_is_refused_at_start_naming_the_file(site, kind):
    cfg, data = site
    db = data / "agent.db"
    _fill(db, 20)
    shutil.copyfile(db, data / "old-copy.db")  # for the roll-back case
    head, epoch = _fill(db, 60, acked=30)
    damage, says = DAMAGE[kind]
    damage(db, data)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir() if p.is_file()}

    out = _run_agent(cfg)

    assert out.returncode == EXIT_STORE_DAMAGED, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    says = (says,) if isinstance(says, str) else says
    assert str(db) in out.stderr and any(s in out.stderr for s in says), out.stderr
    assert "REFUSING TO START" in out.stderr and "docs/box.md" in out.stderr
    assert f"jiancha agent reset-store --config {cfg}" in out.stderr
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir() if p.is_file()}
    assert after == before, "a refused store is left exactly as found"
    assert read_head(db).seq == head and read_head(db).epoch == epoch


def test_a_store_behind_its_head_file_is_caught_even_when_the_copy_has_more_records(tmp_path):
    """Same epoch, diverged history: the record at the head file's seq is not the one written."""
    db = tmp_path / "agent.db"
    _fill(db, 10)
    shutil.copyfile(db, tmp_path / "old.db")
    _fill(db, 10)  # the head file now says seq 21
    head = read_head(db)
    db.unlink()
    shutil.copyfile(tmp_path / "old.db", db)
    s = AgentStore(db, "S01", check=False)  # another history grows on the old copy
    for _ in range(15):
        s.append("heartbeat", {"n": 1})
    s.close()
    integrity.write_head(db, head.epoch, head.seq, head.hash)  # close() moved it; put it back
    with pytest.raises(StoreDamaged, match=f"seq {head.seq} is not the record the agent wrote"):
        check_store(db)


def test_a_database_of_another_store_is_refused(tmp_path):
    a, b = tmp_path / "a" / "agent.db", tmp_path / "b" / "agent.db"
    a.parent.mkdir(), b.parent.mkdir()
    _fill(a, 3), _fill(b, 5)
    shutil.copyfile(b, a)
    with pytest.raises(StoreDamaged, match="another store"):
        AgentStore(a, "S01")


def test_an_unreadable_head_file_is_named(tmp_path):
    db = tmp_path / "agent.db"
    _fill(db, 2)
    head_path(db).write_bytes(b"\x00" * 40)
    with pytest.raises(StoreDamaged, match="head file beside the database is unreadable") as e:
        check_store(db)
    assert e.value.path == head_path(db)


# -- what must keep working --------------------------------------------------------------------
def test_kill_9_mid_write_leaves_the_head_file_behind_and_the_agent_starts(site, tmp_path):
    cfg, data = site
    db = data / "agent.db"
    _fill(db, 5)
    code = textwrap.dedent(f"""
        from datetime import datetime
        from agent.store import AgentStore
        from protocol.calendar import CST
        from protocol.models import NewCase
        s = AgentStore({str(db)!r}, "S01")
        s.head_every_s = 3600          # the head file stays at the start's seq: surely behind
        while True:
            c = s.register(NewCase(item_code="XK-001", applicant={{"name": "李四"}}), datetime.now(CST))
            print(s.head_seq, flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    for line in p.stdout:
        if int(line) >= 60:
            break
    p.kill()  # mid-write: the loop is registering the next case
    p.wait(timeout=10)
    p.stdout.close()
    assert read_head(db).seq < 60

    verdict = check_store(db)
    assert verdict.state == "ok" and verdict.head_seq >= 60 and verdict.head_file_seq < 60
    agent = _start_agent_until_ready(cfg, tmp_path / "agent.log")
    try:
        # the agent brings the head file up to date (within a second; generous under load)
        deadline = time.monotonic() + 30
        while read_head(db).seq < verdict.head_seq and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_head(db).seq >= verdict.head_seq
    finally:
        assert _stop(agent, tmp_path / "agent.log") == 0
    assert check_store(db).head_file_seq == check_store(db).head_seq


def test_reset_store_moves_the_files_aside_and_the_next_start_has_a_new_epoch(site, tmp_path, capsys):
    cfg, data = site
    db = data / "agent.db"
    _, old_epoch = _fill(db, 30)
    _zero(db, data)
    zeroed = hashlib.sha256(db.read_bytes()).hexdigest()

    assert main(["agent", "check-store", "--config", str(cfg)]) == EXIT_STORE_DAMAGED
    assert f"{db}: DAMAGED: not a SQLite database" in capsys.readouterr().out
    assert main(["agent", "reset-store", "--config", str(cfg)]) == 2  # not without the flag
    assert "--yes-i-understand" in capsys.readouterr().out and db.exists()

    assert main(["agent", "reset-store", "--config", str(cfg), "--yes-i-understand"]) == 0
    out = capsys.readouterr().out
    (moved,) = [p for p in data.iterdir() if p.name.startswith("damaged-")]
    assert str(moved) in out and "epoch_changed" in out
    assert sorted(p.name for p in moved.iterdir()) == ["agent.db", "agent.db.head"]
    assert hashlib.sha256((moved / "agent.db").read_bytes()).hexdigest() == zeroed
    assert json.loads((moved / "agent.db.head").read_text())["epoch"] == old_epoch
    assert not db.exists() and not head_path(db).exists()

    agent = _start_agent_until_ready(cfg, tmp_path / "agent.log")
    assert _stop(agent, tmp_path / "agent.log") == 0
    verdict = check_store(db)
    assert verdict.state == "ok" and verdict.epoch != old_epoch
    assert main(["agent", "check-store", "--config", str(cfg)]) == 0
    assert ": ok: quick_check ok" in capsys.readouterr().out


def test_reset_store_refuses_a_sound_store_without_even_if_healthy(site, capsys):
    cfg, data = site
    _fill(data / "agent.db", 3)
    assert main(["agent", "reset-store", "--config", str(cfg), "--yes-i-understand"]) == 2
    assert "refusing to reset" in capsys.readouterr().out
    assert (data / "agent.db").exists()
    assert main(["agent", "reset-store", "--config", str(cfg), "--yes-i-understand", "--even-if-healthy"]) == 0
    assert not (data / "agent.db").exists()


def test_a_store_without_a_head_file_is_checked_and_adopted(tmp_path):
    """Stores written before the head file existed: checked, then the head file is written."""
    db = tmp_path / "agent.db"
    head, epoch = _fill(db, 4)
    head_path(db).unlink()
    s = AgentStore(db, "S01")
    assert read_head(db) == integrity.Head(epoch, head, s.head_hash)
    s.close()


def test_a_new_store_writes_its_head_file_at_once(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    assert read_head(tmp_path / "agent.db").seq == 0
    s.close()
    (tmp_path / "agent.db").unlink()
    with pytest.raises(StoreDamaged, match="missing"):
        AgentStore(tmp_path / "agent.db", "S01")


def test_head_file_writes_are_throttled_and_a_failed_write_never_fails_the_append(tmp_path, monkeypatch):
    db = tmp_path / "agent.db"
    s = AgentStore(db, "S01")
    s.append("heartbeat", {"n": 1})
    assert read_head(db).seq == 0  # within a second of the last write: left behind (allowed)
    s.flush_head()  # what the running agent does every second
    assert read_head(db).seq == 1
    s.head_every_s = 0.05
    time.sleep(0.06)
    s.append("heartbeat", {"n": 2})
    assert read_head(db).seq == 2  # the first commit after a quiet interval: written at once

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(integrity, "write_head", full_disk)
    s.head_every_s = 0
    rec = s.append("heartbeat", {"n": 3})  # committed; the head file lags, nothing raised
    assert rec.seq == 3 and read_head(db).seq == 2
    monkeypatch.undo()
    s.append("heartbeat", {"n": 4})
    assert read_head(db).seq == 4
    s.close()
    assert check_store(db).state == "ok"


def test_reset_store_never_moves_a_store_that_only_could_not_be_read(tmp_path, monkeypatch, capsys):
    """An I/O or permission error may pass (the unit retries it): it is not damage."""
    from agent import integrity

    db = tmp_path / "agent.db"
    db.write_bytes(b"x")

    def unreadable(path):
        raise integrity.StoreUnreadable(path, "Input/output error")

    monkeypatch.setattr(integrity, "check_store", unreadable)
    assert integrity.reset_command(db, sure=True) == 2
    assert db.read_bytes() == b"x" and "refusing to reset" in capsys.readouterr().out
