"""Ports for the servers tests start (Mosquitto, PostgreSQL, hub, agents, SMTP, HTTP stubs) that no
other test can be handed at the same time, also under pytest-xdist and beside other test runs.

`provisioning.broker.free_port()` asks the kernel for a free port and closes it, and the server
binds it a moment later. In between, another xdist worker asking the kernel the same way, or any
outgoing connection (they draw their local port from the same ephemeral range), may take it.
Here a process claims a block of ports *below* the kernel's ephemeral range, so that neither can
happen: it holds an exclusive flock on `<tmp>/jiancha-test-ports/<first port>.lock` for as long
as it lives (a second worker, or another checkout's test run, claims the next block), and hands
out the ports of its block in turn, skipping any port something is bound to. A port comes round
again only after the whole block (500 ports) has been handed out. When no block can be claimed
(more than 25 test processes at once, or an unusual ephemeral range) it falls back to asking the
kernel.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
import threading
from pathlib import Path

BLOCK = 500
FIRST = 20000  # above the fixed ports some tests write into configs (18883, 18080) and never bind

_lock = threading.Lock()
_block: dict = {}  # pid, fd, first, next


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _claim() -> dict:
    """Lock the first block nobody holds; {} when none is left."""
    folder = Path(tempfile.gettempdir()) / "jiancha-test-ports"
    folder.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        folder.chmod(0o1777)  # any user's test run may claim blocks
    for first in range(FIRST, _ephemeral_low() - BLOCK + 1, BLOCK):
        fd = os.open(folder / f"{first}.lock", os.O_RDWR | os.O_CREAT, 0o666)  # close-on-exec
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return {"pid": os.getpid(), "fd": fd, "first": first, "next": 0}
    return {}


def _bindable(port: int) -> bool:
    """Nothing listens on, is bound to, or lingers in TIME_WAIT on `port` (any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _kernel_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port() -> int:
    """A TCP port that is free now and that no other test process will be handed meanwhile."""
    global _block
    with _lock:
        if _block.get("pid") != os.getpid():  # first call, or a forked child: a block of its own
            _block = _claim()
        if not _block:
            return _kernel_port()
        for _ in range(BLOCK):
            port = _block["first"] + _block["next"]
            _block["next"] = (_block["next"] + 1) % BLOCK
            if _bindable(port):
                return port
        return _kernel_port()
