"""A clip the hub asks for reaches it in signed chunks and resumes after the box restarts.

Real broker, real hub process; the box side is the agent's ClipSender, run as a process of its own
(tests/e2e/clipbox.py) that is SIGKILLed and started again, over a real
recordings index whose segments ffmpeg made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from agent.devices.camera.record.index import RecordingsIndex, Segment
from agent.devices.camera.record.layout import segment_relpath
from protocol import topics
from protocol.crypto import load_private_pem
from protocol.wire import decode_msg
from tests.agent.devices.camera.helpers import make_video
from tests.e2e.harness import REPO, http, wait_for
from tests.powercut import PowerCut, build_shim
from tests.provisioning.mqtt_helpers import connect

T0 = 1_795_000_000_000


def _recordings(tmp_path) -> RecordingsIndex:
    index = RecordingsIndex(tmp_path / "recordings")
    segs = []
    for n in range(3):  # three 2-second segments of camera win1
        rel = segment_relpath("win1", T0 + n * 2000)
        path = index.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        make_video(tmp_path / f"seg{n}.mp4", seconds=2.0, size="640x480")  # ~50 KB each
        shutil.move(tmp_path / f"seg{n}.mp4", path)
        segs.append(Segment(rel, "win1", T0 + n * 2000, T0 + n * 2000 + 2000, path.stat().st_size))
    index.add(segs)
    return index


def _clipbox(env, index: RecordingsIndex, cmd: dict, mode: str, extra_env: dict | None = None) -> subprocess.Popen:
    """The box side as its own process (tests/e2e/clipbox.py)."""
    args = [str(env.root), str(index.root), str(env.broker.port), json.dumps(cmd), mode]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.clipbox", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})},
    )


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return build_shim(tmp_path_factory.mktemp("powercut"))


def test_clip_upload_resumes_and_is_verified(env, tmp_path, shim):
    index = _recordings(tmp_path)
    index.close()  # the box processes below open it themselves
    box = connect(env.root, "S03", env.broker)  # the box's MQTT identity (certificate S03)
    box.subscribe(topics.site_down_filter("S03"))
    try:
        # the operator asks for 6 s of window 1's camera
        st, r = http(
            "POST",
            f"{env.hub_url}/api/sites/S03/clips",
            {"camera": "win1", "start_ms": T0, "end_ms": T0 + 6000},
            env.token,
        )
        assert st == 409  # S03 has not said it is online yet
        box.publish(topics.site_state("S03"), _birth(), retain=True)
        wait_for(lambda: any(s["code"] == "S03" and s["online"] for s in env.hub_get("/api/sites")), 10)
        st, r = http(
            "POST",
            f"{env.hub_url}/api/sites/S03/clips",
            {"camera": "win1", "start_ms": T0, "end_ms": T0 + 6000},
            env.token,
        )
        assert st == 202
        cmd = decode_msg(box.wait_for(topics.site_cmd("S03")).payload)
        assert cmd["cmd"] == "clip" and cmd["clip_id"] == r["clip_id"]

        box.close()  # one MQTT session per site: the box processes below take it over
        # first box process: sends, gets a few acks, then loses its power (SIGKILL, and every
        # write under the recordings folder that was not fsync'd is lost: tests/powercut)
        # the smallest chunks the hub takes (MIN_CHUNK_BYTES): the clip is about 10 of them
        cut = PowerCut(shim, index.root)
        first = _clipbox(env, index, cmd, "first", cut.env())
        try:
            at_kill = json.loads(first.stdout.readline() or "{}")
        finally:
            first.kill()
            first.wait()
            cut.cut()
            cut.close()
        total, left = at_kill["total"], at_kill["pending"]
        assert total > 6 and left < total
        # second box process: resumes only what was not acknowledged
        second = _clipbox(env, index, cmd, "resume")
        try:
            out, _ = second.communicate(timeout=90)
        finally:
            second.kill()
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[0] == {"resumed": 1}, lines
        assert lines[-1]["done"], f"upload did not finish: {lines}"
        assert 0 < lines[-1]["sent"] <= left, (lines, left)  # acknowledged chunks were not sent again
    finally:
        box.close()
    clip = wait_for(
        lambda: next((c for c in env.hub_get("/api/clips") if c["clip_id"] == cmd["clip_id"] and c["done"]), None),
        20,
        what="complete clip at the hub",
    )
    assert clip["total"] == total and clip["camera"] == "win1" and clip["received"] == total
    assert clip["stored_bytes"] == clip["size"]
    req = urllib.request.Request(
        f"{env.hub_url}/api/clips/{cmd['clip_id']}.mp4", headers={"Authorization": f"Bearer {env.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        mp4 = resp.read()
    assert len(mp4) == clip["size"] and mp4[4:8] == b"ftyp"
    dur = (
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "-"],
            input=mp4,
            capture_output=True,
        )
        .stdout.decode()
        .strip()
    )
    assert 5.0 <= float(dur) <= 7.0


def test_forged_clip_chunk_is_refused(env, tmp_path):
    from protocol.clips import ClipChunk, seal_chunk
    from protocol.crypto import generate_ed25519

    box = connect(env.root, "S03", env.broker)
    try:
        forged = seal_chunk(ClipChunk("S03-win1-1", 0, 1, "0" * 64, "win1", 1, 2, b"x"), sign_key=generate_ed25519())
        box.publish(topics.site_clip("S03"), forged)
        stolen = seal_chunk(
            ClipChunk("S01-win1-1", 0, 1, "0" * 64, "win1", 1, 2, b"x"),
            sign_key=load_private_pem((env.root / "sites" / "S03" / "sign.key").read_bytes(), "ed25519"),
        )
        box.publish(topics.site_clip("S03"), stolen)  # S03 cannot upload S01's clip
        # nor a clip of its own that the hub never asked for
        unasked = seal_chunk(
            ClipChunk("S03-win1-1", 0, 1, "0" * 64, "win1", 1, 2, b"x" * 1000),
            sign_key=load_private_pem((env.root / "sites" / "S03" / "sign.key").read_bytes(), "ed25519"),
        )
        box.publish(topics.site_clip("S03"), unasked)
    finally:
        box.close()
    m = wait_for(lambda: (m := env.metrics()).get('jiancha_rejected_total{reason="unrequested_clip"}') == 2 and m, 10)
    assert m['jiancha_rejected_total{reason="bad_signature"}'] == 1
    assert m["jiancha_clip_chunks_dropped_total"] == 3
    assert m['jiancha_dropped_bytes_total{what="clip"}'] >= len(forged) + len(stolen) + len(unasked)
    assert m.get("jiancha_clip_chunks_stored_total", 0) == 0
    assert env.hub_get("/api/clips") == []  # nothing stored, no row made by a chunk


def _birth() -> bytes:
    from protocol.wire import encode_msg

    return encode_msg({"online": True, "last_seq": 0, "acked_seq": 0})
