"""iobase.config: the one YAML reader names the file and the key for every way a file can be wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.config import AgentConfig
from hub.config import HubConfig, Registry
from iobase.config import BrokerClient, ConfigError, Strict, dump_config, load_config, validate_site_code


class Small(Strict):
    name: str
    broker: BrokerClient
    data_dir: Path = Path("data")


def _write(tmp_path: Path, text: str | bytes, name: str = "x.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("folder", "is a folder, expected a YAML file"),
        (b"\xff\xfe\x00binary", "not a text file, expected YAML"),
        ("name: [1, 2\n", "cannot read YAML"),
        ("- a\n- b\n", "expected a mapping at the top level, got list"),
    ],
)
def test_a_file_that_is_not_a_config_is_one_precise_error(tmp_path, content, message):
    path = tmp_path / "x.yaml"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        _write(tmp_path, content)
    with pytest.raises(ConfigError) as exc:
        load_config(path, Small)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)


def test_invalid_keys_are_listed_with_their_path(tmp_path):
    path = _write(tmp_path, "name: 站点\nbroker: {port: 70000, ca: ca.crt, cert: c.crt}\nextra: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, Small)
    text = str(exc.value)
    assert text.splitlines()[0] == f"{path}: invalid configuration"
    for key in ("broker.port", "broker.key", "extra"):
        assert f"  {key}: " in text, text


def test_relative_paths_resolve_against_the_files_folder_and_dump_keeps_them(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    path = _write(conf, "name: 站点\nbroker: {ca: ca.crt, cert: c.crt, key: c.key}\n")
    obj = load_config(path, Small)
    assert obj.broker.ca == conf.resolve() / "ca.crt" and obj.data_dir == conf.resolve() / "data"
    out = tmp_path / "out.yaml"
    dump_config(Small(name="站点", broker=BrokerClient(ca="ca.crt", cert="c.crt", key="c.key")), out)
    assert "ca: ca.crt" in out.read_text(encoding="utf-8") and "站点" in out.read_text(encoding="utf-8")
    assert os.stat(out).st_mode & 0o777 == 0o600  # configs hold tokens


@pytest.mark.parametrize(
    "text, model, kind",
    [
        ("region: '1'\nname: x\nkeys: {}\napi: {}\n", AgentConfig, "this is a hub config (hub.yaml)"),
        ("site: {code: S01}\nhub: {}\nsign_key: k\nhttp: {}\n", HubConfig, "this is an agent config"),
        ("sites: []\n", HubConfig, "this is a site registry (registry.yaml)"),
    ],
)
def test_a_config_of_another_kind_is_named(tmp_path, text, model, kind):
    with pytest.raises(ConfigError, match=re.escape(kind)):
        load_config(_write(tmp_path, text), model)


def test_registry_loads_and_lists_active_sites(tmp_path):
    reg = load_config(
        _write(
            tmp_path,
            "sites:\n- {code: S01, name: 东阳镇, sign_pub: k}\n- {code: S02, name: 西镇, sign_pub: k, revoked: true}\n",
        ),
        Registry,
    )
    assert list(reg.active()) == ["S01"]


@pytest.mark.parametrize("code", ["hub", "HUB", "jc-broker-tool", "a", "x/y", "S01\n", ""])
def test_site_codes_that_would_break_topics_or_identities_are_refused(code):
    with pytest.raises(ValueError, match="site code"):
        validate_site_code(code)
    assert validate_site_code("140702-001") == "140702-001"
