"""What a child hub forwards to its parent (DESIGN §7): record kinds and bodies, pure.

A child hub's uplink log holds records in the same canonical form as a site's log
(protocol/records.py: per-sender seq, hash chain) and travels in the same sealed, signed
batches (protocol/wire.py). Two kinds so far:

    card         CardBody        a yellow or red card (亮牌) on a case, with its case summary
    ticket.step  TicketStepBody  one step of a 督办 ticket (opened, replied, accepted, escalated…)
    rollup       RollupBody      one China hour's figures of one region (county) and department

Bodies carry NO personal data: no applicant names, ID numbers, phones, addresses, no
registration form, no free text typed by people (a department's reply may name the applicant);
`extra="forbid"` on every model makes the parent refuse a body with any other field, so a field
added by mistake on the child is caught at the parent instead of being stored. Times are
milliseconds since the epoch (integers: canonical records carry no floats); dates are
YYYY-MM-DD in China time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

KIND_CARD = "card"
KIND_TICKET_STEP = "ticket.step"
KIND_ROLLUP = "rollup"
UPLINK_KINDS = (KIND_CARD, KIND_TICKET_STEP, KIND_ROLLUP)
HOUR = r"^\d{4}-\d{2}-\d{2}T\d{2}$"
DATE = r"^\d{4}-\d{2}-\d{2}$"
ORIGIN = (
    "The sender id of the hub where it happened (hub-REGION) when a hub relays what its own child "
    "sent; None: it happened at the sending hub itself"
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CaseSummary(_Body):
    """A case as a parent may see it: what, where, when, how late, what went wrong."""

    case_no: str = Field(min_length=1, max_length=64, description="办件编号")
    site: str = Field(min_length=1, max_length=64, description="The site (box) that registered it")
    item_code: str = Field(max_length=64, description="事项编码")
    item_name: str = Field("", max_length=200, description="事项名称")
    department: str = Field("", max_length=100, description="承办部门")
    case_type: str | None = Field(None, max_length=32, description="即办件/承诺件… as a code")
    received_at: str = Field(max_length=40, description="收件时间, ISO 8601 with +08:00")
    due_date: str | None = Field(None, pattern=DATE, description="承诺办结日期")
    legal_due_date: str | None = Field(None, pattern=DATE, description="法定办结日期")
    status: str = Field(max_length=32, description="Case status code")
    light: Literal["green", "yellow", "red"] = Field(description="The light after this step")
    violations: list[str] = Field([], max_length=32, description="Violation codes (protocol/caseclock.py)")
    yellow_cards: int = Field(0, ge=0, le=10_000)
    red_cards: int = Field(0, ge=0, le=10_000)


class CardBody(_Body):
    """A yellow or red card shown on a case at the child."""

    card: Literal["yellow", "red"]
    origin: str | None = Field(None, max_length=64, description=ORIGIN)
    previous: str | None = Field(None, max_length=16, description="The light before (green, yellow)")
    at_ms: int = Field(description="When the child's supervision showed it")
    case: CaseSummary


class TicketStepBody(_Body):
    """One step of a 督办 ticket at the child (its text stays at the child)."""

    ticket: int = Field(ge=1, description="The ticket's id at the hub where it was opened")
    origin: str | None = Field(None, max_length=64, description=ORIGIN)
    parent_ticket: int | None = Field(None, ge=1, description="The ticket it escalated from")
    level: str = Field(max_length=32, description="duban, order_explain, suggestion, decision…")
    action: str = Field(max_length=32, description="open, reply, accept, reject, no_reply, red_card…")
    status: str = Field(max_length=32, description="The ticket's status after the step")
    reply_due: str = Field(pattern=DATE)
    by_system: bool = Field(description="Taken by the child's supervision itself, not by a person")
    at_ms: int
    case: CaseSummary


class DurationBin(_Body):
    """Concluded cases with the same working-day duration, on-time flag and limits (a bin of
    hub/stats.py Durations): a parent adds bins and gets every duration figure exactly."""

    days: int = Field(ge=0, le=100_000, description="Working days from receipt day to decision day")
    on_time: bool | None = Field(description="Decided on or before the due day; None: no due day")
    promised: int | None = Field(None, ge=0, le=100_000, description="Promised working days")
    legal: int | None = Field(None, ge=0, le=100_000, description="Legal working days")
    n: int = Field(ge=1, description="Cases in this bin")


Counts = dict[str, int]


class RollupBody(_Body):
    """One China hour of one region and department at the child (docs/rollup.md): counts
    only, no case numbers, no names. Idempotent per (region, department, hour, revision): a
    late record re-emits its hour with revision + 1, and a parent keeps the highest."""

    region: str = Field(pattern=r"^[0-9A-Za-z]{0,12}$", description="County (区县) code: the site code's region part")
    department: str = Field(max_length=100, description="承办部门 ('' none)")
    hour: str = Field(pattern=HOUR, description="China hour YYYY-MM-DDTHH")
    revision: int = Field(ge=1)
    origin: str | None = Field(None, max_length=64, description=ORIGIN)
    received: int = Field(0, ge=0, description="Cases received (收件) in the hour")
    status: Counts = Field({}, max_length=32, description="Those cases by status now")
    light: Counts = Field({}, max_length=8, description="Those cases by light now")
    warned: int = Field(0, ge=0, description="Those cases ever lit yellow")
    concluded: int = Field(0, ge=0, description="Cases concluded (办结: first decision) in the hour")
    on_time: int = Field(0, ge=0)
    late: int = Field(0, ge=0)
    days_sum: int = Field(0, ge=0, description="Sum of their working-day durations")
    durations: list[DurationBin] = Field([], max_length=1_500)  # ~35 bytes each: a record is ≤ 64 KiB
    keypad: list[int] = Field([0] * 5, min_length=5, max_length=5, description="Counted keypad ratings by level 1-5")
    portal: list[int] = Field([0] * 5, min_length=5, max_length=5, description="Counted portal ratings by level 1-5")
    misuse: int = Field(0, ge=0, description="Presses flagged misuse (not counted)")
    marked: int = Field(0, ge=0, description="Ratings marked 误评/恶意差评 on appeal (not counted)")
    complaints: int = Field(0, ge=0, description="Complaints filed in the hour")
    complaint_status: Counts = Field({}, max_length=32, description="Those complaints by status now")


SUMMARY_FIELDS = tuple(CaseSummary.model_fields)
ROLLUP_FIGURES = tuple(
    f for f in RollupBody.model_fields if f not in ("region", "department", "hour", "revision", "origin")
)


def card_body(card: str, previous: str | None, at_ms: int, case: dict) -> dict:
    """The body of a card record (validated: raises pydantic.ValidationError)."""
    return CardBody(card=card, previous=previous, at_ms=at_ms, case=CaseSummary(**case)).model_dump()


def ticket_step_body(ticket: dict, action: str, by_system: bool, at_ms: int, case: dict) -> dict:
    """The body of a ticket-step record (validated)."""
    return TicketStepBody(
        ticket=ticket["id"],
        parent_ticket=ticket.get("parent_id"),
        level=ticket["level"],
        action=action,
        status=ticket["status"],
        reply_due=ticket["reply_due"],
        by_system=by_system,
        at_ms=at_ms,
        case=CaseSummary(**case),
    ).model_dump()


def relayed(body: CardBody | TicketStepBody | RollupBody, child: str) -> dict:
    """The body a parent forwards upward for a record its child `child` sent: the same, with
    the origin kept (the county where a card was shown stays named at the province)."""
    return body.model_copy(update={"origin": body.origin or child}).model_dump()


def parse_body(kind: str, body: dict) -> CardBody | TicketStepBody | RollupBody:
    """The typed body of a received uplink record; pydantic.ValidationError or ValueError."""
    if kind == KIND_CARD:
        return CardBody.model_validate(body)
    if kind == KIND_TICKET_STEP:
        return TicketStepBody.model_validate(body)
    if kind == KIND_ROLLUP:
        return RollupBody.model_validate(body)
    raise ValueError(f"unknown uplink kind {kind!r}")
