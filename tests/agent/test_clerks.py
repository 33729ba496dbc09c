"""Clerk accounts of the box: PIN rules, argon2id hashes, add/list/disable/reset, and the CLI."""

from __future__ import annotations

import io

import pytest

from agent import clerk_sessions as sessions
from agent import clerks
from agent.store import AgentStore
from jiancha.cli import main
from provisioning.setup import add_site, init_hub
from tests.agent.clerk_helpers import cheap_hasher


@pytest.fixture(autouse=True)
def _cheap(monkeypatch):
    cheap_hasher(monkeypatch)


@pytest.fixture
def store(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    yield s
    s.close()


@pytest.mark.parametrize(
    "pin, ok",
    [
        ("2580", True),
        ("73914", True),
        ("19283746", True),
        ("0000", False),  # repeated
        ("1234", False),  # run up
        ("9876", False),  # run down
        ("8901", False),  # run up through 0
        ("1212", False),  # alternating
        ("123", False),  # too short
        ("123456789", False),  # too long
        ("12a4", False),
        ("١٢٣٤", False),  # Arabic-Indic digits are digits to Python, not to a keypad
        ("", False),
    ],
)
def test_pin_rules(pin, ok):
    if ok:
        assert clerks.check_pin(pin) == pin
    else:
        with pytest.raises(clerks.ClerkError) as e:
            clerks.check_pin(pin)
        assert "PIN" in str(e.value)


def test_pin_is_stored_as_argon2id_and_verified(store):
    store.local_write(lambda c: clerks.add(c, "李四", "1", "2580", ["1", "2"], 1000))
    (stored,) = store.conn.execute("SELECT pin_hash FROM clerks").fetchone()
    assert stored.startswith("$argon2id$") and "2580" not in stored
    assert clerks.authenticate(store.conn, "李四", "2580").window == "1"
    assert clerks.authenticate(store.conn, "李四", "2581") is None
    assert clerks.authenticate(store.conn, "王五", "2580") is None


def test_window_must_be_one_the_board_defines(store):
    with pytest.raises(clerks.ClerkError) as e:
        store.local_write(lambda c: clerks.add(c, "李四", "3", "2580", ["1", "2"], 0))
    assert "窗口 3 未在本站配置中定义" in str(e.value) and "1、2" in str(e.value)
    # a board without windows takes any window number
    assert store.local_write(lambda c: clerks.add(c, "李四", "3", "2580", [], 0)).window == "3"


@pytest.mark.parametrize("name", ["", "  ", "a" * 33, "李\x00四", "李\u200b四"])
def test_bad_names_are_refused(store, name):
    with pytest.raises(clerks.ClerkError):
        store.local_write(lambda c: clerks.add(c, name, "1", "2580", None, 0))


def test_a_name_is_added_once(store):
    store.local_write(lambda c: clerks.add(c, "李四", "1", "2580", None, 0))
    with pytest.raises(clerks.ClerkError) as e:
        store.local_write(lambda c: clerks.add(c, "李四", "2", "7391", None, 0))
    assert "已存在" in str(e.value)


def test_disable_and_reset_end_sessions(store):
    store.local_write(lambda c: clerks.add(c, "李四", "1", "2580", None, 0))
    policy = sessions.SessionPolicy()
    sid = store.local_write(lambda c: sessions.create(c, "李四", 1000, "10.0.0.5", policy))
    assert sessions.lookup(store.conn, sid, 2000, policy).clerk.name == "李四"
    store.local_write(lambda c: clerks.disable(c, "李四", 3000))
    assert sessions.lookup(store.conn, sid, 4000, policy) is None
    assert clerks.authenticate(store.conn, "李四", "2580") is None  # disabled: no login
    assert clerks.list_clerks(store.conn)[0].disabled
    store.local_write(lambda c: clerks.reset(c, "李四", "7391", 5000, "2", None))
    got = clerks.authenticate(store.conn, "李四", "7391")
    assert got.window == "2" and not got.disabled
    assert clerks.authenticate(store.conn, "李四", "2580") is None
    with pytest.raises(clerks.ClerkError):
        store.local_write(lambda c: clerks.disable(c, "王五", 0))


def test_read_pin_from_stdin_or_twice_from_a_terminal():
    assert clerks_cli().read_pin(io.StringIO("2580\n")) == "2580"

    class Tty(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["2580", "2580"])
    assert clerks_cli().read_pin(Tty(), prompt=lambda _: next(answers)) == "2580"
    answers = iter(["2580", "2581"])
    with pytest.raises(clerks.ClerkError) as e:
        clerks_cli().read_pin(Tty(), prompt=lambda _: next(answers))
    assert "不一致" in str(e.value)


def clerks_cli():
    from agent import clerk_cli

    return clerk_cli


@pytest.fixture
def site_yaml(tmp_path):
    init_hub(tmp_path / "hub", region="140700", name="晋中")
    return add_site(tmp_path / "hub", code="S01", name="东阳镇便民服务中心")


def test_clerk_commands(site_yaml, monkeypatch, capsys):
    def run(*args, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["clerk", *args, "--config", str(site_yaml)])
        out = capsys.readouterr()
        return code, out.out + out.err

    assert run("list") == (0, "no clerks yet: jiancha clerk add --config agent.yaml --name NAME --window N\n")
    code, out = run("add", "--name", "李四", "--window", "3", stdin="2580\n")
    assert code == 2 and "窗口 3 未在本站配置中定义" in out  # the generic board has windows 1 and 2
    code, out = run("add", "--name", "李四", "--window", "1", stdin="1234\n")
    assert code == 2 and "过于简单" in out
    assert run("add", "--name", "李四", "--window", "1", stdin="2580\n") == (0, "clerk 李四 added at window 1\n")
    code, out = run("list")
    assert code == 0 and out.startswith("李四\twindow 1\tenabled")
    assert run("disable", "--name", "李四")[0] == 0
    assert "disabled" in run("list")[1]
    code, out = run("reset", "--name", "李四", "--window", "2", stdin="7391\n")
    assert code == 0 and "window 2" in out
    store = AgentStore(site_yaml.parent / "data" / "agent.db", "S01")
    try:
        assert clerks.authenticate(store.conn, "李四", "7391").window == "2"
    finally:
        store.close()


def test_clerks_can_be_added_before_the_agent_ever_ran(site_yaml, tmp_path, monkeypatch, capsys):
    data = tmp_path / "fresh" / "data"
    monkeypatch.setattr("sys.stdin", io.StringIO("2580\n"))
    args = ["clerk", "add", "--config", str(site_yaml), "--data-dir", str(data), "--name", "李四", "--window", "2"]
    assert main(args) == 0
    store = AgentStore(data / "agent.db", "S01")  # a new store the agent then runs on
    try:
        assert clerks.get(store.conn, "李四").window == "2" and store.head_seq == 0
    finally:
        store.close()
