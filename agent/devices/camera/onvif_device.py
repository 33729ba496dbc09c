"""ONVIF device access (onvif-zeep-async): device info, media profiles, stream and snapshot URIs.

onvif-zeep-async signs every request with a WS-Security UsernameToken whose ``Created``
time cameras check against their own clock. With ``adjust_time=True`` the library first asks
the camera for its time (``GetSystemDateAndTime``, allowed without credentials), keeps the
offset (``ONVIFCamera.dt_diff``) and shifts every later ``Created`` by it, so a box whose
clock is wrong (no RTC, fake-hwclock) or a camera that never saw NTP still authenticates.
The offset is measured once per connection: after a clock jump, `reconnect()`.

Errors come out as `CameraAuthError` (credentials or clock rejected; the message says which
and by how much the clocks differ), `CameraUnreachable` (network, timeout) or
`CameraProtocolError` (the camera answered something else).
The WSDL files ship inside the onvif package; nothing is fetched from the network.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """An ONVIF camera could not be used; subclasses say why."""


class CameraAuthError(CameraError):
    """The camera rejected our WS-Security UsernameToken (password, user or clock)."""


class CameraUnreachable(CameraError):
    """No answer: address, port, network or timeout."""


class CameraProtocolError(CameraError):
    """The camera answered, but not as ONVIF requires (fault, unsupported operation)."""


@dataclass(frozen=True)
class DeviceInfo:
    """GetDeviceInformation."""

    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    hardware_id: str


@dataclass(frozen=True)
class MediaProfile:
    """One media profile (main stream, sub stream ...)."""

    token: str
    name: str
    encoding: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class CameraDescription:
    """What provisioning wants to know about a camera."""

    info: DeviceInfo
    profiles: list[MediaProfile]
    stream_uris: dict[str, str] = field(default_factory=dict)
    snapshot_uris: dict[str, str | None] = field(default_factory=dict)
    clock_offset_s: float | None = None


def import_onvif():
    """Import onvif lazily without letting it configure the root logger (it calls basicConfig)."""
    import logging as _logging

    root = _logging.getLogger()
    guard = None
    if not root.handlers:
        guard = _logging.NullHandler()
        root.addHandler(guard)  # basicConfig does nothing when a handler exists
    try:
        import onvif
    finally:
        if guard is not None:
            root.removeHandler(guard)
    return onvif


def is_auth_failure(exc: BaseException) -> bool:
    """True for a SOAP fault with a NotAuthorized subcode (or 'auth' text) or an HTTP 401."""
    from zeep.exceptions import Fault, TransportError

    if isinstance(exc, TransportError):
        return exc.status_code == 401
    if isinstance(exc, Fault):
        subcodes = exc.subcodes or []
        names = [getattr(c, "text", None) or str(c) for c in subcodes]
        return any("NotAuthorized" in n for n in names) or "auth" in (exc.message or "").lower()
    return False


def classify_error(exc: BaseException) -> type[CameraError]:
    """Which CameraError an exception from the onvif client means."""
    import aiohttp
    from zeep.exceptions import Fault, TransportError

    if is_auth_failure(exc):
        return CameraAuthError
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError, OSError)):
        return CameraUnreachable
    if isinstance(exc, TransportError):
        return CameraUnreachable if exc.status_code in (502, 503, 504) else CameraProtocolError
    if isinstance(exc, Fault):
        return CameraProtocolError
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return classify_error(cause)
    return CameraProtocolError


def with_credentials(uri: str, user: str | None, password: str | None) -> str:
    """The RTSP URI with user:password inserted (URL-quoted); unchanged without a user."""
    if not user:
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    cred = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{cred}@{host}"))


def _get(obj: Any, *path: str) -> Any:
    """obj.a.b.c or None when any step is missing (cameras omit optional elements)."""
    for p in path:
        obj = getattr(obj, p, None) if not isinstance(obj, dict) else obj.get(p)
        if obj is None:
            return None
    return obj


def profile_from(p: Any) -> MediaProfile:
    """A MediaProfile from a zeep GetProfiles item."""
    enc = _get(p, "VideoEncoderConfiguration")
    fps = _get(enc, "RateControl", "FrameRateLimit")
    return MediaProfile(
        token=str(_get(p, "token")),
        name=str(_get(p, "Name") or ""),
        encoding=_get(enc, "Encoding"),
        width=_get(enc, "Resolution", "Width"),
        height=_get(enc, "Resolution", "Height"),
        fps=float(fps) if fps is not None else None,
    )


class OnvifDevice:
    """One camera over ONVIF; use ``async with OnvifDevice(...) as cam:`` or connect()/close()."""

    def __init__(
        self,
        host: str,
        port: int = 80,
        user: str | None = None,
        password: str | None = None,
        *,
        adjust_time: bool = True,
        timeout: float = 10.0,
        wsdl_dir: str | None = None,
    ):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.adjust_time = adjust_time
        self.timeout = timeout
        self.wsdl_dir = wsdl_dir
        self._cam = None

    def __repr__(self) -> str:
        return f"OnvifDevice({self.host}:{self.port}, user={self.user!r})"

    @property
    def clock_offset_s(self) -> float | None:
        """Camera clock minus ours, seconds, as measured at connect (adjust_time only)."""
        diff = getattr(self._cam, "dt_diff", None)
        return diff.total_seconds() if diff is not None else None

    async def _call(self, what: str, coro):
        """Await an onvif call with our timeout, mapping failures to CameraError subclasses."""
        try:
            async with asyncio.timeout(self.timeout):
                return await coro
        except CameraError:
            raise
        except BaseException as exc:
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            kind = classify_error(exc)
            if kind is CameraAuthError:
                raise CameraAuthError(await self._auth_message(what)) from exc
            detail = (
                f"timed out after {self.timeout:g} s"
                if isinstance(exc, (TimeoutError, asyncio.TimeoutError))
                else f"{type(exc).__name__}: {exc}"
            )
            raise kind(f"{self.host}:{self.port} {what}: {detail}") from exc

    async def camera_clock_offset(self) -> float | None:
        """Camera UTC clock minus ours (seconds) via an unauthenticated GetSystemDateAndTime."""
        try:
            async with asyncio.timeout(self.timeout):
                svc = await self._cam.create_devicemgmt_service()
                r = await svc.authless_GetSystemDateAndTime()
            d, t = r.UTCDateTime.Date, r.UTCDateTime.Time
            cam = datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=UTC)
            return (cam - datetime.now(UTC)).total_seconds()
        except Exception:
            return None

    async def _auth_message(self, what: str) -> str:
        """Explain an auth failure: credentials, or clocks that differ by too much."""
        offset = await self.camera_clock_offset()
        msg = (
            f"{self.host}:{self.port} {what}: the camera rejected the WS-Security UsernameToken for user {self.user!r}"
        )
        if offset is not None and abs(offset) >= 5 and not self.adjust_time:
            return (
                msg + f": the camera clock is {offset:+.0f} s from ours and tokens must be "
                "within seconds of it; enable adjust_time or fix the camera's time (NTP), "
                "then check user and password"
            )
        msg += ": check user and password"
        if offset is not None and abs(offset) >= 5:
            msg += f" (the camera clock is {offset:+.0f} s from ours; that offset was compensated)"
        return msg

    async def connect(self) -> None:
        """Create the client, measure the clock offset and learn the service addresses."""
        onvif = import_onvif()
        kwargs = {"wsdl_dir": self.wsdl_dir} if self.wsdl_dir else {}
        # no_cache: the WSDLs are local files; the cache would only add a SQLite file in $HOME.
        self._cam = onvif.ONVIFCamera(
            self.host, self.port, self.user, self.password, no_cache=True, adjust_time=self.adjust_time, **kwargs
        )
        try:
            await self._call("connect", self._cam.update_xaddrs())
        except BaseException:
            await self.close()
            raise

    async def reconnect(self) -> None:
        """Close and connect again (re-measures the clock offset after a clock jump)."""
        await self.close()
        await self.connect()

    async def close(self) -> None:
        """Close all HTTP sessions (idempotent)."""
        cam, self._cam = self._cam, None
        if cam is not None:
            await cam.close()

    async def __aenter__(self) -> OnvifDevice:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def device_info(self) -> DeviceInfo:
        """Manufacturer, model, firmware, serial number, hardware id."""
        svc = await self._call("devicemgmt", self._cam.create_devicemgmt_service())
        r = await self._call("GetDeviceInformation", svc.GetDeviceInformation())
        return DeviceInfo(
            *(str(_get(r, k) or "") for k in ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId"))
        )

    async def _media(self):
        return await self._call("media service", self._cam.create_media_service())

    async def profiles(self) -> list[MediaProfile]:
        """Media profiles, in the camera's order (usually main stream first)."""
        media = await self._media()
        return [profile_from(p) for p in await self._call("GetProfiles", media.GetProfiles())]

    async def stream_uri(self, profile_token: str, protocol: str = "RTSP") -> str:
        """RTSP URI of a profile (without credentials; see `with_credentials`)."""
        media = await self._media()
        req = {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": protocol}},
            "ProfileToken": profile_token,
        }
        r = await self._call("GetStreamUri", media.GetStreamUri(req))
        uri = _get(r, "Uri")
        if not uri:
            raise CameraProtocolError(f"{self.host}:{self.port} GetStreamUri: no Uri in the answer")
        return str(uri)

    async def snapshot_uri(self, profile_token: str) -> str | None:
        """HTTP snapshot URI of a profile, or None when the camera has none."""
        await self._media()
        return await self._call("GetSnapshotUri", self._cam.get_snapshot_uri(profile_token))

    async def describe(self) -> CameraDescription:
        """Device info, profiles and each profile's stream and snapshot URI."""
        info = await self.device_info()
        profiles = await self.profiles()
        streams = {p.token: await self.stream_uri(p.token) for p in profiles}
        snaps = {p.token: await self.snapshot_uri(p.token) for p in profiles}
        return CameraDescription(info, profiles, streams, snaps, self.clock_offset_s)
