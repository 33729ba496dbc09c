"""What the agent needs per device, derived from a board profile (agent.config.Board).

Pydantic v2, ``extra="forbid"``, bounds and a description on every field. `devices_from_board`
is the only translation from the board file's shape to the agent's; windows become strings
(the case records' ``window`` is a string).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.devices.keypads.desk import DeskSettings
from agent.devices.keypads.mapping import DEFAULT_MAPPING, KeyMapping, get_mapping, mapping_problems

if TYPE_CHECKING:  # pragma: no cover
    from agent.config import Board


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeypadConfig(_Strict):
    """One window's evaluator keypad (评价器)."""

    window: str = Field(min_length=1, max_length=32, description="Window it rates, e.g. '3'")
    model: Literal["four_key", "five_key"] = Field(description="4-key or 5-key unit")
    keys: dict[str, int] = Field(
        description="Key name -> BCM GPIO pin (gpio) or button number (serial); by name, never by position"
    )
    bus: Literal["gpio", "serial"] = Field(
        "gpio", description="gpio: a pin per key; serial: a unit on an RS-485 bus (no driver yet, see docs)"
    )
    pull_up: bool = Field(True, description="Keys short the pin to ground (gpio only)")
    port: str = Field("", description="Serial device of the bus (serial only)")
    address: int | None = Field(None, ge=1, le=247, description="Unit address on the bus (serial)")
    mapping_version: str = Field(
        "", description="Key -> national level table, e.g. keypad4-v1; empty = the current table for the model"
    )

    @model_validator(mode="after")
    def _mapping(self) -> KeypadConfig:
        if not self.mapping_version:
            self.mapping_version = DEFAULT_MAPPING[self.model]
        try:
            mapping = get_mapping(self.mapping_version)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        problems = mapping_problems(mapping, self.model, list(self.keys))
        if problems:
            raise ValueError(f"window {self.window} keypad: " + "; ".join(problems))
        return self

    def mapping(self) -> KeyMapping:
        """The key table this keypad's votes are recorded with."""
        return get_mapping(self.mapping_version)


class VoteDeskConfig(_Strict):
    """How presses become votes: debounce, arm timeout, what counts as a burst."""

    debounce_ms: int = Field(
        50, ge=0, le=1000, description="Edges of one key closer than this are contact bounce, not presses"
    )
    arm_timeout_s: float = Field(
        120.0, ge=5, le=3600, description="Seconds a keypad stays armed after complete/deliver"
    )
    burst_presses: int = Field(
        4, ge=2, le=100, description="Presses within burst_window_s that make a burst (flagged misuse)"
    )
    burst_window_s: float = Field(3.0, gt=0, le=120, description="Burst detection window, seconds")

    def settings(self) -> DeskSettings:
        """The desk's plain settings."""
        return DeskSettings(**self.model_dump())


class LampConfig(_Strict):
    """One window's red/yellow/green lamp."""

    window: str = Field(min_length=1, max_length=32, description="Window it lights")
    red: int = Field(ge=0, le=53, description="BCM GPIO pin of the red lamp")
    yellow: int = Field(ge=0, le=53, description="BCM GPIO pin of the yellow lamp")
    green: int = Field(ge=0, le=53, description="BCM GPIO pin of the green lamp")
    active_high: bool = Field(True, description="On when the pin is high (False: active-low relay)")


class SignArea(_Strict):
    """A dynamic (RAM) area of an LED controller card and the windows whose pages it shows."""

    id: int = Field(0, ge=0, le=31, description="Dynamic area number on the card")
    windows: list[str] = Field(min_length=1, description="Windows shown here, pages in this order")
    x: int = Field(0, ge=0, le=4095, description="Left edge, LEDs")
    y: int = Field(0, ge=0, le=4095, description="Top edge, LEDs")
    width: int = Field(ge=8, le=4096, description="Width, LEDs")
    height: int = Field(ge=8, le=4096, description="Height, LEDs")


