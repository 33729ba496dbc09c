"""`jiancha demo`: a managed Mosquitto, a hub and N simulated township sites on one machine.

Everything is real except the people: the broker runs with the generated TLS config, hub and
agents are separate processes, and a simulator plays the clerks, registering and progressing
realistic cases (some back-entered, so the wall shows yellow and red cards at once).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from agent.config import AgentConfig
from hub.config import HubConfig
from iobase.config import load_config
from iobase.files import private_dir
from protocol.calendar import CST, default_calendar
from provisioning.broker import ManagedBroker, free_port
from provisioning.errors import ProvisioningError

TEMPLATES = Path(__file__).parent / "templates"
SITE_NAMES = [
    "东阳镇便民服务中心",
    "修文镇便民服务中心",
    "张庆乡便民服务中心",
    "北田镇便民服务中心",
    "使赵乡便民服务中心",
    "龙白乡便民服务中心",
    "锦纶街道便民服务中心",
    "晋华街道便民服务中心",
    "西南街道便民服务中心",
    "新建街道便民服务中心",
]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
KEYS = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied")
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明"]


class DemoError(ProvisioningError):
    """A process of the demo did not come up or died; the message names it and its port."""


def prepare(data: Path, n_sites: int, http_port: int) -> tuple[Path, list[Path]]:
    """Provision the demo directory once; later runs reuse it (and add sites if asked)."""
    from hub.admin import import_catalog
    from provisioning.setup import add_site, init_hub, tighten_modes

    hub_yaml = data / "hub.yaml"
    if hub_yaml.exists():
        tighten_modes(data)  # a demo folder made by an older version
    if not hub_yaml.exists():
        init_hub(data, region="140700", name="晋中市政务服务中心（演示）", broker_port=free_port(), http_port=http_port)
        import_catalog(hub_yaml, TEMPLATES / "catalog-demo.csv")
        # the simulator back-enters weeks of history at once; a real hub keeps the tolerance
        import yaml

        raw = yaml.safe_load(hub_yaml.read_text(encoding="utf-8"))
        raw["supervision"]["backdate_tolerance_hours"] = None
        # ... and enters each case's steps right after it: judge them after seconds, not 30 min
        raw["supervision"]["backentry_grace_minutes"] = 0.2
        raw["supervision"]["sweep_interval_s"] = 5.0
        raw["doc_prefix"] = "晋中监察"
        hub_yaml.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for i in range(n_sites):
        code = f"140702-{i + 1:03d}"
        if not (data / "sites" / code / "agent.yaml").exists():
            add_site(data, code=code, name=SITE_NAMES[i % len(SITE_NAMES)])
    agents = [data / "sites" / f"140702-{i + 1:03d}" / "agent.yaml" for i in range(n_sites)]
    for path in agents:
        _use_fake_devices(path)
    _ensure_free_broker_port(hub_yaml, agents)
    return hub_yaml, agents


def _use_fake_devices(agent_yaml: Path) -> None:
    """Demo boxes run simulated keypads, lamps, signs (and cameras) instead of hardware."""
    cfg = load_config(agent_yaml, AgentConfig)
    if cfg.devices.mode != "fake":
        import yaml

        raw = yaml.safe_load(agent_yaml.read_text(encoding="utf-8"))
        # simulated keypads, lamps, sign and one camera per window; the demo hall is "open" at any
        # hour so unattended windows (with snapshots) show up whenever the demo runs
        raw["devices"] = {
            **raw.get("devices", {}),
            "mode": "fake",
            "heartbeat_s": 15,
            "fake_absent_s": 40,
            "fake_visits": [[0, 30], [90, 150]],
            "cameras": {"office_hours": {"periods": ["00:00-23:59"], "working_days_only": False}},
        }
        agent_yaml.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _ensure_free_broker_port(hub_yaml: Path, agents: list[Path]) -> None:
    """If the recorded broker port is taken now, move everything to a free one."""
    import socket

    cfg = load_config(hub_yaml, HubConfig)
    with socket.socket() as s:
        try:
            s.bind((cfg.broker.host, cfg.broker.port))
            return
        except OSError:
            pass
    port = free_port()
    for path in [hub_yaml, *agents]:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(f"port: {cfg.broker.port}\n", f"port: {port}\n", 1), encoding="utf-8")


class Simulator:
    """Plays the window clerks of every site through the agents' real HTTP API."""

    def __init__(self, agents: list[tuple[str, str]], seed: int | None = None):
        self.agents = agents  # (base url, token)
        self.rng = random.Random(seed)
        self.open: list[tuple[int, str, str]] = []  # (agent index, case_no, status)
        self.items = ["XK-001", "XK-002", "XK-003", "XK-004", "QR-001", "QR-002", "GG-001", "GG-002", "GG-003"]
        self.registered = 0
        self.cal = default_calendar()

    def _name(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(self.rng.choices(GIVEN, k=self.rng.randint(1, 2)))

    async def _post(self, s: aiohttp.ClientSession, i: int, path: str, body: dict) -> dict | None:
        url, token = self.agents[i]
        async with s.post(url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
            return await r.json() if r.status == 201 else None

    async def register(self, s, i: int, received: datetime | None = None, item: str | None = None) -> dict | None:
        """收件 at site i."""
        body = {
            "item_code": item or self.rng.choice(self.items),
            "applicant": {"name": self._name(), "phone": f"139{self.rng.randint(0, 99999999):08d}"},
            "window": str(self.rng.randint(1, 2)),
            "clerk": self._name(),
        }
        if received:
            body["received_at"] = received.isoformat()
        case = await self._post(s, i, "/api/cases", body)
        if case:
            self.registered += 1
        return case

    # (working days ago, item): XK-003/GG-003 promise 5/3 days with yellow at 1 day left, so
    # 5 and 3 days back are due today (yellow), 8 and 12 back are overdue (red), the rest green
    BACKFILL = [
        (1, "XK-001"),
        (2, "GG-002"),
        (3, "GG-003"),
        (5, "XK-003"),
        (4, "XK-001"),
        (8, "XK-003"),
        (12, "GG-003"),
        (16, "XK-001"),
    ]

    async def backfill(self, s) -> list[dict]:
        """补录 paper cases from the last weeks so lights of every colour are on the wall."""
        now = datetime.now(CST)
        made = []
        for i in range(len(self.agents)):
            for back, item in self.BACKFILL:
                day = now.date()
                for _ in range(back):
                    day = day - timedelta(days=1)
                    while not self.cal.is_working_day(day):
                        day -= timedelta(days=1)
                received = datetime(day.year, day.month, day.day, 9, self.rng.randint(0, 59), tzinfo=CST)
                case = await self.register(s, i, received, item=item)
                if not case:
                    continue
                made.append(case)
                await self._post(
                    s,
                    i,
                    f"/api/cases/{case['case_no']}/events",
                    {"type": "accept", "at": (received + timedelta(minutes=20)).isoformat(), "actor": "窗口受理"},
                )
                # back-entered cases stay open: they are the standing yellow/red wall
        return made

    async def step(self, s) -> None:
        """One tick of clerk work: new cases, acceptances, completions."""
        i = self.rng.randrange(len(self.agents))
        roll = self.rng.random()
        if roll < 0.5 or not self.open:
            case = await self.register(s, i)
            if case:
                self.open.append((i, case["case_no"], "received"))
            return
        k = self.rng.randrange(len(self.open))
        i, case_no, status = self.open[k]
        if status == "received":
            if await self._post(s, i, f"/api/cases/{case_no}/events", {"type": "accept", "actor": "窗口受理"}):
                self.open[k] = (i, case_no, "accepted")
        elif self.rng.random() < 0.5:
            done = await self._post(s, i, f"/api/cases/{case_no}/events", {"type": "complete", "actor": "审批科"})
            if done:
                self.open.pop(k)
                if done.get("window") and self.rng.random() < 0.8:  # most citizens rate the service
                    key = self.rng.choices(KEYS, weights=(50, 30, 12, 6, 2))[0]
                    await self._post(s, i, f"/api/devices/keypads/{done['window']}/press", {"key": key})


async def _simulate(agents, stop: asyncio.Event, interval: float = 1.5) -> Simulator:
    sim = Simulator(agents)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for _ in range(100):  # wait until every agent has its catalog
            if stop.is_set():
                return sim
            ok = 0
            for url, _t in agents:
                try:
                    async with s.get(url + "/api/health") as r:
                        ok += (await r.json()).get("catalog_version", 0) > 0
                except aiohttp.ClientError:
                    pass
            if ok == len(agents):
                break
            await asyncio.sleep(0.3)
        made = await sim.backfill(s)
        if made:
            c = made[0]
            print(f"  示例查询 (citizen lookup): 办件编号 {c['case_no']}  查询码 {c['query_code']}", flush=True)
        while not stop.is_set():
            try:
                await sim.step(s)
            except aiohttp.ClientError:
                pass
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
    return sim


class _Child:
    """One process the demo started: what it is, where it listens, where it logs."""

    def __init__(self, what: str, host: str, port: int, log: Path, args: list[str]):
        self.what, self.host, self.port, self.log = what, host, port, log
        f = open(log, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *args],
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            f.close()

    def describe(self) -> str:
        return f"the {self.what} (pid {self.proc.pid}, http://{self.host}:{self.port})"

    def died(self) -> str | None:
        """None while it runs; else a message naming it, its port, its exit code and log tail."""
        code = self.proc.poll()
        if code is None:
            return None
        return f"{self.describe()} exited with code {code}; last lines of {self.log}:\n{_tail(self.log)}"


def _tail(log: Path, lines: int = 12) -> str:
    try:
        text = log.read_bytes()[-8192:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _check_port_free(what: str, host: str, port: int) -> None:
    """Fail before starting anything that would die on EADDRINUSE -- while whatever holds the
    port answers our health check as if all were well."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the hub does: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DemoError(
                f"demo: the {what} cannot listen on {host}:{port}: {exc.strerror or exc} "
                f"(another program holds the port); choose another with --http-port"
            ) from None


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on TCP `port` (Linux /proc); None where /proc cannot tell."""
    found: set[str] = set()
    seen = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                found.add(f[9])
    return found if seen else None


def _holds_port(pid: int, port: int) -> bool:
    """True when process `pid` owns the socket listening on `port` (True where we cannot tell)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _wait_http(child: _Child, timeout: float = 30.0) -> None:
    """Wait until `child` answers its health check from a socket it holds itself (not another
    program on the same port), and is still alive."""
    import urllib.request

    url = f"http://{child.host}:{child.port}/api/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (msg := child.died()) is not None:
            raise DemoError(f"demo: {msg}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
        except OSError:
            time.sleep(0.2)
            continue
        if (msg := child.died()) is not None:  # someone else answered on its port
            raise DemoError(f"demo: {msg}")
        if not _holds_port(child.proc.pid, child.port):
            time.sleep(0.2)  # another program answered; ours is not up yet
            continue
        return
    raise DemoError(f"demo: {child.describe()} did not answer {url} within {timeout:.0f} s; see {child.log}")


DEMO_LOGIN = "demo-admin"


def demo_admin(hub_yaml: Path) -> str:
    """The demo's admin account (docs/accounts.md), with a new random password each run; returns it."""
    import secrets

    from hub.admin import user_add, user_list, user_reset

    password = secrets.token_urlsafe(12)
    if any(u.login == DEMO_LOGIN for u in user_list(hub_yaml)):
        user_reset(hub_yaml, DEMO_LOGIN, password)
    else:
        user_add(hub_yaml, DEMO_LOGIN, "admin", None, password, "演示管理员")
    return password


DEMO_CLERK = "演示窗口员"


def demo_clerk(agent_yaml: Path, lookup_url: str) -> str:
    """The demo's clerk at window 1 of a site (docs/clerk.md), with a new random PIN each run, and
    the hall's lookup URL for its receipts; returns the PIN."""
    import secrets

    import yaml

    from agent import clerks
    from agent.store import AgentStore

    raw = yaml.safe_load(agent_yaml.read_text(encoding="utf-8"))
    raw["hall"] = {"supervision_phone": "0354-12345", "lookup_url": lookup_url}
    agent_yaml.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    cfg = load_config(agent_yaml, AgentConfig)
    while True:
        pin = f"{secrets.randbelow(10**6):06d}"
        try:
            clerks.check_pin(pin)
            break
        except clerks.ClerkError:
            continue
    store = AgentStore(Path(cfg.data_dir) / "agent.db", cfg.site.code)
    try:
        now = clerks.now_ms()
        if clerks.get(store.conn, DEMO_CLERK):
            store.local_write(lambda c: clerks.reset(c, DEMO_CLERK, pin, now, "1"))
        else:
            store.local_write(lambda c: clerks.add(c, DEMO_CLERK, "1", pin, None, now))
    finally:
        store.close()
    return pin


def run_demo(
    *, sites: int = 3, http_port: int = 8080, data: Path = Path("demo-data"), duration: float | None = None
) -> int:
    """Run the demo until Ctrl-C (or `duration` seconds)."""
    if not 1 <= sites <= 50:
        raise ValueError("--sites must be between 1 and 50")
    data = Path(data).resolve()
    hub_yaml, agent_yamls = prepare(data, sites, http_port)
    logs = private_dir(data / "logs")  # the hub's log can name people
    hub_cfg = load_config(hub_yaml, HubConfig)
    demo_password = demo_admin(hub_yaml)
    children: list[_Child] = []
    print(f"jiancha demo: state in {data}, logs in {logs}", flush=True)
    hub_host = hub_cfg.api.host
    _check_port_free("hub", hub_host, http_port)
    with ManagedBroker(data) as broker:
        try:
            hub = _Child(
                "hub",
                hub_host,
                http_port,
                logs / "hub.log",
                ["hub", "run", "--config", str(hub_yaml), "--http-port", str(http_port)],
            )
            children.append(hub)
            _wait_http(hub)
            clerk_pin = demo_clerk(agent_yamls[0], f"http://127.0.0.1:{http_port}/public")
            agents = []
            for y in agent_yamls:
                cfg = load_config(y, AgentConfig)
                port = free_port()
                p = _Child(
                    f"agent of site {cfg.site.code}",
                    "127.0.0.1",
                    port,
                    logs / f"agent-{cfg.site.code}.log",
                    ["agent", "run", "--config", str(y), "--http-port", str(port)],
                )
                children.append(p)
                _wait_http(p)
                agents.append((f"http://127.0.0.1:{port}", cfg.http.token))
            time.sleep(0.5)
            _check_alive(children, broker)  # nothing died while the others started
            print(f"\n  监察大屏 (dashboard): http://127.0.0.1:{http_port}/", flush=True)
            print(f"  登录账号 (login): {DEMO_LOGIN}  密码 (password): {demo_password}", flush=True)
            print(f"  机器令牌 (API bearer token): {hub_cfg.api.admin_token}", flush=True)
            print(f"  办件查询 (public lookup): http://127.0.0.1:{http_port}/public", flush=True)
            print(
                f"  窗口受理 (clerk window of {load_config(agent_yamls[0], AgentConfig).site.code}): {agents[0][0]}/"
                f"  窗口人员 {DEMO_CLERK}  PIN {clerk_pin}",
                flush=True,
            )
            print(f"  broker: mqtts://127.0.0.1:{broker.port}  sites: {len(agents)}  — Ctrl-C to stop\n", flush=True)
            failure = asyncio.run(_run_sim(agents, duration, children, broker))
            if failure:
                raise DemoError(f"demo: {failure}")
        except KeyboardInterrupt:
            pass
        finally:
            for c in reversed(children):
                if c.proc.poll() is None:
                    c.proc.send_signal(signal.SIGTERM)
            for c in reversed(children):
                try:
                    c.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
            print("jiancha demo: stopped", flush=True)
    return 0


def _check_alive(children: list[_Child], broker: ManagedBroker) -> None:
    if failure := _failure(children, broker):
        raise DemoError(f"demo: {failure}")


def _failure(children: list[_Child], broker: ManagedBroker) -> str | None:
    """What died, or None while the broker and every child run."""
    if not broker.is_running():
        return (
            f"the broker (mosquitto, port {broker.port}) exited; last lines of "
            f"{broker.layout.log}:\n{broker.log_tail(12)}"
        )
    for c in children:
        if (msg := c.died()) is not None:
            return msg
    return None


async def _run_sim(
    agents, duration: float | None, children: list[_Child] | None = None, broker: ManagedBroker | None = None
) -> str | None:
    """Simulate until Ctrl-C, `duration`, or a process dies; returns what died (None if nothing)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration:
        loop.call_later(duration, stop.set)
    failure: list[str] = []

    async def watch() -> None:
        while not stop.is_set():
            if children is not None and broker is not None and (msg := _failure(children, broker)):
                failure.append(msg)
                stop.set()
                return
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    sim = await _simulate(agents, stop)
    watcher.cancel()
    print(f"jiancha demo: {sim.registered} cases registered by the simulated clerks", flush=True)
    return failure[0] if failure else None
