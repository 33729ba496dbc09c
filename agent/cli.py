"""The agent's commands (`jiancha agent ...`, also `python -m agent ...`): run, check-store,
reset-store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iobase.cli import run as run_cli
from iobase.cli import subcommand, top_parser

HELP = """\
  agent run                  run a township agent
  agent check-store          check the agent's case store as `agent run` does at start
  agent reset-store          move a damaged case store aside; the next start begins a new one
  clerk add|list|disable|reset  clerks of the box's window page (窗口人员, PIN login)
"""


def add_commands(sub) -> None:
    """Add `agent run|check-store|reset-store` under `sub` (the parent's subparsers)."""
    ag = sub.add_parser("agent", help="the township agent").add_subparsers(dest="sub", required=True)
    arun = subcommand(
        ag,
        "run",
        "Run a township agent: case register, clerk API, sync.",
        "jiancha agent run --config /etc/jiancha/sites/140702-001/agent.yaml",
    )
    arun.add_argument("--config", type=Path, required=True)
    arun.add_argument("--http-port", type=int, default=None)
    arun.add_argument("--data-dir", type=Path, default=None)
    achk = subcommand(
        ag,
        "check-store",
        "Check the case store (agent.db) as `agent run` does at start: "
        "quick_check, the log's head against agent.db.head. Exit 0 when the agent may run on "
        "it, 65 when damaged.",
        "jiancha agent check-store --config /etc/jiancha/agent.yaml --data-dir /var/lib/jiancha",
    )
    areset = subcommand(
        ag,
        "reset-store",
        "Move a damaged case store into DATA/damaged-<time>/ (never "
        "deleted); the next start begins a new store with a new epoch. See docs/box.md "
        '"Damaged store".',
        "jiancha agent reset-store --config /etc/jiancha/agent.yaml --data-dir /var/lib/jiancha --yes-i-understand",
    )
    for a in (achk, areset):
        a.add_argument("--config", type=Path, required=True)
        a.add_argument(
            "--data-dir", type=Path, default=None, help="as given to `agent run` (default: data_dir of the config)"
        )
    areset.add_argument(
        "--yes-i-understand",
        action="store_true",
        dest="sure",
        help="the store's unsynced cases stay only in the moved files",
    )
    areset.add_argument("--even-if-healthy", action="store_true", help="reset a store that checks sound")


def add_clerk_commands(sub) -> None:
    """Add `clerk add|list|disable|reset` under `sub` (the parent's subparsers)."""
    ck = sub.add_parser("clerk", help="clerks of the box's window page").add_subparsers(dest="sub", required=True)
    cadd = subcommand(
        ck,
        "add",
        "Add a clerk who logs in to the box's window page with a PIN of 4-8 digits (read from "
        "stdin, or prompted twice on a terminal). The window must be one of the board's.",
        "jiancha clerk add --config /etc/jiancha/agent.yaml --name 李四 --window 3",
    )
    cadd.add_argument("--name", required=True, help="the clerk's name as shown on cases and signs")
    cadd.add_argument("--window", required=True, help="window number (one the board defines)")
    clist = subcommand(ck, "list", "List the box's clerks.", "jiancha clerk list --config /etc/jiancha/agent.yaml")
    cdis = subcommand(
        ck,
        "disable",
        "Disable a clerk: no more logins, open sessions end at once.",
        "jiancha clerk disable --config /etc/jiancha/agent.yaml --name 李四",
    )
    cdis.add_argument("--name", required=True)
    creset = subcommand(
        ck,
        "reset",
        "Give a clerk a new PIN (and window with --window); re-enables a disabled clerk; sessions end.",
        "jiancha clerk reset --config /etc/jiancha/agent.yaml --name 李四 --window 2",
    )
    creset.add_argument("--name", required=True)
    creset.add_argument("--window", default=None, help="move the clerk to this window")
    for a in (cadd, clist, cdis, creset):
        a.add_argument("--config", type=Path, required=True)
        a.add_argument(
            "--data-dir", type=Path, default=None, help="as given to `agent run` (default: data_dir of the config)"
        )


def dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "clerk":
        from agent.clerk_cli import clerk_command

        return clerk_command(args)
    if args.sub == "run":
        from agent.app import run

        return run(args.config, http_port=args.http_port, data_dir=args.data_dir)
    from agent import integrity
    from agent.config import AgentConfig
    from iobase.config import load_config

    db = Path(args.data_dir or load_config(args.config, AgentConfig).data_dir) / "agent.db"
    if args.sub == "check-store":
        return integrity.check_command(db)
    return integrity.reset_command(db, sure=args.sure, even_if_healthy=args.even_if_healthy)


def main(argv: list[str] | None = None) -> int:
    """`python -m agent ARGS` == `jiancha agent ARGS` (and `python -m agent clerk ...` == `jiancha clerk ...`)."""
    parser, sub = top_parser("Jiancha (监察) township agent.")
    add_commands(sub)
    add_clerk_commands(sub)
    argv = sys.argv[1:] if argv is None else argv
    return run_cli(parser, dispatch, argv if argv[:1] == ["clerk"] else ["agent", *argv])
