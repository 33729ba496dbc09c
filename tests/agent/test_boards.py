"""Every file in firmware-configs/ validates: boards (pins, bus addresses) and systemd units."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from agent.config import FIRMWARE_DIR, KEY_NAMES, BoardError, board_files, firmware_dir, load_board
from agent.watchdog import watchdog_interval
from jiancha.cli import _parser

BOARDS = board_files()


def test_there_are_boards():
    names = {p.stem for p in BOARDS}
    assert {"generic", "rpi4-hall-3win", "rpi5-hall-6win", "minipc-hall-4win"} <= names


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.relative_to(firmware_dir()).as_posix())
def test_board_file_is_valid(path):
    board = load_board(path)
    assert board.name == path.stem
    assert load_board(path.stem) == board  # found by name too
    pins = [pin for pin, _ in board.pin_uses()]
    assert len(pins) == len(set(pins))
    addresses = [(port, a) for port, a, _ in board.serial_uses() if a is not None]
    assert len(addresses) == len(set(addresses))
    for w in board.windows:
        if w.keypad:
            assert set(w.keypad.keys) <= set(KEY_NAMES)
    if board.gpio == "none":
        assert not [use for _, use in board.pin_uses() if not use.startswith("reserved")]


def test_family_common_is_merged():
    board = load_board("rpi4-hall-3win")
    assert board.family == "raspberry-pi" and board.gpio == "lgpio"
    assert 2 in board.reserved_pins  # from common.yaml
    assert board.sign.type == "onbon-bx"  # the board overrides common's sign
    assert [w.keypad.model for w in board.windows] == ["five_key", "five_key", "four_key"]
    assert len(board.cameras) == 3 and all(c.rtsp_url.startswith("rtsp://") for c in board.cameras)
    assert load_board("raspberry-pi/rpi4-hall-3win") == board


def _write(tmp_path, monkeypatch, text, name="bad.yaml", family=None):
    root = tmp_path / "fw"
    folder = root / family if family else root
    folder.mkdir(parents=True, exist_ok=True)
    if family:
        (folder / "common.yaml").write_text("family: raspberry-pi\ngpio: lgpio\nreserved_pins: {2: I2C SDA}\n")
    (folder / name).write_text(text)
    monkeypatch.setenv("JIANCHA_FIRMWARE_CONFIGS", str(root))
    return folder / name


def test_larger_boards_put_keypads_on_a_serial_bus():
    pi5 = load_board("rpi5-hall-6win")
    assert pi5.family == "raspberry-pi" and pi5.rtc == "builtin" and len(pi5.windows) == 6
    assert {w.keypad.bus for w in pi5.windows} == {"serial"}
    assert [w.keypad.address for w in pi5.windows] == [1, 2, 3, 4, 5, 6]
    assert len(pi5.pin_uses()) == 4 + 6 * 3  # reserved + lamps
    pc = load_board("x86/minipc-hall-4win")
    assert pc.family == "x86" and pc.gpio == "none" and pc.sign.port == "/dev/ttyS0"
    assert all(w.lamp is None for w in pc.windows)


def test_pin_conflict_names_the_file_and_the_pin(tmp_path, monkeypatch):
    path = _write(
        tmp_path,
        monkeypatch,
        """
windows:
  - id: 1
    label: one
    lamp: {red: 5, yellow: 6, green: 2}
