"""Running Mosquitto for a hub directory: `ManagedBroker` (tests, demo) and `run_broker` (CLI).

Both render DIR/broker/mosquitto.conf afresh (absolute paths, so a moved directory works),
start `mosquitto -c` as a child, wait until an MQTT CONNECT with the broker tool's own client
certificate succeeds, write DIR/broker/broker.pid and clear stray retained messages.

The broker tool's identity (CN ``jc-broker-tool``, DIR/broker/tool.crt/.key, issued by init-hub
or at the first start of an older hub directory) is used for the probe and the sweep, never the
hub's: the generated config sets `use_username_as_clientid`, so the client id is always the CN
and each identity has exactly one session. A connection with the hub's certificate would throw
the running hub off, and a clean-session one would wipe the hub's queued batches. Two tool
connections would throw each other off, so they take DIR/broker/tool.lock (flock) in turn.

Reloads: add-site and revoke-site rewrite DIR/broker/acl and DIR/broker/crl.pem, then
`signal_reload` sends SIGHUP to the pid in broker.pid; a watcher thread (on by default, always
on in `run_broker`) also sends SIGHUP when either file changes. Mosquitto 2.0.11 re-reads on
SIGHUP both the ACL -- and re-applies it to clients that are already connected, so a revoked
site's live connection can no longer publish or receive anything -- and the listener's CRL, so
new TLS handshakes with a revoked certificate fail (tests/provisioning/test_revocation.py
checks both). No restart is needed.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

from hub.config import HubConfig
from iobase.config import BROKER_TOOL_IDENTITY, ConfigError, load_config
from protocol import topics
from provisioning.brokerconf import MAX_RETAINED_STATE_BYTES, BrokerLayout, bind_address, write_broker_conf
from provisioning.errors import BrokerError, CAError, ProvisioningError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def find_mosquitto() -> str:
    """Path of the mosquitto binary ($JIANCHA_MOSQUITTO, PATH, /usr/sbin, /usr/local/sbin)."""
    candidates = [
        os.environ.get("JIANCHA_MOSQUITTO"),
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise BrokerError(
        "mosquitto not found on PATH, in /usr/sbin or /usr/local/sbin; install it: apt-get install mosquitto"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _file_sig(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten (atomic replace changes the inode)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _is_mosquitto(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust kill(0)
    return b"mosquitto" in cmdline


def signal_reload(dir: Path) -> bool:
    """SIGHUP the broker recorded in DIR/broker/broker.pid; False if none runs (stale pid ignored)."""
    pid_file = BrokerLayout(Path(dir)).pid
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    if not _is_mosquitto(pid):
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True


def _mqtt_connect_packet(client_id: str) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT (clean session, keepalive 10 s)."""
    cid = client_id.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x0a" + struct.pack("!H", len(cid)) + cid
    return b"\x10" + bytes([len(var)]) + var


def probe(host: str, port: int, *, ca: Path, cert: Path, key: Path, timeout: float = 2.0) -> bool:
    """True when a TLS handshake with the client certificate and an MQTT CONNECT succeed.

    The broker names the session after the certificate's CN (`use_username_as_clientid`), so
    this clean-session CONNECT replaces -- and wipes -- that identity's session: use the broker
    tool's certificate (or a site's nobody else is using), never the hub's.

    The round trip also serves as a barrier: Mosquitto handles a pending SIGHUP at the top of
    its loop, before it can serve the several round trips of this probe.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(_mqtt_connect_packet(f"jc-probe-{os.getpid()}-{time.monotonic_ns()}"))
                connack = tls.recv(4)
                if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
                    return False
                # accepted; another connection of the same identity may already have taken the
                # session over and closed ours, so a failing DISCONNECT changes nothing
                with contextlib.suppress(OSError, ssl.SSLError):
                    tls.sendall(b"\xe0\x00")  # DISCONNECT
                return True
    except (OSError, ssl.SSLError):
        return False


class _SweepInterrupted(BrokerError):
    """The sweep's connection was closed by the broker (another tool connection took over)."""


