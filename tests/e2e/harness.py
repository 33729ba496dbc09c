"""End-to-end harness: a provisioned hub directory, a real Mosquitto on a free port, and real
`python -m hub run` / `python -m agent run` processes. Nothing of ours is faked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

from agent.config import AgentConfig
from hub.admin import import_catalog
from hub.config import HubConfig
from iobase.config import load_config
from protocol.calendar import CST, default_calendar
from provisioning.broker import ManagedBroker
from provisioning.setup import add_site, init_hub
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "jiancha" / "templates" / "catalog-demo.csv"


def http(
    method: str, url: str, body=None, token: str | None = None, raw: bytes | None = None, timeout: float = 10.0
) -> tuple[int, object]:
    """(status, parsed JSON or text) for one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


# -- dates ------------------------------------------------------------------------------------
# The hub, the agents and Mosquitto run on their own (real, or in CI's second run shifted) wall
# clock, so a test never writes a date: it derives one from now and the project's calendar.


def today() -> date:
    """Today in China time, by the same wall clock as the processes under test."""
    return datetime.now(CST).date()


def at(d: date, hour: int = 9, minute: int = 0) -> datetime:
    """`d` at hh:mm China time."""
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=CST)


def working_days_ago(n: int) -> date:
    """The n-th working day before today (seeded calendar; weekends only in years not loaded)."""
    return default_calendar().add_working_days(today(), -n)[0]


def last_day_before_a_holiday(at_least_working_days_ago: int) -> date:
    """The latest working day, at least that many working days ago, followed by a holiday of a
    seeded year (a deadline counted from it must skip the holiday): the holiday table matters."""
    cal, d = default_calendar(), working_days_ago(at_least_working_days_ago)
    while d.year >= min(cal.years()):
        table = cal.table((d + timedelta(days=1)).year)
        if table and d + timedelta(days=1) in table.holidays and cal.is_loaded(d.year) and cal.is_working_day(d):
            return d
        d -= timedelta(days=1)
    raise AssertionError("no seeded holiday in the past")


