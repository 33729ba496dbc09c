"""ClipSender.resume at start-up: an upload it cannot read back (a meta file a power cut left
empty, as an older version wrote it without fsync) is dropped with a warning; it never stops the
box from starting (agent/app.py calls resume() while wiring the cameras)."""

from __future__ import annotations

import json
import logging

from agent.clipsend import ClipSender
from agent.devices.camera.record.index import RecordingsIndex
from protocol.crypto import generate_ed25519


def test_resume_drops_what_it_cannot_read_and_keeps_starting(tmp_path, caplog):
    index = RecordingsIndex(tmp_path / "recordings")
    sent = []
    sender = ClipSender(index, lambda t, p: sent.append(t), "S03", generate_ed25519())
    sender.clips_dir.mkdir()
    (sender.clips_dir / "c-empty.json").write_bytes(b"")  # what a power cut leaves of an unsynced file
    (sender.clips_dir / "c-half.json").write_bytes(b'{"clip_id": "c-ha')
    (sender.clips_dir / "c-gone.json").write_text(json.dumps({"clip_id": "c-gone", "camera": "win1"}))  # no .mp4
    with caplog.at_level(logging.WARNING, logger="jiancha.agent.clips"):
        assert sender.resume() == 0
    assert sender.uploads == {} and sent == []
    assert sorted(p.name for p in sender.clips_dir.iterdir()) == ["c-gone.json"]  # readable: kept for later
    assert sum("cannot be resumed" in r.getMessage() for r in caplog.records) == 2
    index.close()