class SignConfig(_Strict):
    """The hall's LED text sign and how the agent drives it."""

    type: Literal["onbon-bx", "png", "none"] = Field(description="Driver")
    port: str = Field("", description="tcp://HOST:PORT or /dev/tty... (onbon-bx); folder (png)")
    width: int = Field(192, ge=8, le=4096, description="Sign width, LEDs")
    height: int = Field(32, ge=8, le=4096, description="Sign height, LEDs")
    encoding: Literal["gbk", "utf-8"] = Field("gbk", description="Text encoding the card expects")
    font_px: int = Field(16, ge=8, le=64, description="Character height; ASCII is half as wide")
    windows: list[str] = Field(default_factory=list, description="Windows this sign shows")
    areas: list[SignArea] = Field(
        default_factory=list,
        description="Dynamic areas; empty = one full-size area 0 showing every window's pages in turn",
    )
    min_interval_s: float = Field(5.0, ge=0, le=3600, description="Least seconds between writes")
    refresh_s: float | None = Field(
        600.0,
        ge=10,
        le=86400,
        description="Rewrite unchanged content "
        "this often (RAM only; a rebooted card forgets its dynamic "
        "areas); None = never",
    )
    stay_s: int = Field(5, ge=1, le=255, description="Seconds each page stays before the next")
    address: int = Field(1, ge=0, le=0xFFFF, description="Controller screen address (onbon-bx)")
    device_type: int = Field(0xFE, ge=0, le=0xFF, description="onbon-bx device type; 0xFE = any")
    baudrate: int = Field(57600, ge=1200, le=921600, description="Serial speed (onbon-bx serial)")
    timeout_s: float = Field(3.0, gt=0, le=60, description="Connect/answer timeout, seconds")
    scale: int = Field(4, ge=1, le=16, description="PNG pixels per LED (png)")

    @model_validator(mode="after")
    def _areas(self) -> SignConfig:
        if self.type == "onbon-bx" and not self.port:
            raise ValueError("an onbon-bx sign needs a port (tcp://HOST:PORT or /dev/tty...)")
        if not self.areas and self.windows:
            self.areas = [SignArea(id=0, windows=list(self.windows), width=self.width, height=self.height)]
        ids = [a.id for a in self.areas]
        if len(set(ids)) != len(ids):
            raise ValueError(f"sign area ids repeat: {ids}")
        for a in self.areas:
            if a.x + a.width > self.width or a.y + a.height > self.height:
                raise ValueError(
                    f"sign area {a.id} ({a.x},{a.y} {a.width}x{a.height}) does not "
                    f"fit the {self.width}x{self.height} sign"
                )
            stray = [w for w in a.windows if w not in self.windows]
            if stray:
                raise ValueError(
                    f"sign area {a.id} shows window(s) {', '.join(stray)} that the "
                    f"sign does not serve ({', '.join(self.windows)})"
                )
        return self

    def area_of(self, window: str) -> SignArea | None:
        """The area that shows `window`'s pages."""
        return next((a for a in self.areas if window in a.windows), None)


class DevicesConfig(_Strict):
    """Everything device-related the agent runs with."""

    gpio: Literal["lgpio", "rpigpio", "native", "mock", "none"] = Field(
        "mock", description="gpiozero pin factory; mock = in-memory pins; none = no GPIO header"
    )
    window_labels: dict[str, str] = Field(default_factory=dict, description="Window -> name shown on signs")
    keypads: list[KeypadConfig] = Field(default_factory=list, description="Evaluator keypads")
    lamps: list[LampConfig] = Field(default_factory=list, description="Window lamps")
    sign: SignConfig | None = Field(None, description="Hall LED sign; None = no sign")
    desk: VoteDeskConfig = Field(default_factory=VoteDeskConfig, description="Vote rules")

    @model_validator(mode="after")
    def _one_per_window(self) -> DevicesConfig:
        for kind, items in (("keypad", self.keypads), ("lamp", self.lamps)):
            windows = [i.window for i in items]
            dup = sorted({w for w in windows if windows.count(w) > 1})
            if dup:
                raise ValueError(f"more than one {kind} for window(s) {', '.join(dup)}")
        if self.gpio == "none":
            on_gpio = [f"window {k.window} keypad" for k in self.keypads if k.bus == "gpio"]
            on_gpio += [f"window {lamp.window} lamp" for lamp in self.lamps]
            if on_gpio:
                raise ValueError(f"gpio is none but {', '.join(on_gpio)} need GPIO pins")
        return self


def devices_from_board(board: Board, desk: VoteDeskConfig | None = None) -> DevicesConfig:
    """The agent's device configuration for a validated board profile."""
    desk = desk or VoteDeskConfig(debounce_ms=board.debounce_ms)
    labels = {str(w.id): w.label for w in board.windows}
    keypads = [
        KeypadConfig(
            window=str(w.id),
            model=w.keypad.model,
            keys=dict(w.keypad.keys),
            pull_up=w.keypad.pull_up,
            # bus/port/address: boards with RS-485 keypads; older Board models
            # have GPIO keypads only
            bus=getattr(w.keypad, "bus", "gpio"),
            port=getattr(w.keypad, "port", ""),
            address=getattr(w.keypad, "address", None),
        )
        for w in board.windows
        if w.keypad
    ]
    lamps = [
        LampConfig(
            window=str(w.id), red=w.lamp.red, yellow=w.lamp.yellow, green=w.lamp.green, active_high=w.lamp.active_high
        )
        for w in board.windows
        if w.lamp
    ]
    s = board.sign
    sign = (
        None
        if s.type == "none"
        else SignConfig(
            type=s.type,
            port=s.port,
            width=s.width,
            height=s.height,
            encoding=s.encoding,
            windows=list(labels),
            refresh_s=None if s.type == "png" else 600.0,
            min_interval_s=0.0 if s.type == "png" else 5.0,
        )
    )
    return DevicesConfig(gpio=board.gpio, window_labels=labels, keypads=keypads, lamps=lamps, sign=sign, desk=desk)
