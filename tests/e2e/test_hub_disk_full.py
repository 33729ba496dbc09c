"""The hub on a full disk (a real 32 MiB tmpfs under its data folder, filled up): ingest fails
with a clear error, nothing is acknowledged that was not stored, and once space returns the
boxes' resends bring everything in."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess

import pytest

from tests.e2e.harness import Env, wait_for


@pytest.fixture
def small_data(tmp_path):
    """A hub directory whose data folder is a real 32 MiB filesystem (tmpfs; the suite runs as
    root, as tests/agent/test_health.py's full-disk tests do)."""
    e = Env(tmp_path / "hub", sites=("S01",))
    data = e.root / "data"
    keep = tmp_path / "data-before"
    shutil.copytree(data, keep)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(data)], capture_output=True, text=True
    )
    assert r.returncode == 0, f"cannot mount a tmpfs ({r.stderr.strip()}): run the tests as root"
    try:
        shutil.copytree(keep, data, dirs_exist_ok=True)
        e.start_broker()
        e.start_hub_and_agents("S01")
        wait_for(lambda: e.agent_health("S01")["catalog_version"] > 0, 30, what="catalog at S01")
        yield e
    finally:
        e.close()
        subprocess.run(["umount", "-l", str(data)], check=False)


def _fill(folder) -> int:
    """Write filler files until the filesystem refuses (it may refuse at once: the hub's WAL can
    have taken the space already on a loaded machine); the bytes written."""
    n = 0
    for name, chunk in (("filler", 65536), ("filler2", 512)):  # then the last partial blocks too
        try:
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            continue
        try:
            while True:
                n += os.write(fd, b"\0" * chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)
    return n


def _hub_seqs(env, site: str) -> set[int]:
    with sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True) as db:
        return {r[0] for r in db.execute("SELECT seq FROM records WHERE site=?", (site,))}


def test_hub_on_a_full_disk_acknowledges_nothing_it_did_not_store_and_recovers(small_data):
    env = small_data
    for _ in range(3):
        assert env.register("S01", "XK-001")[0] == 201
    env.wait_synced("S01")
    _fill(env.root / "data")
    made = []
    for _ in range(30):
        st, case = env.register("S01", "XK-001")
        assert st == 201  # the box takes cases whatever the hub's disk
        made.append(case["case_no"])
    wait_for(lambda: "hub store is full" in env.hub.tail(400), 30, what="the hub's full-disk error in its log")
    h = env.agent_health("S01")
    stored = _hub_seqs(env, "S01")
    assert set(range(1, h["acked_seq"] + 1)) <= stored, "the hub acknowledged records it did not store"
    assert h["acked_seq"] < h["last_seq"]
    (env.root / "data" / "filler").unlink()
    (env.root / "data" / "filler2").unlink()
    env.wait_synced("S01", 90)
    wait_for(lambda: env.hub_get("/api/cases?site=S01")["total"] == 33, 30, what="33 cases at the hub")
    # a good batch on a full disk is not a bad input: nothing quarantined, no rejection counted
    rejected = {k: v for k, v in env.metrics().items() if k.startswith("jiancha_rejected_total")}
    assert not any(rejected.values()), rejected
    log = env.hub.log.read_text(errors="replace")
    assert "internal_error" not in log and log.count("hub store is full") <= 3  # one clear line a minute
