"""The real onvif-zeep-async client against the local SOAP responder (127.0.0.1 only)."""

import asyncio

import onvif  # noqa: F401
import pytest

from agent.devices.camera.onvif_device import (
    CameraAuthError,
    CameraUnreachable,
    MediaProfile,
    OnvifDevice,
    classify_error,
    with_credentials,
)
from tests.ports import free_port

from .soap_camera import SoapCamera


@pytest.fixture
async def soap():
    cams = []

    async def start(**kw):
        cam = SoapCamera(**kw)
        await cam.start()
        cams.append(cam)
        return cam

    yield start
    for cam in cams:
        await cam.stop()


async def test_describe_reads_info_profiles_and_uris(soap):
    cam = await soap()
    async with OnvifDevice("127.0.0.1", cam.port, "admin", "Hik12345") as dev:
        desc = await dev.describe()
    assert desc.info.manufacturer == "HIKVISION" and desc.info.model == "DS-2CD2T47G2-L"
    assert desc.info.serial_number.startswith("DS-2CD2T47G2-L2022")
    assert desc.profiles == [
        MediaProfile("Profile_1", "mainStream", "H264", 2560, 1440, 25.0),
        MediaProfile("Profile_2", "subStream", "H264", 640, 360, 5.0),
    ]
    assert desc.stream_uris["Profile_2"].startswith("rtsp://127.0.0.1:554/Streaming/Channels/102")
    assert desc.snapshot_uris["Profile_1"] == f"{cam.base}/onvif-http/snapshot?Profile_1"
    assert abs(desc.clock_offset_s) < 2
    assert cam.ops()[:2] == ["GetSystemDateAndTime", "GetServices"]  # skew first, then services
    assert all(ok for _, ok in cam.requests)


async def test_old_camera_without_getservices_falls_back_to_capabilities(soap):
    cam = await soap(get_services=False)
    async with OnvifDevice("127.0.0.1", cam.port, "admin", "Hik12345") as dev:
        assert [p.token for p in await dev.profiles()] == ["Profile_1", "Profile_2"]
    assert "GetCapabilities" in cam.ops()


async def test_wrong_password_is_a_clear_auth_error(soap):
    cam = await soap()
    with pytest.raises(
        CameraAuthError, match="rejected the WS-Security UsernameToken for user 'admin': check user and password"
    ):
        async with OnvifDevice("127.0.0.1", cam.port, "admin", "wrong"):
            pass
    assert ("GetServices", False) in cam.requests


async def test_camera_clock_two_hours_off_is_compensated(soap):
    cam = await soap(skew_s=2 * 3600 + 17)
    async with OnvifDevice("127.0.0.1", cam.port, "admin", "Hik12345", adjust_time=True) as dev:
        assert dev.clock_offset_s == pytest.approx(2 * 3600 + 17, abs=2)
        info = await dev.device_info()
    assert info.model == "DS-2CD2T47G2-L"
    assert all(ok for _, ok in cam.requests)  # every signed request was accepted


async def test_box_clock_behind_by_a_day_is_compensated(soap):
    cam = await soap(skew_s=-86_400)  # e.g. fake-hwclock restored an old time
    async with OnvifDevice("127.0.0.1", cam.port, "admin", "Hik12345") as dev:
        assert (await dev.profiles())[0].token == "Profile_1"


async def test_clock_skew_without_adjustment_names_the_clock(soap):
    cam = await soap(skew_s=3600)
    with pytest.raises(CameraAuthError, match=r"camera clock is \+(3599|3600) s from ours.*adjust_time"):
        async with OnvifDevice("127.0.0.1", cam.port, "admin", "Hik12345", adjust_time=False):
            pass


async def test_nothing_listening_is_unreachable():
    with pytest.raises(CameraUnreachable, match="127.0.0.1"):
        async with OnvifDevice("127.0.0.1", free_port(), "admin", "x", timeout=3):
            pass


async def test_silent_camera_times_out(soap):
    async def hang(reader, writer):
        await asyncio.sleep(10)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(CameraUnreachable, match="timed out after 0.5 s"):
            async with OnvifDevice("127.0.0.1", port, "admin", "x", timeout=0.5):
                pass
    finally:
        server.close()


def test_with_credentials_quotes_and_replaces():
    assert (
        with_credentials("rtsp://10.0.0.5:554/ch1", "admin", "p@ss:w/rd")
        == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/ch1"
    )
    assert with_credentials("rtsp://old:pw@10.0.0.5/ch1", "new", None) == "rtsp://new@10.0.0.5/ch1"
    assert with_credentials("rtsp://10.0.0.5/ch1", None, "x") == "rtsp://10.0.0.5/ch1"


def test_classify_error():
    from zeep.exceptions import Fault, TransportError

    assert classify_error(TransportError("x", status_code=401)) is CameraAuthError
    assert classify_error(Fault("Sender not Authorized", subcodes=[])) is CameraAuthError
    assert classify_error(ConnectionRefusedError()) is CameraUnreachable
    assert classify_error(Fault("Optional Action Not Implemented")).__name__ == "CameraProtocolError"


async def test_clock_jump_after_connect_needs_a_reconnect(soap):
    cam = await soap(skew_s=0)
    async with OnvifDevice("127.0.0.1", cam.port, "admin", "Hik12345") as dev:
        await dev.device_info()
        cam.skew_s = 900  # NTP moved one of the clocks
        with pytest.raises(CameraAuthError):
            await dev.device_info()
        await dev.reconnect()  # re-measures the offset
        assert (await dev.device_info()).manufacturer == "HIKVISION"
        assert dev.clock_offset_s == pytest.approx(900, abs=2)
