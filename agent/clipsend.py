"""Upload a recorded clip the hub asked for, in signed chunks that resume after any restart.

The hub's `clip` command names camera and time span; the box joins the segments (no
re-encoding), then sends chunks with at most `window` unacknowledged; acks are stored in
recordings.db (ClipUpload), so after a crash or a network loss only missing chunks are sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from agent.devices.camera.record.clips import ClipUpload, build_clip
from iobase.files import fsync_path, write_private
from protocol import topics
from protocol.clips import ClipChunk, seal_chunk

log = logging.getLogger("jiancha.agent.clips")


class ClipSender:
    """Handles `clip` commands and clip acks for one site."""

    def __init__(
        self,
        index,
        publish,
        site: str,
        sign_key,
        *,
        chunk_bytes: int = 128 * 1024,
        window: int = 8,
        resend_s: float = 10.0,
    ):
        self.index = index  # agent.devices.camera.record.index.RecordingsIndex
        self.publish = publish  # publish(topic, payload_bytes)
        self.site = site
        self.sign_key = sign_key
        self.chunk_bytes = chunk_bytes
        self.window = window
        self.resend_s = resend_s
        self.uploads: dict[str, tuple[ClipUpload, dict]] = {}
        self.sent_at: dict[tuple[str, int], float] = {}
        self.lock = threading.RLock()
        self.building: set[str] = set()
        self.clips_dir = Path(index.root) / "clips"

    # -- entry points (called from the MQTT thread) -----------------------------------------------
    def command(self, msg: dict) -> None:
        """`{"cmd": "clip", clip_id, camera, start_ms, end_ms}` → build and start uploading."""
        if msg.get("cmd") != "clip":
            return
        meta = {k: msg.get(k) for k in ("clip_id", "camera", "start_ms", "end_ms")}
        with self.lock:
            if meta["clip_id"] in self.uploads or meta["clip_id"] in self.building:
                log.info("clip %s already on its way", meta["clip_id"])
                return
            self.building.add(meta["clip_id"])
        threading.Thread(target=self._build_and_send, args=(meta,), name="clip-build", daemon=True).start()

    def on_ack(self, msg: dict) -> None:
        """The hub stored chunk `index` of `clip_id`."""
        clip_id, i = msg.get("clip_id"), msg.get("index")
        with self.lock:
            entry = self.uploads.get(clip_id)
            if entry is None or not isinstance(i, int):
                return
            up, meta = entry
            up.ack(i)
            self.sent_at.pop((clip_id, i), None)
            if up.done:
                log.info("clip %s uploaded (%d chunks)", clip_id, up.total)
                up.discard()
                (self.clips_dir / f"{clip_id}.json").unlink(missing_ok=True)
                del self.uploads[clip_id]
                return
        self.pump(clip_id)

    def resume(self) -> int:
        """After a restart: continue every unfinished upload whose clip file is still there."""
        n = 0
        for meta_file in sorted(self.clips_dir.glob("*.json")) if self.clips_dir.exists() else []:
            try:
                meta = json.loads(meta_file.read_text())
                path = self.clips_dir / f"{meta['clip_id']}.mp4"
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # written before this version made it durable, or damaged: never stop the box for
                # it (start-up would fail at every boot); the hub's request stays unanswered
                log.warning("clip upload %s cannot be resumed, dropped: %s", meta_file.name, exc)
                meta_file.unlink(missing_ok=True)
                continue
            if path.exists():
                self._start(path, meta)
                n += 1
        return n

    def tick(self) -> None:
        """Resend chunks whose ack did not come back in time (call every few seconds)."""
        for clip_id in list(self.uploads):
            self.pump(clip_id, resend_after=self.resend_s)

    # -- work ------------------------------------------------------------------------------------------
    def _build_and_send(self, meta: dict) -> None:
        try:
            path = build_clip(self.index, meta["camera"], int(meta["start_ms"]), int(meta["end_ms"]), meta["clip_id"])
            # durable before the first chunk goes out (and so before any ack is recorded): after a
            # power cut the resumed upload must be the same file, with its meta (issue 15)
            fsync_path(path)
            write_private(self.clips_dir / f"{meta['clip_id']}.json", json.dumps(meta).encode())
            fsync_path(self.clips_dir)
            self._start(path, meta)
        except (LookupError, ValueError, OSError) as exc:
            log.warning("clip %s cannot be built: %s", meta.get("clip_id"), exc)
        finally:
            with self.lock:
                self.building.discard(meta["clip_id"])

    def _start(self, path: Path, meta: dict) -> None:
        with self.lock:
            up = ClipUpload(path, meta["clip_id"], self.chunk_bytes, index=self.index)
            self.uploads[meta["clip_id"]] = (up, meta)
        self.pump(meta["clip_id"])

    def pump(self, clip_id: str, resend_after: float | None = None) -> int:
        """Send pending chunks, keeping at most `window` unacknowledged."""
        sent = 0
        now = time.monotonic()
        with self.lock:
            entry = self.uploads.get(clip_id)
            if entry is None:
                return 0
            up, meta = entry
            for i in up.pending():
                t = self.sent_at.get((clip_id, i))
                if t is not None and (resend_after is None or now - t < resend_after):
                    continue
                if t is None and sum(1 for (c, _j) in self.sent_at if c == clip_id) >= self.window:
                    break
                chunk = ClipChunk(
                    clip_id,
                    i,
                    up.total,
                    up.sha256,
                    meta["camera"],
                    int(meta["start_ms"]),
                    int(meta["end_ms"]),
                    up.chunk(i),
                )
                self.publish(topics.site_clip(self.site), seal_chunk(chunk, sign_key=self.sign_key))
                self.sent_at[(clip_id, i)] = now
                sent += 1
        return sent
