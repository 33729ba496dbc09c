"""The hub's commands: `jiancha hub run|backup` (also `python -m hub ...`) and the operator imports
`jiancha catalog|directory|calendar import`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub import scores_cli
from iobase.cli import run as run_cli
from iobase.cli import subcommand, top_parser

HELP = """\
  hub run                    run the city hub
  hub backup                 copy the hub database while the hub runs (restore: docs/operations.md)
  hub migrate-store          move the hub's store from SQLite to PostgreSQL, verified
"""
ADMIN_HELP = """\
  catalog import             import the item catalog (事项目录) from CSV or YAML
  directory import           import who is told of yellow/red cards (通讯录)
  calendar import            import one year's holidays and 调休 working days
  user add|list|disable|reset  operator accounts of the hub's web (docs/accounts.md)
  stats bulletin             the month's statistics bulletin (月度通报) as a numbered PDF (docs/stats.md)
"""
ADMIN_HELP += scores_cli.HELP


def add_commands(sub) -> None:
    """Add `hub run|backup` under `sub` (the parent's subparsers)."""
    hub = sub.add_parser("hub", help="the city hub").add_subparsers(dest="sub", required=True)
    hrun = subcommand(
        hub,
        "run",
        "Run the hub: ingest, supervision, dashboard and API.",
        "jiancha hub run --config /etc/jiancha/hub.yaml --http-port 8080",
    )
    hrun.add_argument("--config", type=Path, required=True)
    hrun.add_argument("--http-port", type=int, default=None)
    many = hrun.add_mutually_exclusive_group()
    many.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="run N ingest workers sharing the PostgreSQL store (each needs its broker identity: "
        "jiancha provision add-hub-workers)",
    )
    many.add_argument(
        "--worker", type=int, default=None, metavar="K", help="run only worker K (e.g. on another machine)"
    )
    hbak = subcommand(
        hub,
        "backup",
        "Copy the hub database (SQLite online backup: consistent while the hub "
        "runs), checked, fsync'd, mode 0600. Restore: docs/operations.md \"Backing up and "
        "restoring the hub's database\".",
        "jiancha hub backup --config /etc/jiancha/hub.yaml --out /backup/hub-$(date +%F).db",
    )
    hbak.add_argument("--config", type=Path, required=True)
    hbak.add_argument("--out", type=Path, required=True, help="the backup file to write (replaced atomically)")
    hmig = subcommand(
        hub,
        "migrate-store",
        "Copy the hub's store into a new, empty one (SQLite to PostgreSQL), verified by row counts, "
        "per-site hash-chain heads and a digest of every record. Stop the hub first; then set store.url "
        'in hub.yaml. See docs/operations.md "Moving the hub\'s store to PostgreSQL".',
        "jiancha hub migrate-store --from sqlite:/var/lib/jiancha/hub.db --to postgresql://jiancha@db:5432/jiancha",
    )
    hmig.add_argument("--from", dest="src", required=True, help="sqlite:PATH (or a postgresql:// URL)")
    hmig.add_argument("--to", dest="dst", required=True, help="postgresql://USER@HOST:PORT/DB of a new database")


def add_admin_commands(sub) -> None:
    """Add the operator imports `catalog|directory|calendar import` under `sub`."""
    cat = sub.add_parser("catalog", help="item catalog").add_subparsers(dest="sub", required=True)
    cimp = subcommand(
        cat,
        "import",
        "Import the item catalog (CSV header or YAML keys; Chinese labels accepted).",
        "jiancha catalog import --config /etc/jiancha/hub.yaml items.csv",
    )
    dr = sub.add_parser("directory", help="who is told (通讯录)").add_subparsers(dest="sub", required=True)
    dimp = subcommand(
        dr,
        "import",
        "Import the recipients directory: departments, handlers, heads (YAML or CSV).",
        "jiancha directory import --config /etc/jiancha/hub.yaml directory.yaml",
    )
    cal = sub.add_parser("calendar", help="working-day calendar").add_subparsers(dest="sub", required=True)
    calimp = subcommand(
        cal,
        "import",
        "Import one year's holidays and 调休 working days (YAML or JSON).",
        "jiancha calendar import --config /etc/jiancha/hub.yaml 2027.yaml",
    )
    for p in (cimp, dimp, calimp):
        p.add_argument("--config", type=Path, required=True)
        p.add_argument("file", type=Path)
    add_user_commands(sub)
    scores_cli.add_commands(sub)
    st = sub.add_parser("stats", help="statistics (统计分析)").add_subparsers(dest="sub", required=True)
    sbul = subcommand(
        st,
        "bulletin",
        "Write the month's statistics bulletin (月度通报) of the whole hub as a PDF: numbered in the "
        "documents' sequence and stored on first issue; the same document afterwards (docs/stats.md).",
        "jiancha stats bulletin --config /etc/jiancha/hub.yaml --month 2026-11 --out 通报-2026-11.pdf",
    )
    sbul.add_argument("--config", type=Path, required=True)
    sbul.add_argument("--month", required=True, help="YYYY-MM, a month that has ended")
    sbul.add_argument("--out", type=Path, required=True, help="the PDF file to write")


