"""Losing the hub's database (issue 8 §3), with a real broker, hub and agents: a backup taken
while the hub ingests restores; after a lost database the boxes re-announce themselves to the
restarted hub at once, and a re-imported catalog reaches them (its version above theirs)."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time

from hub.admin import backup, import_catalog
from tests.e2e.harness import CATALOG, wait_for


def _cases(env, site) -> int:
    return env.hub_get(f"/api/cases?site={site}")["total"]


def _config_state(env) -> str:
    """What the hub's store says about config versions (for a failure message)."""
    conn = sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True)
    try:
        out = [repr(r) for r in conn.execute("SELECT kind, version, updated_ms FROM config")]
        out += [repr(r) for r in conn.execute("SELECT name, value FROM counters WHERE name LIKE 'config%'")]
        out += [repr(r) for r in conn.execute("SELECT at_ms, kind, version, detail FROM config_log")]
        out += [repr(r) for r in conn.execute("SELECT code, state_json FROM sites")]
        return "\n".join(out)
    except sqlite3.Error as exc:
        return f"(cannot read the hub's store: {exc})"
    finally:
        conn.close()


def _lose_database(env) -> None:
    for suffix in ("", "-wal", "-shm"):
        (env.root / "data" / f"hub.db{suffix}").unlink(missing_ok=True)


def test_backup_while_ingesting_restores_and_lost_database_recovers(env, tmp_path):
    for code in ("S01", "S02"):
        wait_for(lambda: env.agent_health(code)["catalog_version"] > 0, 20, what=f"{code} catalog")
    made = {"S01": [], "S02": []}

    def burst(code, n):
        for _ in range(n):
            st, case = env.register(code, "XK-001")
            assert st == 201, case
            made[code].append(case["case_no"])

    threads = [threading.Thread(target=burst, args=(c, 15)) for c in made]
    for t in threads:
        t.start()
    out = tmp_path / "hub-backup.db"
    time.sleep(0.3)
    info = backup(env.root / "hub.yaml", out)  # while the hub is ingesting
    for t in threads:
        t.join()
    assert sqlite3.connect(out).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for code in made:
        env.wait_synced(code)
    wait_for(lambda: _cases(env, "S01") == 15 and _cases(env, "S02") == 15, 20, what="30 cases at the hub")

    # restore the backup: stop the hub, put the file back as data/hub.db, start
    env.hub.stop()
    _lose_database(env)
    (env.root / "data" / "hub.db").write_bytes(out.read_bytes())
    (env.root / "data" / "hub.db").chmod(0o600)
    env.start_hub()
    started = time.monotonic()
    # the boxes announce themselves to the new hub at once and resend what the backup lacks
    wait_for(
        lambda: _cases(env, "S01") == 15 and _cases(env, "S02") == 15,
        15,
        what=f"cases back after the restore (backup had {info['counts']['cases']})",
    )
    assert time.monotonic() - started < 15

    # lose the database; re-import a catalog with a new item before any box announced itself
    env.hub.stop()
    _lose_database(env)
    extended = tmp_path / "catalog.csv"
    shutil.copytree(CATALOG.parent / "forms", tmp_path / "forms")  # the forms its materials name (docs/portal.md)
    extended.write_text(
        CATALOG.read_text(encoding="utf-8").rstrip("\n")
        + "\nNEW-001,新增事项,市场监督管理局,行政许可,承诺件,20,10,2,不收费,0354-1234599\n",
        encoding="utf-8",
    )
    held = env.agent_health("S01")["catalog_version"]
    version, _ = import_catalog(env.root / "hub.yaml", extended)
    assert version <= held  # a blind import: the empty database knows no box yet
    assert env.register("S01", "NEW-001")[0] != 201
    env.start_hub()
    started = time.monotonic()
    wait_for(
        lambda: _cases(env, "S01") == 15 and _cases(env, "S02") == 15,
        15,
        what="every case rebuilt from the boxes after the lost database",
    )
    assert time.monotonic() - started < 15
    # the hub re-signs its catalog above what the boxes hold, and they take it
    try:
        wait_for(lambda: env.agent_health("S01")["catalog_version"] > held, 30, what="catalog above the box's")
    except AssertionError as exc:  # (flaked twice under the full suite's load: keep what tells why)
        raise AssertionError(
            f"{exc}; the box held {held}, the blind import signed {version}\n--- hub store ---\n{_config_state(env)}"
            f"\n--- hub log ---\n{env.hub.tail(60)}\n--- agent S01 log ---\n{env.agents['S01'].tail(30)}"
        ) from None
    st, case = env.register("S01", "NEW-001")
    assert st == 201, case
    env.wait_synced("S01")
    wait_for(lambda: _cases(env, "S01") == 16, 15, what="the new item's case at the hub")
