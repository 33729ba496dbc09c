"""Configuration files: the one YAML reader (precise errors naming file and key) and the models both
sides share (broker client, HTTP server, site codes). Each side owns its own schema:
`agent/config.py` (agent.yaml, board profiles), `hub/config.py` (hub.yaml, registry.yaml).

Relative paths inside a file are resolved against the folder that holds the file, so a
provisioned directory can be moved as a whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    if (
        not isinstance(code, str)
        or not SITE_CODE_RE.fullmatch(code)
        or code.lower() == HUB_IDENTITY
        or code.lower().startswith(RESERVED_PREFIX)
    ):
        raise ValueError(
            f"site code {code!r} must be 2-32 characters of letters, digits, '-' or '_' "
            f"(starting with a letter or digit) and must not be {HUB_IDENTITY!r} nor start with "
            f"{RESERVED_PREFIX!r} (reserved for the hub's own broker identities, e.g. "
            f"{BROKER_TOOL_IDENTITY!r})"
        )
    return code


class BrokerClient(Strict):
    host: str = Field("127.0.0.1", description="Broker host name or address")
    port: int = Field(8883, ge=1, le=65535, description="Broker TLS port")
    ca: Path = Field(description="CA certificate (PEM) that signed the broker certificate")
    cert: Path = Field(description="This client's certificate (PEM), CN = identity")
    key: Path = Field(description="This client's TLS private key (PEM)")
    keepalive: int = Field(30, ge=5, le=600, description="MQTT keepalive, seconds")
    client_id: str | None = Field(
        None,
        min_length=4,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="MQTT client id sent in CONNECT; the generated broker "
        "config ignores it (use_username_as_clientid: the "
        "session is named by the certificate CN)",
    )


class HttpServer(Strict):
    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 = any free port)")


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
_EXPECTED = {
    "HubConfig": "a hub config (hub.yaml, made by `jiancha provision init-hub`)",
    "AgentConfig": "an agent config (agent.yaml in sites/CODE/, made by `jiancha provision add-site`)",
    "Registry": "a site registry (registry.yaml)",
}


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
    from iobase.files import write_private

    path = Path(path)
    data = obj.model_dump(mode="json")
    write_private(path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8"))