def add_user_commands(sub) -> None:
    """Add `user add|list|disable|reset` under `sub` (operator accounts, docs/accounts.md)."""
    users = sub.add_parser("user", help="operator accounts (web login)").add_subparsers(dest="sub", required=True)
    uadd = subcommand(
        users,
        "add",
        "Create an account: role admin | supervisor (scope: region code prefix, or none for the whole hub) | "
        "department (scope: its department) | viewer (read-only wall; scope: region code prefix or none). "
        "Asks for the password twice unless --password-stdin.",
        "jiancha user add --config /etc/jiancha/hub.yaml --login zhang --role supervisor --scope 140702",
    )
    uadd.add_argument("--login", required=True, help="2-32 of a-z 0-9 . _ -")
    uadd.add_argument("--role", required=True, choices=["admin", "supervisor", "department", "viewer"])
    uadd.add_argument("--scope", default=None, help="region code prefix (supervisor, viewer) or department name")
    uadd.add_argument("--name", default=None, help="display name, e.g. 张三 (default: the login)")
    ulist = subcommand(
        users, "list", "List accounts with role, scope and state.", "jiancha user list --config hub.yaml"
    )
    udis = subcommand(
        users,
        "disable",
        "Disable an account: it cannot log in and its sessions end at once.",
        "jiancha user disable --config /etc/jiancha/hub.yaml --login zhang",
    )
    ures = subcommand(
        users,
        "reset",
        "Set a new password (asked twice unless --password-stdin); re-enables the account and ends its sessions.",
        "jiancha user reset --config /etc/jiancha/hub.yaml --login zhang",
    )
    for p in (uadd, ulist, udis, ures):
        p.add_argument("--config", type=Path, required=True)
    for p in (udis, ures):
        p.add_argument("--login", required=True)
    for p in (uadd, ures):
        p.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice (getpass); refused if weak."""
    from hub.accounts import AccountError, check_password

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise AccountError("标准输入没有密码 (no password on stdin)")
        return check_password(line.rstrip("\r\n"))
    import getpass

    first = check_password(getpass.getpass("新密码 (new password): "))
    if getpass.getpass("再输入一次 (again): ") != first:
        raise AccountError("两次输入的密码不一致 (the passwords differ)")
    return first


COMMANDS = {
    ("hub", "run"),
    ("hub", "backup"),
    ("hub", "migrate-store"),
    ("catalog", "import"),
    ("directory", "import"),
    ("calendar", "import"),
    ("user", "add"),
    ("user", "list"),
    ("user", "disable"),
    ("user", "reset"),
    *scores_cli.COMMANDS,
    ("stats", "bulletin"),
}


def dispatch(args: argparse.Namespace) -> int:
    key = (args.cmd, args.sub)
    if key == ("hub", "run"):
        from hub.app import run

        return run(args.config, http_port=args.http_port, worker=args.worker, workers=args.workers)
    if key == ("hub", "backup"):
        from hub.admin import backup

        info = backup(args.config, args.out)
        counts = ", ".join(f"{v} {k}" for k, v in info["counts"].items() if v is not None)
        versions = ", ".join(f"{k} v{v}" for k, v in sorted(info["config"].items())) or "no config"
        print(f"backup written: {info['path']} ({info['bytes']:,} bytes; {counts}; {versions}); integrity_check ok")
        return 0
    if key == ("hub", "migrate-store"):
        from hub.migrate_store import migrate_store

        report = migrate_store(args.src, args.dst, progress=lambda line: print(f"  {line}", flush=True))
        rows = sum(report.tables.values())
        print(
            f"store copied and verified in {report.seconds:.1f} s: {rows:,} rows in {len(report.tables)} tables, "
            f"{len(report.sites)} sites' chain heads equal; now set store.url: {args.dst.split('@')[-1]} in hub.yaml"
        )
        return 0
    if key == ("catalog", "import"):
        from hub.admin import import_catalog
        from hub.config import HubConfig
        from iobase.config import load_config

        load_config(args.config, HubConfig)  # a wrong --config is named before the file is read
        _check_catalog_fits(args.file)
        version, n = import_catalog(args.config, args.file)
        print(f"catalog version {version}: {n} items; the hub pushes it to every site")
        return 0
    if key == ("directory", "import"):
        from hub.admin import import_directory

        n = import_directory(args.config, args.file)
        print(f"directory: {n} people imported; reminders go to them from now on")
        return 0
    if key == ("calendar", "import"):
        from hub.admin import import_calendar

        read_yaml_mapping(args.file, CALENDAR_EXPECTED)
        version, year = import_calendar(args.config, args.file)
        print(f"calendar version {version}: year {year} loaded; provisional deadlines are recomputed")
        return 0
    if args.cmd == "user":
        return _user(args)
    if args.cmd == "scores":
        return scores_cli.dispatch(args)
    if key == ("stats", "bulletin"):
        from hub.admin import stats_bulletin

        meta = stats_bulletin(args.config, args.month, args.out)
        print(
            f"bulletin {meta['number']} for {args.month}: {args.out} ({meta['size']:,} bytes, sha256 {meta['sha256'][:16]}…)"
        )
        return 0
    raise ValueError(f"unknown command {key}")


def _user(args: argparse.Namespace) -> int:
    from hub import admin
    from hub.accounts import ROLE_ZH, check_login, check_role_scope
    from hub.config import HubConfig
    from iobase.config import load_config

    load_config(args.config, HubConfig)  # a wrong --config is named before a password is asked
    if args.sub == "add":
        check_login(args.login)
        check_role_scope(args.role, args.scope)  # before the password is typed
        u = admin.user_add(
            args.config, args.login, args.role, args.scope, read_password(args.password_stdin), args.name
        )
        print(f"account {u.login} created: {ROLE_ZH[u.role]} ({u.role})" + (f", scope {u.scope}" if u.scope else ""))
    elif args.sub == "list":
        users = admin.user_list(args.config)
        for u in users:
            state = "disabled" if u.disabled else "active"
            print(f"{u.login}\t{u.role}\t{u.scope or '-'}\t{state}\t{u.display_name}")
        if not users:
            print("no accounts yet: jiancha user add --config ... --login NAME --role admin")
    elif args.sub == "disable":
        admin.user_disable(args.config, args.login)
        print(f"account {args.login} disabled; its sessions have ended")
    elif args.sub == "reset":
        if all(u.login != args.login for u in admin.user_list(args.config)):  # before the password is typed
            raise ValueError(f"账号不存在 (no such account): {args.login}")
        admin.user_reset(args.config, args.login, read_password(args.password_stdin))
        print(f"account {args.login}: new password set, account enabled, its sessions have ended")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m hub ARGS` == `jiancha hub ARGS`."""
    parser, sub = top_parser("Jiancha (监察) city hub.")
    add_commands(sub)
    return run_cli(parser, dispatch, ["hub", *(sys.argv[1:] if argv is None else argv)])


