"""iobase.cli: `python -m agent|hub` and `jiancha` share one error convention: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent import cli as agent_cli
from hub import cli as hub_cli


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "agent", "check-store", "--config", "{missing}"],
        ["-m", "hub", "backup", "--config", "{missing}", "--out", "{tmp}/b.db"],
        ["-m", "jiancha.cli", "catalog", "import", "--config", "{missing}", "x.csv"],
    ],
)
def test_a_missing_config_is_one_line_and_exit_2_from_every_entry_point(tmp_path, argv):
    missing = tmp_path / "nope.yaml"
    args = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.strip() == f"jiancha: error: {missing}: file not found"


def test_python_m_agent_and_hub_only_know_their_own_commands(capsys):
    with pytest.raises(SystemExit):
        agent_cli.main(["backup", "--help"])
    assert "invalid choice: 'backup'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        hub_cli.main(["check-store", "--help"])
    assert "invalid choice: 'check-store'" in capsys.readouterr().err
