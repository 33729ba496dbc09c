"""Every CLI command has help with an example and is documented in the README."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.cli import main

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [["demo"], ["provision", "init-hub"], ["provision", "add-site"], ["provision", "revoke-site"],
            ["broker", "run"], ["hub", "run"], ["agent", "run"], ["catalog", "import"], ["directory", "import"],
            ["calendar", "import"]]


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
    assert main(["catalog", "import", "--config", str(d / "hub.yaml"),
                 str(REPO / "provisioning/templates/catalog-demo.csv")]) == 0
    assert "catalog version 1: 9 items" in capsys.readouterr().out
    assert main(["provision", "revoke-site", "--dir", str(d), "--code", "S01"]) == 0
