"""iobase.sqlite under a simulated power cut (tests/powercut): a commit on a connection as the
agent and the hub open it survives; the shim really loses what was not synced (NORMAL, OFF)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from tests.powercut import PowerCut, build_shim

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITER = """
import sys, time
from iobase.sqlite import connect, transaction
kw = {} if sys.argv[2] == "default" else {"synchronous": sys.argv[2]}
conn = connect(sys.argv[1], **kw)
conn.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, pad TEXT)")
for i in range(300):
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
    print(i, flush=True)  # acknowledged only after the commit returned
time.sleep(60)
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return build_shim(tmp_path_factory.mktemp("powercut"))


def _write_then_cut(shim, tmp_path, synchronous: str) -> tuple[int, int | str, dict]:
    """(commits acknowledged, rows after the cut or the error reading them, files reverted)."""
    cut = PowerCut(shim, tmp_path / "data")
    db = cut.root / "t.db"
    env = {**os.environ, **cut.env(), "PYTHONPATH": REPO}
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), synchronous], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        acked = 0
        for line in p.stdout:
            acked = int(line) + 1
            if acked == 300:
                break
    finally:
        p.kill()
        p.wait()
    try:
        reverted = cut.cut()
    finally:
        cut.close()
    conn = sqlite3.connect(db)
    try:
        return acked, conn.execute("SELECT count(*) FROM t").fetchone()[0], reverted
    except sqlite3.Error as exc:
        return acked, str(exc), reverted
    finally:
        conn.close()


def test_every_acknowledged_commit_survives_a_cut(shim, tmp_path):
    acked, rows, reverted = _write_then_cut(shim, tmp_path, "default")
    assert acked == 300 and rows == 300
    assert "t.db-shm" in reverted  # the cut did happen: shared memory is gone


@pytest.mark.parametrize("synchronous", ["NORMAL", "OFF"])
def test_the_cut_loses_what_was_not_synced(shim, tmp_path, synchronous):
    acked, rows, reverted = _write_then_cut(shim, tmp_path, synchronous)
    assert acked == 300
    assert rows != 300, f"synchronous={synchronous}: nothing lost, the shim does not simulate a cut"
    assert "t.db-wal" in reverted
