"""`jiancha clerk add|list|disable|reset`: the box's clerk accounts (agent/clerks.py) from the shell.

Runs beside a running agent (SQLite WAL: the agent sees a new clerk or PIN at the next login).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime
from pathlib import Path

from agent import clerks
from agent.config import AgentConfig
from agent.integrity import StoreDamaged, refusal_text
from agent.store import AgentStore
from iobase.config import load_config
from protocol.calendar import CST


def read_pin(stdin=None, prompt=getpass.getpass) -> str:
    """The PIN: prompted twice on a terminal (must match), else the first line of stdin."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().strip()
    first = prompt("PIN（4–8 位数字）: ")
    if prompt("再输入一次: ") != first:
        raise clerks.ClerkError("两次输入的 PIN 不一致 (the two PINs differ)")
    return first


def clerk_command(args: argparse.Namespace, stdin=None) -> int:
    """Dispatch one `jiancha clerk ...` command; 2 with one line on stderr for a refused change."""
    from agent.app import board_windows

    cfg = load_config(args.config, AgentConfig)
    data = Path(args.data_dir or cfg.data_dir)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)  # as `agent run` does: clerks may come first
    db = data / "agent.db"
    try:
        store = AgentStore(db, cfg.site.code)
    except StoreDamaged as exc:
        print(refusal_text(exc, config=args.config, data_dir=args.data_dir), file=sys.stderr)
        return exc.exit_code
    windows, _ = board_windows(cfg.site.board)
    now = clerks.now_ms()
    try:
        if args.sub == "list":
            _print_list(clerks.list_clerks(store.conn))
        elif args.sub == "add":
            pin = read_pin(stdin)
            c = store.local_write(lambda conn: clerks.add(conn, args.name, args.window, pin, windows, now))
            print(f"clerk {c.name} added at window {c.window}")
        elif args.sub == "disable":
            c = store.local_write(lambda conn: clerks.disable(conn, args.name, now))
            print(f"clerk {c.name} disabled; their sessions ended")
        elif args.sub == "reset":
            pin = read_pin(stdin)
            c = store.local_write(lambda conn: clerks.reset(conn, args.name, pin, now, args.window, windows))
            print(f"clerk {c.name}: new PIN, window {c.window}; their sessions ended")
    except clerks.ClerkError as exc:
        print(f"jiancha: error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


def _print_list(rows: list[clerks.Clerk]) -> None:
    if not rows:
        print("no clerks yet: jiancha clerk add --config agent.yaml --name NAME --window N")
        return
    for c in rows:
        changed = datetime.fromtimestamp(c.changed_ms / 1000, CST).strftime("%Y-%m-%d %H:%M")
        print(f"{c.name}\twindow {c.window}\t{'disabled' if c.disabled else 'enabled'}\tchanged {changed}")
