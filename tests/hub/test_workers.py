"""Several ingest workers on one store (issue 10): per-site locks, the leader lease, sharded
counters, and three real Ingestors racing over the same sites on one PostgreSQL store."""

from __future__ import annotations

import random
import threading
import time

import pytest

from hub.config import HubConfig
from hub.db import connect, site_transaction
from hub.ingest import Ingestor
from hub.keys import HubKeys, SiteKeys
from hub.lease import Lease, holder_of, release, try_acquire
from hub.store import bump, counter_totals, open_db
from iobase.config import load_config
from iobase.sqlite import transaction
from protocol import topics
from provisioning.setup import add_site, init_hub
from tests.craft import SiteSigner, chain, trust_item


def _blocked(fn, settle: float = 0.3) -> tuple[threading.Thread, threading.Event]:
    """Run fn in a thread; (thread, done) — done is still clear after `settle` if fn blocks."""
    done = threading.Event()

    def body():
        fn()
        done.set()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    done.wait(settle)
    return t, done


# -- per-site locks -------------------------------------------------------------------------------


@pytest.mark.postgresql
def test_a_site_lock_holds_that_site_only_and_keeps_exclusive_writers_out(pg_server):
    url = pg_server.create_db("locks", template=pg_server.hub_template)
    holder, other, same, writer = (connect(url) for _ in range(4))
    try:
        ctx = site_transaction(holder, ["S01"])
        ctx.__enter__()

        def in_site(conn, site):
            with site_transaction(conn, [site]):
                conn.execute("INSERT INTO counters(name, value) VALUES (?, 1)", (f"touch-{site}",))

        def exclusive():
            with transaction(writer):  # the sweep's and the API's transaction
                writer.execute("INSERT INTO counters(name, value) VALUES ('exclusive', 1)")

        t_other, other_done = _blocked(lambda: in_site(other, "S02"))
        assert other_done.wait(10), "another site's group waited for S01's lock"
        t_same, same_done = _blocked(lambda: in_site(same, "S01"))
        t_excl, excl_done = _blocked(exclusive)
        assert not same_done.is_set(), "two groups of one site ran at once"
        assert not excl_done.is_set(), "an exclusive writer ran beside an ingest group"
        ctx.__exit__(None, None, None)  # commit: both go on
        assert same_done.wait(10) and excl_done.wait(10)
        for t in (t_other, t_same, t_excl):
            t.join(5)
        names = {r[0] for r in holder.execute("SELECT name FROM counters")}
        assert {"touch-S01", "touch-S02", "exclusive"} <= names
    finally:
        for c in (holder, other, same, writer):
            c.close()


@pytest.mark.postgresql
def test_groups_that_lock_sites_in_any_order_never_deadlock(pg_server):
    """Each group takes its sites' locks in one fixed order, whatever order its messages came in."""
    url = pg_server.create_db("order", template=pg_server.hub_template)
    sites = [f"S{i:02d}" for i in range(12)]
    errors: list[BaseException] = []

    def worker(seed):
        rnd = random.Random(seed)
        conn = connect(url)
        try:
            for _ in range(60):
                picked = rnd.sample(sites, 4)
                with site_transaction(conn, picked):
                    for s in picked:
                        conn.execute(
                            "INSERT INTO sites(code, name) VALUES (?, '') ON CONFLICT(code) DO UPDATE SET "
                            "acked_seq = sites.acked_seq + 1",
                            (s,),
                        )
        except BaseException as exc:  # a deadlock would surface here (DeadlockDetected)
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    conn = connect(url)
    try:
        total = conn.execute("SELECT sum(acked_seq) + count(*) FROM sites").fetchone()[0]
    finally:
        conn.close()
    assert total == 4 * 60 * 4  # every increment landed


# -- the leader lease -----------------------------------------------------------------------------


