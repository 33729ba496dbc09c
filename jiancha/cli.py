"""The `jiancha` command: demo, provisioning and the broker here; the agent's and the hub's
commands come from agent/cli.py and hub/cli.py (which also serve `python -m agent|hub`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import cli as agent_cli
from hub import cli as hub_cli
from iobase.cli import run as run_cli
from iobase.cli import subcommand, top_parser
from provisioning.errors import ProvisioningError

COMMANDS_HELP = (
    """\
commands:
  demo                       everything on one machine (broker, hub, simulated sites)
  provision init-hub         create a hub directory (CA, keys, broker config)
  provision add-site         add a township site (keys, client certificate, ACL)
  provision revoke-site      revoke a site (registry, CRL, ACL; effective without restart)
  provision add-child-hub    provision a child hub (county/city) forwarding to this hub
  provision install-parent   install a child-hub bundle into the child's hub directory
  provision add-feed         issue a feed identity for a third-party platform (docs/feed.md)
  feed tail                  read a hub's feed with a feed identity, print records as JSON lines
  feed decode                decode raw feed payloads (e.g. from mosquitto_sub -N) as JSON lines
  provision add-hub-workers  broker identities for several hub ingest workers (PostgreSQL store)
  provision hub-https        issue or renew the hub web's HTTPS certificate from the project CA
  provision agent-https      issue or renew a box's LAN HTTPS certificate (clerk page) from the project CA
  broker run                 run Mosquitto in the foreground with the generated config
