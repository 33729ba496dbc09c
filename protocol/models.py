"""Message and API models shared by agent and hub (pydantic v2, strict, no I/O).

Record kinds and their bodies:
    case.registered  CaseRegistered  收件: a case was received at a window (carries the item rule
                                     in force at registration, so both ends compute the same clock)
    case.event       CaseEventBody   a step of an existing case (受理, 办结, ...)
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol.calendar import CST
from protocol.caseclock import CASE_TYPES, EVENT_TYPES, SUSPEND_PROCEDURES, ItemRule

KIND_CASE_REGISTERED = "case.registered"
KIND_CASE_EVENT = "case.event"

ITEM_TYPES = ("licensing", "confirmation", "other_power", "public_service")

# Chinese labels accepted on catalog import (事项类型 / 办件类型)
ITEM_TYPE_LABELS = {
    "行政许可": "licensing",
    "许可": "licensing",
    "行政确认": "confirmation",
    "确认": "confirmation",
    "其他行政权力": "other_power",
    "其他权力": "other_power",
    "公共服务": "public_service",
    "服务": "public_service",
}
CASE_TYPE_LABELS = {
    "即办件": "immediate",
    "即办": "immediate",
    "承诺件": "promised",
    "承诺": "promised",
    "联办件": "joint",
    "联办": "joint",
    "上报件": "escalated",
    "转报件": "escalated",
    "上报": "escalated",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _aware(v: datetime) -> datetime:
    """A time with a UTC offset whose year in China time (Asia/Shanghai) is 2000..2100.

    The year is judged in China time, the time every case clock, case number and calendar uses:
    2000-01-01T00:00:00+14:00 is still 1999 in China and is refused, whatever offset it came with."""
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError("time must carry a UTC offset, e.g. 2026-03-02T09:30:00+08:00")
    try:
        year = v.astimezone(CST).year
    except OverflowError:  # 0001-01-01T00:00+14:00 or 9999-12-31T23:59-14:00
        year = v.year
    if not 2000 <= year <= 2100:
        raise ValueError("time must be between the years 2000 and 2100 in China time (UTC+08:00)")
    return v


class CatalogItem(Strict):
    """One item of the service catalog (事项目录)."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(min_length=1, max_length=200)
    department: str = Field(min_length=1, max_length=100)
    item_type: Literal["licensing", "confirmation", "other_power", "public_service"]
    case_type: Literal["immediate", "promised", "joint", "escalated"]
    legal_days: int = Field(ge=0, le=365)
    promised_days: int = Field(ge=0, le=365)
    yellow_days: int | None = Field(None, ge=0, le=30)
    fee: str | None = Field(None, max_length=200)
    materials: str | None = Field(None, max_length=4000)
    basis: str | None = Field(None, max_length=4000)
    phone: str | None = Field(None, max_length=40)

    @field_validator("item_type", mode="before")
    @classmethod
    def _item_label(cls, v):
        return ITEM_TYPE_LABELS.get(str(v).strip(), str(v).strip()) if v is not None else v

    @field_validator("case_type", mode="before")
    @classmethod
    def _case_label(cls, v):
        return CASE_TYPE_LABELS.get(str(v).strip(), str(v).strip()) if v is not None else v

    @model_validator(mode="after")
    def _limits(self):
        if self.case_type == "immediate" and self.promised_days != 0:
            raise ValueError("即办件 (immediate) must have promised_days 0")
        if self.legal_days and self.promised_days > self.legal_days:
            raise ValueError(f"promised_days {self.promised_days} exceeds legal_days {self.legal_days}")
        return self

    def rule(self) -> ItemRule:
        """The clock parameters of this item."""
        return ItemRule(
            code=self.code,
            case_type=self.case_type,
            legal_days=self.legal_days,
            promised_days=self.promised_days,
            yellow_days=self.yellow_days,
        )


class Applicant(Strict):
    """申请人: personal data, never shown on the public lookup."""

    name: str = Field(min_length=1, max_length=100)
    id_no: str | None = Field(None, max_length=32)
    phone: str | None = Field(None, max_length=32)


class NewCase(Strict):
    """POST /api/cases body at the agent."""

    item_code: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    window: str | None = Field(None, max_length=32)
    clerk: str | None = Field(None, max_length=64)
    received_at: datetime | None = None  # 补录: back-entry of a paper case

    _aware = field_validator("received_at")(classmethod(lambda cls, v: v if v is None else _aware(v)))


class NewEvent(Strict):
    """POST /api/cases/{case_no}/events body at the agent."""

    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    at: datetime | None = None
    actor: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=2000)
    days: int | None = Field(None, ge=1, le=60)
    procedure: str | None = Field(None, max_length=32)
    step: str | None = Field(None, max_length=64)
    approver: str | None = Field(None, max_length=64)
    link: str | None = Field(None, max_length=64, description="转报: the receiving level or case number")

    _aware = field_validator("at")(classmethod(lambda cls, v: v if v is None else _aware(v)))

    @field_validator("procedure")
    @classmethod
    def _procedure(cls, v):
        if v is not None and v not in SUSPEND_PROCEDURES:
            raise ValueError(f"procedure must be one of {', '.join(SUSPEND_PROCEDURES)}")
        return v


