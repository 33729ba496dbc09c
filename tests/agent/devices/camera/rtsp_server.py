"""A tiny RTSP camera for tests: Basic auth, RTP over TCP (interleaved), H.264 from a file.

ffmpeg packetizes a small looping video as RTP and sends it to a local UDP socket; the server
answers OPTIONS/DESCRIBE/SETUP/PLAY/TEARDOWN and forwards each RTP datagram, interleaved on
channel 0, to every client that has sent PLAY. Clients with wrong or missing credentials get
401, so a client that records anything has proven it sent the password.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path


class FakeRtspCamera:
    """`with FakeRtspCamera(video, "admin", "pw") as cam: cam.url(...)`; 127.0.0.1 only."""

    def __init__(self, video: Path, user: str, password: str):
        self.video, self.user, self.password = Path(video), user, password
        self.auth_ok = 0  # DESCRIBEs that carried the right credentials
        self.auth_failed = 0  # requests refused with 401
        self.playing: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def url(self, user: str | None = None, password: str | None = None, path: str = "stream1") -> str:
        """rtsp://user:password@127.0.0.1:port/path (this camera's own credentials by default)."""
        from urllib.parse import quote

        user = self.user if user is None else user
        password = self.password if password is None else password
        return f"rtsp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> FakeRtspCamera:
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        self._udp.settimeout(0.2)
        udp_port = self._udp.getsockname()[1]
        sdp_path = self.video.with_suffix(f".{udp_port}.sdp")
        self._ffmpeg = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.video),
                "-map",
                "0:v:0",
                "-c",
                "copy",
                "-f",
                "rtp",
                "-sdp_file",
                str(sdp_path),
                f"rtp://127.0.0.1:{udp_port}?pkt_size=1200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (sdp_path.exists() and "rtpmap" in sdp_path.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("ffmpeg wrote no SDP")
            time.sleep(0.05)
        self.sdp = _describe_sdp(sdp_path.read_text())
        cam = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                cam._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._tcp = Server(("127.0.0.1", 0), Handler)
        self.port = self._tcp.server_address[1]
        threading.Thread(target=self._tcp.serve_forever, daemon=True).start()
        threading.Thread(target=self._forward, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._tcp.shutdown()
        self._tcp.server_close()
        self._ffmpeg.kill()
        self._ffmpeg.wait()
        self._udp.close()
        with self._lock:
            for s in self.playing:
                s.close()

    def _forward(self) -> None:
        while not self._stop.is_set():
            try:
                pkt = self._udp.recv(65536)
            except (TimeoutError, OSError):
                continue
            frame = b"$\x00" + len(pkt).to_bytes(2, "big") + pkt
            with self._lock:
                for s in list(self.playing):
                    try:
                        s.sendall(frame)
                    except OSError:
                        self.playing.remove(s)

    def _authorized(self, headers: dict[str, str]) -> bool:
        want = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return headers.get("authorization", "") == f"Basic {want}"

    def _serve(self, sock: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            while b"\r\n\r\n" not in buf:
                try:
                    data = sock.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while buf.startswith(b"$") and len(buf) >= 4:  # RTCP from the client: skip
                    n = 4 + int.from_bytes(buf[2:4], "big")
                    if len(buf) < n:
                        break
                    buf = buf[n:]
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, url, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            cseq = headers.get("cseq", "0")
            if method not in ("OPTIONS",) and not self._authorized(headers):
                self.auth_failed += 1
                self._reply(sock, cseq, "401 Unauthorized", ['WWW-Authenticate: Basic realm="camera"'])
                continue
            if method == "OPTIONS":
                self._reply(sock, cseq, "200 OK", ["Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"])
            elif method == "DESCRIBE":
                self.auth_ok += 1
                body = self.sdp.encode()
                self._reply(
                    sock,
                    cseq,
                    "200 OK",
                    [f"Content-Base: {url}/", "Content-Type: application/sdp", f"Content-Length: {len(body)}"],
                    body,
                )
            elif method == "SETUP":
                self._reply(
                    sock,
                    cseq,
                    "200 OK",
                    ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", "Session: 12345678;timeout=60"],
                )
            elif method == "PLAY":
                self._reply(sock, cseq, "200 OK", ["Session: 12345678"])
                with self._lock:
                    self.playing.append(sock)
            elif method == "TEARDOWN":
                self._reply(sock, cseq, "200 OK", ["Session: 12345678"])
                return
            else:
                self._reply(sock, cseq, "200 OK", ["Session: 12345678"])

    def _reply(self, sock, cseq, status, headers, body=b"") -> None:
        msg = "\r\n".join([f"RTSP/1.0 {status}", f"CSeq: {cseq}", *headers, "", ""]).encode() + body
        with self._lock:
            try:
                sock.sendall(msg)
            except OSError:
                pass


def _describe_sdp(sdp: str) -> str:
    """ffmpeg's RTP SDP made into an RTSP DESCRIBE answer (port 0, a control attribute)."""
    out = []
    for line in sdp.strip().splitlines():
        if line.startswith("m=video"):
            line = "m=video 0 RTP/AVP " + line.split()[-1]
        out.append(line)
        if line.startswith("m="):
            out.append("a=control:trackID=0")
    return "\r\n".join(out) + "\r\n"
