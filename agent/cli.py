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


def dispatch(args: argparse.Namespace) -> int:
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
    """`python -m agent ARGS` == `jiancha agent ARGS`."""
    parser, sub = top_parser("Jiancha (监察) township agent.")
    add_commands(sub)
    return run_cli(parser, dispatch, ["agent", *(sys.argv[1:] if argv is None else argv)])
