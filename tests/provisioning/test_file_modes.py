"""Issue 7, section 4: secrets, keys and personal data are 0600 in 0700 folders, everywhere
(init-hub, add-site, revoke-site, the demo's folder, the SQLite databases)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.config import AgentConfig
from iobase.config import ConfigError, dump_config, load_config
from iobase.sqlite import connect
from provisioning.setup import add_site, init_hub, revoke_site

# files anyone may read: certificates, public keys, the CRL, the certificate index, the ACL and
# the generated broker config (no secrets in them) -- they still sit in 0700 folders
PUBLIC = (".crt", ".pub", ".pem", ".conf")
PUBLIC_NAMES = {"index", "acl", "mosquitto.log", "broker.pid"}


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def assert_private_tree(root: Path) -> list[Path]:
    """Every folder 0700; every file 0600 unless public (then 0644, never writable by others)."""
    checked = []
    assert _mode(root) == 0o700, root
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath) / d
            assert _mode(p) == 0o700, f"{p}: {oct(_mode(p))}"
            checked.append(p)
        for f in filenames:
            p = Path(dirpath) / f
            if p.suffix in PUBLIC or p.name in PUBLIC_NAMES:
                assert _mode(p) & 0o022 == 0, f"{p}: {oct(_mode(p))}"
            else:
                assert _mode(p) == 0o600, f"{p}: {oct(_mode(p))}"
            checked.append(p)
    return checked


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_provisioning_writes_secrets_0600_in_0700_folders(tmp_path, loose_umask):
    root = tmp_path / "srv"
    init_hub(root, region="140700", name="测试中心")
    add_site(root, code="S01", name="东阳镇")
    add_site(root, code="S02", name="修文镇")
    revoke_site(root, code="S02")
    checked = {p.relative_to(root).as_posix() for p in assert_private_tree(root)}
    for secret in (
        "hub.yaml",
        "registry.yaml",
        "ca/ca.key",
        "hub/sign.key",
        "hub/seal.key",
        "hub/mqtt.key",
        "broker/server.key",
        "broker/tool.key",
        "sites/S01/agent.yaml",
        "sites/S01/sign.key",
        "sites/S01/mqtt.key",
        "data",
        "sites/S01/data",
        "broker/data",
    ):
        assert secret in checked, secret
        assert _mode(root / secret) in (0o600, 0o700), secret


def test_a_directory_from_an_older_version_is_tightened_by_the_next_step(tmp_path, loose_umask):
    root = tmp_path / "srv"
    init_hub(root, region="140700", name="测试中心")
    add_site(root, code="S01", name="东阳镇")
    for p in (root, root / "data", root / "sites", root / "sites/S01", root / "hub"):
        os.chmod(p, 0o755)
    for p in (root / "hub.yaml", root / "sites/S01/agent.yaml", root / "hub/sign.key"):
        os.chmod(p, 0o644)
    (root / "data/hub.db").write_bytes(b"")
    os.chmod(root / "data/hub.db", 0o644)
    add_site(root, code="S02", name="修文镇")
    assert_private_tree(root)


def test_databases_and_their_wal_and_shm_are_0600_in_a_0700_folder(tmp_path, loose_umask):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    conn = connect(data / "agent.db")
    conn.execute("CREATE TABLE t(x)")
    conn.execute("INSERT INTO t VALUES ('张三 142701199001011234 13900000000')")
    ro = connect(data / "agent.db", readonly=True)
    assert ro.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert {p.name for p in data.iterdir()} == {"agent.db", "agent.db-wal", "agent.db-shm"}
    assert_private_tree(data)
    ro.close(), conn.close()
    # a database written 0644 by an older version is tightened when it is opened
    os.chmod(data / "agent.db", 0o644)
    os.chmod(data, 0o755)
    connect(data / "agent.db").close()
    assert_private_tree(data)


def test_database_modes_do_not_depend_on_the_umask(tmp_path):
    old = os.umask(0)
    try:
        conn = connect(tmp_path / "hub.db")
        conn.execute("CREATE TABLE t(x)")
        conn.execute("INSERT INTO t VALUES (1)")
        for name in ("hub.db", "hub.db-wal", "hub.db-shm"):
            assert _mode(tmp_path / name) == 0o600, name
        conn.close()
    finally:
        os.umask(old)


def test_demo_setup_writes_secrets_and_personal_data_privately(tmp_path, loose_umask):
    from jiancha.demo import prepare
    from tests.ports import free_port

    data = tmp_path / "demo-data"
    hub_yaml, agents = prepare(data, 2, free_port())
    assert len(agents) == 2
    checked = {p.relative_to(data).as_posix() for p in assert_private_tree(data)}
    assert {"hub.yaml", "data/hub.db", "sites/140702-001/agent.yaml", "sites/140702-002/data"} <= checked
    # a second run reuses (and keeps private) what is there
    prepare(data, 2, free_port())
    assert_private_tree(data)


def test_dump_config_replaces_a_world_readable_file_with_a_private_one(tmp_path, loose_umask):
    root = tmp_path / "srv"
    init_hub(root, region="140700", name="测试中心")
    path = add_site(root, code="S01", name="东阳镇")
    cfg = load_config(path, AgentConfig)
    os.chmod(path, 0o644)
    dump_config(cfg, path)
    assert _mode(path) == 0o600


def test_a_site_code_with_a_trailing_newline_is_refused_in_agent_yaml(tmp_path):
    root = tmp_path / "srv"
    init_hub(root, region="140700", name="测试中心")
    path = add_site(root, code="S01", name="东阳镇")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("code: S01", 'code: "S01\\n"', 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="site.code"):
        load_config(path, AgentConfig)
