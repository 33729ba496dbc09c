"""Shared plumbing of the end-to-end benchmarks (bench/ingest.py, drain.py, agent_memory.py).

Process management is the e2e harness (tests/e2e/harness.py: `Env`, a provisioned hub
directory, a ManagedBroker on a free 127.0.0.1 port, real `python -m hub run` and
`python -m agent run` processes); this module only adds what the benchmarks need on top:

* `bench_env`      an Env in a temporary folder that is always torn down (also on Ctrl-C/SIGTERM)
* `make_backlog`   an agent.db with N registrations written through agent.store.AgentStore
* `HubDB`          read-only polling of the hub database (acked seqs, counters, received_ms)
* `CpuSampler`     CPU seconds per process from /proc, to say where the cores went
* `raw_baseline`   paho publish -> subscribe through the same broker, TLS, QoS 1
* `hub_alone`      the hub's Ingestor on the same sealed batches in-process, without MQTT

Run as a script it is the raw-baseline publisher worker (started by `raw_baseline`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from tests.e2e.harness import Env, Proc, free_port, http, wait_for  # noqa: E402,F401

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- cleanup ----------------------------------------------------------------------------------------
def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C: unwind through `finally`, which stops everything."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


_open_envs: list[Env] = []
_children: list[subprocess.Popen] = []


def _close_env(env: Env) -> None:
    """Stop agents, hub and broker of an Env (idempotent); a 2nd Ctrl-C cannot interrupt it."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env.close()
    finally:
        signal.signal(signal.SIGINT, old)
        with contextlib.suppress(ValueError):
            _open_envs.remove(env)


def _kill_children() -> None:
    for p in list(_children):
        if p.poll() is None:
            p.kill()
            p.wait()
        _children.remove(p)


@atexit.register
def _atexit_cleanup() -> None:
    _kill_children()
    for env in list(_open_envs):
        _close_env(env)


@contextlib.contextmanager
def bench_env(sites=("S01",), *, keep: bool = False):
    """A provisioned Env under a fresh temporary folder; closed and removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="jiancha-bench-"))
    env = None
    try:
        env = Env(tmp / "hub", sites=tuple(sites))
        _open_envs.append(env)
        yield env
    finally:
        if env is not None:
            _close_env(env)
        _kill_children()
        if keep:
            print(f"(kept {tmp})", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def start_agents(env: Env, codes, wait: bool = True) -> dict[str, Proc]:
    """Start several agents at once (the harness starts one and waits for it)."""
    procs = {}
    for code in codes:
        port = env.agent_ports.setdefault(code, free_port())
        procs[code] = Proc(
            ["agent", "run", "--config", str(env.root / "sites" / code / "agent.yaml"), "--http-port", str(port)],
            env.root / "logs" / f"agent-{code}.log",
            f"http://127.0.0.1:{port}/api/health",
        ).start(wait=False)
        env.agents[code] = procs[code]
    if wait:
        for p in procs.values():
            wait_for(p._healthy, 30, what=f"agent health ({p.tail()})")
    return procs


def set_agent_sync(env: Env, code: str, **sync) -> dict:
    """Write sync settings (batch_max_records, max_inflight_records, rate_per_s) into agent.yaml."""
    path = env.root / "sites" / code / "agent.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw.setdefault("sync", {}).update({k: v for k, v in sync.items() if v is not None})
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return raw["sync"]


def set_agent_devices(env: Env, code: str, mode: str | None) -> str:
    """Set agent.yaml devices.mode (real | fake | off); None leaves it as provisioned.
    Returns the effective mode."""
    path = env.root / "sites" / code / "agent.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if mode is not None:
        raw.setdefault("devices", {})["mode"] = mode
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    from agent.config import AgentConfig
    from iobase.config import load_config

    cfg = load_config(path, AgentConfig)
    return getattr(getattr(cfg, "devices", None), "mode", "n/a")


def agent_sync_settings(env: Env, code: str) -> dict:
    """The effective sync settings of a site's agent.yaml (defaults filled in)."""
    from agent.config import AgentConfig
    from iobase.config import load_config

    return load_config(env.root / "sites" / code / "agent.yaml", AgentConfig).sync.model_dump()