""",
        family="raspberry-pi",
    )
    with pytest.raises(BoardError) as exc:
        load_board("bad")
    msg = str(exc.value)
    assert str(path) in msg and "GPIO 2 is used by reserved (I2C SDA) and by window 1 lamp green" in msg


@pytest.mark.parametrize(
    "text, expect",
    [
        ("family: generic\ngpio: mock\ncolour: red\n", "colour: Extra inputs are not permitted"),
        ("family: generic\ngpio: wiringpi\n", "gpio: Input should be"),
        (
            "family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: five_key, "
            "keys: {very_satisfied: 4}}}]\n",
            "needs 5 keys",
        ),
        (
            "family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: four_key, "
            "keys: {happy: 4, satisfied: 5, dissatisfied: 6, very_dissatisfied: 7}}}]\n",
            "keys.happy",
        ),
        (
            "family: generic\ngpio: mock\nwindows: [{id: 1, label: a, lamp: {red: 40, yellow: 5, green: 6}}]\n",
            "GPIO 40 (window 1 lamp red) is outside 0..27",
        ),
        ("family: generic\ngpio: mock\nsign: {type: onbon-bx}\n", "needs a port"),
        (
            "family: generic\ngpio: mock\ncameras: [{name: c, window: 3, rtsp_url: 'rtsp://x'}]\n",
            "window 3, which is not defined",
        ),
        ("- just\n- a list\n", "mapping"),
        (
            "family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: four_key, bus: serial, "
            "keys: {very_satisfied: 1, satisfied: 2, dissatisfied: 3, very_dissatisfied: 4}}}]\n",
            "needs a port (/dev/...) and an address",
        ),
        (
            "family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: four_key, bus: serial, "
            "port: /dev/ttyUSB0, address: 1, keys: {very_satisfied: 1, satisfied: 1, dissatisfied: 3, "
            "very_dissatisfied: 9}}}]\n",
            "distinct numbers 1-5, got [1, 1, 3, 9]",
        ),
        (
            "family: generic\ngpio: mock\nwindows: [{id: 1, label: a, keypad: {model: four_key, address: 3, "
            "keys: {very_satisfied: 4, satisfied: 5, dissatisfied: 6, very_dissatisfied: 7}}}]\n",
            "port and address are for serial keypads",
        ),
        (
            "family: generic\ngpio: mock\nwindows:\n"
            "  - {id: 1, label: a, keypad: {model: four_key, bus: serial, port: /dev/ttyUSB0, address: 2, "
            "keys: {very_satisfied: 1, satisfied: 2, dissatisfied: 3, very_dissatisfied: 4}}}\n"
            "  - {id: 2, label: b, keypad: {model: four_key, bus: serial, port: /dev/ttyUSB0, address: 2, "
            "keys: {very_satisfied: 1, satisfied: 2, dissatisfied: 3, very_dissatisfied: 4}}}\n",
            "serial /dev/ttyUSB0 address 2 is used by window 1 keypad and by window 2 keypad",
        ),
        (
            "family: generic\ngpio: mock\nsign: {type: onbon-bx, port: /dev/ttyUSB0}\nwindows:\n"
            "  - {id: 1, label: a, keypad: {model: four_key, bus: serial, port: /dev/ttyUSB0, address: 2, "
            "keys: {very_satisfied: 1, satisfied: 2, dissatisfied: 3, very_dissatisfied: 4}}}\n",
            "serial /dev/ttyUSB0 is used by the sign and by window 1 keypad",
        ),
        (
            "family: x86\ngpio: none\nwindows: [{id: 1, label: a, lamp: {red: 5, yellow: 6, green: 7}}]\n",
            "GPIO 5 (window 1 lamp red) but the board has no GPIO (gpio: none)",
        ),
        ("family: generic\ngpio: mock\nrtc: gps\n", "rtc: Input should be"),
    ],
)
def test_invalid_boards_are_explained(tmp_path, monkeypatch, text, expect):
    path = _write(tmp_path, monkeypatch, text)
    with pytest.raises(BoardError) as exc:
        load_board("bad")
    assert str(path) in str(exc.value) and expect in str(exc.value)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(BoardError, match="unknown board 'rpi9'.*generic"):
        load_board("rpi9")


# -- systemd units and OS settings (firmware-configs/systemd/) ------------------------------
SYSTEMD_DIR = FIRMWARE_DIR / "systemd"
SYSTEMD_FILES = sorted(p for p in SYSTEMD_DIR.rglob("*") if p.is_file())
SECTIONS = {
    ".service": {"Unit", "Service", "Install"},
    "journald.conf.d": {"Journal"},
    "system.conf.d": {"Manager"},
    "timesyncd.conf.d": {"Time"},
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: [Section], KEY=value, repeated keys, '\\' continuations, #/; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    lines = iter(enumerate(path.read_text(encoding="utf-8").splitlines(), 1))
    for n, raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines)[1].strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if current is None or not sep or not key.strip():
            raise ValueError(f"{path}:{n}: expected [Section] or KEY=value, got {raw!r}")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit, section, key):
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, got {values}"
    return values[0]


def _seconds(span: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    num = span.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(num) * units[span[len(num) :]]


def test_there_are_units_and_os_settings():
    names = {p.name for p in SYSTEMD_FILES}
    assert {"jiancha-agent.service", "jiancha-broker.service", "jiancha-hub.service"} <= names
    assert {p.parent.name for p in SYSTEMD_FILES} >= {
        "journald.conf.d",
        "system.conf.d",
        "timesyncd.conf.d",
        "sysctl.d",
    }


@pytest.mark.parametrize("path", SYSTEMD_FILES, ids=lambda p: p.relative_to(SYSTEMD_DIR).as_posix())
def test_systemd_file_is_valid(path):
    if path.parent.name == "sysctl.d":
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith(("#", ";")):
                key, sep, value = line.partition("=")
                assert sep and value.strip(), f"{path}: {line!r} is not key = value"
                if Path("/proc/sys").is_dir():
                    assert Path("/proc/sys", *key.strip().split(".")).exists(), f"unknown sysctl {key}"
        return
    unit = parse_unit(path)
    assert set(unit) == SECTIONS.get(path.suffix) or set(unit) == SECTIONS.get(path.parent.name)
    if path.suffix == ".service":
        argv = shlex.split(_one(unit, "Service", "ExecStart"))
        assert argv[0] == "/usr/local/bin/jiancha"
        _parser().parse_args(argv[1:])  # the real CLI accepts the command line
        assert _one(unit, "Service", "Restart") == "always"
        assert _seconds(_one(unit, "Service", "RestartSec")) > 0
        assert _one(unit, "Unit", "StartLimitIntervalSec") == "0"  # never gives up
        assert _one(unit, "Service", "ProtectSystem") == "strict"
        assert _one(unit, "Service", "User") == "jiancha"
        assert _one(unit, "Install", "WantedBy") == "multi-user.target"
        rw = _one(unit, "Service", "ReadWritePaths")
        assert rw in " ".join(argv) and rw in unit["Unit"]["RequiresMountsFor"]


def test_agent_unit_is_a_watchdogged_notify_service():
    unit = parse_unit(SYSTEMD_DIR / "jiancha-agent.service")
    svc = unit["Service"]
    assert _one(unit, "Service", "Type") == "notify"
    assert _one(unit, "Service", "NotifyAccess") == "main"
    watchdog_s = _seconds(_one(unit, "Service", "WatchdogSec"))
    assert watchdog_s == 60
    # the agent pings at half the timeout it is given
    assert watchdog_interval({"WATCHDOG_USEC": str(int(watchdog_s * 1e6))}) == 30
    assert "jiancha agent run --config" in _one(unit, "Service", "ExecStart")
    args = _parser().parse_args(shlex.split(_one(unit, "Service", "ExecStart"))[1:])
    assert str(args.data_dir) == _one(unit, "Service", "ReadWritePaths") == "/var/lib/jiancha"
    assert "PYTHONFAULTHANDLER=1" in " ".join(svc["Environment"])  # stacks on SIGABRT
    assert _one(unit, "Service", "LimitCORE") == "0"
    # works offline; and nothing that hides GPIO/serial devices or fails on a missing group
    after = " ".join(unit["Unit"]["After"])
    assert "network-online.target" not in after and "time-sync.target" not in after
    assert not {"PrivateDevices", "ProtectClock", "SupplementaryGroups", "DevicePolicy"} & set(svc)


def test_hub_machine_units():
    broker = parse_unit(SYSTEMD_DIR / "jiancha-broker.service")
    assert _one(broker, "Service", "Type") == "notify"  # Mosquitto sends READY=1 itself
    assert _one(broker, "Service", "NotifyAccess") == "all"  # ... as a child of `jiancha broker run`
    assert "jiancha broker run --dir /srv/jiancha" in _one(broker, "Service", "ExecStart")
    hub = parse_unit(SYSTEMD_DIR / "jiancha-hub.service")
    assert _one(hub, "Service", "Type") == "exec"  # the hub sends no sd_notify
    assert "jiancha hub run --config /srv/jiancha/hub.yaml" in _one(hub, "Service", "ExecStart")
    assert "jiancha-broker.service" in " ".join(hub["Unit"]["After"])


def test_os_settings_spare_the_sd_card():
    journal = parse_unit(SYSTEMD_DIR / "journald.conf.d" / "50-jiancha.conf")["Journal"]
    assert journal["Storage"] == ["volatile"] and journal["RuntimeMaxUse"]
    manager = parse_unit(SYSTEMD_DIR / "system.conf.d" / "50-jiancha-watchdog.conf")["Manager"]
    assert 0 < _seconds(manager["RuntimeWatchdogSec"][0]) <= 15  # bcm2835-wdt maximum
    time_ = parse_unit(SYSTEMD_DIR / "timesyncd.conf.d" / "50-jiancha.conf")["Time"]
    assert "NTP" not in time_ and time_["FallbackNTP"]  # no placeholder that blocks sync


def test_unit_parser_reports_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nType=notify\nthis is not a key\n")
    with pytest.raises(ValueError, match=r"bad.service:3: expected"):
        parse_unit(bad)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    for p in SYSTEMD_DIR.glob("*.service"):
        shutil.copy(p, tmp_path / p.name)
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [
        ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip() and "is not executable" not in ln
    ]  # jiancha is not installed here
    assert lines == []


@pytest.mark.skipif(not shutil.which("mosquitto"), reason="mosquitto not installed")
def test_mosquitto_sends_ready_through_jiancha_broker_run(tmp_path):
    """Why the broker unit can be Type=notify with NotifyAccess=all."""
    from tests.provisioning.mqtt_helpers import free_port, provision

    hub = provision(tmp_path / "hub", sites=[], port=free_port())
    folder = tempfile.mkdtemp(prefix="jc-notify-")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(os.path.join(folder, "notify"))
    listener.settimeout(15)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from jiancha.cli import main; sys.exit(main())",
            "broker",
            "run",
            "--dir",
            str(hub),
        ],
        env={**os.environ, "NOTIFY_SOCKET": os.path.join(folder, "notify")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        assert listener.recv(4096).split(b"\n")[0] == b"READY=1"
        assert time.monotonic() - started < 15
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