"""
    + hub_cli.HELP
    + agent_cli.HELP
    + hub_cli.ADMIN_HELP
)


def _parser() -> argparse.ArgumentParser:
    p, sub = top_parser("Jiancha (监察) electronic supervision.", COMMANDS_HELP)
    cmd = subcommand
    d = cmd(
        sub,
        "demo",
        "Run a broker, a hub and N simulated township sites on this machine.",
        "jiancha demo --sites 3 --http-port 8080",
    )
    d.add_argument("--sites", type=int, default=3, help="number of simulated sites (default 3)")
    d.add_argument("--http-port", type=int, default=8080, help="dashboard port (default 8080)")
    d.add_argument("--data", type=Path, default=Path("demo-data"), help="state directory (default ./demo-data)")
    d.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)

    prov = sub.add_parser("provision", help="create hubs and sites").add_subparsers(dest="sub", required=True)
    ih = cmd(
        prov,
        "init-hub",
        "Create DIR/hub.yaml, the CA, hub keys and DIR/broker/.",
        "jiancha provision init-hub --dir /etc/jiancha --region 140700 --name 晋中市政务服务中心",
    )
    ih.add_argument("--dir", type=Path, required=True)
    ih.add_argument("--region", required=True, help="region code, e.g. 140700")
    ih.add_argument("--name", required=True, help="human name of the hub")
    ih.add_argument("--level", choices=["county", "city", "province"], default="city")
    ih.add_argument("--broker-host", default="127.0.0.1")
    ih.add_argument("--broker-port", type=int, default=8883)
    ih.add_argument("--http-port", type=int, default=8080)
    ih.add_argument(
        "--https-name",
        action="append",
        metavar="NAME",
        help="serve the web over HTTPS with a certificate from the project CA for this DNS name or IP "
        "address (repeat for several); without it the web is plain HTTP",
    )
    asite = cmd(
        prov,
        "add-site",
        "Create DIR/sites/SITE/ (agent.yaml, keys, client certificate).",
        "jiancha provision add-site --dir /etc/jiancha --code 140702-001 --name 东阳镇便民服务中心",
    )
    asite.add_argument("--dir", type=Path, required=True)
    asite.add_argument("--code", required=True)
    asite.add_argument("--name", required=True)
    asite.add_argument("--board", default="generic", help="board profile from firmware-configs/")
    rs = cmd(
        prov,
        "revoke-site",
        "Revoke a site: its records are refused from now on.",
        "jiancha provision revoke-site --dir /etc/jiancha --code 140702-001",
    )
    rs.add_argument("--dir", type=Path, required=True)
    rs.add_argument("--code", required=True)
    ach = cmd(
        prov,
        "add-child-hub",
        "Create DIR/children/hub-REGION/ (keys, client certificate, parent keys, parent.yaml) for a child "
        "hub and register it as a sender of kind hub (docs/rollup.md). Revoke with revoke-site --code hub-REGION.",
        "jiancha provision add-child-hub --dir /etc/jiancha --code 140721 --name 榆次区政务服务中心 --level county",
    )
    ach.add_argument("--dir", type=Path, required=True, help="the parent hub's directory")
    ach.add_argument("--code", required=True, help="the child's region code, e.g. 140721")
    ach.add_argument("--name", required=True, help="human name of the child hub")
    ach.add_argument("--level", choices=["county", "city"], default="county")
    ip = cmd(
        prov,
        "install-parent",
        "Copy a child-hub bundle (made by add-child-hub on the parent) to DIR/parent/ and set `parent:` in "
        "DIR/hub.yaml; the hub forwards its cards and 督办 steps there from its next start.",
        "jiancha provision install-parent --dir /etc/jiancha --bundle /media/usb/hub-140721",
    )
    ip.add_argument("--dir", type=Path, required=True, help="the child hub's directory")
    ip.add_argument("--bundle", type=Path, required=True, help="the folder add-child-hub wrote")
    af = cmd(
        prov,
        "add-feed",
        "Create DIR/feeds/feed-NAME/ (FEED.yaml, X25519 key, client certificate, CA, the hub's public key) for "
        "a third-party platform reading this hub's feed (docs/feed.md). Revoke with revoke-site --code feed-NAME.",
        "jiancha provision add-feed --dir /etc/jiancha --name shanxi-platform --title 山西省一体化政务服务平台",
    )
    af.add_argument("--dir", type=Path, required=True, help="the hub's directory")
    af.add_argument("--name", required=True, help="the feed's name: lowercase letters, digits, - or _")
    af.add_argument("--title", default="", help="human name of the consumer (shown in the registry)")

    feed = sub.add_parser("feed", help="read a hub's feed (docs/feed.md)").add_subparsers(dest="sub", required=True)
    ft = cmd(
        feed,
        "tail",
        "Connect with a feed identity, ask the hub for the records, verify signature, seal and chain, and "
        "print one JSON object per record; problems go to stderr. With --ack the hub's cursor moves.",
        "jiancha feed tail --config feed-shanxi-platform/FEED.yaml --ack",
    )
    ft.add_argument("--config", type=Path, required=True, help="FEED.yaml from add-feed")
    ft.add_argument("--from", dest="from_seq", type=int, default=None, help="ask from this seq (default: the cursor)")
    ft.add_argument("--ack", action="store_true", help="acknowledge what was printed (the hub then resends less)")
    ft.add_argument("--count", type=int, default=None, help="stop after at least N records")
    ft.add_argument("--idle", type=float, default=None, help="stop after S seconds without a record")
    fd = cmd(
        feed,
        "decode",
        "Decode raw feed payloads back to back (stdin, or files) into JSON lines; exit 1 on any problem.",
        "mosquitto_sub ... -t jc/v1/feed/feed-x/down/batch -N | jiancha feed decode --config FEED.yaml",
    )
    fd.add_argument("--config", type=Path, required=True, help="FEED.yaml from add-feed")
    fd.add_argument("files", type=Path, nargs="*", help="files of raw payloads (default: stdin)")

    hw = cmd(
        prov,
        "add-hub-workers",
        "Issue broker identities jc-hub-1 … jc-hub-N for `jiancha hub run --workers N` (PostgreSQL store).",
        "jiancha provision add-hub-workers --dir /etc/jiancha --count 4",
    )
    hw.add_argument("--dir", type=Path, required=True)
    hw.add_argument("--count", type=int, required=True, help="how many workers (identities already issued are kept)")

    hh = cmd(
        prov,
        "hub-https",
        "Issue or renew DIR/hub/https.crt/.key from the project CA and name them in hub.yaml (api.tls).",
        "jiancha provision hub-https --dir /etc/jiancha --name jiancha.jz.gov.cn --name 10.1.2.3",
    )
    hh.add_argument("--dir", type=Path, required=True)
    hh.add_argument(
        "--name",
        action="append",
        required=True,
        metavar="NAME",
        help="DNS name or IP address the operators' browsers use (repeat for several)",
    )

    ah = cmd(
        prov,
        "agent-https",
        "Issue or renew a box's LAN HTTPS certificate (DIR/sites/SITE/https.crt/.key) from the project CA "
        "and name it in the site's agent.yaml (http.tls): the clerk page is then HTTPS only.",
        "jiancha provision agent-https --dir /etc/jiancha --code 140702-001 --name 192.168.1.10",
    )
    ah.add_argument("--dir", type=Path, required=True)
    ah.add_argument("--code", required=True, help="the site's code")
    ah.add_argument(
        "--name",
        action="append",
        required=True,
        metavar="NAME",
        help="LAN IP address or DNS name the clerks' browsers use (repeat for several)",
    )

    br = sub.add_parser("broker", help="the managed Mosquitto").add_subparsers(dest="sub", required=True)
    brun = cmd(
        br,
        "run",
        "Run Mosquitto in the foreground with DIR/broker/ config (reloads ACL on change).",
        "jiancha broker run --dir /etc/jiancha",
    )
    brun.add_argument("--dir", type=Path, required=True)

    hub_cli.add_commands(sub)
    agent_cli.add_commands(sub)
    agent_cli.add_clerk_commands(sub)
    hub_cli.add_admin_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jiancha` console script."""
    return run_cli(_parser(), _dispatch, argv, errors=(ProvisioningError,))


