from datetime import time

import pytest
from pydantic import ValidationError

from agent.devices.camera.config import (
    CameraConfig,
    CamerasConfig,
    OfficeHours,
    Period,
    PresenceConfig,
    RecordingConfig,
    Region,
)


def test_region_rect_and_polygon_points():
    assert Region(window=1, rect=(0.1, 0.2, 0.5, 0.9)).points() == [(0.1, 0.2), (0.5, 0.2), (0.5, 0.9), (0.1, 0.9)]
    assert len(Region(window=2, polygon=[(0, 0), (1, 0), (0.5, 1)]).points()) == 3


@pytest.mark.parametrize(
    "data, message",
    [
        ({"window": 1}, "exactly one"),
        ({"window": 1, "rect": (0, 0, 1, 1), "polygon": [(0, 0), (1, 0), (1, 1)]}, "exactly one"),
        ({"window": 1, "rect": (0.5, 0, 0.2, 1)}, "x0 < x1"),
        ({"window": 1, "polygon": [(0, 0), (1.5, 0), (1, 1)]}, "within 0..1"),
        ({"window": 1, "rect": (0, 0, 1, 1), "colour": "red"}, "Extra inputs"),
    ],
)
def test_region_errors(data, message):
    with pytest.raises(ValidationError, match=message):
        Region.model_validate(data)


def test_periods_from_text_or_mapping():
    oh = OfficeHours(periods=["08:30-12:00", {"start": "14:00", "end": "17:30"}])
    assert [(p.start, p.end) for p in oh.periods] == [(time(8, 30), time(12)), (time(14), time(17, 30))]
    for bad in ("8:30", "12:00-08:30"):
        with pytest.raises(ValidationError):
            Period.model_validate(bad)


def test_default_office_hours_are_the_usual_two_spans():
    oh = OfficeHours()
    assert [f"{p.start:%H:%M}-{p.end:%H:%M}" for p in oh.periods] == ["08:30-12:00", "14:00-17:30"]


def test_cross_field_rules():
    with pytest.raises(ValidationError, match="present_gap_seconds"):
        PresenceConfig(absent_seconds=10, present_gap_seconds=10)
    with pytest.raises(ValidationError, match="stall_seconds"):
        RecordingConfig(segment_seconds=60, stall_seconds=60)
    with pytest.raises(ValidationError, match="repeat"):
        CamerasConfig(cameras=[{"name": "a", "rtsp_url": "rtsp://x"}] * 2)
    with pytest.raises(ValidationError):
        CameraConfig(name="../etc", rtsp_url="rtsp://x")  # becomes part of file names


def test_from_board_profile_gives_each_window_the_whole_picture():
    from agent.config import load_board

    board = load_board("rpi4-hall-3win")
    cams = [CameraConfig.from_board(c) for c in board.cameras]
    assert [c.name for c in cams] == ["win1", "win2", "win3"]
    assert [c.regions[0].window for c in cams] == [1, 2, 3]
    assert cams[0].regions[0].rect == (0.0, 0.0, 1.0, 1.0)
    narrowed = CameraConfig.from_board(board.cameras[0], regions=[{"window": 1, "rect": (0.2, 0.1, 0.7, 0.8)}])
    assert narrowed.regions[0].rect == (0.2, 0.1, 0.7, 0.8)


def test_loads_through_the_project_yaml_reader(tmp_path):
    from iobase.config import ConfigError, load_config

    p = tmp_path / "cameras.yaml"
    p.write_text(
        "office_hours: {periods: ['08:30-12:00', '14:00-17:30']}\n"
        "recording: {root: rec, retention_days: 30}\n"
        "cameras:\n  - name: win1\n    rtsp_url: rtsp://cam/1\n"
        "    regions: [{window: 1, rect: [0.1, 0.1, 0.6, 0.9]}]\n",
        encoding="utf-8",
    )
    cfg = load_config(p, CamerasConfig)
    assert cfg.cameras[0].regions[0].window == 1
    p.write_text("cameras:\n  - name: win1\n    rtsp_url: http://nope\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cameras.0.rtsp_url"):
        load_config(p, CamerasConfig)