def test_one_holder_at_a_time_and_a_new_generation_after_it_runs_out(store_url):
    conn = open_db(store_url)
    try:
        assert try_acquire(conn, "leader", "jc-hub-1", 60_000) == 1
        assert try_acquire(conn, "leader", "jc-hub-2", 60_000) is None  # held
        assert try_acquire(conn, "leader", "jc-hub-1", 60_000) == 1  # renewed, same generation
        assert try_acquire(conn, "leader", "jc-hub-1", 1) == 1  # renewed for 1 ms only
        time.sleep(0.05)
        assert try_acquire(conn, "leader", "jc-hub-2", 60_000) == 2  # ran out: taken over
        assert try_acquire(conn, "leader", "jc-hub-1", 60_000) is None  # the old holder is out
        release(conn, "leader", "jc-hub-2")
        assert try_acquire(conn, "leader", "jc-hub-3", 60_000) == 3  # given up: no wait
        assert holder_of(conn, "leader")[::2] == ("jc-hub-3", 3)
    finally:
        conn.close()


def test_two_workers_racing_for_the_lease_never_both_win(store_url):
    # A lease that cannot run out during the test (60 s): each round, four workers race for it at
    # once, the winner gives it up after the round, and the next round races again. Exactly one
    # may win each round, whatever the timing (a short lease would let a slow racer legitimately
    # take it over after it ran out, inside one round).
    conn0 = open_db(store_url)
    conn0.close()
    wins: list[tuple[int, str, int]] = []
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def contend(name):
        conn = connect(store_url)
        try:
            for round_ in range(30):
                barrier.wait(10)
                gen = try_acquire(conn, "race", name, 60_000)
                if gen is not None:
                    wins.append((round_, name, gen))
                barrier.wait(10)
                if gen is not None:
                    release(conn, "race", name)
                barrier.wait(10)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    rounds = sorted(r for r, _, _ in wins)
    assert rounds == list(range(30)), "each round exactly one winner"
    by_round = sorted(wins)
    for (_, prev_name, prev_gen), (_, name, gen) in zip(by_round, by_round[1:]):
        # the same holder taking it back keeps its generation; another holder gets the next one
        assert gen == (prev_gen if name == prev_name else prev_gen + 1), by_round


def test_the_lease_object_holds_renews_and_hands_over_on_stop(store_url):
    open_db(store_url).close()
    changes: list[tuple[str, bool]] = []
    a = Lease(store_url, "jc-hub-1", ttl_s=1.0, on_change=lambda held: changes.append(("a", held)))
    b = Lease(store_url, "jc-hub-2", ttl_s=1.0, on_change=lambda held: changes.append(("b", held)))
    a.start()
    deadline = time.monotonic() + 10
    while not a.held() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a.held()
    b.start()
    time.sleep(0.8)  # several renewals of a's lease: b never gets it meanwhile
    assert a.held() and not b.held()
    a.stop()
    assert not a.held()
    deadline = time.monotonic() + 10
    while not b.held() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.held() and b.generation == 2
    b.stop()
    assert ("a", True) in changes and ("a", False) in changes and ("b", True) in changes


# -- counters -------------------------------------------------------------------------------------


def test_counter_shards_add_up_with_the_single_writer_table(store_url):
    conn = open_db(store_url)
    try:
        bump(conn, "records_stored", 5)
        for shard in ("jc-hub-1", "jc-hub-2"):
            if hasattr(conn, "raw"):  # PostgreSQL: an ingest worker's connection
                conn.counter_shard = shard
                bump(conn, "records_stored", 10)
                bump(conn, "records_stored", 1)
            else:  # SQLite has one writer and never shards; the view reads the same table shape
                conn.execute(
                    "INSERT INTO counter_shards(shard, name, value) VALUES (?, 'records_stored', 11)", (shard,)
                )
        totals = counter_totals(conn)
        assert totals["records_stored"] == 27
        assert conn.execute("SELECT value FROM counters WHERE name='records_stored'").fetchone()[0] == 5
    finally:
        conn.close()


# -- three Ingestors on one store -----------------------------------------------------------------