def is_stray_retained(topic: str, size: int) -> bool:
    """A retained message that should not be kept: only a site's (or a child hub's) up/state may
    be retained, and only at a birth/death message's size (the hub's own topics are never stray)."""
    parsed = topics.parse_site_topic(topic) or topics.parse_child_topic(topic)
    if parsed is None:
        return False
    _site, rest = parsed
    if rest == "up/state":
        return size > MAX_RETAINED_STATE_BYTES
    return rest.startswith("up/")


def sweep_retained(host: str, port: int, *, ca: Path, cert: Path, key: Path, timeout: float = 5.0) -> list[str]:
    """Clear stray retained messages a site left (see `is_stray_retained`); returns their topics.

    Mosquitto's ACL cannot forbid the retain flag on one topic, and `retain_available false`
    would forbid it everywhere (the hub's state, the signed config and the sites' birth/death
    need it). So the broker runner, as the broker tool's identity (whose ACL allows exactly
    `jc/v1/site/+/up/#`), subscribes to every site's up-topics, collects the retained messages
    Mosquitto sends right after the SUBACK, and publishes an empty retained message to each
    stray topic, which deletes it. A second SUBSCRIBE (to a topic no one publishes, inside the
    same ACL pattern) is the barrier: its SUBACK comes after every retained message of the
    first. The empty messages also reach the hub's persistent session, where an empty payload
    is counted and dropped (hub/ingest.py).

    Raises BrokerError if the broker closes the connection midway (`_SweepInterrupted`: another
    connection with the same certificate took the session over); the sweep is idempotent, so
    the caller may simply run it again.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        protocol=mqtt.MQTTv311,
        clean_session=True,
        client_id=f"jc-sweep-{os.getpid()}-{time.monotonic_ns()}",
    )
    client.reconnect_delay_set(5, 10)  # never race another connection of this identity back
    client.tls_set(
        ca_certs=str(ca),
        certfile=str(cert),
        keyfile=str(key),
        cert_reqs=ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    client.tls_insecure_set(True)  # same as `probe`: the CA is ours; the host name may be an alias
    stray: dict[str, int] = {}
    acked: set[int] = set()
    lost: list[str] = []
    cond = threading.Condition()

    def on_message(_c, _u, msg) -> None:
        if msg.retain and msg.payload and is_stray_retained(msg.topic, len(msg.payload)):
            with cond:
                stray[msg.topic] = len(msg.payload)

    def on_subscribe(_c, _u, mid, _codes, _props=None) -> None:
        with cond:
            acked.add(mid)
            cond.notify_all()

    def on_disconnect(_c, _u, _flags, reason, _props=None) -> None:
        with cond:
            lost.append(str(reason))
            cond.notify_all()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    try:
        client.connect(host, port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"cannot sweep retained messages on {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        _rc, first = client.subscribe(topics.ALL_SITE_UP, qos=0)
        _rc, second = client.subscribe(topics.ALL_CHILD_UP, qos=0)  # child hubs (docs/rollup.md)
        _rc, barrier = client.subscribe(f"{topics.ROOT}/site/+/up/jc-sweep-barrier", qos=0)
        with cond:
            if not cond.wait_for(lambda: lost or {first, second, barrier} <= acked, timeout):
                raise BrokerError(
                    f"no SUBACK from {host}:{port} within {timeout:.0f} s while sweeping retained messages"
                )
            if lost:
                raise _SweepInterrupted(
                    f"{host}:{port} closed the sweep's connection ({lost[0]}): "
                    f"another client with the same certificate?"
                )
            found = sorted(stray)
        client.unsubscribe(topics.ALL_SITE_UP)
        client.unsubscribe(topics.ALL_CHILD_UP)
        infos = [client.publish(t, b"", qos=1, retain=True) for t in found]
        deadline = time.monotonic() + timeout
        for info in infos:
            with cond:
                if lost:
                    raise _SweepInterrupted(
                        f"{host}:{port} closed the sweep's connection ({lost[0]}) while deleting retained messages"
                    )
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    finally:
        client.disconnect()
        client.loop_stop()
    return found


_live: weakref.WeakSet[ManagedBroker] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for broker in list(_live):
        broker.stop()


class ManagedBroker:
    """Mosquitto for a hub directory as a child process; a context manager.

    `port` overrides the port in hub.yaml. Output goes to DIR/broker/mosquitto.log (or to our
    own stdout/stderr with `foreground=True`). With `watch=True` a thread polls the ACL and CRL
    every `poll_s` seconds and sends SIGHUP when either changed.
    """

    def __init__(
        self,
        dir: Path,
        port: int | None = None,
        *,
        start: bool = True,
        watch: bool = True,
        poll_s: float = 0.5,
        foreground: bool = False,
    ) -> None:
        self.dir = Path(dir).resolve()
        self.layout = BrokerLayout(self.dir)
        try:
            self.hub = load_config(self.dir / "hub.yaml", HubConfig)
        except ConfigError as exc:
            raise BrokerError(str(exc)) from None
        self._port = port or self.hub.broker.port
        self._foreground = foreground
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._log_offset = 0
        self._sigs: tuple = (None, None)
        self._watch = watch
        self._poll_s = poll_s
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()
        self.swept: list[str] = []
        _live.add(self)
        if start:
            self.start()

    # -- properties ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port Mosquitto listens on."""
        return self._port

    @property
    def host(self) -> str:
        """An address clients on this machine can connect to."""
        return bind_address(self.hub.broker.host) or "127.0.0.1"

    @property
    def pid(self) -> int | None:
        """Mosquitto's pid while it runs."""
        return self._proc.pid if self.is_running() else None

    def is_running(self) -> bool:
        """True while the Mosquitto child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> ManagedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ManagedBroker:
        """Start Mosquitto (no-op if running) and wait until it accepts a client certificate."""
        with self._lock:
            if self.is_running():
                return self
            exe = find_mosquitto()
            self._ensure_tool()
            conf = write_broker_conf(self.dir, self._port)
            self._sigs = self._file_sigs()
            if self._foreground:
                out = None
            else:
                out = open(self.layout.log, "ab")
                self._log_offset = out.tell()
            try:
                self._proc = subprocess.Popen(
                    [exe, "-c", str(conf)],
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            finally:
                if out is not None:
                    out.close()
            self._wait_ready()
            self.layout.pid.write_text(f"{self._proc.pid}\n")
            self.swept = self.sweep_retained()
        if self._watch and self._watcher is None:
            self._closing.clear()
            self._watcher = threading.Thread(target=self._watch_loop, name="broker-watch", daemon=True)
            self._watcher.start()
        return self

    def _ensure_tool(self) -> None:
        """The broker tool's certificate and ACL entry (issued now for an older hub directory)."""
        from provisioning.setup import ensure_broker_tool  # setup imports this module

        try:
            if ensure_broker_tool(self.dir):
                self._note(
                    f"jiancha: gave this hub directory the broker tool's identity "
                    f"({self.layout.tool_crt}, CN {BROKER_TOOL_IDENTITY}, and its ACL entry)"
                )
        except (ProvisioningError, CAError, OSError) as exc:
            raise BrokerError(
                f"{self.layout.tool_crt} or its ACL entry is missing (a hub directory "
                f"from an older version) and cannot be provided now: {exc}. The broker "
                f"runner issues it from ca/ca.key once; make the CA available for one "
                f"start (the probe and sweep must not use the hub's certificate)"
            ) from None

    @contextlib.contextmanager
    def _tool_session(self):
        """One connection as the broker tool at a time per hub directory (threads and processes
        alike): a second one would take the session over and close the first."""
        fd = os.open(self.layout.tool_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def sweep_retained(self, attempts: int = 3) -> list[str]:
        """Clear stray retained messages (see the module function); returns their topics."""
        lay = self.layout
        for attempt in range(attempts):
            try:
                with self._tool_session():
                    swept = sweep_retained(self.host, self._port, ca=lay.ca_crt, cert=lay.tool_crt, key=lay.tool_key)
                break
            except _SweepInterrupted:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2)
        if swept:
            self._note(
                f"jiancha: cleared {len(swept)} stray retained message(s) (only up/state "
                f"may be retained): {', '.join(swept[:10])}{' ...' if len(swept) > 10 else ''}"
            )
        return swept

    def _note(self, msg: str) -> None:
        """A line for the operator: the terminal/journal in the foreground, else the log."""
        if self._foreground:
            print(msg, file=sys.stderr, flush=True)
        else:
            with contextlib.suppress(OSError), open(self.layout.log, "a", encoding="utf-8") as fh:
                fh.write(msg + "\n")

    def ping(self, timeout: float = 2.0) -> bool:
        """One TLS + MQTT CONNECT round trip as the broker tool (never the hub: it leaves the
        hub's session alone); after a SIGHUP (e.g. from `signal_reload`) it succeeds only once
        Mosquitto has applied the reload."""
        return self.is_running() and self._probe(timeout)

    def _probe(self, timeout: float = 2.0) -> bool:
        lay = self.layout
        with self._tool_session():
            return probe(self.host, self._port, ca=lay.ca_crt, cert=lay.tool_crt, key=lay.tool_key, timeout=timeout)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with code {self._proc.returncode} while "
                    f"starting on port {self._port}:\n{self.log_tail()}"
                )
            if self._probe(timeout=1.0) and self._proc.poll() is None:
                return
            time.sleep(0.05)
        self._terminate(signal.SIGKILL)
        raise BrokerError(
            f"mosquitto did not accept a TLS client within {START_TIMEOUT_S:.0f} s "
            f"on port {self._port}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last lines Mosquitto wrote since the latest start."""
        if self._foreground:
            return "(output went to the terminal)"
        try:
            with open(self.layout.log, "rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def reload(self) -> None:
        """SIGHUP: re-read ACL and CRL (ACL applies to connected clients too); returns once applied."""
        with self._lock:
            if not self.is_running():
                raise BrokerError("mosquitto is not running")
            self._sigs = self._file_sigs()
            self._proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + START_TIMEOUT_S
            while not self._probe() and time.monotonic() < deadline:
                time.sleep(0.05)

    def _file_sigs(self) -> tuple:
        return _file_sig(self.layout.acl), _file_sig(self.layout.crl)

    def sync(self) -> bool:
        """SIGHUP if the ACL or CRL changed since the last start/reload; True if it did."""
        with self._lock:
            if not self.is_running() or self._file_sigs() == self._sigs:
                return False
            self.reload()
            return True

    def _watch_loop(self) -> None:
        while not self._closing.wait(self._poll_s):
            try:
                self.sync()
            except BrokerError:
                pass  # the owner sees it on its next call; the watcher must not die

    def _terminate(self, sig: int, timeout: float = STOP_TIMEOUT_S) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError):  # removed by someone else
            if self.layout.pid.read_text().strip() == str(proc.pid):
                self.layout.pid.unlink()
        return proc.returncode

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL after `timeout`."""
        with self._lock:
            return self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash or power cut: only the last autosave survives."""
        with self._lock:
            self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start again on the same port (clients see a disconnect and reconnect)."""
        with self._lock:
            self.stop()
            self.start()

    def close(self) -> None:
        """Stop the watcher and Mosquitto."""
        self._closing.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=STOP_TIMEOUT_S)
        self.stop()
        _live.discard(self)


def run_broker(dir: Path) -> int:
    """`jiancha broker run`: Mosquitto in the foreground; reloads ACL/CRL changes; exit code."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    broker = None
    try:
        broker = ManagedBroker(Path(dir), watch=True, poll_s=1.0, foreground=True)
        print(
            f"jiancha: mosquitto pid {broker.pid} listening on {broker.host}:{broker.port} "
            f"(config {broker.layout.conf})",
            flush=True,
        )
        while not stop.wait(0.5):
            with broker._lock:
                proc = broker._proc
                if proc is not None and proc.poll() is not None:
                    rc = proc.returncode  # it died on its own: let systemd restart us
                    return 128 - rc if rc < 0 else rc
        broker.close()
        return 0
    except BrokerError as exc:
        print(f"jiancha: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if broker is not None:
            broker.close()
        for s, h in old.items():
            signal.signal(s, h)
