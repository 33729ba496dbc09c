"""The agent's configuration schema: agent.yaml (AgentConfig) and the board profiles it names.

agent.yaml is read with iobase.config.load_config; provisioning writes it (`provision add-site`).

Board profiles (firmware-configs/): which pins, signs and cameras a site's box has.

One YAML per board; a board inside a family folder (``raspberry-pi/rpi4-hall-3win.yaml``) is
merged over that folder's ``common.yaml`` (mappings merge key by key, the board wins; lists are
replaced). `load_board` validates the result with `Board` and refuses two uses of one GPIO pin
or one serial bus address, naming the board file and the pin or address.

Keypads sit on GPIO (one pin per key) or on a serial RS-485 bus (one address per keypad, the
unit reports a button number), because a 6-window hall has more keys and lamps than a Pi has
pins, and a mini-PC has no GPIO at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iobase.config import BrokerClient, ConfigError, HttpServer, Strict, validate_site_code


class BoardError(ConfigError):
    """A board profile is unknown or invalid; the message names the file and the pin or address."""


class AgentHub(Strict):
    sign_pub: Path = Field(description="Hub Ed25519 public key (PEM): config must be signed by it")
    seal_pub: Path = Field(description="Hub X25519 public key (PEM): batches are sealed to it")


class AgentTls(Strict):
    cert: Path = Field(
        description="The box's LAN server certificate chain (PEM): `jiancha provision agent-https`, or the operator's own"
    )
    key: Path = Field(description="Its private key (PEM, unencrypted, 0600)")


class AgentSessions(Strict):
    idle_minutes: int = Field(30, ge=1, le=480, description="A clerk's session ends after this long without a request")
    absolute_hours: int = Field(12, ge=1, le=24, description="A clerk's session ends this long after login in any case")


class AgentHttp(HttpServer):
    port: int = Field(8081, ge=0, le=65535, description="Clerk page and department API port")
    token: str = Field(min_length=16, description="Bearer token for the clerk/department API")
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="A request's headers, and then its body, must arrive within this time, or the connection is closed",
    )
    max_connections: int = Field(64, ge=1, le=10000, description="Open connections at most; more get 503")
    tls: AgentTls | None = Field(
        None,
        description="Serve HTTPS only (TLS >= 1.2) with this certificate; absent: plain HTTP (the login page warns)",
    )
    sessions: AgentSessions = Field(AgentSessions(), description="Clerk page sessions (窗口受理 login)")


class AgentHall(Strict):
    """What the clerk's receipts print besides the case: the hall's supervision phone and the
    citizens' lookup page (the hall's name is site.name)."""

    supervision_phone: str | None = Field(
        None,
        min_length=3,
        max_length=32,
        pattern=r"^[0-9][0-9 ()+-]*[0-9]$",
        description="监督电话 printed on receipts, e.g. 0354-12345",
    )
    lookup_url: str | None = Field(
        None,
        max_length=200,
        pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%\-]*)?$",
        description="Public lookup page (办件查询) the receipt's QR code opens, e.g. https://jiancha.jz.gov.cn/public; "
        "the case number and query code are appended as ?case_no=…&code=…",
    )


class AgentSync(Strict):
    batch_max_records: int = Field(500, ge=1, le=2000, description="Records per batch at most")
    max_inflight_records: int = Field(10000, ge=1, description="Unacknowledged records in flight at most")
    rate_per_s: float = Field(20000.0, gt=0, description="Drain rate limit, records per second")
    ack_timeout_s: float = Field(10.0, gt=0, description="Resend from the last ack after this silence")


class AgentSite(Strict):
    code: str
    name: str = Field(min_length=1)
    board: str = Field("generic", description="Board profile in firmware-configs/")

    _check_code = field_validator("code")(classmethod(lambda cls, v: validate_site_code(v)))


class AgentDevices(Strict):
    mode: Literal["real", "fake", "off"] = Field(
        "real",
        description="real = drivers from the board profile; fake = simulated devices (demo, laptops); off = no devices",
    )
    refresh_s: float = Field(2.0, gt=0, le=60, description="How often lamps and signs are refreshed")
    heartbeat_s: float = Field(60.0, ge=5, le=3600, description="Box health record interval")
    fake_visits: list[tuple[float, float]] | None = Field(
        None,
        description="Fake cameras only: (start_s, end_s) spans with the clerk at the window, "
        "repeating; default an 8-minute cycle",
    )
    fake_absent_s: float = Field(
        120.0, ge=1, le=7200, description="Fake cameras only: absence that counts as unattended"
    )
    cameras: dict | None = Field(
        None,
        description="Camera settings (agent/devices/camera/config.py "
        "CamerasConfig: office_hours, recording, cameras); default: the board's cameras",
    )


class AgentConfig(Strict):
    site: AgentSite
    hub: AgentHub
    broker: BrokerClient
    sign_key: Path = Field(description="Site Ed25519 signing key (PEM)")
    http: AgentHttp
    data_dir: Path = Field(Path("data"), description="Where the agent's SQLite log lives")
    sync: AgentSync = AgentSync()
    devices: AgentDevices = AgentDevices()
    hall: AgentHall = Field(AgentHall(), description="Receipt details: supervision phone, public lookup URL")


# ---- board profiles ----------------------------------------------------------------------

FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "firmware-configs"
COMMON = "common.yaml"

# The national five levels (非常满意/满意/基本满意/不满意/非常不满意), in that order.
KEY_NAMES = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Pin = int  # BCM GPIO number


class Keypad(_Strict):
    """Evaluator keypad (评价器): each key named by the level it means, wired to GPIO or serial."""

    model: Literal["four_key", "five_key"] = Field(
        description="4-key or 5-key unit; the agent maps each key to one of the five levels"
    )
    bus: Literal["gpio", "serial"] = Field(
        "gpio",
        description="gpio: one input pin per key; serial: a unit on an RS-485 bus "
        "(USB adapter) that reports the number of the button pressed",
    )
    keys: dict[Literal[KEY_NAMES], int] = Field(  # type: ignore[valid-type]
        description="Key name -> BCM GPIO pin (gpio) or button number 1-5 (serial); names from the national five levels"
    )
    pull_up: bool = Field(True, description="Keys short the pin to ground (internal pull-up); gpio only")
    port: str = Field(
        "",
        description="Serial device of the bus, e.g. /dev/serial/by-id/...; "
        "serial only (by-id names survive re-plugging)",
    )
    address: int | None = Field(
        None, ge=1, le=247, description="Unit address on the RS-485 bus (set with the unit's DIP switches); serial only"
    )

    @model_validator(mode="after")
    def _check(self) -> Keypad:
        want = 4 if self.model == "four_key" else 5
        if len(self.keys) != want:
            raise ValueError(f"a {self.model} keypad needs {want} keys, got {len(self.keys)}")
        if self.bus == "gpio" and (self.port or self.address is not None):
            raise ValueError("port and address are for serial keypads; a gpio keypad has pins")
        if self.bus == "serial":
            if not self.port or self.address is None:
                raise ValueError("a serial keypad needs a port (/dev/...) and an address (1-247)")
            buttons = list(self.keys.values())
            if len(set(buttons)) != len(buttons) or not all(1 <= b <= 5 for b in buttons):
                raise ValueError(f"serial keypad buttons must be distinct numbers 1-5, got {buttons}")
        return self


class Lamp(_Strict):
    """Traffic lamp (红黄绿灯) above a window: one GPIO output per colour."""

    red: Pin = Field(description="BCM GPIO pin driving the red lamp")
    yellow: Pin = Field(description="BCM GPIO pin driving the yellow lamp")
    green: Pin = Field(description="BCM GPIO pin driving the green lamp")
    active_high: bool = Field(True, description="Relay/LED is on when the pin is high")


class Window(_Strict):
    """One service window (窗口) of the hall."""

    id: int = Field(ge=1, le=999, description="Window number as painted above it")
    label: str = Field(min_length=1, description="Name shown on signs, e.g. 1号窗口")
    keypad: Keypad | None = Field(None, description="Evaluator keypad, if the window has one")
    lamp: Lamp | None = Field(None, description="Traffic lamp, if the window has one")


class Sign(_Strict):
    """LED text sign (显示屏) of the hall."""

    type: Literal["onbon-bx", "png", "none"] = Field(
        description="Driver: onbon-bx controller card, png (renders images, tests/demo), none"
    )
    port: str = Field(
        "", description="Where the controller is: tcp://HOST:PORT or /dev/tty...; for png the output folder"
    )
    width: int = Field(192, ge=8, le=4096, description="Sign width in LEDs")
    height: int = Field(32, ge=8, le=4096, description="Sign height in LEDs")
    encoding: Literal["gbk", "utf-8"] = Field("gbk", description="Text encoding the card expects")

    @model_validator(mode="after")
    def _port_needed(self) -> Sign:
        if self.type == "onbon-bx" and not self.port:
            raise ValueError("an onbon-bx sign needs a port (tcp://HOST:PORT or /dev/tty...)")
        return self


class Camera(_Strict):
    """An IP camera watching a window (ONVIF for discovery, RTSP for frames)."""

    name: str = Field(min_length=1, description="Camera name, unique on the board")
    window: int | None = Field(None, description="Window id it watches (presence detection)")
    rtsp_url: str = Field(
        pattern=r"^(rtsp|rtsps|file)://",
        description="Stream URL; credentials are placeholders until the site is installed",
    )
    onvif_host: str | None = Field(None, description="ONVIF host (to discover profiles)")
    onvif_port: int = Field(80, ge=1, le=65535, description="ONVIF port")


class Board(_Strict):
    """A board profile after merging its family's common.yaml."""

    name: str = Field(min_length=1, description="Board name (file name without .yaml)")
    family: Literal["raspberry-pi", "x86", "generic"] = Field(description="Board family")
    description: str = Field("", description="What this board is for")
    model: str = Field("", description="Hardware model, e.g. Raspberry Pi 4 Model B")
    gpio: Literal["lgpio", "rpigpio", "native", "mock", "none"] = Field(
        description="gpiozero pin factory; mock = in-memory pins for laptops and tests; "
        "none = no GPIO header (keypads on serial, no GPIO lamps)"
    )
    rtc: Literal["none", "ds3231", "builtin"] = Field(
        "none",
        description="Battery-backed real-time clock: none (fake-hwclock restores the "
        "last saved time after a power cut), ds3231 on I2C, builtin (Pi 5 "
        "and PCs, with their battery fitted)",
    )
    gpio_pins: tuple[int, int] = Field((0, 27), description="Lowest and highest usable GPIO pin")
    reserved_pins: dict[Pin, str] = Field(
        default_factory=dict, description="Pins the system uses (I2C RTC, HAT EEPROM), with why"
    )
    debounce_ms: int = Field(50, ge=0, le=1000, description="Software debounce for keys")
    windows: list[Window] = Field(default_factory=list, description="Service windows")
    sign: Sign = Field(Sign(type="none"), description="Hall LED sign")
    cameras: list[Camera] = Field(default_factory=list, description="IP cameras")

    def pin_uses(self) -> list[tuple[int, str]]:
        """Every (pin, what uses it) pair, reserved pins included."""
        uses = [(pin, f"reserved ({why})") for pin, why in self.reserved_pins.items()]
        for w in self.windows:
            if w.keypad and w.keypad.bus == "gpio":
                uses += [(pin, f"window {w.id} keypad {key}") for key, pin in w.keypad.keys.items()]
            if w.lamp:
                uses += [(getattr(w.lamp, c), f"window {w.id} lamp {c}") for c in ("red", "yellow", "green")]
        return uses

    def serial_uses(self) -> list[tuple[str, int | None, str]]:
        """Every (serial port, bus address or None, what uses it) triple."""
        uses: list[tuple[str, int | None, str]] = [
            (w.keypad.port, w.keypad.address, f"window {w.id} keypad")
            for w in self.windows
            if w.keypad and w.keypad.bus == "serial"
        ]
        if self.sign.type == "onbon-bx" and self.sign.port.startswith("/dev/"):
            uses.append((self.sign.port, None, "sign"))
        return uses