class ItemSnapshot(Strict):
    """The item's rule and labels as they were when the case was received."""

    code: str
    name: str
    department: str
    item_type: str
    case_type: Literal["immediate", "promised", "joint", "escalated"]
    legal_days: int = Field(ge=0, le=365)
    promised_days: int = Field(ge=0, le=365)
    yellow_days: int | None = Field(None, ge=0, le=30)
    catalog_version: int | None = Field(
        None,
        ge=0,
        le=2**53,
        description="the signed catalog version the box used; the hub checks the item against that version",
    )

    def rule(self) -> ItemRule:
        """The clock parameters recorded with the case."""
        return ItemRule(
            code=self.code,
            case_type=self.case_type,
            legal_days=self.legal_days,
            promised_days=self.promised_days,
            yellow_days=self.yellow_days,
        )


class CaseRegistered(Strict):
    """Body of a `case.registered` record (收件)."""

    case_no: str = Field(min_length=1, max_length=64)
    query_code: str = Field(min_length=4, max_length=16)
    item: ItemSnapshot
    applicant: Applicant
    window: str | None = None
    clerk: str | None = None
    received_at: datetime

    _aware = field_validator("received_at")(classmethod(lambda cls, v: _aware(v)))


class CaseEventBody(Strict):
    """Body of a `case.event` record."""

    case_no: str = Field(min_length=1, max_length=64)
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    at: datetime
    actor: str | None = None
    reason: str | None = None
    days: int | None = None
    procedure: str | None = None
    step: str | None = None
    approver: str | None = None
    link: str | None = None

    _aware = field_validator("at")(classmethod(lambda cls, v: _aware(v)))


KIND_VOTE = "vote"
KIND_DEVICE_EVENT = "device.event"
KIND_HEARTBEAT = "heartbeat"
LEVEL_NAMES = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")  # national scale, level 1..5


class Open(BaseModel):
    """Tolerant base for device bodies: newer agents may add fields an older hub ignores."""

    model_config = ConfigDict(extra="ignore")


class VoteCast(Open):
    """Body of a `vote` record (好差评 at the window keypad); misuse is kept, flagged, never dropped."""

    case_no: str | None = Field(None, max_length=64)
    window: str = Field(min_length=1, max_length=32)
    staff: str | None = Field(None, max_length=64)
    department: str | None = Field(None, max_length=100)
    key: str = Field(min_length=1, max_length=32)
    key_label: str | None = Field(None, max_length=16)
    level: int = Field(ge=1, le=5)
    level_name: str
    mapping_version: str = Field(min_length=1, max_length=32)
    misuse: Literal["disarmed", "repeat", "burst"] | None = None
    pressed_wall_ms: int
    pressed_mono_ns: int = 0

    @model_validator(mode="after")
    def _level(self):
        if self.level_name != LEVEL_NAMES[self.level - 1]:
            raise ValueError(f"level {self.level} is {LEVEL_NAMES[self.level - 1]}, not {self.level_name}")
        return self


class DeviceEvent(Open):
    """Body of a `device.event` record (e.g. window_unattended with a JPEG snapshot)."""

    device: str = Field(min_length=1, max_length=64)
    event: str = Field(min_length=1, max_length=64)
    window: str | None = Field(None, max_length=32)
    at: datetime
    detail: dict | None = None
    snapshot: bytes | None = Field(None, max_length=60_000)

    _aware = field_validator("at")(classmethod(lambda cls, v: _aware(v)))


class Heartbeat(Open):
    """Body of a `heartbeat` record: box health (integers only: records carry no floats)."""

    at: datetime
    cpu_temp_mc: int | None = None  # millidegrees Celsius
    load1_x100: int | None = None
    mem_available_kb: int | None = None
    mem_total_kb: int | None = None
    disk_free_kb: int | None = None
    disk_total_kb: int | None = None
    backlog: int | None = None
    clock: str | None = None
    problems: list[str] = []
    devices: dict[str, str] = {}

    _aware = field_validator("at")(classmethod(lambda cls, v: _aware(v)))


RECORD_BODIES: dict[str, type[BaseModel]] = {
    KIND_CASE_REGISTERED: CaseRegistered,
    KIND_CASE_EVENT: CaseEventBody,
    KIND_VOTE: VoteCast,
    KIND_DEVICE_EVENT: DeviceEvent,
    KIND_HEARTBEAT: Heartbeat,
}

assert set(CASE_TYPES) == {"immediate", "promised", "joint", "escalated"}
