"""The hub, broker and sites an end-to-end benchmark runs against, and the agent.yaml knobs.

Process management is the e2e harness (tests/e2e/harness.py: `Env`, a provisioned hub
directory, a ManagedBroker on a free 127.0.0.1 port, real `python -m hub run` and
`python -m agent run` processes); this module adds what the benchmarks need on top:

* `bench_env`          an Env in a temporary folder that is always torn down (also on Ctrl-C/SIGTERM)
* `start_agents`       several agents at once
* `set_agent_sync`, `set_agent_devices`, `agent_sync_settings`  agent.yaml sync.* and devices.mode
* `add_agent_options`  the command-line flags for those knobs
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import yaml

from bench.cleanup import close_env, kill_children, open_envs
from tests.e2e.harness import Env, Proc, free_port, wait_for


@contextlib.contextmanager
def bench_env(sites=("S01",), *, keep: bool = False):
    """A provisioned Env under a fresh temporary folder; closed and removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="jiancha-bench-"))
    env = None
    try:
        env = Env(tmp / "hub", sites=tuple(sites))
        open_envs.append(env)
        yield env
    finally:
        if env is not None:
            close_env(env)
        kill_children()
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
