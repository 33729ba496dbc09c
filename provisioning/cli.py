"""The `jiancha` command: a few lines per subcommand over a library call (sqlite-utils style)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

COMMANDS_HELP = """\
commands:
  demo                       everything on one machine (broker, hub, simulated sites)
  provision init-hub         create a hub directory (CA, keys, broker config)
  provision add-site         add a township site (keys, client certificate, ACL)
  provision revoke-site      revoke a site (registry, CRL, ACL; effective without restart)
  broker run                 run Mosquitto in the foreground with the generated config
  hub run                    run the city hub
  hub backup                 copy the hub database while the hub runs (restore: docs/operations.md)
  agent run                  run a township agent
  agent check-store          check the agent's case store as `agent run` does at start
  agent reset-store          move a damaged case store aside; the next start begins a new one
  catalog import             import the item catalog (事项目录) from CSV or YAML
  directory import           import who is told of yellow/red cards (通讯录)
  calendar import            import one year's holidays and 调休 working days
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jiancha", description="Jiancha (监察) electronic supervision.",
                                epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(parent, name, help_, example):
        return parent.add_parser(name, help=help_, description=help_, epilog=f"Example:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)

    d = cmd(sub, "demo", "Run a broker, a hub and N simulated township sites on this machine.",
            "jiancha demo --sites 3 --http-port 8080")
    d.add_argument("--sites", type=int, default=3, help="number of simulated sites (default 3)")
    d.add_argument("--http-port", type=int, default=8080, help="dashboard port (default 8080)")
    d.add_argument("--data", type=Path, default=Path("demo-data"), help="state directory (default ./demo-data)")
    d.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)

    prov = sub.add_parser("provision", help="create hubs and sites").add_subparsers(dest="sub", required=True)
    ih = cmd(prov, "init-hub", "Create DIR/hub.yaml, the CA, hub keys and DIR/broker/.",
             "jiancha provision init-hub --dir /etc/jiancha --region 140700 --name 晋中市政务服务中心")
    ih.add_argument("--dir", type=Path, required=True)
    ih.add_argument("--region", required=True, help="region code, e.g. 140700")
    ih.add_argument("--name", required=True, help="human name of the hub")
    ih.add_argument("--level", choices=["county", "city", "province"], default="city")
    ih.add_argument("--broker-host", default="127.0.0.1")
    ih.add_argument("--broker-port", type=int, default=8883)
    ih.add_argument("--http-port", type=int, default=8080)
    asite = cmd(prov, "add-site", "Create DIR/sites/SITE/ (agent.yaml, keys, client certificate).",
                "jiancha provision add-site --dir /etc/jiancha --code 140702-001 --name 东阳镇便民服务中心")
    asite.add_argument("--dir", type=Path, required=True)
    asite.add_argument("--code", required=True)
    asite.add_argument("--name", required=True)
    asite.add_argument("--board", default="generic", help="board profile from firmware-configs/")
    rs = cmd(prov, "revoke-site", "Revoke a site: its records are refused from now on.",
             "jiancha provision revoke-site --dir /etc/jiancha --code 140702-001")
    rs.add_argument("--dir", type=Path, required=True)
    rs.add_argument("--code", required=True)

    br = sub.add_parser("broker", help="the managed Mosquitto").add_subparsers(dest="sub", required=True)
    brun = cmd(br, "run", "Run Mosquitto in the foreground with DIR/broker/ config (reloads ACL on change).",
               "jiancha broker run --dir /etc/jiancha")
    brun.add_argument("--dir", type=Path, required=True)

    hub = sub.add_parser("hub", help="the city hub").add_subparsers(dest="sub", required=True)
    hrun = cmd(hub, "run", "Run the hub: ingest, supervision, dashboard and API.",
               "jiancha hub run --config /etc/jiancha/hub.yaml --http-port 8080")
    hrun.add_argument("--config", type=Path, required=True)
    hrun.add_argument("--http-port", type=int, default=None)
    hbak = cmd(hub, "backup", "Copy the hub database (SQLite online backup: consistent while the hub runs), "
               "checked, fsync'd, mode 0600. Restore: docs/operations.md \"Backing up and restoring the hub's database\".",
               "jiancha hub backup --config /etc/jiancha/hub.yaml --out /backup/hub-$(date +%F).db")
    hbak.add_argument("--config", type=Path, required=True)
    hbak.add_argument("--out", type=Path, required=True, help="the backup file to write (replaced atomically)")

    ag = sub.add_parser("agent", help="the township agent").add_subparsers(dest="sub", required=True)
    arun = cmd(ag, "run", "Run a township agent: case register, clerk API, sync.",
               "jiancha agent run --config /etc/jiancha/sites/140702-001/agent.yaml")
    arun.add_argument("--config", type=Path, required=True)
    arun.add_argument("--http-port", type=int, default=None)
    arun.add_argument("--data-dir", type=Path, default=None)
    achk = cmd(ag, "check-store", "Check the case store (agent.db) as `agent run` does at start: quick_check, "
               "the log's head against agent.db.head. Exit 0 when the agent may run on it, 65 when damaged.",
               "jiancha agent check-store --config /etc/jiancha/agent.yaml --data-dir /var/lib/jiancha")
    areset = cmd(ag, "reset-store", "Move a damaged case store into DATA/damaged-<time>/ (never deleted); the "
                 "next start begins a new store with a new epoch. See docs/box.md \"Damaged store\".",
                 "jiancha agent reset-store --config /etc/jiancha/agent.yaml --data-dir /var/lib/jiancha "
                 "--yes-i-understand")
    for a in (achk, areset):
        a.add_argument("--config", type=Path, required=True)
        a.add_argument("--data-dir", type=Path, default=None, help="as given to `agent run` (default: "
                       "data_dir of the config)")
    areset.add_argument("--yes-i-understand", action="store_true", dest="sure",
                        help="the store's unsynced cases stay only in the moved files")
    areset.add_argument("--even-if-healthy", action="store_true", help="reset a store that checks sound")

    cat = sub.add_parser("catalog", help="item catalog").add_subparsers(dest="sub", required=True)
    cimp = cmd(cat, "import", "Import the item catalog (CSV header or YAML keys; Chinese labels accepted).",
               "jiancha catalog import --config /etc/jiancha/hub.yaml items.csv")
    cimp.add_argument("--config", type=Path, required=True)
    cimp.add_argument("file", type=Path)

    dr = sub.add_parser("directory", help="who is told (通讯录)").add_subparsers(dest="sub", required=True)
    dimp = cmd(dr, "import", "Import the recipients directory: departments, handlers, heads (YAML or CSV).",
               "jiancha directory import --config /etc/jiancha/hub.yaml directory.yaml")
    dimp.add_argument("--config", type=Path, required=True)
    dimp.add_argument("file", type=Path)

    cal = sub.add_parser("calendar", help="working-day calendar").add_subparsers(dest="sub", required=True)
    calimp = cmd(cal, "import", "Import one year's holidays and 调休 working days (YAML or JSON).",
                 "jiancha calendar import --config /etc/jiancha/hub.yaml 2027.yaml")
    calimp.add_argument("--config", type=Path, required=True)
    calimp.add_argument("file", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jiancha` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from provisioning.config import ConfigError
    from provisioning.errors import ProvisioningError
    try:
        return _dispatch(args) or 0
    except (ConfigError, ProvisioningError, ValueError, FileNotFoundError) as exc:
        print(f"jiancha: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args) -> int:
    key = (args.cmd, getattr(args, "sub", None))
    if key == ("demo", None):
        from provisioning.demo import run_demo
        return run_demo(sites=args.sites, http_port=args.http_port, data=args.data, duration=args.duration)
    if key == ("provision", "init-hub"):
        from provisioning.setup import init_hub
        path = init_hub(args.dir, region=args.region, name=args.name, level=args.level,
                        broker_host=args.broker_host, broker_port=args.broker_port, http_port=args.http_port)
        print(f"hub created: {path}")
        return 0
    if key == ("provision", "add-site"):
        from provisioning.setup import add_site
        print(f"site created: {add_site(args.dir, code=args.code, name=args.name, board=args.board)}")
        return 0
    if key == ("provision", "revoke-site"):
        from provisioning.setup import revoke_site
        revoke_site(args.dir, code=args.code)
        print(f"site {args.code} revoked")
        return 0
    if key == ("broker", "run"):
        from provisioning.broker import run_broker
        return run_broker(args.dir)
    if key == ("hub", "run"):
        from hub.app import run
        return run(args.config, http_port=args.http_port)
    if key == ("hub", "backup"):
        from hub.admin import backup
        info = backup(args.config, args.out)
        counts = ", ".join(f"{v} {k}" for k, v in info["counts"].items() if v is not None)
        versions = ", ".join(f"{k} v{v}" for k, v in sorted(info["config"].items())) or "no config"
        print(f"backup written: {info['path']} ({info['bytes']:,} bytes; {counts}; {versions}); "
              f"integrity_check ok")
        return 0
    if key == ("agent", "run"):
        from agent.app import run
        return run(args.config, http_port=args.http_port, data_dir=args.data_dir)
    if key in (("agent", "check-store"), ("agent", "reset-store")):
        from agent import integrity
        from provisioning.config import AgentConfig, load_config
        db = Path(args.data_dir or load_config(args.config, AgentConfig).data_dir) / "agent.db"
        if args.sub == "check-store":
            return integrity.check_command(db)
        return integrity.reset_command(db, sure=args.sure, even_if_healthy=args.even_if_healthy)
    if key == ("catalog", "import"):
        from hub.admin import import_catalog
        from provisioning.config import HubConfig, load_config
        load_config(args.config, HubConfig)   # a wrong --config is named before the file is read
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
    raise ValueError(f"unknown command {key}")


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
            type(raw), f"a single {type(raw).__name__}")
        raise ValueError(f"{file}: found {found}; expected {expected}") from None
    return raw


def _check_catalog_fits(file: Path) -> None:
    """Refuse a catalog whose signed config would exceed what the broker lets the hub publish
    (provisioning/brokerconf.py MAX_HUB_PUBLISH_BYTES): Mosquitto would disconnect the hub."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hub.catalog import read_catalog
    from protocol.wire import sign_config
    from provisioning.brokerconf import MAX_HUB_PUBLISH_BYTES
    items = read_catalog(file)
    payload = {"items": [i.model_dump(mode="json", exclude_none=True) for i in items]}
    size = len(sign_config("catalog", 1, payload, sign_key=Ed25519PrivateKey.generate(), issued_ms=0))
    if size > MAX_HUB_PUBLISH_BYTES - 4096:
        raise ValueError(f"{file}: {len(items)} items make a signed catalog of {size:,} bytes; the broker "
                         f"carries at most {MAX_HUB_PUBLISH_BYTES - 4096:,} (split the catalog per county)")


if __name__ == "__main__":
    sys.exit(main())