@pytest.mark.postgresql
def test_three_ingest_workers_store_every_record_once_and_ack_every_chain(tmp_path, pg_server):
    """Batches of 8 sites reach three workers in a scrambled order (later batches before
    earlier ones, some twice, as a shared subscription and resends deliver them): afterwards
    each record is stored once, each chain is complete and acknowledged, each case projected."""
    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    codes = [f"S{i:02d}" for i in range(8)]
    for code in codes:
        add_site(root, code=code, name=code)
    cfg = load_config(root / "hub.yaml", HubConfig)
    url = pg_server.create_db("workers", template=pg_server.hub_template)
    setup = open_db(url)
    trust_item(setup)
    setup.close()
    per_site, per_batch = 200, 10
    msgs = []
    for code in codes:
        signer = SiteSigner(root, code)
        recs, _ = chain(code, per_site)
        for first in range(0, per_site, per_batch):
            msgs.append((topics.site_batch(code), signer.seal(recs[first : first + per_batch], first + 1)))
    rnd = random.Random(7)
    msgs += rnd.sample(msgs, len(msgs) // 10)  # redelivered
    rnd.shuffle(msgs)
    acks: list[tuple[str, dict]] = []
    workers = []
    for k in range(3):
        conn = open_db(url)
        conn.counter_shard = f"jc-hub-{k + 1}"
        ing = Ingestor(
            conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda t, p, q, r: acks.append((t, p))
        )
        workers.append(ing)
    errors: list[BaseException] = []

    def run(ing, share):
        try:
            i = 0
            while i < len(share):
                n = rnd.randint(1, 6)
                ing.process_safely(share[i : i + n])
                i += n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w, msgs[k::3])) for k, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    conn = workers[0].conn
    # the mark is computed from everything stored, under the site's lock: it reaches the end with
    # the last batch to arrive, whatever the order (without the lock a group that read an older
    # state could commit a lower mark after a newer one)
    try:
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == per_site * len(codes)
        assert conn.execute("SELECT count(*) FROM cases WHERE light IS NOT NULL").fetchone()[0] == per_site * len(codes)
        marks = dict(conn.execute("SELECT code, acked_seq FROM sites").fetchall())
        assert marks == {code: per_site for code in codes}
        totals = counter_totals(conn)
        assert totals["records_stored"] == per_site * len(codes)
        shards = {r[0] for r in conn.execute("SELECT DISTINCT shard FROM counter_shards")}
        assert shards == {"jc-hub-1", "jc-hub-2", "jc-hub-3"}
        assert conn.execute("SELECT count(*) FROM counters WHERE name='records_stored'").fetchone()[0] == 0
    finally:
        for w in workers:
            w.conn.close()


# -- what an independent review of the workers found ---------------------------------------------


def test_batches_out_of_order_after_an_idle_spell_ask_for_nothing(tmp_path, store_url):
    """A shared subscription may hand a site's batch 3 to one worker before batch 2 reaches
    another: the wait for a resend runs from when the gap appeared, not from the mark's last
    move (which, after an idle minute, would ask for the whole window at once)."""
    from datetime import datetime, timedelta

    from protocol.calendar import CST

    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    add_site(root, code="S01", name="S01")
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    trust_item(conn)
    clock = {"now": datetime(2026, 11, 20, 10, 0, tzinfo=CST)}
    acks = []
    ing = Ingestor(
        conn,
        HubKeys.load(cfg),
        SiteKeys(cfg.registry, check_every_s=0),
        lambda t, p, q, r: acks.append(p),
        now=lambda: clock["now"],
    )
    signer = SiteSigner(root, "S01")
    recs, _ = chain("S01", 30)
    try:
        ing.process_safely([(topics.site_batch("S01"), signer.seal(recs[:10], 1))])
        clock["now"] += timedelta(minutes=1)  # an idle minute
        ing.process_safely([(topics.site_batch("S01"), signer.seal(recs[20:], 21))])  # batch 3 first
        assert acks[-1]["acked"] == 10 and "resend_from" not in acks[-1]
        clock["now"] += timedelta(seconds=1)
        ing.process_safely([(topics.site_batch("S01"), signer.seal(recs[10:20], 11))])  # then batch 2
        assert acks[-1]["acked"] == 30 and "resend_from" not in acks[-1]
        # a gap that persists is still asked for, once it has waited
        more, _ = chain("S01", 40)
        ing.process_safely([(topics.site_batch("S01"), signer.seal(more[35:], 36))])
        clock["now"] += timedelta(seconds=10)
        ing.process_safely([(topics.site_batch("S01"), signer.seal(more[35:], 36))])
        assert acks[-1]["acked"] == 30 and acks[-1]["resend_from"] == 31
    finally:
        conn.close()


