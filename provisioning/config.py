"""Configuration files (hub.yaml, agent.yaml, registry.yaml): pydantic models and the only YAML reader.

Relative paths inside a file are resolved against the folder that holds the file, so a
provisioned directory can be moved as a whole.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# used with fullmatch only: `$` would let a trailing newline through ("S01\n")
SITE_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,31}")
HUB_IDENTITY = "hub"  # TLS client-certificate CN of the hub; never a valid site code
# The broker runner's own identity (health probe, retained-message sweep): it must never share
# the hub's MQTT session (the broker sets client id = CN, one session per identity). Codes
# starting with "jc-" are reserved for such service identities (e.g. future hub workers).
BROKER_TOOL_IDENTITY = "jc-broker-tool"
RESERVED_PREFIX = "jc-"


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid; the message names file and key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def validate_site_code(code: str) -> str:
    """Site codes become MQTT usernames, client ids and topic levels: letters, digits, '-' and
    '_' only; never the hub's identity nor a reserved service identity (``jc-...``)."""
    if (not isinstance(code, str) or not SITE_CODE_RE.fullmatch(code) or code.lower() == HUB_IDENTITY
            or code.lower().startswith(RESERVED_PREFIX)):
        raise ValueError(
            f"site code {code!r} must be 2-32 characters of letters, digits, '-' or '_' "
            f"(starting with a letter or digit) and must not be {HUB_IDENTITY!r} nor start with "
            f"{RESERVED_PREFIX!r} (reserved for the hub's own broker identities, e.g. "
            f"{BROKER_TOOL_IDENTITY!r})")
    return code


class BrokerClient(Strict):
    host: str = Field("127.0.0.1", description="Broker host name or address")
    port: int = Field(8883, ge=1, le=65535, description="Broker TLS port")
    ca: Path = Field(description="CA certificate (PEM) that signed the broker certificate")
    cert: Path = Field(description="This client's certificate (PEM), CN = identity")
    key: Path = Field(description="This client's TLS private key (PEM)")
    keepalive: int = Field(30, ge=5, le=600, description="MQTT keepalive, seconds")
    client_id: str | None = Field(None, min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$",
                                  description="MQTT client id sent in CONNECT; the generated broker "
                                              "config ignores it (use_username_as_clientid: the "
                                              "session is named by the certificate CN)")


class HttpServer(Strict):
    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 = any free port)")


class HubApi(HttpServer):
    admin_token: str = Field(min_length=16, description="Bearer token for operator API calls")
    department_tokens: dict[str, str] = Field(
        {}, description="Department name → bearer token; a department sees and replies to its own tickets")
    header_timeout_s: float = Field(20.0, gt=0, le=600, description="A request's headers must arrive within this "
                                    "time after connecting (or after the previous answer)")
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="A request's body must arrive whole within this time")


class HubClips(Strict):
    site_cap_bytes: int = Field(2 * 2**30, ge=2**20, description="Clip bytes stored per site at most "
                                "(complete and in progress); delete clips to make room")
    clip_cap_bytes: int = Field(2**30, ge=2**20, description="Declared size of one clip at most")


class HubKeys(Strict):
    sign_key: Path = Field(description="Hub Ed25519 signing key (PEM): signs config pushed to agents")
    seal_key: Path = Field(description="Hub X25519 key (PEM): agents seal batches to it")


TicketLevel = Literal["duban", "order_explain", "inquiry", "rectify", "suggestion", "decision"]


class Supervision(Strict):
    yellow_days: int = Field(1, ge=0, le=30, description="Default yellow threshold, working days")
    sweep_interval_s: float = Field(30.0, gt=0, le=3600, description="How often lights are recomputed")
    ladder: list[TicketLevel] = Field(
        ["order_explain", "suggestion", "decision"], min_length=1,
        description="Escalation ladder opened by a red card: first level on red, next on no reply "
                    "or a rejected reply (责令说明理由 → 监察建议书 → 监察决定书)")
    reply_days: int = Field(3, ge=1, le=30, description="Working days a department has to reply to a ticket")
    yellow_per_red: int = Field(2, ge=1, le=10, description="Yellow cards on one case that count as one red "
                                                            "(and open a 督办 ticket)")
    remind_roles: list[Literal["handler", "head"]] = Field(["handler", "head"],
                                                           description="Who gets the yellow-card SMS")
    backdate_tolerance_hours: float | None = Field(
        72.0, ge=0, description="Events entered later than this after their stated time are a "
                                "procedural violation (None: off)")
    backentry_grace_minutes: float = Field(
        30.0, ge=0, le=1440, description="A case recorded more than 10 minutes after its receipt (补录) is "
                                         "judged this long after it was recorded, once its steps are in")


class HubConfig(Strict):
    region: str = Field(min_length=1, description="Region code, e.g. 140700")
    name: str = Field(min_length=1, description="Human name, e.g. 晋中市政务服务中心")
    level: Literal["county", "city", "province"] = "city"
    data_dir: Path = Field(Path("data"), description="Where the hub database and quarantine live")
    registry: Path = Field(Path("registry.yaml"), description="Site registry written by provisioning")
    broker: BrokerClient
    keys: HubKeys
    api: HubApi
    supervision: Supervision = Supervision()
    clips: HubClips = HubClips()
    notify: Any = Field(default_factory=dict, validate_default=True,
                        description="SMS gateway and SMTP relay for reminders (hub/notify NotifyConfig)")
    doc_prefix: str = Field("监察", description="Prefix of document numbers, e.g. 晋中监察")

    @field_validator("notify", mode="before")
    @classmethod
    def _notify(cls, v):
        """Validated here, lazily: agents import this module and need none of it (~7 MB)."""
        from hub.notify.config import NotifyConfig
        if isinstance(v, NotifyConfig):
            return v
        try:
            return NotifyConfig.model_validate(v or {})
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                       for e in exc.errors())) from None


