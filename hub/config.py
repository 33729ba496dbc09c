"""The hub's configuration schema: hub.yaml (HubConfig) and the site registry (registry.yaml),
read with iobase.config.load_config; provisioning writes both."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from iobase.config import BrokerClient, HttpServer, Strict


class HubSessions(Strict):
    idle_minutes: float = Field(
        30, gt=0, le=24 * 60, description="A web session ends after this long without a request"
    )
    absolute_hours: float = Field(12, gt=0, le=24 * 30, description="A web session ends this long after login")
    max_per_user: int = Field(
        10, ge=1, le=100, description="Sessions one account may hold at once; a new login ends the oldest beyond it"
    )


class HubLoginThrottle(Strict):
    per_login: int = Field(5, ge=1, le=1000, description="Failed logins for one login name before it waits")
    per_address: int = Field(20, ge=1, le=10_000, description="Failed logins from one client address before it waits")
    window_minutes: float = Field(15, gt=0, le=24 * 60, description="How long a count lasts (from its first failure)")
    max_tracked: int = Field(
        10_000, ge=100, le=1_000_000, description="Login names and addresses remembered at most (bounded memory)"
    )


class HubTls(Strict):
    cert: Path = Field(
        description="Server certificate chain (PEM): issued by `jiancha provision hub-https`, or the operator's own"
    )
    key: Path = Field(description="Its private key (PEM, unencrypted, 0600)")


class HubApi(HttpServer):
    admin_token: str = Field(
        min_length=16, description="Bearer token for machine calls (scripts, monitoring): role admin"
    )
    department_tokens: dict[str, str] = Field(
        {},
        description="Department name → bearer token for a department's own systems: role department, "
        "scoped to that department (docs/accounts.md)",
    )
    sessions: HubSessions = Field(HubSessions(), description="Web sessions of operator accounts")
    login_throttle: HubLoginThrottle = Field(HubLoginThrottle(), description="Limits on failed logins")
    header_timeout_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="A request's headers must arrive within this time after connecting (or after the previous answer)",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="A request's body must arrive whole within this time"
    )
    wall_streams: int = Field(
        200, ge=1, le=10_000, description="Live walls (server-sent event streams) one hub process serves at most"
    )
    wall_streams_per_session: int = Field(
        4, ge=1, le=100, description="Live walls one session (or token) may hold open at once"
    )
    wall_poll_s: float = Field(
        0.25, ge=0.05, le=10, description="How often each hub process looks for changes while a wall is open"
    )
    wall_heartbeat_s: float = Field(
        15.0, ge=1, le=300, description="A keep-alive line on an idle wall stream this often (and the session checked)"
    )
    tls: HubTls | None = Field(
        None,
        description="Serve HTTPS only, with this certificate and key (unset: plain HTTP, "
        "operators' passwords travel in clear; docs/operations.md)",
    )


class HubClips(Strict):
    site_cap_bytes: int = Field(
        2 * 2**30,
        ge=2**20,
        description="Clip bytes stored per site at most (complete and in progress); delete clips to make room",
    )
    clip_cap_bytes: int = Field(2**30, ge=2**20, description="Declared size of one clip at most")


class HubKeys(Strict):
    sign_key: Path = Field(description="Hub Ed25519 signing key (PEM): signs config pushed to agents")
    seal_key: Path = Field(description="Hub X25519 key (PEM): agents seal batches to it")


TicketLevel = Literal["duban", "order_explain", "inquiry", "rectify", "suggestion", "decision"]


class Supervision(Strict):
    yellow_days: int = Field(1, ge=0, le=30, description="Default yellow threshold, working days")
    sweep_interval_s: float = Field(30.0, gt=0, le=3600, description="How often lights are recomputed")
    ladder: list[TicketLevel] = Field(
        ["order_explain", "suggestion", "decision"],
        min_length=1,
        description="Escalation ladder opened by a red card: first level on red, next on no reply "
        "or a rejected reply (责令说明理由 → 监察建议书 → 监察决定书)",
    )
    reply_days: int = Field(3, ge=1, le=30, description="Working days a department has to reply to a ticket")
    yellow_per_red: int = Field(
        2, ge=1, le=10, description="Yellow cards on one case that count as one red (and open a 督办 ticket)"
    )
    remind_roles: list[Literal["handler", "head"]] = Field(
        ["handler", "head"], description="Who gets the yellow-card SMS"
    )
    backdate_tolerance_hours: float | None = Field(
        72.0,
        ge=0,
        description="Events entered later than this after their stated time are a procedural violation (None: off)",
    )
    backentry_grace_minutes: float = Field(
        30.0,
        ge=0,
        le=1440,
        description="A case recorded more than 10 minutes after its receipt (补录) is "
        "judged this long after it was recorded, once its steps are in",
    )


class Complaints(Strict):
    """投诉 workflow limits (hub/complaints.py, docs/complaints.md)."""

    accept_days: int = Field(2, ge=1, le=30, description="Working days a supervisor has to accept or refuse")
    reply_days: int = Field(10, ge=1, le=60, description="Working days a department has to reply once assigned")
    confirm_days: int = Field(
        5, ge=1, le=30, description="Working days a citizen has to confirm or reopen; then it closes itself"
    )
    yellow_days: int = Field(1, ge=0, le=10, description="Yellow this many working days before a step's limit")
    max_reopen: int = Field(3, ge=0, le=10, description="How often a citizen may reopen one complaint")
    per_client_per_hour: int = Field(5, ge=1, le=1000, description="Complaints one client may file per hour")
    global_per_hour: int = Field(300, ge=1, le=100_000, description="Complaints everyone together may file per hour")
    max_tracked: int = Field(10_000, ge=100, le=1_000_000, description="Clients the filing limiter remembers")


class Ratings(Strict):
    """好差评 follow-ups (差评 loop, docs/ratings.md)."""

    default_days: int = Field(7, ge=1, le=30, description="Working days to verify, rectify and call back a 差评")
    limits: dict[str, int] = Field(
        default_factory=dict,
        description="Working days per region code prefix (longest prefix wins), e.g. {'51': 15, '3714': 5}",
    )
    yellow_days: int = Field(1, ge=0, le=30, description="Yellow when this many working days or fewer remain")

    @field_validator("limits")
    @classmethod
    def _limits(cls, v):
        for prefix, days in v.items():
            if not (prefix.isdigit() and prefix.isascii() and len(prefix) <= 12) or not 1 <= days <= 30:
                raise ValueError(f"limits: {prefix!r}: region code prefix of digits, 1-30 working days")
        return v


class HubStore(Strict):
    url: str | None = Field(
        None,
        description="Where the hub keeps everything it stores: unset = SQLite in data_dir/hub.db; "
        "postgresql://USER@HOST:PORT/DB = PostgreSQL (psycopg 3; pip install 'jiancha[pg]'); "
        "sqlite:/ABSOLUTE/PATH = another SQLite file",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v):
        if v is None:
            return v
        from hub.db import SQLITE, engine_of, sqlite_path

        if engine_of(v) == SQLITE and not sqlite_path(v).is_absolute():
            raise ValueError("a SQLite store.url must be sqlite:/ABSOLUTE/PATH (or leave store.url unset)")
        return v


class HubWorkers(Strict):
    count: int = Field(
        0, ge=0, le=64, description="Worker broker identities provisioned (jiancha provision add-hub-workers)"
    )
    lease_s: float = Field(
        10.0,
        ge=1,
        le=300,
        description="Leader lease of the sweep, notifier and documents: another worker takes over "
        "this long after the leader died",
    )


class HubScores(Strict):
    """绩效评估 (hub/scores.py, docs/scores.md)."""

    rules: Path | None = Field(
        None,
        description="The scoring rules YAML (relative to hub.yaml's folder); unset: hub/scores_default.yaml, "
        "seed 003's window method",
    )


class HubParent(Strict):
    """Where this hub forwards its cards and 督办 steps (written by `jiancha provision
    add-child-hub` on the parent; docs/rollup.md)."""

    sender: str = Field(min_length=2, max_length=64, description="This hub's sender id at the parent (hub-REGION)")
    broker: BrokerClient = Field(description="The parent's broker: host, port, CA, this hub's client certificate")
    sign_key: Path = Field(description="This hub's Ed25519 key (PEM): signs its uplink batches")
    parent_seal_pub: Path = Field(description="The parent's X25519 public key (PEM): batches are sealed to it")
    parent_sign_pub: Path = Field(description="The parent's Ed25519 public key (PEM)")
    batch_max_records: int = Field(500, ge=1, le=2000, description="Records per uplink batch at most")
    max_inflight_records: int = Field(5000, ge=1, le=100_000, description="Records sent and not acked at most")
    ack_timeout_s: float = Field(10.0, gt=0, le=600, description="Resend from the last ack after this long silent")
    rate_per_s: float = Field(
        2000.0,
        gt=0,
        le=1_000_000,
        description="Records per second at most (a week of backlog must not flood the parent)",
    )
    rollup_every_s: float = Field(
        60.0, ge=0.2, le=3600, description="How often the leader recounts changed hours into roll-ups (hub/rollups.py)"
    )


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
    ratings: Ratings = Ratings()
    clips: HubClips = HubClips()
    complaints: Complaints = Complaints()
    scores: HubScores = HubScores()
    notify: Any = Field(
        default_factory=dict,
        validate_default=True,
        description="SMS gateway and SMTP relay for reminders (hub/notify NotifyConfig)",
    )
    doc_prefix: str = Field("监察", description="Prefix of document numbers, e.g. 晋中监察")
    store: HubStore = HubStore()
    workers: HubWorkers = HubWorkers()
    parent: HubParent | None = Field(None, description="The parent hub this one forwards to (None: the top level)")

    def store_url(self, data_dir: Path | None = None) -> str:
        """store.url, or SQLite in data_dir (default: this config's data_dir)."""
        return self.store.url or f"sqlite:{Path(data_dir or self.data_dir) / 'hub.db'}"

    @field_validator("notify", mode="before")
    @classmethod
    def _notify(cls, v):
        from hub.notify.config import NotifyConfig

        if isinstance(v, NotifyConfig):
            return v
        try:
            return NotifyConfig.model_validate(v or {})
        except ValidationError as exc:
            raise ValueError(
                "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            ) from None


class RegistrySite(Strict):
    code: str
    name: str
    kind: Literal["site", "hub", "feed"] = Field(
        "site",
        description="site: a township box (agent); hub: a child hub forwarding to this one (DESIGN §7); "
        "feed: a third-party platform reading this hub's feed (docs/feed.md)",
    )
    level: Literal["county", "city"] | None = Field(None, description="A child hub's level (kind hub only)")
    region: str | None = Field(None, description="A child hub's region code (kind hub only)")
    board: str = "generic"
    sign_pub: str = Field(description="Site Ed25519 public key, PEM text (empty for a feed: it signs nothing)")
    seal_pub: str | None = Field(None, description="A feed's X25519 public key, PEM text (kind feed only)")
    revoked: bool = False
    added_at: str = ""
    revoked_at: str | None = None


class Registry(Strict):
    sites: list[RegistrySite] = []

    def active(self) -> dict[str, RegistrySite]:
        """Sites (boxes) that are not revoked, by code."""
        return {s.code: s for s in self.sites if not s.revoked and s.kind == "site"}

    def active_children(self) -> dict[str, RegistrySite]:
        """Child hubs that are not revoked, by sender id."""
        return {s.code: s for s in self.sites if not s.revoked and s.kind == "hub"}

    def active_feeds(self) -> dict[str, RegistrySite]:
        """Feed consumers that are not revoked, by sender id (docs/feed.md)."""
        return {s.code: s for s in self.sites if not s.revoked and s.kind == "feed"}