@pytest.mark.postgresql
def test_a_waiting_exclusive_writer_gives_up_instead_of_holding_every_worker(pg_server, monkeypatch):
    """A worker stuck inside its group would make the sweep's exclusive request wait, and every
    other worker's shared request queue behind it: the exclusive request gives up in time."""
    import psycopg

    from hub import db as hubdb

    monkeypatch.setattr(hubdb, "EXCLUSIVE_WAIT_S", 1)
    url = pg_server.create_db("excl", template=pg_server.hub_template)
    stuck, writer = connect(url), connect(url)
    try:
        ctx = site_transaction(stuck, ["S01"])
        ctx.__enter__()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            with transaction(writer):
                pass
        assert time.monotonic() - t0 < 10
        ctx.__exit__(None, None, None)
        with transaction(writer):  # and takes it once the group is over
            writer.execute("INSERT INTO counters(name, value) VALUES ('after', 1)")
    finally:
        stuck.close()
        writer.close()


@pytest.mark.postgresql
def test_workers_starting_together_on_a_new_store_migrate_it_once(pg_server):
    url = pg_server.create_db("fresh")  # empty: no tables yet
    errors, conns = [], []

    def start():
        try:
            conns.append(open_db(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        assert conns[0].execute("SELECT count(*) FROM _migrations WHERE name='pg_0002_workers'").fetchone()[0] == 1
    finally:
        for c in conns:
            c.close()


def test_two_overlapping_leaders_never_number_one_document_twice(tmp_path, store_url):
    """A paused leader and its successor both issuing: one document per ticket and kind (the
    store's unique index), the loser's number is not used up."""
    from datetime import datetime

    from hub.documents import DocumentStore
    from hub.docworker import DocumentWorker
    from hub.supervision import Supervisor
    from protocol.calendar import CST

    root = tmp_path / "hub"
    init_hub(root, region="140700", name="测试", broker_port=18883)
    add_site(root, code="S01", name="S01")
    cfg = load_config(root / "hub.yaml", HubConfig)
    conn = open_db(store_url)
    trust_item(conn)
    ing = Ingestor(conn, HubKeys.load(cfg), SiteKeys(cfg.registry, check_every_s=0), lambda *a: None)
    signer = SiteSigner(root, "S01")
    recs, _ = chain("S01", 3)
    ing.process_safely([(topics.site_batch("S01"), signer.seal(recs, 1))])
    sup = Supervisor(cfg.supervision, calendar=lambda: ing.calendar)
    now = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
    with transaction(conn):
        for (case_no,) in conn.execute("SELECT case_no FROM cases").fetchall():
            sup.open_ticket(conn, case_no, "order_explain", "test", now, reason="测试")
    queued = conn.execute("SELECT count(*) FROM document_queue").fetchone()[0]
    workers = [
        DocumentWorker(store_url, authority="测试", prefix="测督", calendar=lambda: ing.calendar, files_dir=root / "d")
        for _ in range(2)
    ]

    def issue(w):
        c = connect(store_url)
        try:
            for _ in range(3):  # a failed issue is retried, and then found issued
                w._retry_at.clear()
                w.run_once(c, DocumentStore(c, files_dir=w.files_dir, ensure_schema=False), now=now)
        finally:
            c.close()

    threads = [threading.Thread(target=issue, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        per = conn.execute("SELECT ticket_id, kind, count(*) FROM documents GROUP BY ticket_id, kind").fetchall()
        assert len(per) == queued and all(n == 1 for _, _, n in per)
        seqs = sorted(r[0] for r in conn.execute("SELECT seq FROM documents"))
        assert seqs == list(range(1, queued + 1))  # no number used up by the loser
        assert conn.execute("SELECT count(*) FROM document_queue WHERE status <> 'issued'").fetchone()[0] == 0
    finally:
        conn.close()
