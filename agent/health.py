"""Box health (设备健康): the heartbeat body, the problems in it, and the disk-full policy.

Pure functions over values, with the host read through `HostReaders` so tests point them at a
fake /proc and /sys. Nothing here raises on a missing file: an unknown value is None.

Which problems restart the agent? None of these. A full disk, a hot CPU, a large backlog or an
untrusted clock are not fixed by a restart, and restarting would take the clerk API down as
well (reads still work on a full disk). They are reported in the heartbeat, in the systemd
STATUS= line and on the hub. The watchdog gate (agent/watchdog.py) pings only while the event
loop runs and the log can take the write lock, which a restart *can* fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024
GiB = 1024 * MiB

# Raspberry Pi firmware throttling flags (vcgencmd get_throttled).
UNDER_VOLTAGE_NOW = 1 << 0
THROTTLED_NOW = 1 << 2
UNDER_VOLTAGE_SINCE_BOOT = 1 << 16
THROTTLED_SINCE_BOOT = 1 << 18

NOTICE_PREFIX = ("sign-notice-", "sign-lines-")  # what signs show, not device states

# Plausible range of a thermal zone; outside it the sensor is absent or broken.
_TEMP_RANGE_C = (-40.0, 150.0)

DiskAction = Literal["ok", "evict_recordings", "critical"]


@dataclass(frozen=True)
class HostReaders:
    """Where host facts come from; tests pass a fake root for /proc and /sys and a statvfs."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    statvfs: Callable[[str], os.statvfs_result] = field(default=os.statvfs)


class HealthThresholds(BaseModel):
    """Limits above/below which the box reports a problem (hub-pushed config may override)."""

    model_config = ConfigDict(extra="forbid")

    disk_floor_bytes: int = Field(
        1 * GiB,
        ge=0,
        description="Free space kept for the case log; recordings below it are "
        "evicted oldest first, and below it with none left is critical",
    )
    temp_max_c: float = Field(
        80.0,
        gt=0,
        le=150,
        description="CPU temperature above which the box reports overheating (a Pi 4/5 starts throttling at 80 °C)",
    )
    backlog_max: int = Field(
        10_000, ge=0, description="Records not yet acknowledged by the hub above which the box reports a sync backlog"
    )
    mem_min_available_bytes: int = Field(
        64 * MiB, ge=0, description="MemAvailable below which the box reports low memory"
    )
    ok_device_states: tuple[str, ...] = Field(
        ("ok",), description="Device states that are healthy; any other state is reported"
    )


# -- readers ---------------------------------------------------------------------------------
def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def read_cpu_temp_c(readers: HostReaders) -> float | None:
    """Hottest thermal zone in °C (a Pi has one, cpu-thermal), or None where there is none."""
    temps = []
    for path in sorted((readers.sys / "class" / "thermal").glob("thermal_zone*/temp")):
        text = _read_text(path)
        try:
            c = int(text.strip()) / 1000.0 if text else None
        except ValueError:
            continue
        if c is not None and _TEMP_RANGE_C[0] <= c <= _TEMP_RANGE_C[1]:
            temps.append(c)
    return round(max(temps), 1) if temps else None