def pin_problems(board: Board) -> list[str]:
    """Pins or bus addresses used twice, pins out of range, as messages naming both users."""
    lo, hi = board.gpio_pins
    seen: dict[int, str] = {}
    problems = []
    for pin, use in board.pin_uses():
        if board.gpio == "none" and not use.startswith("reserved"):
            problems.append(f"GPIO {pin} ({use}) but the board has no GPIO (gpio: none)")
        elif not lo <= pin <= hi:
            problems.append(f"GPIO {pin} ({use}) is outside {lo}..{hi}")
        if pin in seen:
            problems.append(f"GPIO {pin} is used by {seen[pin]} and by {use}")
        else:
            seen[pin] = use
    problems += _serial_problems(board)
    windows = [w.id for w in board.windows]
    if len(set(windows)) != len(windows):
        problems.append(f"window ids repeat: {windows}")
    for cam in board.cameras:
        if cam.window is not None and cam.window not in windows:
            problems.append(f"camera {cam.name} watches window {cam.window}, which is not defined")
    return problems


def _serial_problems(board: Board) -> list[str]:
    """A bus address used twice on one port; a port shared by the sign and the keypad bus."""
    problems = []
    by_address: dict[tuple[str, int], str] = {}
    users: dict[str, list[str]] = {}
    for port, address, use in board.serial_uses():
        users.setdefault(port, []).append(use)
        if address is None:
            continue
        if (port, address) in by_address:
            problems.append(f"serial {port} address {address} is used by {by_address[port, address]} and by {use}")
        else:
            by_address[port, address] = use
    for port, uses in users.items():
        if "sign" in uses and len(uses) > 1:
            others = ", ".join(u for u in uses if u != "sign")
            problems.append(f"serial {port} is used by the sign and by {others}; give the sign its own port")
    return problems


