"""The box side of a clip upload as a process of its own (tests/e2e/test_clips.py), so that a
restart is a real one: a new process, a fresh connection to the recordings index on disk, no
memory of the one before.

    python -m tests.e2e.clipbox ROOT RECORDINGS PORT CMD_JSON first   # stops after 3 acks, waits to be killed
    python -m tests.e2e.clipbox ROOT RECORDINGS PORT CMD_JSON resume  # resumes, runs to the end

Prints one JSON line per milestone on stdout."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from agent.clipsend import ClipSender
from agent.devices.camera.record.index import RecordingsIndex
from protocol import topics
from protocol.clips import MIN_CHUNK_BYTES
from protocol.crypto import load_private_pem
from protocol.wire import decode_msg, encode_msg
from tests.provisioning.mqtt_helpers import connect


def say(**facts) -> None:
    print(json.dumps(facts), flush=True)


def main(root: Path, recordings: Path, port: int, cmd: dict, mode: str) -> None:
    index = RecordingsIndex(recordings)
    key = load_private_pem((root / "sites" / "S03" / "sign.key").read_bytes(), "ed25519")
    box = connect(root, "S03", port)  # the broker allows one session per site: the test's is closed
    box.subscribe(topics.site_clip_ack("S03"))
    box.publish(topics.site_state("S03"), encode_msg({"online": True, "last_seq": 0, "acked_seq": 0}), retain=True)
    chunks = []

    def publish(topic: str, payload: bytes) -> None:
        if topic == topics.site_clip("S03"):
            chunks.append(len(payload))
        box.publish(topic, payload)

    sender = ClipSender(index, publish, "S03", key, chunk_bytes=MIN_CHUNK_BYTES, window=4)
    if mode == "first":
        sender.command(cmd)
        for _ in range(3):
            sender.on_ack(decode_msg(box.wait_for(topics.site_clip_ack("S03"), timeout=30).payload))
        up, _ = sender.uploads[cmd["clip_id"]]
        say(total=up.total, pending=len(up.pending()), sent=len(chunks))
        time.sleep(600)  # until killed: a crash, not a goodbye
        return
    resumed = sender.resume()
    say(resumed=resumed)
    deadline = time.monotonic() + 60
    while cmd["clip_id"] in sender.uploads and time.monotonic() < deadline:
        try:
            sender.on_ack(decode_msg(box.wait_for(topics.site_clip_ack("S03"), timeout=2).payload))
        except AssertionError:
            sender.tick()
    say(done=cmd["clip_id"] not in sender.uploads, sent=len(chunks))
    box.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5])
