"""Scoring rules as data (绩效评估规则, DESIGN §12, docs/scores.md): the YAML file hub.yaml names
in `scores.rules`, validated with errors that name the file, the rule and the key.

Each rule counts one event kind (hub/scores_events.py finds them in the store), keeps the events
its filter matches, gives each its points (negative: a deduction), caps the total per target and
period, and lands on departments, windows and/or staff members. Disqualification rules (取消评优
资格) count events of some kinds per target: N or more in the period, or within a window of
working days.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_RULES = Path(__file__).with_name("scores_default.yaml")
MAX_RULES_BYTES = 256 * 1024  # a rules file is a page of YAML, not a data set
Target = Literal["department", "window", "staff"]
PeriodKind = Literal["month", "quarter", "year"]

# event kind → (Chinese name, the filter keys it knows beyond the common ones)
COMMON_FILTERS = ("site_prefix", "department", "item_code")
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "yellow_card": ("黄牌（预警）", ("case_type",)),
    "red_card": ("红牌（超期或违规）", ("case_type",)),
    "ticket_unanswered": ("督办件逾期未回复", ("level",)),
    "verified_dissatisfaction": ("差评（不满意/非常不满意，未认定为误评或恶意差评）", ("channel", "level")),
    "satisfied_rating": ("满意评价（非常满意/满意）", ("channel", "level")),
    "vote_misuse": ("评价器误按（已标记，不计入满意率）", ("channel",)),
    "complaint_late_day": ("转办投诉逾期未答复（每个工作日）", ("about_kind",)),
    "unattended_window": ("窗口无人值守（摄像机记录）", ()),
    "backdated": ("补记超时（未在窗口即时登记）", ("case_type",)),
    "promise_shortened": ("主动压缩承诺时限（目录）", ()),
    "immediate_conversion": ("承诺件改为即办件（目录）", ()),
    "manual": ("人工录入（表扬、感谢、违纪等）", ("category",)),
}
MANUAL_CATEGORIES = {
    "thanks": "书面感谢",
    "media_praise": "新闻媒体或有关部门表扬",
    "commendation": "表扬（其他）",
    "discipline": "违纪违规",
    "verified_complaint": "投诉经查证属实",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """One scoring rule: kind, filter, points per event, cap per target and period, targets."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="Stable id, shown beside every point")
    label: str = Field(min_length=1, max_length=80, description="Chinese label people read")
    kind: str = Field(description="Event kind counted (hub/scores_rules.py KINDS)")
    filter: dict[str, str | int | list[str | int]] = Field(default_factory=dict, description="Event attributes kept")
    points: float = Field(ge=-1000, le=1000, description="Points per event; negative: a deduction")
    cap: float | None = Field(
        None, gt=0, le=10_000, description="Most points (in absolute value) per target and period"
    )
    periods: tuple[PeriodKind, ...] = Field(("month", "quarter", "year"), min_length=1)
    lands_on: tuple[Target, ...] = Field(("department", "window", "staff"), min_length=1)
    seed: str = Field("", max_length=300, description="The line of the method this rule expresses (docs)")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v not in KINDS:
            raise ValueError(f"unknown event kind {v!r}; known: {', '.join(KINDS)}")
        return v

    @field_validator("points")
    @classmethod
    def _points(cls, v):
        if v == 0:
            raise ValueError("points must not be 0 (a rule that counts nothing: remove it)")
        return v

    @model_validator(mode="after")
    def _filter(self):
        allowed = COMMON_FILTERS + KINDS[self.kind][1]
        for key, value in self.filter.items():
            if key not in allowed:
                raise ValueError(f"filter key {key!r} does not apply to {self.kind}; allowed: {', '.join(allowed)}")
            values = value if isinstance(value, list) else [value]
            if key == "category" and any(v not in MANUAL_CATEGORIES for v in values):
                raise ValueError(f"filter category: one of {', '.join(MANUAL_CATEGORIES)}")
        return self


class Disqualification(_Strict):
    """取消评优资格: `at_least` events of `kinds` for one target in the period (or in any
    stretch of `within_working_days` working days)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    label: str = Field(min_length=1, max_length=80)
    kinds: tuple[str, ...] = Field(min_length=1)
    filter: dict[str, str | int | list[str | int]] = Field(default_factory=dict)
    at_least: int = Field(ge=1, le=1000)
    within_working_days: int | None = Field(None, ge=1, le=366)
    periods: tuple[PeriodKind, ...] = Field(("year",), min_length=1)
    lands_on: tuple[Target, ...] = Field(("department", "window", "staff"), min_length=1)
    seed: str = Field("", max_length=300)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v):
        for k in v:
            if k not in KINDS:
                raise ValueError(f"unknown event kind {k!r}; known: {', '.join(KINDS)}")
        return v

    @model_validator(mode="after")
    def _filter(self):
        allowed = COMMON_FILTERS + tuple(k for kind in self.kinds for k in KINDS[kind][1])
        for key in self.filter:
            if key not in allowed:
                raise ValueError(f"filter key {key!r} applies to none of {', '.join(self.kinds)}")
        return self


class RuleSet(_Strict):
    """A whole rules file."""

    base: float = Field(100, ge=0, le=10_000, description="Score before any point")
    rules: tuple[Rule, ...] = Field(min_length=1, max_length=200)
    disqualify: tuple[Disqualification, ...] = Field((), max_length=50)

    @model_validator(mode="after")
    def _unique(self):
        seen = set()
        for r in (*self.rules, *self.disqualify):
            if r.id in seen:
                raise ValueError(f"rule id {r.id!r} used twice")
            seen.add(r.id)
        return self

    def kinds(self) -> set[str]:
        """Every event kind some rule needs (only those are read from the store)."""
        return {r.kind for r in self.rules} | {k for d in self.disqualify for k in d.kinds}


def _where(file: Path, raw: dict, loc: tuple) -> str:
    """'rule <id> (rules[2]), key points' from a pydantic error location."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] in ("rules", "disqualify") and isinstance(loc[1], int):
        items = raw.get(loc[0]) or []
        rid = items[loc[1]].get("id") if loc[1] < len(items) and isinstance(items[loc[1]], dict) else None
        key = ".".join(parts[2:]) or "(the rule)"
        return f"{file}: rule {rid or '?'} ({loc[0]}[{loc[1]}]), key {key}"
    return f"{file}: key {'.'.join(parts) or '(top)'}"


def parse_rules(text: str, file: Path | str = "<rules>") -> RuleSet:
    """Validate a rules file's text; ValueError naming the file, the rule and the key."""
    file = Path(file)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValueError(f"{file}: not valid YAML" + (f" at line {mark.line + 1}" if mark else "")) from None
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: expected a mapping with base, rules, disqualify")
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{_where(file, raw, e['loc'])}: {msg}")
        raise ValueError("; ".join(lines)) from None


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Read and validate a rules file (None: the default file, seed 003's method)."""
    path = Path(path) if path is not None else DEFAULT_RULES
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the scores rules file: {exc.strerror or exc}") from None
    if len(data) > MAX_RULES_BYTES:
        raise ValueError(f"{path}: {len(data):,} bytes; a rules file holds at most {MAX_RULES_BYTES:,}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    return parse_rules(text, path)


def rules_path(cfg, config_path: Path | None) -> Path | None:
    """The rules file hub.yaml names (relative to hub.yaml's folder), or None: the default."""
    scores = getattr(cfg, "scores", None)
    if scores is None or scores.rules is None:
        return None
    p = Path(scores.rules)
    return p if p.is_absolute() or config_path is None else Path(config_path).parent / p