# -- backlog -----------------------------------------------------------------------------------------
APPLICANT = {"name": "张三", "phone": "13800000000", "id_no": "140702199001011234"}


def catalog_of(env: Env) -> tuple[int, dict]:
    """(version, payload) of the catalog the hub of `env` pushes to its sites."""
    conn = sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True)
    try:
        version, payload = conn.execute("SELECT version, payload_json FROM config WHERE kind='catalog'").fetchone()
    finally:
        conn.close()
    return version, json.loads(payload)


def make_backlog(path: Path, site: str, n: int, catalog: tuple[int, dict]) -> Path:
    """An agent.db holding `n` case registrations of `site`, written through AgentStore.register.

    The records are exactly what the agent's API would write (same code path: catalog
    lookup, CaseRegistered body, hash chain, case row). Two shortcuts for set-up speed only:
    PRAGMA synchronous=OFF on this generating connection and no case view rendered per call.
    The catalog is stored as if pushed by the hub (same version, so the hub's push is a no-op).
    """
    from agent.clock import BoxClock
    from agent.store import AgentStore
    from protocol.calendar import CST
    from protocol.models import NewCase

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".head"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = AgentStore(path, site, clock=BoxClock(force="ntp"))
    try:
        store.conn.execute("PRAGMA synchronous=OFF")
        version, payload = catalog
        store.save_config("catalog", version, int(time.time() * 1000), payload, b"bench")
        store.case_view = lambda case_no, now: None  # the API's answer; not needed here
        codes = [i["code"] for i in payload["items"]]
        now = datetime.now(CST)
        reqs = [
            NewCase.model_validate({"item_code": c, "applicant": APPLICANT, "window": "3号窗口", "clerk": "李四"})
            for c in codes
        ]
        for i in range(n):
            store.register(reqs[i % len(reqs)], now)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return path


def install_backlog(env: Env, code: str, template: Path) -> Path:
    """Copy a generated agent.db into the site's data folder (agent must not be running)."""
    data = env.root / "sites" / code / "data"
    data.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", ".head"):  # no head file: the copy is checked and adopted
        Path(str(data / "agent.db") + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, data / "agent.db")
    return data / "agent.db"


def backlog_cache(workdir: Path, site: str, n: int, catalog: tuple[int, dict]) -> Path:
    """Generate a site's backlog once per benchmark invocation, then copy it per run."""
    path = Path(workdir) / f"backlog-{site}-{n}.db"
    if not path.exists():
        t = time.perf_counter()
        make_backlog(path, site, n, catalog)
        print(f"  (generated {n:,} records for {site} in {time.perf_counter() - t:.1f} s)", flush=True)
    return path


