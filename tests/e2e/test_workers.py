"""Three hub workers (`jiancha hub run --workers 3`) on one PostgreSQL store behind a real
Mosquitto, with real agents draining backlogs: one worker killed (-9) mid-burst, then the
leader killed. Afterwards every site's chain is complete and acknowledged, every record and
case is stored once, the supervisor restarted the dead workers, and the leader's work (sweep,
red card, 督办 ticket, document) moved to another worker.

`kill_burst` is also what bench/workers.py runs at full size (50 sites, 200,000 records)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import psycopg
import pytest

from provisioning.setup import add_hub_workers
from tests.e2e.backlog import install_backlog, make_backlog
from tests.e2e.harness import Env, Proc, at, http, wait_for, working_days_ago


def _rows(url: str, sql: str, *args) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def _one(url: str, sql: str, *args):
    return _rows(url, sql, *args)[0][0]


def worker_pids(log: Path) -> dict[str, int]:
    """The latest pid of each worker, from the supervisor's lines in the hub log."""
    pids: dict[str, int] = {}
    for m in re.finditer(r"^worker (jc-hub-\d+) pid (\d+)$", log.read_text(errors="replace"), re.M):
        pids[m.group(1)] = int(m.group(2))
    return pids


def ready_workers(log: Path) -> set[str]:
    return set(re.findall(r"worker (jc-hub-\d+) ready on", log.read_text(errors="replace")))


def start_workers(env: Env, n: int) -> Proc:
    env.hub = Proc(
        ["hub", "run", "--config", str(env.root / "hub.yaml"), "--workers", str(n)],
        env.root / "logs" / "hub.log",
        f"{env.hub_url}/api/health",
    ).start()
    wait_for(lambda: len(ready_workers(env.hub.log)) == n, 60, what=f"{n} workers ready ({env.hub.tail()})")
    return env.hub


def make_env(tmp: Path, pg_url: str, sites: int, per_site: int, workers: int = 3) -> Env:
    """A hub directory on PostgreSQL with `workers` worker identities and `sites` sites, each
    holding a backlog of `per_site` registrations that its agent sends when it starts."""
    codes = tuple(f"S{i:02d}" for i in range(1, sites + 1))
    env = Env(tmp / "hub", sites=codes, store_url=pg_url)
    env.store_url = pg_url
    add_hub_workers(env.root, count=workers)
    env.configure_hub(workers={"lease_s": 3.0})
    version, payload = _rows(pg_url, "SELECT version, payload_json FROM config WHERE kind='catalog'")[0]
    template = make_backlog(tmp / "backlog.db", "TEMPLATE", 1, (version, json.loads(payload)))
    template.unlink()
    for code in codes:
        install_backlog(
            env, code, make_backlog(tmp / f"backlog-{code}.db", code, per_site, (version, json.loads(payload)))
        )
    return env


def acked_total(env: Env) -> int:
    return int(_one(env.store_url, "SELECT coalesce(sum(acked_seq), 0) FROM sites"))


def kill_burst(env: Env, per_site: int, *, workers: int = 3, kill_at: float = 0.3, timeout: float = 600) -> dict:
    """Start the workers and every agent (each drains its backlog), SIGKILL one worker once
    `kill_at` of all records are acknowledged (one that does not lead), and wait until every
    chain is complete.
    Returns figures: seconds to complete, records, the killed worker, restarts seen."""
    env.start_broker()
    start_workers(env, workers)
    codes = list(env.agent_ports) or [p.name for p in sorted((env.root / "sites").iterdir())]
    total = per_site * len(codes)  # the backlogs (each box adds a few records of its own)
    t0 = time.monotonic()
    for code in codes:
        env.start_agent(code)
    wait_for(lambda: acked_total(env) >= kill_at * total, timeout, 0.05, what="burst under way")
    leader = _rows(env.store_url, "SELECT holder FROM leases WHERE name='leader'")[0][0].split("#")[0]
    victim, pid = next((w, p) for w, p in sorted(worker_pids(env.hub.log).items()) if w != leader)  # (the
    # leader's death is tested on its own: here ingest alone must lose and double nothing)
    os.kill(pid, signal.SIGKILL)  # mid-batch: its transaction and in-flight messages are cut off
    acked_at_kill = acked_total(env)

    def complete():  # the hub's mark at each agent's last record (the backlog plus what the box
        heads = {c: env.agent_health(c)["last_seq"] for c in codes}  # logged itself meanwhile)
        marks = dict(_rows(env.store_url, "SELECT code, acked_seq FROM sites"))
        return all(marks.get(c) == h for c, h in heads.items())

    wait_for(complete, timeout, 0.2, what="every chain complete")
    elapsed = time.monotonic() - t0
    for code in codes:
        env.wait_synced(code, 60)
    return {
        "seconds": elapsed,
        "records": total,
        "victim": victim,
        "acked_at_kill": acked_at_kill,
        "restarted": wait_for(
            lambda: worker_pids(env.hub.log).get(victim) not in (None, pid), 30, what=f"{victim} restarted"
        ),
    }