def firmware_dir() -> Path:
    """The firmware-configs folder ($JIANCHA_FIRMWARE_CONFIGS overrides)."""
    return Path(os.environ.get("JIANCHA_FIRMWARE_CONFIGS", FIRMWARE_DIR))


def board_files(root: Path | None = None) -> list[Path]:
    """Every board file (common.yaml files excluded), sorted."""
    root = root or firmware_dir()
    return sorted(p for p in root.rglob("*.yaml") if p.name != COMMON)


def find_board(name_or_path: str | Path) -> Path:
    """Board file for a name ('rpi4-hall-3win', 'raspberry-pi/rpi4-hall-3win') or a path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    root = firmware_dir()
    direct = root / f"{name_or_path}.yaml"
    if direct.is_file():
        return direct
    matches = [f for f in board_files(root) if f.stem == str(name_or_path)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f.relative_to(root).with_suffix("").as_posix() for f in board_files(root))
    if matches:
        raise BoardError(f"board {name_or_path!r} is ambiguous in {root}: {', '.join(str(m) for m in matches)}")
    raise BoardError(f"unknown board {name_or_path!r}; known boards in {root}: {known or 'none'}")


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BoardError(f"{path}: cannot read YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BoardError(f"{path}: expected a mapping at the top level")
    return data


def load_board(name_or_path: str | Path) -> Board:
    """Load, merge (family common.yaml + board file) and validate a board profile."""
    path = find_board(name_or_path)
    common = path.parent / COMMON
    data = _merge(_read_yaml(common), _read_yaml(path)) if common.is_file() else _read_yaml(path)
    data.setdefault("name", path.stem)
    try:
        board = Board.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: invalid board"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise BoardError("\n".join(lines)) from None
    problems = pin_problems(board)
    if problems:
        raise BoardError(f"{path}: " + "; ".join(problems))
    return board
