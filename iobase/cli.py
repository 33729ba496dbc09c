"""Command-line plumbing shared by `jiancha`, `python -m agent` and `python -m hub`: a subcommand
whose help ends with an example, and one way to turn errors into a message and exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from iobase.config import ConfigError

PROG = "jiancha"


def subcommand(parent, name: str, help_: str, example: str) -> argparse.ArgumentParser:
    """A subcommand parser whose --help shows `help_` and ends with `example`."""
    return parent.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=f"Example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def top_parser(description: str, epilog: str = "", prog: str = PROG) -> tuple[argparse.ArgumentParser, object]:
    """(parser with -v, its required COMMAND subparsers)."""
    p = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p, p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")


def run(
    parser: argparse.ArgumentParser,
    dispatch: Callable[[argparse.Namespace], int | None],
    argv: list[str] | None,
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse, set up logging, dispatch; a configuration or input error is one line on stderr and
    exit code 2 (never a traceback), Ctrl-C is 130."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return dispatch(args) or 0
    except (ConfigError, ValueError, FileNotFoundError, *errors) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