class AgentHub(Strict):
    sign_pub: Path = Field(description="Hub Ed25519 public key (PEM): config must be signed by it")
    seal_pub: Path = Field(description="Hub X25519 public key (PEM): batches are sealed to it")


class AgentHttp(HttpServer):
    port: int = Field(8081, ge=0, le=65535, description="Clerk/department API port")
    token: str = Field(min_length=16, description="Bearer token for the clerk/department API")
    request_timeout_s: float = Field(30.0, gt=0, le=600, description="A request's headers, and then its body, "
                                     "must arrive within this time, or the connection is closed")
    max_connections: int = Field(64, ge=1, le=10000, description="Open connections at most; more get 503")


class AgentSync(Strict):
    batch_max_records: int = Field(500, ge=1, le=2000, description="Records per batch at most")
    max_inflight_records: int = Field(10000, ge=1, description="Unacknowledged records in flight at most")
    rate_per_s: float = Field(20000.0, gt=0, description="Drain rate limit, records per second")
    ack_timeout_s: float = Field(10.0, gt=0, description="Resend from the last ack after this silence")


class AgentSite(Strict):
    code: str
    name: str = Field(min_length=1)
    board: str = Field("generic", description="Board profile in firmware-configs/")

    _check_code = field_validator("code")(classmethod(lambda cls, v: validate_site_code(v)))


class AgentDevices(Strict):
    mode: Literal["real", "fake", "off"] = Field(
        "real", description="real = drivers from the board profile; fake = simulated devices (demo, "
                            "laptops); off = no devices")
    refresh_s: float = Field(2.0, gt=0, le=60, description="How often lamps and signs are refreshed")
    heartbeat_s: float = Field(60.0, ge=5, le=3600, description="Box health record interval")
    fake_visits: list[tuple[float, float]] | None = Field(
        None, description="Fake cameras only: (start_s, end_s) spans with the clerk at the window, "
                          "repeating; default an 8-minute cycle")
    fake_absent_s: float = Field(120.0, ge=1, le=7200, description="Fake cameras only: absence that "
                                 "counts as unattended")
    cameras: dict | None = Field(None, description="Camera settings (agent/devices/camera/config.py "
                                 "CamerasConfig: office_hours, recording, cameras); default: the board's cameras")


class AgentConfig(Strict):
    site: AgentSite
    hub: AgentHub
    broker: BrokerClient
    sign_key: Path = Field(description="Site Ed25519 signing key (PEM)")
    http: AgentHttp
    data_dir: Path = Field(Path("data"), description="Where the agent's SQLite log lives")
    sync: AgentSync = AgentSync()
    devices: AgentDevices = AgentDevices()


class RegistrySite(Strict):
    code: str
    name: str
    board: str = "generic"
    sign_pub: str = Field(description="Site Ed25519 public key, PEM text")
    revoked: bool = False
    added_at: str = ""
    revoked_at: str | None = None


class Registry(Strict):
    sites: list[RegistrySite] = []

    def active(self) -> dict[str, RegistrySite]:
        """Sites that are not revoked, by code."""
        return {s.code: s for s in self.sites if not s.revoked}


M = TypeVar("M", bound=BaseModel)


def _resolve_paths(model: BaseModel, base: Path) -> None:
    for name, value in model:
        if isinstance(value, Path) and not value.is_absolute():
            setattr(model, name, (base / value))
        elif isinstance(value, BaseModel):
            _resolve_paths(value, base)


# Top-level keys that only one kind of file has: a file given to the wrong command is named as
# what it is instead of listing every key as an "Extra input".
_KIND_KEYS = {
    "a hub config (hub.yaml)": {"region", "keys", "api", "registry", "supervision", "notify", "doc_prefix"},
    "an agent config (agent.yaml)": {"site", "hub", "sign_key", "http", "sync", "devices"},
    "a site registry (registry.yaml)": {"sites"},
}
_EXPECTED = {"HubConfig": "a hub config (hub.yaml, made by `jiancha provision init-hub`)",
             "AgentConfig": "an agent config (agent.yaml in sites/CODE/, made by `jiancha provision add-site`)",
             "Registry": "a site registry (registry.yaml)"}


def _wrong_kind(raw: dict, model: type[BaseModel]) -> str | None:
    """'a hub config (hub.yaml)' when `raw` is clearly another kind of file than `model` reads."""
    keys = set(raw)
    fields = set(model.model_fields)
    unknown = keys - fields
    if not unknown:
        return None
    for kind, marks in _KIND_KEYS.items():
        hits = unknown & marks
        if hits and len(hits) >= min(2, len(marks)) and not (marks <= fields):
            return kind
    return None


def load_config(path: str | Path, model: type[M]) -> M:
    """Read a YAML file into `model`; relative paths are resolved against the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file, expected YAML") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        obj = model.model_validate(raw)
    except ValidationError as exc:
        other = _wrong_kind(raw, model)
        if other is not None:
            expected = _EXPECTED.get(model.__name__, model.__name__)
            raise ConfigError(f"{path}: this is {other}, not {expected}") from None
        lines = [f"{path}: invalid configuration"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    _resolve_paths(obj, path.parent.resolve())
    return obj


def dump_config(obj: BaseModel, path: str | Path) -> None:
    """Write a model as YAML (paths as given, usually relative), atomically, 0600: config files
    hold tokens (hub.yaml, agent.yaml) or decide who may connect (registry.yaml)."""
    from provisioning.fsmodes import write_private
    path = Path(path)
    data = obj.model_dump(mode="json")
    write_private(path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8"))
