"""Every CLI command has help with an example and is documented in the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jiancha.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["demo"],
    ["provision", "init-hub"],
    ["provision", "add-site"],
    ["provision", "revoke-site"],
    ["broker", "run"],
    ["hub", "run"],
    ["hub", "migrate-store"],
    ["agent", "run"],
    ["catalog", "import"],
    ["directory", "import"],
    ["calendar", "import"],
    ["user", "add"],
    ["user", "list"],
    ["user", "disable"],
    ["user", "reset"],
    ["clerk", "add"],
    ["clerk", "list"],
    ["clerk", "disable"],
    ["clerk", "reset"],
    ["provision", "agent-https"],
    ["scores", "compute"],
    ["scores", "close"],
    ["scores", "manual", "add"],
    ["stats", "bulletin"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_help_has_an_example_and_readme_documents_it(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Example:" in out and f"jiancha {' '.join(cmd)}" in out
    assert f"jiancha {' '.join(cmd)}" in (REPO / "README.md").read_text(encoding="utf-8")


def test_console_entry_points_run():
    for mod in (["-m", "agent", "run", "--help"], ["-m", "hub", "run", "--help"]):
        out = subprocess.run([sys.executable, *mod], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "Example:" in out.stdout


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "hub.yaml"
    bad.write_text("region: 1\nbroker: {}\n", encoding="utf-8")
    assert main(["catalog", "import", "--config", str(bad), "x.csv"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "broker.ca" in err and "api" in err


def test_provision_and_catalog_import_from_the_cli(tmp_path, capsys):
    d = tmp_path / "h"
    assert main(["provision", "init-hub", "--dir", str(d), "--region", "140700", "--name", "测试中心"]) == 0
    assert main(["provision", "add-site", "--dir", str(d), "--code", "S01", "--name", "东阳镇"]) == 0
    assert main(["provision", "add-site", "--dir", str(d), "--code", "hub", "--name", "x"]) == 2
    assert "must not be 'hub'" in capsys.readouterr().err
    assert main(["provision", "add-site", "--dir", str(d), "--code", "jc-broker-tool", "--name", "x"]) == 2
    assert "reserved for the hub's own broker identities" in capsys.readouterr().err
    assert (
        main(["catalog", "import", "--config", str(d / "hub.yaml"), str(REPO / "jiancha/templates/catalog-demo.csv")])
        == 0
    )
    assert "catalog version 1: 9 items" in capsys.readouterr().out
    assert main(["provision", "revoke-site", "--dir", str(d), "--code", "S01"]) == 0


@pytest.fixture
def provisioned(tmp_path):
    d = tmp_path / "h"
    assert main(["provision", "init-hub", "--dir", str(d), "--region", "140700", "--name", "测试中心"]) == 0
    assert main(["provision", "add-site", "--dir", str(d), "--code", "S01", "--name", "东阳镇"]) == 0
    return d


def test_a_config_of_the_other_kind_is_named_in_one_line(provisioned, capsys):
    hub_yaml, agent_yaml = provisioned / "hub.yaml", provisioned / "sites/S01/agent.yaml"
    capsys.readouterr()
    assert main(["agent", "run", "--config", str(hub_yaml)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"jiancha: error: {hub_yaml}: this is a hub config (hub.yaml), not an agent "
        f"config (agent.yaml in sites/CODE/, made by `jiancha provision add-site`)"
    )
    assert "Extra inputs" not in err
    assert main(["hub", "run", "--config", str(agent_yaml)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "this is an agent config (agent.yaml), not a hub config" in err
    assert main(["catalog", "import", "--config", str(provisioned / "registry.yaml"), "x.csv"]) == 2
    assert "this is a site registry (registry.yaml), not a hub config" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, says",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01", "not a text file"),
        (b"just a sentence, not a calendar\n", "found plain text"),
        (b"- 2027-01-01\n- 2027-01-02\n", "found a list"),
        (b"year: [2027\nholidays: ]\n", "not valid YAML at line"),
        (b"", "found an empty file"),
    ],
)
def test_calendar_import_of_a_non_calendar_file_is_one_line(provisioned, tmp_path, capsys, content, says):
    f = tmp_path / "cal.png"
    f.write_bytes(content)
    capsys.readouterr()
    assert main(["calendar", "import", "--config", str(provisioned / "hub.yaml"), str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"jiancha: error: {f}: ") and says in err
    assert "expected a YAML calendar file: a mapping with year, holidays, workdays" in err


def test_calendar_import_of_a_folder_is_one_line(provisioned, tmp_path, capsys):
    capsys.readouterr()
    assert main(["calendar", "import", "--config", str(provisioned / "hub.yaml"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path}: is a folder" in err


def test_a_catalog_too_large_for_the_broker_is_refused(provisioned, tmp_path, capsys):
    from provisioning.brokerconf import MAX_HUB_PUBLISH_BYTES

    rows = ["事项编码,事项名称,实施部门,事项类型,办件类型,法定时限,承诺时限,预警天数,收费,咨询电话"]
    n = MAX_HUB_PUBLISH_BYTES // 150
    rows += [f"XK-{i:06d},食品经营许可{i},市场监督管理局,行政许可,承诺件,20,10,2,不收费,0354-1234501" for i in range(n)]
    f = tmp_path / "big.csv"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["catalog", "import", "--config", str(provisioned / "hub.yaml"), str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{n} items make a signed catalog of" in err and "the broker carries at most" in err


def test_demo_on_a_port_in_use_fails_loudly(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "jiancha.cli",
                "demo",
                "--sites",
                "1",
                "--http-port",
                str(port),
                "--data",
                str(tmp_path / "demo"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
    assert out.returncode != 0, out.stdout + out.stderr
    assert f"the hub cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "登录令牌" not in out.stdout and "dashboard" not in out.stdout
    assert "Traceback" not in out.stderr


def test_demo_fails_loudly_when_the_hub_dies_behind_a_server_that_answers(tmp_path, monkeypatch):
    """Another program answers /api/health on the hub's port (so the port check is skipped here):
    the demo must notice that its own hub died instead of printing the URL and token."""
    import http.server
    import threading

    from jiancha import demo
    from provisioning.errors import ProvisioningError
    from tests.ports import free_port

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("0.0.0.0", free_port()), Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setattr(demo, "_check_port_free", lambda *a: None)
    try:
        with pytest.raises(ProvisioningError) as e:
            demo.run_demo(sites=1, http_port=srv.server_address[1], data=tmp_path / "demo", duration=5)
    finally:
        srv.shutdown()
    msg = str(e.value)
    assert "the hub (pid" in msg and f"http://127.0.0.1:{srv.server_address[1]})" in msg
    assert "exited with code" in msg