def _dispatch(args) -> int:
    key = (args.cmd, getattr(args, "sub", None))
    if args.cmd in ("agent", "clerk"):
        return agent_cli.dispatch(args)
    if key in hub_cli.COMMANDS:
        return hub_cli.dispatch(args)
    if key == ("demo", None):
        from jiancha.demo import run_demo

        return run_demo(sites=args.sites, http_port=args.http_port, data=args.data, duration=args.duration)
    if key == ("provision", "init-hub"):
        from provisioning.setup import init_hub

        path = init_hub(
            args.dir,
            region=args.region,
            name=args.name,
            level=args.level,
            broker_host=args.broker_host,
            broker_port=args.broker_port,
            http_port=args.http_port,
            https_names=args.https_name,
        )
        print(f"hub created: {path}")
        if args.https_name:
            print(
                f"web over HTTPS: {args.dir / 'hub' / 'https.crt'} (browsers must trust {args.dir / 'ca' / 'ca.crt'})"
            )
        return 0
    if key == ("provision", "add-site"):
        from provisioning.setup import add_site

        print(f"site created: {add_site(args.dir, code=args.code, name=args.name, board=args.board)}")
        return 0
    if key == ("provision", "add-child-hub"):
        from provisioning.child_hub import add_child_hub

        folder = add_child_hub(args.dir, code=args.code, name=args.name, level=args.level)
        print(f"child hub bundle: {folder} (install it with `jiancha provision install-parent` on the child)")
        return 0
    if key == ("provision", "install-parent"):
        from provisioning.child_hub import install_parent

        print(f"parent installed: {install_parent(args.dir, bundle=args.bundle)}")
        return 0
    if key == ("provision", "add-feed"):
        from provisioning.feed import add_feed

        folder = add_feed(args.dir, name=args.name, title=args.title)
        print(f"feed bundle: {folder} (give it to the platform; restart the hub the first time)")
        return 0
    if key == ("feed", "tail"):
        from jiancha.feed import tail

        return tail(args.config, from_seq=args.from_seq, ack=args.ack, count=args.count, idle_s=args.idle)
    if key == ("feed", "decode"):
        from jiancha.feed import decode

        return decode(args.config, args.files)
    if key == ("provision", "add-hub-workers"):
        from provisioning.setup import add_hub_workers

        new = add_hub_workers(args.dir, count=args.count)
        print(
            f"hub worker identities: {args.count} ({len(new)} issued now); run `jiancha hub run --workers {args.count}`"
        )
        return 0
    if key == ("provision", "hub-https"):
        from provisioning.setup import hub_https

        cert = hub_https(args.dir, names=args.name)
        print(
            f"HTTPS certificate issued: {cert} for {', '.join(args.name)}; restart the hub to use it "
            f"(browsers must trust {args.dir / 'ca' / 'ca.crt'})"
        )
        return 0
    if key == ("provision", "agent-https"):
        from provisioning.agent_https import agent_https

        cert = agent_https(args.dir, code=args.code, names=args.name)
        print(
            f"HTTPS certificate issued: {cert} for {', '.join(args.name)}; copy the site folder to the box and "
            f"restart its agent (the clerks' browsers must trust {args.dir / 'ca' / 'ca.crt'})"
        )
        return 0
    if key == ("provision", "revoke-site"):
        from provisioning.setup import revoke_site

        revoke_site(args.dir, code=args.code)
        print(f"site {args.code} revoked")
        return 0
    if key == ("broker", "run"):
        from provisioning.broker import run_broker

        return run_broker(args.dir)
    raise ValueError(f"unknown command {key}")


if __name__ == "__main__":
    sys.exit(main())