def sealed_batches(env: Env, code: str, db: Path, batch_max: int) -> list[tuple[bytes, int]]:
    """(payload, record count) of every sealed batch the agent would send for the log in `db`,
    made as agent.sync.Syncer._send makes them (ranges of batch_max, split_by_size, seal_batch)."""
    from agent.sync import BATCH_BYTES, split_by_size
    from protocol.crypto import load_private_pem, load_public_pem
    from protocol.wire import seal_batch

    d = env.root / "sites" / code
    sign = load_private_pem((d / "sign.key").read_bytes(), "ed25519")
    seal = load_public_pem((d / "hub_seal.pub").read_bytes(), "x25519")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = []
    try:
        head = conn.execute("SELECT max(seq) FROM log").fetchone()[0] or 0
        for first in range(1, head + 1, batch_max):
            last = min(head, first + batch_max - 1)
            data = [
                r[0] for r in conn.execute("SELECT data FROM log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))
            ]
            for start, chunk in split_by_size(first, data, BATCH_BYTES):
                out.append(
                    (
                        seal_batch(
                            code,
                            chunk,
                            sign_key=sign,
                            hub_seal_pub=seal,
                            sent_ms=int(time.time() * 1000),
                            first_seq=start,
                        ),
                        len(chunk),
                    )
                )
    finally:
        conn.close()
    return out


def hub_alone(
    env: Env, batches: dict[str, list[tuple[bytes, int]]], group: int | None = None, tag: str = ""
) -> tuple[float, dict[int, tuple[int, float]]]:
    """Seconds the hub's ingest code (hub.ingest.Ingestor.process_group: verify, decrypt, dedupe,
    store, project, commit) takes for these batches in this process, without MQTT, and the
    cyclic GC's share {generation: (collections, seconds)}. Sites interleaved, `group`
    messages per transaction (default hub.ingest.GROUP_MAX, as the hub's writer thread takes
    them when they are queued), a fresh database, the env's real hub and site keys. The
    ceiling for the end-to-end figure."""
    import gc

    from hub.ingest import GROUP_MAX, Ingestor
    from hub.keys import HubKeys, SiteKeys
    from hub.store import open_db
    from protocol import topics

    group = group or GROUP_MAX
    queues = [[(topics.site_batch(code), p) for p, _ in bs] for code, bs in batches.items()]
    msgs = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]
    gc_stats: dict[int, list] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    gc_t0 = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            st = gc_stats[info["generation"]]
            st[0] += 1
            st[1] += time.perf_counter() - gc_t0[0]

    conn = open_db(env.root / "data" / f"bench-hub-alone{tag}.db")
    version, payload = catalog_of(env)  # the hub checks each item against the catalog it signed
    conn.execute(
        "INSERT OR REPLACE INTO catalog_versions VALUES (?, ?, 0)", (version, json.dumps(payload, ensure_ascii=False))
    )
    conn.commit()
    try:
        ing = Ingestor(conn, HubKeys.load(env.hub_cfg), SiteKeys(env.hub_cfg.registry), publish=lambda *a: None)
        gc.collect()
        gc.callbacks.append(on_gc)
        try:
            t0 = time.perf_counter()
            for i in range(0, len(msgs), group):
                ing.process_group(msgs[i : i + group])
            elapsed = time.perf_counter() - t0
        finally:
            gc.callbacks.remove(on_gc)
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        conn.close()
    want = sum(n for bs in batches.values() for _, n in bs)
    if stored != want:
        raise RuntimeError(f"hub-alone stored {stored} of {want} records")
    return elapsed, {g: (n, t) for g, (n, t) in gc_stats.items()}