def check_every_chain(env: Env, per_site: int) -> None:
    """Each site: records 1..per_site once each, linked, acknowledged; each case once."""
    url = env.store_url
    codes = [r[0] for r in _rows(url, "SELECT code FROM sites ORDER BY code")]
    assert len(codes) == len(list((env.root / "sites").iterdir()))
    heads = {}
    for code in codes:  # a box may log a record of its own meanwhile (its head moves): synced again
        env.wait_synced(code, 60)
        heads[code] = env.agent_health(code)["last_seq"]
    for code, n, distinct, top, acked in _rows(
        url,
        "SELECT s.code, count(r.seq), count(DISTINCT r.seq), max(r.seq), s.acked_seq FROM sites s "
        "JOIN records r ON r.site = s.code GROUP BY s.code, s.acked_seq ORDER BY s.code",
    ):
        head = heads[code]
        # one snapshot: every stored record once, no gap, all acknowledged, at least the box's head
        # (a record the box logged after we read its head may be in already)
        assert head >= per_site and n == distinct == top == acked >= head, (
            code,
            {"head": head, "records": n, "distinct": distinct, "top": top, "acked": acked},
        )
    breaks = _one(
        url,
        "SELECT count(*) FROM records r JOIN records p ON p.site = r.site AND p.seq = r.seq - 1 WHERE r.prev <> p.hash",
    )
    assert breaks == 0
    assert _one(url, "SELECT count(*) FROM cases") == per_site * len(codes)
    assert _one(url, "SELECT count(*) FROM records WHERE kind='case.registered'") == per_site * len(codes)
    assert _one(url, "SELECT count(*) FROM quarantine") == 0


@pytest.mark.postgresql
def test_three_workers_lose_and_double_nothing_when_one_is_killed_and_the_leader_dies(tmp_path, pg_server):
    per_site = 1200  # enough that the kill lands mid-burst (asserted below)
    env = make_env(tmp_path, pg_server.create_db("workers"), sites=8, per_site=per_site)
    try:
        figures = kill_burst(env, per_site)
        check_every_chain(env, per_site)
        assert figures["acked_at_kill"] < figures["records"], "the burst was over before the kill"
        assert f"worker {figures['victim']} pid" in env.hub.tail(400) and "exited (-9)" in env.hub.tail(400)
        totals = dict(_rows(env.store_url, "SELECT name, value FROM counter_totals"))
        stored = _one(env.store_url, "SELECT count(*) FROM records")
        assert totals["records_stored"] == stored  # counted once, over the shards

        # the leader dies: another worker takes the lease and does the once-only work
        leader, gen, _ = _rows(env.store_url, "SELECT holder, generation, until_ms FROM leases WHERE name='leader'")[0]
        identity, pid = leader.split("#")  # a lease is held by one process of one worker
        pid = pid.split("-")[0]
        assert worker_pids(env.hub.log)[identity] == int(pid)
        os.kill(int(pid), signal.SIGKILL)
        wait_for(
            lambda: _rows(env.store_url, "SELECT holder, generation FROM leases WHERE name='leader'")[0][1] > gen,
            30,
            what="the lease taken over",
        )
        late = working_days_ago(30)
        st, case = env.register("S01", "XK-001", received_at=at(late, 9).isoformat())
        assert st == 201, case
        assert env.event("S01", case["case_no"], "accept", at=at(late, 10).isoformat())[0] == 201
        env.wait_synced("S01")
        wait_for(lambda: env.hub_get(f"/api/cases/{case['case_no']}")["light"] == "red", 30, what="red card")
        ticket = wait_for(lambda: env.hub_get(f"/api/tickets?case_no={case['case_no']}"), 30, what="督办 ticket")
        docs = wait_for(
            lambda: (
                (d := env.hub_get(f"/api/tickets/{ticket[0]['id']}")["documents"])
                and all(x["document_id"] for x in d)
                and d
            ),
            30,
            what="documents issued by the new leader",
        )
        st, _ = http("GET", f"{env.hub_url}/api/documents/{docs[0]['document_id']}.pdf", token=env.token)
        assert st == 200
        # once-only: one ticket, one set of documents, one red alert for the case
        assert len(env.hub_get(f"/api/tickets?case_no={case['case_no']}")) == 1
        assert _one(env.store_url, "SELECT count(*) FROM documents WHERE case_no=%s", case["case_no"]) == len(docs)
        assert (
            _one(env.store_url, "SELECT count(*) FROM alerts WHERE case_no=%s AND kind='light_red'", case["case_no"])
            == 1
        )
    finally:
        env.close()


def test_workers_need_postgresql_and_their_identities(tmp_path):
    """On SQLite, or without the identities, `--workers` says what to do, before starting anything."""
    import subprocess
    import sys

    from provisioning.setup import add_site, init_hub

    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    add_site(root, code="S01", name="S01")
    run = [sys.executable, "-m", "hub", "run", "--config", str(root / "hub.yaml"), "--workers", "2"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "PostgreSQL" in out.stderr, out.stderr
    import yaml

    raw = yaml.safe_load((root / "hub.yaml").read_text())
    raw["store"] = {"url": "postgresql://nobody@127.0.0.1:1/none"}
    (root / "hub.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    out = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "add-hub-workers" in out.stderr and "jc-hub-1" in out.stderr, out.stderr
