"""Camera settings: capture, motion, presence regions, office hours, snapshots, recording.

Strict pydantic models (unknown keys are errors) with bounds and a description on every field.
A site's YAML is read by ``iobase.config.load_config(path, CamerasConfig)``; the board
profile's camera entries (``agent.config.Camera``) convert with `CameraConfig.from_board`.
Region coordinates are normalized: (0, 0) is the top-left corner of the picture, (1, 1) the
bottom-right, so a region survives a change of stream resolution.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # pragma: no cover - typing only
    from agent.config import Camera as BoardCamera

CAMERA_NAME_RE = r"^[A-Za-z0-9_]{1,32}$"  # becomes a file-name part of every recording
_PERIOD_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # URLs hold passwords


Point = tuple[float, float]


class Region(_Strict):
    """The part of the picture where a window's clerk sits (办事窗口工位), normalized coordinates."""

    window: int = Field(ge=1, le=999, description="Window id (as in the board profile)")
    rect: tuple[float, float, float, float] | None = Field(
        None, description="x0, y0, x1, y1 in 0..1 (top-left and bottom-right corners)"
    )
    polygon: list[Point] | None = Field(
        None, min_length=3, max_length=32, description="Corner points (x, y) in 0..1, in order"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> Region:
        if (self.rect is None) == (self.polygon is None):
            raise ValueError("give exactly one of rect or polygon")
        pts = self.points()
        if any(not (0.0 <= c <= 1.0) for p in pts for c in p):
            raise ValueError("coordinates must be within 0..1")
        if self.rect is not None and not (self.rect[0] < self.rect[2] and self.rect[1] < self.rect[3]):
            raise ValueError("rect needs x0 < x1 and y0 < y1")
        return self

    def points(self) -> list[Point]:
        """The outline as points (a rect becomes its four corners)."""
        if self.rect is not None:
            x0, y0, x1, y1 = self.rect
            return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        return list(self.polygon or [])


class Period(_Strict):
    """One span of office hours on a working day, e.g. 08:30–12:00 (China time)."""

    start: time = Field(description="First minute of the span (HH:MM)")
    end: time = Field(description="End of the span, exclusive (HH:MM)")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        """Accept "08:30-12:00" as well as {start: "08:30", end: "12:00"}."""
        if isinstance(value, str):
            m = _PERIOD_RE.match(value)
            if not m:
                raise ValueError(f"expected 'HH:MM-HH:MM', got {value!r}")
            h0, m0, h1, m1 = (int(g) for g in m.groups())
            return {"start": time(h0, m0), "end": time(h1, m1)}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if not self.start < self.end:
            raise ValueError(f"start {self.start:%H:%M} must be before end {self.end:%H:%M}")
        return self


class OfficeHours(_Strict):
    """When a window must be staffed (办公时间): spans on working days of the work calendar."""

    periods: list[Period] = Field(
        default_factory=lambda: [Period.model_validate("08:30-12:00"), Period.model_validate("14:00-17:30")],
        min_length=1,
        max_length=8,
        description="Spans of the day, China time, e.g. '08:30-12:00'",
    )
    working_days_only: bool = Field(
        True,
        description="Only on working days of the calendar (holidays and weekends off, "
        "调休 make-up days on); false = every day of the week",
    )


class CaptureConfig(_Strict):
    """How frames are pulled from the stream and when the connection is rebuilt."""

    open_timeout_ms: int = Field(10_000, ge=500, le=120_000, description="Give up opening after")
    read_timeout_ms: int = Field(5_000, ge=200, le=120_000, description="Give up one read after")
    watchdog_seconds: float = Field(20.0, ge=1, le=600, description="Reconnect when no frame came for this long")
    backoff_base_seconds: float = Field(1.0, ge=0.05, le=60, description="First retry delay; doubles per failure")
    backoff_max_seconds: float = Field(60.0, ge=1, le=3600, description="Longest retry delay")
    fps: float = Field(5.0, gt=0, le=30, description="Frames analysed per second (others skipped)")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport (tcp survives lossy Wi-Fi better)")


class MotionConfig(_Strict):
    """Frigate-style motion: grey, ~100 px high, blurred, against a running average."""

    frame_height: int = Field(100, ge=32, le=720, description="Analysis height in pixels")
    threshold: int = Field(30, ge=1, le=255, description="Grey-level change that counts as motion")
    contour_area: int = Field(10, ge=1, le=100_000, description="Smallest moving blob, pixels at analysis size")
    frame_alpha: float = Field(0.01, gt=0, le=1, description="Background running-average weight")
    lightning_threshold: float = Field(
        0.8, gt=0, le=1, description="Share of the picture changing at once that means lights or camera moved: ignored"
    )


class PresenceConfig(_Strict):
    """Per-window presence with hysteresis (在岗/离岗)."""

    absent_seconds: float = Field(120.0, ge=1, le=7200, description="N: no presence this long -> unattended")
    present_seconds: float = Field(10.0, ge=0, le=3600, description="M: presence this long -> attended")
    present_gap_seconds: float = Field(
        15.0, gt=0, le=600, description="Quiet gaps shorter than this do not break a run of presence"
    )
    min_activity_fraction: float = Field(
        0.005, gt=0, le=1, description="Share of the region's pixels that must move to count as presence"
    )
    person_blob: bool = Field(
        False, description="Also count a person-sized foreground blob that holds still (selective background)"
    )
    blob_min_fraction: float = Field(0.04, gt=0, le=1, description="Smallest blob, share of region")
    blob_max_fraction: float = Field(0.9, gt=0, le=1, description="Largest blob, share of region")
    absorb_seconds: float = Field(
        1800.0,
        ge=10,
        le=86_400,
        description="A still blob fades into the background after about this long (ghosts of moved chairs)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PresenceConfig:
        if self.present_gap_seconds >= self.absent_seconds:
            raise ValueError("present_gap_seconds must be shorter than absent_seconds")
        if self.blob_min_fraction >= self.blob_max_fraction:
            raise ValueError("blob_min_fraction must be below blob_max_fraction")
        return self


class SnapshotConfig(_Strict):
    """The JPEG attached to an event."""

    max_bytes: int = Field(
        48 * 1024, ge=4 * 1024, le=48 * 1024, description="Size cap; quality then size are reduced until the JPEG fits"
    )
    max_width: int = Field(640, ge=160, le=3840, description="Width before any reduction")
    draw_region: bool = Field(True, description="Outline the window's region on the snapshot")


class RecordingConfig(_Strict):
    """Local recording in segments, 30-day retention and a free-space floor."""

    root: Path = Field(
        Path("recordings"),
        description="Recordings folder; nothing outside it is ever deleted (case data lives elsewhere)",
    )
    segment_seconds: int = Field(60, ge=2, le=600, description="Length of one segment")
    retention_days: float = Field(30.0, gt=0, le=3650, description="Keep segments this long")
    min_free_bytes: int = Field(
        2 * 1024**3, ge=0, description="Delete oldest first while free space on the recordings disk is below this"
    )
    stall_seconds: float = Field(
        150.0, ge=5, le=3600, description="Restart ffmpeg when no segment completed for this long"
    )

    @model_validator(mode="after")
    def _stall(self) -> RecordingConfig:
        if self.stall_seconds <= self.segment_seconds:
            raise ValueError("stall_seconds must be longer than segment_seconds")
        return self


class CameraConfig(_Strict):
    """One IP camera: stream, ONVIF access, the windows it watches and how."""

    name: str = Field(pattern=CAMERA_NAME_RE, description="Camera name: letters, digits, '_'")
    rtsp_url: str = Field(pattern=r"^(rtsp|rtsps|file)://", description="Stream URL")
    onvif_host: str | None = Field(None, description="ONVIF host, if the camera speaks ONVIF")
    onvif_port: int = Field(80, ge=1, le=65535, description="ONVIF port")
    regions: list[Region] = Field(default_factory=list, description="Windows watched, one region each")
    record: bool = Field(True, description="Record this camera's stream in segments")
    capture: CaptureConfig = Field(default_factory=CaptureConfig, description="Capture settings")
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Motion settings")
    presence: PresenceConfig = Field(default_factory=PresenceConfig, description="Presence")
    snapshot: SnapshotConfig = Field(default_factory=SnapshotConfig, description="Snapshots")

    @classmethod
    def from_board(cls, cam: BoardCamera, **overrides: Any) -> CameraConfig:
        """From a board profile's camera; its window gets the whole picture unless overridden."""
        data: dict[str, Any] = {
            "name": cam.name,
            "rtsp_url": cam.rtsp_url,
            "onvif_host": cam.onvif_host,
            "onvif_port": cam.onvif_port,
        }
        if cam.window is not None:
            data["regions"] = [{"window": cam.window, "rect": (0.0, 0.0, 1.0, 1.0)}]
        data.update(overrides)
        return cls.model_validate(data)


class CamerasConfig(_Strict):
    """All cameras of a site with the site-wide office hours and recording settings."""

    office_hours: OfficeHours = Field(default_factory=OfficeHours, description="Office hours")
    recording: RecordingConfig = Field(default_factory=RecordingConfig, description="Recording")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras")

    @model_validator(mode="after")
    def _unique(self) -> CamerasConfig:
        names = [c.name for c in self.cameras]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"camera names repeat: {dup}")
        return self