# -- hub database ------------------------------------------------------------------------------------
class HubDB:
    """Read-only view of the running hub's SQLite (WAL readers do not block its writer)."""

    def __init__(self, env: Env):
        self.conn = sqlite3.connect(f"file:{env.root / 'data' / 'hub.db'}?mode=ro", uri=True, timeout=10)

    def acked(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT code, acked_seq FROM sites").fetchall())

    def acked_total(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(acked_seq), 0) FROM sites").fetchone()[0]

    def received_span_ms(self) -> tuple[int | None, int | None]:
        """min/max received_ms of stored records (the hub's clock at each group)."""
        return self.conn.execute("SELECT min(received_ms), max(received_ms) FROM records").fetchone()

    def counters(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT name, value FROM counters").fetchall())

    def close(self) -> None:
        self.conn.close()


def wait_hub_acked(
    db: HubDB, total: int, timeout: float, interval: float = 0.02, sampler: CpuSampler | None = None
) -> float:
    """Poll until the hub's acked seqs add up to `total`; returns time.time() at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sampler:
            sampler.sample()
        if db.acked_total() >= total:
            t = time.time()
            if sampler:
                sampler.sample()
            return t
        time.sleep(interval)
    raise TimeoutError(f"hub acked {db.acked_total():,} of {total:,} records within {timeout:.0f} s")


def wait_agent_acked(env: Env, code: str, timeout: float = 120.0) -> float:
    """Until the agent's own health says its whole log is acked; returns time.time()."""

    def done():
        h = env.agent_health(code)
        return h["acked_seq"] == h["last_seq"] and h

    wait_for(done, timeout, 0.02, what=f"{code} fully acked (agent side)")
    return time.time()


# -- /proc ---------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem (kB) and Threads from /proc/PID/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
            out[key] = int(val.split()[0])
    return out


class CpuSampler:
    """Samples CPU seconds of named pids; `between(t0, t1)` gives CPU used in a time window."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.sample()

    def sample(self) -> None:
        self.samples.append((time.time(), {k: cpu_seconds(p) for k, p in self.pids.items()}))

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds per process from the last sample at/before t0 to the first at/after t1."""
        before = [s for s in self.samples if s[0] <= t0] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t1] or self.samples[-1:]
        a, b = before[-1][1], after[0][1]
        return {k: b[k] - a[k] for k in self.pids}


def env_pids(env: Env) -> dict[str, int]:
    """pids of the broker, hub and agents that are running."""
    pids = {}
    if env.broker and env.broker.pid:
        pids["mosquitto"] = env.broker.pid
    if env.hub and env.hub.p and env.hub.p.poll() is None:
        pids["hub"] = env.hub.p.pid
    for code, a in env.agents.items():
        if a.p and a.p.poll() is None:
            pids[f"agent {code}"] = a.p.pid
    return pids


# -- raw MQTT baseline -------------------------------------------------------------------------------------
def raw_baseline(env: Env, per_site_sizes: dict[str, list[int]], reps: int = 3, timeout: float = 120.0) -> list[float]:
    """Seconds for every site to publish its payloads (QoS 1) and one subscriber to receive all;
    one figure per repetition (the same processes and connections repeat it `reps` times).

    Same broker (config, TLS, ACL), same paho client settings as agent/hub (agent.sync
    .make_tls_client): each site publishes from its own process with its own certificate to its
    batch topic; the subscriber uses the hub's certificate and ALL_BATCHES filter and does
    nothing with a message but count it. Payloads are random bytes of the sealed batch sizes.
    Timed from "go" (all connected) to the last message received. Run it while the hub is
    NOT connected (a fresh Env): otherwise the hub would ingest (and quarantine) them.
    """
    from iobase.mqtt import make_tls_client
    from protocol import topics

    cfg = env.hub_cfg.broker
    total = sum(len(s) for s in per_site_sizes.values())
    got = {"n": 0, "want": total}
    done, subscribed = threading.Event(), threading.Event()

    def on_message(client, userdata, msg):
        got["n"] += 1
        if got["n"] >= got["want"]:
            done.set()

    sub = make_tls_client(f"bench-raw-sub-{os.getpid()}", cfg.ca, cfg.cert, cfg.key)
    sub.on_message = on_message
    sub.on_subscribe = lambda *a, **k: subscribed.set()
    sub.on_connect = lambda c, *a, **k: c.subscribe(topics.ALL_BATCHES, qos=1)
    sub.connect("127.0.0.1", env.broker.port, 30)
    sub.loop_start()
    pubs = []
    try:
        if not subscribed.wait(10):
            raise RuntimeError("raw baseline subscriber did not subscribe")
        for code, sizes in per_site_sizes.items():
            d = env.root / "sites" / code
            p = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "raw-pub",
                    "--port",
                    str(env.broker.port),
                    "--ca",
                    str(d / "ca.crt"),
                    "--cert",
                    str(d / "mqtt.crt"),
                    "--key",
                    str(d / "mqtt.key"),
                    "--site",
                    code,
                    "--sizes",
                    ",".join(map(str, sizes)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=REPO,
                start_new_session=True,
            )
            _children.append(p)
            pubs.append(p)
        for p in pubs:
            line = p.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"raw publisher failed to start: {line!r}")
        times = []
        for rep in range(reps):
            done.clear()
            got["want"] = total * (rep + 1)
            t0 = time.perf_counter()
            for p in pubs:
                p.stdin.write(b"go\n")
                p.stdin.flush()
            if not done.wait(timeout):
                raise TimeoutError(f"raw baseline: {got['n']} of {got['want']} messages in {timeout:.0f} s")
            times.append(time.perf_counter() - t0)
            for p in pubs:  # every PUBACK is in before the next repetition starts
                if p.stdout.readline().strip() != b"sent":
                    raise RuntimeError("raw publisher failed")
        for p in pubs:
            p.stdin.close()
            p.wait(30)
        return times
    finally:
        for p in pubs:
            if p.poll() is None:
                p.kill()
                p.wait()
            with contextlib.suppress(ValueError):
                _children.remove(p)
        sub.disconnect()
        sub.loop_stop()