def read_loadavg(readers: HostReaders) -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages from /proc/loadavg."""
    text = _read_text(readers.proc / "loadavg")
    try:
        one, five, fifteen = (float(x) for x in (text or "").split()[:3])
    except ValueError:
        return None
    return one, five, fifteen


def read_meminfo(readers: HostReaders) -> dict[str, int]:
    """MemTotal and MemAvailable from /proc/meminfo, in bytes (missing keys are left out)."""
    out: dict[str, int] = {}
    for line in (_read_text(readers.proc / "meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            parts = rest.split()
            try:
                out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
            except (ValueError, IndexError):
                continue
    return out


def read_uptime_s(readers: HostReaders) -> float | None:
    """Seconds since boot from /proc/uptime."""
    text = _read_text(readers.proc / "uptime")
    try:
        return float(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def read_throttled(readers: HostReaders) -> int | None:
    """Raspberry Pi firmware throttling flags (hex in sysfs), or None on other machines."""
    platform = readers.sys / "devices" / "platform"
    for path in sorted(platform.glob("soc*/*firmware/get_throttled")):
        text = _read_text(path)
        try:
            return int(text.strip(), 16) if text else None
        except ValueError:
            return None
    return None


def read_disk(readers: HostReaders, path: Path) -> tuple[int, int] | None:
    """(free bytes available to the agent, total bytes) of the filesystem holding `path`."""
    try:
        st = readers.statvfs(str(path))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


# -- heartbeat -------------------------------------------------------------------------------
def collect(
    readers: HostReaders,
    *,
    data_dir: Path,
    backlog: int,
    clock: str,
    devices: Mapping[str, str],
    recordings_bytes: int = 0,
) -> dict:
    """The heartbeat body: host facts read through `readers` plus what the agent passes in."""
    load = read_loadavg(readers)
    mem = read_meminfo(readers)
    disk = read_disk(readers, data_dir)
    return {
        "cpu_temp_c": read_cpu_temp_c(readers),
        "load": list(load) if load else None,
        "mem_total_bytes": mem.get("MemTotal"),
        "mem_available_bytes": mem.get("MemAvailable"),
        "disk_path": str(data_dir),
        "disk_free_bytes": disk[0] if disk else None,
        "disk_total_bytes": disk[1] if disk else None,
        "recordings_bytes": recordings_bytes,
        "uptime_s": read_uptime_s(readers),
        "throttled": read_throttled(readers),
        "backlog": backlog,
        "clock": clock,
        "devices": dict(devices),
    }


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def health_problems(heartbeat: Mapping, thresholds: HealthThresholds) -> list[str]:
    """What is wrong with the box, one message per problem, for the hub, the clerk UI and STATUS=."""
    t, hb, out = thresholds, heartbeat, []
    free = hb.get("disk_free_bytes")
    if free is None:
        out.append(f"磁盘状态未知 (disk): cannot read free space of {hb.get('disk_path')}")
    elif free < t.disk_floor_bytes:
        out.append(
            f"磁盘空间低于下限 (disk below floor): {_mib(free)} free in "
            f"{hb.get('disk_path')}, floor {_mib(t.disk_floor_bytes)}"
        )
    temp = hb.get("cpu_temp_c")
    if temp is not None and temp > t.temp_max_c:
        out.append(f"温度过高 (too hot): CPU {temp:.1f} °C, limit {t.temp_max_c:.0f} °C")
    backlog = hb.get("backlog") or 0
    if backlog > t.backlog_max:
        out.append(f"积压过多 (sync backlog): {backlog} records not acknowledged by the hub, limit {t.backlog_max}")
    if hb.get("clock") == "untrusted":
        out.append("时钟不可信 (clock untrusted): no NTP sync and no recent hub time")
    avail = hb.get("mem_available_bytes")
    if avail is not None and avail < t.mem_min_available_bytes:
        out.append(f"内存不足 (low memory): {_mib(avail)} available, floor {_mib(t.mem_min_available_bytes)}")
    flags = hb.get("throttled") or 0
    if flags & (UNDER_VOLTAGE_NOW | UNDER_VOLTAGE_SINCE_BOOT):
        now = "now" if flags & UNDER_VOLTAGE_NOW else "since boot"
        out.append(f"供电电压不足 (under-voltage {now}): check the power supply and cable")
    for name, state in sorted((hb.get("devices") or {}).items()):
        # agent/hall.py device_states() also carries the hub's sign texts; they are not states
        if name.startswith(NOTICE_PREFIX):
            continue
        if state not in t.ok_device_states:
            out.append(f"设备异常 (device) {name}: {state}")
    return out


def status_text(heartbeat: Mapping, problems: list[str]) -> str:
    """One line for systemd's STATUS= (shown by `systemctl status`)."""
    parts = [f"backlog {heartbeat.get('backlog', 0)}", f"clock {heartbeat.get('clock')}"]
    if heartbeat.get("disk_free_bytes") is not None:
        parts.append(f"{_mib(heartbeat['disk_free_bytes'])} free")
    if heartbeat.get("cpu_temp_c") is not None:
        parts.append(f"{heartbeat['cpu_temp_c']:.0f} °C")
    head = "ok" if not problems else f"{len(problems)} problem(s): {problems[0]}"
    return f"{head}; " + ", ".join(parts)


# -- disk-full policy ------------------------------------------------------------------------
def disk_action(free_bytes: int, floor_bytes: int, recordings_bytes: int) -> DiskAction:
    """What to do about free space: recordings give way first; case records are never dropped.

    ok: at or above the floor. evict_recordings: below it and there are recordings to delete
    (oldest first). critical: below it with no recordings left; nothing more is freed
    automatically, the operator must act, and the clerk API keeps working until SQLite itself
    cannot write (then 507 for writes, reads still answered).
    """
    if free_bytes >= floor_bytes:
        return "ok"
    return "evict_recordings" if recordings_bytes > 0 else "critical"


def bytes_to_evict(free_bytes: int, floor_bytes: int, recordings_bytes: int, headroom_bytes: int = 0) -> int:
    """How many bytes of recordings to delete to get back to floor + headroom (at most all)."""
    want = floor_bytes + headroom_bytes - free_bytes
    return max(0, min(want, recordings_bytes)) if free_bytes < floor_bytes else 0