CALENDAR_EXPECTED = "a YAML calendar file: a mapping with year, holidays, workdays"


def read_yaml_mapping(file: Path, expected: str) -> dict:
    """The mapping in a YAML file, or ValueError in one line naming the file and `expected`."""
    import yaml

    file = Path(file)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{file}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"{file}: is a folder; expected {expected}") from None
    except OSError as exc:
        raise ValueError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{file}: not a text file (binary or not UTF-8); expected {expected}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{file}: not valid YAML{where}; expected {expected}") from None
    if not isinstance(raw, dict):
        found = {type(None): "an empty file", str: "plain text", list: "a list"}.get(
            type(raw), f"a single {type(raw).__name__}"
        )
        raise ValueError(f"{file}: found {found}; expected {expected}") from None
    return raw


def _check_catalog_fits(file: Path) -> None:
    """Refuse a catalog whose signed config would exceed what the broker lets the hub publish
    (protocol.wire.MAX_CONFIG_BYTES, the broker's packet limit is set above it): Mosquitto would disconnect the hub."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hub.catalog import read_catalog
    from protocol.wire import MAX_CONFIG_BYTES, sign_config

    items = read_catalog(file)
    payload = {"items": [i.model_dump(mode="json", exclude_none=True) for i in items]}
    size = len(sign_config("catalog", 1, payload, sign_key=Ed25519PrivateKey.generate(), issued_ms=0))
    if size > MAX_CONFIG_BYTES - 4096:
        raise ValueError(
            f"{file}: {len(items)} items make a signed catalog of {size:,} bytes; the broker "
            f"carries at most {MAX_CONFIG_BYTES - 4096:,} (split the catalog per county)"
        )