def _raw_publisher(argv: list[str]) -> int:
    """Worker: connect as a site, say 'ready'; per 'go' line publish all payloads with QoS 1,
    wait for their PUBACKs and say 'sent'; exit at end of input."""
    import argparse

    from iobase.mqtt import make_tls_client
    from protocol import topics

    ap = argparse.ArgumentParser()
    for name in ("--port", "--ca", "--cert", "--key", "--site", "--sizes"):
        ap.add_argument(name, required=True)
    a = ap.parse_args(argv)
    payloads = [os.urandom(int(s)) for s in a.sizes.split(",")]
    connected = threading.Event()
    c = make_tls_client(f"bench-raw-{a.site}-{os.getpid()}", a.ca, a.cert, a.key)
    c.on_connect = lambda *args, **kw: connected.set()
    c.connect("127.0.0.1", int(a.port), 30)
    c.loop_start()
    if not connected.wait(10):
        return 1
    print("ready", flush=True)
    topic = topics.site_batch(a.site)
    while sys.stdin.readline().strip() == "go":
        infos = [c.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(60)
        print("sent", flush=True)
    c.disconnect()
    c.loop_stop()
    return 0


# -- profiling (optional) ------------------------------------------------------------------------------
def pyspy_start(pyspy: str, pid: int, out: Path, rate: int = 200) -> subprocess.Popen:
    """`py-spy record` of a running process into collapsed stacks (stopped by pyspy_stop)."""
    p = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(pid),
            "-r",
            str(rate),
            "--threads",
            "--nonblocking",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _children.append(p)
    return p


def pyspy_stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with contextlib.suppress(ValueError):
        _children.remove(p)


def pyspy_summary(path: Path, must_contain: str, top: int = 15) -> str:
    """Share of samples (stacks containing `must_contain`) by our own source line (deepest
    frame in agent/, hub/ or protocol/; library time is charged to the line that called it),
    and by function inclusive."""
    import collections
    import re

    by_line, incl, total = collections.Counter(), collections.Counter(), 0
    ours = ("agent/", "hub/", "protocol/")
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if must_contain not in stack or not n.isdigit():
            continue
        n, frames = int(n), stack.split(";")
        total += n
        by_line[next((f for f in reversed(frames) if any(o in f for o in ours)), frames[-1])] += n
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            incl[f] += n
    if not total:
        return "(no samples)"
    out = [f"{total} samples in stacks through {must_contain}; by our source line (self + libraries it calls):"]
    out += [f"  {100 * v / total:5.1f} %  {k}" for k, v in by_line.most_common(top)]
    out.append("by function, inclusive:")
    out += [
        f"  {100 * v / total:5.1f} %  {k}"
        for k, v in incl.most_common()
        if "threading.py" not in k and not k.startswith("thread (")
    ][: top + 5]
    return "\n".join(out)


# -- output -------------------------------------------------------------------------------------------
def machine_line() -> str:
    """Cores, load and code version: other work on the machine slows every timing figure."""
    load = os.getloadavg()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        rev = f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return (
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) "
        f"at start; Python {sys.version.split()[0]}; code {rev}"
    )


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs, fmt: str = "{:,.0f}") -> str:
    """'median (min..max, n runs)'."""
    return f"{fmt.format(median(xs))} (min {fmt.format(min(xs))}, max {fmt.format(max(xs))}, {len(xs)} runs)"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "raw-pub":
        sys.exit(_raw_publisher(sys.argv[2:]))
    print(__doc__)


def add_agent_options(ap) -> None:
    """The agent.yaml knobs every end-to-end benchmark takes."""
    ap.add_argument("--batch-max", type=int, default=None, help="agent.yaml sync.batch_max_records")
    ap.add_argument("--inflight", type=int, default=None, help="agent.yaml sync.max_inflight_records")
    ap.add_argument("--rate", type=float, default=None, help="agent.yaml sync.rate_per_s")
    ap.add_argument(
        "--devices",
        choices=("real", "fake", "off"),
        default=None,
        help="agent.yaml devices.mode for the agents (default: as provisioned)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the hub directories (logs) for a look")


def run_main(main) -> None:
    """Run main(argv) and exit with its code; Ctrl-C stops cleanly (every process is stopped)."""
    import sys

    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted: every process this benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)
