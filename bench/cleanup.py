"""What every benchmark shares: whatever it started is stopped on exit, Ctrl-C, SIGTERM or error.

* `install_signal_handlers`  SIGTERM/SIGHUP behave like Ctrl-C (unwind through `finally`)
* `open_envs`, `close_env`   Envs (broker, hub, agents) still running; bench.env registers them
* `children`, `kill_children`  other child processes (raw publishers, py-spy); their starters
                             register them here
* `run_main`                 run a script's main(argv) and exit with its code; Ctrl-C stops cleanly

At interpreter exit the remaining children are killed and the remaining Envs closed.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.harness import Env


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C: unwind through `finally`, which stops everything."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


open_envs: list[Env] = []
children: list[subprocess.Popen] = []


def close_env(env: Env) -> None:
    """Stop agents, hub and broker of an Env (idempotent); a 2nd Ctrl-C cannot interrupt it."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env.close()
    finally:
        signal.signal(signal.SIGINT, old)
        with contextlib.suppress(ValueError):
            open_envs.remove(env)


def kill_children() -> None:
    for p in list(children):
        if p.poll() is None:
            p.kill()
            p.wait()
        children.remove(p)


@atexit.register
def _atexit_cleanup() -> None:
    kill_children()
    for env in list(open_envs):
        close_env(env)


def run_main(main) -> None:
    """Run main(argv) and exit with its code; Ctrl-C stops cleanly (every process is stopped)."""
    import sys

    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted: every process this benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)