def wait_for(pred, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll `pred` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


class Proc:
    """One of our processes, with its log."""

    def __init__(self, args: list[str], log: Path, health_url: str, env: dict | None = None):
        self.args, self.log, self.health_url, self.extra_env = args, log, health_url, env or {}
        self.p: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Proc:
        """Start and wait for /api/health."""
        f = open(self.log, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "JIANCHA_CLOCK_QUALITY": "ntp", **self.extra_env}
        self.p = subprocess.Popen(
            [sys.executable, "-m", *self.args],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        f.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> Proc:
        """Until /api/health answers 200 (fails at once if the process exits)."""
        wait_for(self._healthy, timeout, what=f"{self.args[0]} health ({self.tail()})")
        return self

    def _healthy(self):
        if self.p.poll() is not None:
            raise AssertionError(f"{self.args[0]} exited {self.p.returncode}:\n{self.tail()}")
        return http("GET", self.health_url, timeout=2)[0] == 200

    def stop(self) -> None:
        """SIGTERM and wait (graceful)."""
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """SIGTERM, without waiting: `wait_stopped` waits (several processes stop at once)."""
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 15) -> None:
        """Wait for the process to exit; SIGKILL it after `timeout` seconds."""
        if self.p and self.p.poll() is None:
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def kill(self) -> None:
        """SIGKILL: a crash or a power cut of the process."""
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def tail(self, n: int = 30) -> str:
        """Last lines of the log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class Env:
    """A hub directory with sites, a broker, a hub and agents."""

    def __init__(
        self,
        root: Path,
        sites=("S01", "S02"),
        store_url: str | None = None,
        *,
        region: str = "140700",
        level: str = "city",
        name: str = "测试市政务服务中心",
    ):
        """`store_url`: the hub's store (default: SQLite in the hub's data folder); `region`,
        `level`, `name`: the hub's (a county under a city: tests/e2e/test_uplink.py)."""
        self.root = root
        self.broker_port = free_port()
        self.hub_port = free_port()
        init_hub(root, region=region, name=name, level=level, broker_port=self.broker_port, http_port=self.hub_port)
        for code in sites:
            add_site(root, code=code, name=f"{code}便民服务中心")
        if store_url is not None:
            self.configure_hub(store={"url": store_url})
        import_catalog(root / "hub.yaml", CATALOG)
        self.configure_hub(supervision={"backentry_grace_minutes": 0.05, "sweep_interval_s": 1.0})
        self.hub_cfg = load_config(root / "hub.yaml", HubConfig)
        self.token = self.hub_cfg.api.admin_token
        from hub.admin import user_add

        self.login, self.password = "e2e-admin", "e2e-admin-password-1"  # the web's account (docs/accounts.md)
        user_add(root / "hub.yaml", self.login, "admin", None, self.password)
        self.broker: ManagedBroker | None = None
        self.hub: Proc | None = None
        self.agents: dict[str, Proc] = {}
        self.agent_ports: dict[str, int] = {}
        (root / "logs").mkdir(exist_ok=True)

    def configure_hub(self, **sections) -> None:
        """Merge keys into sections of hub.yaml. Tests back-enter paper cases (补录) and want
        their cards within seconds: a 3 s grace and a 1 s sweep instead of 30 min and 30 s."""
        import yaml

        path = self.root / "hub.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")

    # -- parts --------------------------------------------------------------------------------
    def start_broker(self) -> ManagedBroker:
        """Start (or restart) the managed Mosquitto."""
        if self.broker is None:
            self.broker = ManagedBroker(self.root)
        else:
            self.broker.start()
        return self.broker

    def start_hub(self, wait: bool = True, env: dict | None = None) -> Proc:
        """Start the hub process (and wait for its health unless `wait=False`); `env`: extra
        environment variables (a power-cut shim, tests/powercut)."""
        self.hub = Proc(
            ["hub", "run", "--config", str(self.root / "hub.yaml")],
            self.root / "logs" / "hub.log",
            f"{self.hub_url}/api/health",
            env=env,
        ).start(wait)
        return self.hub

    def set_agent(self, code: str, **sections) -> None:
        """Change sections of a site's agent.yaml, e.g. devices={"mode": "fake"}."""
        import yaml

        path = self.root / "sites" / code / "agent.yaml"
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key, value in sections.items():
            cfg[key] = {**cfg.get(key, {}), **value}
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")

    def start_agent(self, code: str, env: dict | None = None, wait: bool = True) -> Proc:
        """Start (or restart) a site's agent on a stable port (and wait for its health unless
        `wait=False`)."""
        port = self.agent_ports.setdefault(code, free_port())
        proc = Proc(
            ["agent", "run", "--config", str(self.root / "sites" / code / "agent.yaml"), "--http-port", str(port)],
            self.root / "logs" / f"agent-{code}.log",
            f"http://127.0.0.1:{port}/api/health",
            env=env,
        ).start(wait)
        self.agents[code] = proc
        return proc

    def start_hub_and_agents(self, *codes: str) -> None:
        """Start the hub and these sites' agents side by side and wait until each is healthy (an
        agent does not need the hub to start: it connects to the broker and drains when the hub
        answers, which is also how a box boots in a hall whose city link is down)."""
        procs = [self.start_hub(wait=False), *(self.start_agent(code, wait=False) for code in codes)]
        for proc in procs:
            proc.wait_healthy()

    def close(self) -> None:
        """Stop everything: SIGTERM to the agents and the hub at once, wait for each, then the
        broker."""
        procs = [*self.agents.values(), *([self.hub] if self.hub else [])]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait_stopped()
        if self.broker:
            self.broker.close()

    # -- helpers ------------------------------------------------------------------------------
    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    def agent_url(self, code: str) -> str:
        return f"http://127.0.0.1:{self.agent_ports[code]}"

    def agent_token(self, code: str) -> str:
        return load_config(self.root / "sites" / code / "agent.yaml", AgentConfig).http.token

    def register(self, code: str, item: str = "XK-001", **extra) -> tuple[int, dict]:
        """POST /api/cases at a site."""
        body = {
            "item_code": item,
            "applicant": {"name": "张三", "phone": "13800000000", "id_no": "140702199001011234"},
            **extra,
        }
        return http("POST", f"{self.agent_url(code)}/api/cases", body, self.agent_token(code))

    def event(self, code: str, case_no: str, type_: str, **extra) -> tuple[int, dict]:
        """POST an event to a case at a site."""
        return http(
            "POST",
            f"{self.agent_url(code)}/api/cases/{case_no}/events",
            {"type": type_, **extra},
            self.agent_token(code),
        )

    def agent_health(self, code: str) -> dict:
        return http("GET", f"{self.agent_url(code)}/api/health")[1]

    def hub_get(self, path: str):
        status, body = http("GET", self.hub_url + path, token=self.token)
        assert status == 200, (path, status, body)
        return body

    def wait_synced(self, code: str, timeout: float = 60.0) -> dict:
        """Until the agent's whole log is acknowledged by the hub."""

        def done():
            h = self.agent_health(code)
            return h if h["acked_seq"] == h["last_seq"] else None

        return wait_for(done, timeout, 0.2, what=f"{code} fully acked")

    def metrics(self) -> dict[str, float]:
        """/metrics parsed into {'name{labels}': value}."""
        status, text = http("GET", self.hub_url + "/metrics")
        assert status == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out
