"""Several ingest workers on one PostgreSQL store: `jiancha hub run --workers N`.

Each worker is a whole hub process (`jiancha hub run --worker K`) with a broker identity of its
own, `jc-hub-K` (the broker names a session by the certificate's CN, so two processes cannot
share one), issued by `jiancha provision add-hub-workers`. The workers subscribe to the sites'
up-topics through the shared subscription `$share/jc-hub/…`: the broker hands each message to
one of them. They serve the HTTP API on one port (SO_REUSEPORT). What makes that safe:

- ingest: a group's transaction holds the locks of its sites (hub.db.site_transaction), so the
  contiguous mark, the acks and the projection of one site are computed by one worker at a
  time, and per-site order is restored by seq as it always was (a record past a gap waits);
- once-only work (the sweep, the config push, the notifier, the document worker) runs in the
  worker holding the leader lease (hub.lease), and moves to another when that one dies;
- counters: each worker adds to its own rows (counter_shards), read as totals (counter_totals).

`supervise` is the parent process of `--workers N`: it starts workers 1..N, restarts one that
dies (under the same identity, so the broker hands it what it had in flight and what was
queued for it meanwhile), and stops them all on SIGTERM/SIGINT. Workers on other machines run
`jiancha hub run --worker K` with their own K against the same store and broker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hub.config import HubConfig
from hub.db import SQLITE, engine_of
from iobase.config import ConfigError

log = logging.getLogger("jiancha.hub.workers")

WORKER_PREFIX = "jc-hub-"
MAX_WORKERS = 64
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STOP_GRACE_S = 30.0
# the hub's state names when the hub started; the workers of one supervisor all announce its
# start, so a worker restarted alone does not look like a new hub to every box (a box that sees a
# new hub announces itself again and resends what it has in flight)
EPOCH_ENV = "JIANCHA_HUB_EPOCH_MS"


def worker_identity(k: int) -> str:
    """The broker identity (certificate CN) of worker k."""
    return f"{WORKER_PREFIX}{k}"


def worker_cert_paths(cfg: HubConfig, k: int) -> tuple[Path, Path]:
    """Worker k's certificate and key: beside the hub's own (hub/workers/jc-hub-K.crt/.key)."""
    folder = Path(cfg.broker.cert).parent / "workers"
    return folder / f"{worker_identity(k)}.crt", folder / f"{worker_identity(k)}.key"


def worker_credentials(cfg: HubConfig, k: int, store_url: str) -> tuple[str, Path, Path]:
    """(identity, cert, key) for worker k, or ConfigError saying what is missing."""
    if not 1 <= k <= MAX_WORKERS:
        raise ConfigError(f"--worker {k}: workers are numbered 1 to {MAX_WORKERS}")
    if engine_of(store_url) == SQLITE:
        raise ConfigError(
            "several hub workers need the store on PostgreSQL (store.url: postgresql://… in hub.yaml; "
            'docs/operations.md "The hub\'s store on PostgreSQL"); on SQLite run one hub process'
        )
    cert, key = worker_cert_paths(cfg, k)
    if not cert.exists() or not key.exists():
        raise ConfigError(
            f"no broker identity for worker {k} ({cert} is missing): issue it with "
            f"`jiancha provision add-hub-workers --dir HUB_DIR --count {max(k, cfg.workers.count)}`"
        )
    return worker_identity(k), cert, key


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A worker gets SIGTERM when the supervisor dies, even by kill -9 (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Supervisor:
    """Starts, restarts and stops the worker processes."""

    def __init__(self, config: Path, n: int, *, http_port: int | None = None, python: str = sys.executable):
        self.config = Path(config)
        self.n = n
        self.http_port = http_port
        self.python = python
        self.procs: dict[int, subprocess.Popen] = {}
        self.backoff: dict[int, float] = {}
        self.started_at: dict[int, float] = {}
        self.epoch_ms = int(time.time() * 1000)
        self.pending: dict[int, float] = {}  # worker → when to start it again (monotonic)
        self.restarts = 0
        self.stopping = False

    def command(self, k: int) -> list[str]:
        cmd = [self.python, "-m", "hub", "run", "--config", str(self.config), "--worker", str(k)]
        return cmd + (["--http-port", str(self.http_port)] if self.http_port is not None else [])

    def spawn(self, k: int) -> None:
        env = {**os.environ, EPOCH_ENV: str(self.epoch_ms)}  # one hub state for all its workers
        p = subprocess.Popen(self.command(k), preexec_fn=_die_with_parent, env=env)
        self.procs[k] = p
        self.started_at[k] = time.monotonic()
        print(f"worker {worker_identity(k)} pid {p.pid}", flush=True)

    def start(self) -> None:
        for k in range(1, self.n + 1):
            self.spawn(k)

    def poll(self) -> None:
        """Restart any worker that exited, after a back-off that grows while it keeps dying."""
        for k, p in list(self.procs.items()):
            rc = p.poll()
            if rc is None or self.stopping:
                continue
            up = time.monotonic() - self.started_at[k]
            wait = RESTART_MIN_S if up > 60 else min(self.backoff.get(k, RESTART_MIN_S / 2) * 2, RESTART_MAX_S)
            self.backoff[k] = wait
            log.warning("worker %s (pid %d) exited with %s after %.0fs; restarting in %.0fs", k, p.pid, rc, up, wait)
            print(f"worker {worker_identity(k)} pid {p.pid} exited ({rc}); restarting in {wait:.0f}s", flush=True)
            del self.procs[k]
            self.restarts += 1
            self.pending[k] = time.monotonic() + wait
        for k, at in list(self.pending.items()):
            if time.monotonic() >= at and not self.stopping:
                del self.pending[k]
                self.spawn(k)

    def stop(self) -> None:
        """SIGTERM to every worker (each drains its queue and gives the lease up), then SIGKILL
        after STOP_GRACE_S."""
        self.stopping = True
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def supervise(config: Path, cfg: HubConfig, n: int, *, http_port: int | None = None) -> int:
    """Run `n` workers until SIGTERM/SIGINT; 0 on a clean stop."""
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"--workers {n}: between 1 and {MAX_WORKERS}")
    store_url = cfg.store_url(Path(cfg.data_dir))
    for k in range(1, n + 1):
        worker_credentials(cfg, k, store_url)  # every identity there before anything starts
    sup = Supervisor(config, n, http_port=http_port)
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    sup.start()
    print(f"hub {cfg.name}: {n} workers started (pid {os.getpid()} supervises)", flush=True)
    try:
        while not stop["now"]:
            sup.poll()
            time.sleep(0.2)
    finally:
        sup.stop()
    return 0
