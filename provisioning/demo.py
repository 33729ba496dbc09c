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

from protocol.calendar import CST, default_calendar
from provisioning.broker import ManagedBroker, free_port
from provisioning.config import AgentConfig, HubConfig, load_config

TEMPLATES = Path(__file__).parent / "templates"
SITE_NAMES = ["东阳镇便民服务中心", "修文镇便民服务中心", "张庆乡便民服务中心", "北田镇便民服务中心",
              "使赵乡便民服务中心", "龙白乡便民服务中心", "锦纶街道便民服务中心", "晋华街道便民服务中心",
              "西南街道便民服务中心", "新建街道便民服务中心"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
KEYS = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied")
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明"]


def prepare(data: Path, n_sites: int, http_port: int) -> tuple[Path, list[Path]]:
    """Provision the demo directory once; later runs reuse it (and add sites if asked)."""
    from hub.admin import import_catalog
    from provisioning.setup import add_site, init_hub
    hub_yaml = data / "hub.yaml"
    if not hub_yaml.exists():
        init_hub(data, region="140700", name="晋中市政务服务中心（演示）", broker_port=free_port(),
                 http_port=http_port)
        import_catalog(hub_yaml, TEMPLATES / "catalog-demo.csv")
        # the simulator back-enters weeks of history at once; a real hub keeps the tolerance
        import yaml
        raw = yaml.safe_load(hub_yaml.read_text(encoding="utf-8"))
        raw["supervision"]["backdate_tolerance_hours"] = None
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
        raw["devices"] = {**raw.get("devices", {}), "mode": "fake", "heartbeat_s": 15, "fake_absent_s": 40,
                          "fake_visits": [[0, 30], [90, 150]],
                          "cameras": {"office_hours": {"periods": ["00:00-23:59"], "working_days_only": False}}}
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
        self.agents = agents            # (base url, token)
        self.rng = random.Random(seed)
        self.open: list[tuple[int, str, str]] = []   # (agent index, case_no, status)
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
        body = {"item_code": item or self.rng.choice(self.items),
                "applicant": {"name": self._name(), "phone": f"139{self.rng.randint(0, 99999999):08d}"},
                "window": str(self.rng.randint(1, 2)), "clerk": self._name()}
        if received:
            body["received_at"] = received.isoformat()
        case = await self._post(s, i, "/api/cases", body)
        if case:
            self.registered += 1
        return case

    # (working days ago, item): XK-003/GG-003 promise 5/3 days with yellow at 1 day left, so
    # 5 and 3 days back are due today (yellow), 8 and 12 back are overdue (red), the rest green
    BACKFILL = [(1, "XK-001"), (2, "GG-002"), (3, "GG-003"), (5, "XK-003"), (4, "XK-001"),
                (8, "XK-003"), (12, "GG-003"), (16, "XK-001")]

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
                await self._post(s, i, f"/api/cases/{case['case_no']}/events",
                                 {"type": "accept", "at": (received + timedelta(minutes=20)).isoformat(),
                                  "actor": "窗口受理"})
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
                if done.get("window") and self.rng.random() < 0.8:     # most citizens rate the service
                    key = self.rng.choices(KEYS, weights=(50, 30, 12, 6, 2))[0]
                    await self._post(s, i, f"/api/devices/keypads/{done['window']}/press", {"key": key})


async def _simulate(agents, stop: asyncio.Event, interval: float = 1.5) -> Simulator:
    sim = Simulator(agents)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for _ in range(100):   # wait until every agent has its catalog
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
            except asyncio.TimeoutError:
                pass
    return sim


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    f = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}; see its log")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def run_demo(*, sites: int = 3, http_port: int = 8080, data: Path = Path("demo-data"),
             duration: float | None = None) -> int:
    """Run the demo until Ctrl-C (or `duration` seconds)."""
    if not 1 <= sites <= 50:
        raise ValueError("--sites must be between 1 and 50")
    data = Path(data).resolve()
    hub_yaml, agent_yamls = prepare(data, sites, http_port)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    hub_cfg = load_config(hub_yaml, HubConfig)
    procs: list[subprocess.Popen] = []
    print(f"jiancha demo: state in {data}, logs in {logs}", flush=True)
    with ManagedBroker(data) as broker:
        try:
            hub = _spawn(["hub", "run", "--config", str(hub_yaml), "--http-port", str(http_port)], logs / "hub.log")
            procs.append(hub)
            _wait_http(f"http://127.0.0.1:{http_port}/api/health", proc=hub)
            agents = []
            for y in agent_yamls:
                cfg = load_config(y, AgentConfig)
                port = free_port()
                p = _spawn(["agent", "run", "--config", str(y), "--http-port", str(port)],
                           logs / f"agent-{cfg.site.code}.log")
                procs.append(p)
                _wait_http(f"http://127.0.0.1:{port}/api/health", proc=p)
                agents.append((f"http://127.0.0.1:{port}", cfg.http.token))
            print(f"\n  监察大屏 (dashboard): http://127.0.0.1:{http_port}/", flush=True)
            print(f"  登录令牌 (login token): {hub_cfg.api.admin_token}", flush=True)
            print(f"  办件查询 (public lookup): http://127.0.0.1:{http_port}/public", flush=True)
            print(f"  broker: mqtts://127.0.0.1:{broker.port}  sites: {len(agents)}  — Ctrl-C to stop\n", flush=True)
            asyncio.run(_run_sim(agents, duration))
        except KeyboardInterrupt:
            pass
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in reversed(procs):
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
            print("jiancha demo: stopped", flush=True)
    return 0


async def _run_sim(agents, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration:
        loop.call_later(duration, stop.set)
    sim = await _simulate(agents, stop)
    print(f"jiancha demo: {sim.registered} cases registered by the simulated clerks", flush=True)
