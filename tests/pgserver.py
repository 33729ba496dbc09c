"""A PostgreSQL server of the test session's own: initdb into a temporary folder, a free port on
127.0.0.1, stopped at the end. Never the server a machine may already run (DESIGN §9, §13).

Debian's `postgresql` package provides the binaries (/usr/lib/postgresql/<major>/bin); the
README's test command installs it when missing. PostgreSQL refuses to run as root, so under
root the server runs as the `postgres` user the package creates (or `nobody`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.ports import free_port

DB = "jiancha"


class PgUnavailable(RuntimeError):
    """No PostgreSQL binaries: the message says what to install."""


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's bin folder (or $JIANCHA_PG_BINDIR)."""
    if os.environ.get("JIANCHA_PG_BINDIR"):
        return Path(os.environ["JIANCHA_PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PgUnavailable("PostgreSQL is not installed: apt-get install postgresql (bash .ci/bootstrap.sh test does)")


class PgServer:
    """One initdb'd cluster; `url(db)` for a database on it; `create_db()` for a fresh one."""

    def __init__(self, root: Path | None = None):
        self.bindir = pg_bindir()
        self.root = Path(root or tempfile.mkdtemp(prefix="jiancha-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.user is None:
                raise PgUnavailable("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")
        self._count = 0
        self.created: list[str] = []  # databases `drop_created` drops (tests/conftest.py, after each test)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, *, settings: str = "-c shared_buffers=64MB", wait_s: int = 60) -> PgServer:
        """initdb (unless the folder already holds a cluster: bench/province.py keeps one) and
        start on `self.port`; `settings` are extra server options (-c name=value ...)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            out = self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "jiancha",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            )
            if out.returncode != 0:
                raise PgUnavailable(f"initdb failed: {out.stderr.strip()[-500:]}")
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 {settings}"
        )
        out = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            str(wait_s),
            "start",
            timeout=wait_s + 60,
        )
        if out.returncode != 0:
            log = (
                (self.root / "server.log").read_text(errors="replace")[-1500:]
                if (self.root / "server.log").exists()
                else ""
            )
            raise PgUnavailable(f"PostgreSQL did not start: {out.stderr.strip()[-500:]} {log}")
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://jiancha@127.0.0.1:{self.port}/{db}"

    def create_db(self, prefix: str = "t", template: str | None = None) -> str:
        """A new database (empty, or a copy of database `template`); its URL."""
        import psycopg

        self._count += 1
        name = f"{prefix}_{os.getpid()}_{self._count}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return self.url(name)

    def drop_created(self) -> None:
        """Drop the databases made since the last call, except those still connected to (they
        are left for `stop`). Each is a ~9 MB copy: dropped as the tests go, a session's cluster
        stays small and `stop` does not spend seconds deleting gigabytes."""
        import psycopg

        names, self.created = self.created, []
        if not names:
            return
        with psycopg.connect(self.url(), autocommit=True) as conn:
            busy = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname = ANY(%s)", (names,)
                ).fetchall()
            }
            for name in names:
                if name not in busy:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
