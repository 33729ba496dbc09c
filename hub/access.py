"""Who may call which route (访问控制): one table, deny by default, role and scope per route.

Every route of the hub's app is named in ROUTES by method and path pattern (aiohttp's canonical
form, e.g. /api/tickets/{id}); a route missing from it is refused with 403 for everyone, so a
new route cannot leak by being forgotten (tests/hub/test_access.py walks every route with every
role). The actor is resolved here, once, from a session cookie or a bearer token, never from a
request body; a handler reads it with `actor_of(request)`.

Scope: a supervisor's or viewer's region prefix limits sites (by code prefix) and what belongs
to them (cases, tickets, alerts, clips, documents); a department officer sees its department's
cases, tickets and documents. A path naming one object outside the scope, or none at all, answers the same 404 (as if it
did not exist); lists are filtered by the handlers with `scope_where`.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMIN, SUPERVISOR, DEPARTMENT, VIEWER = "admin", "supervisor", "department", "viewer"
PUBLIC = "public"  # anyone, logged in or not
ANY = frozenset({ADMIN, SUPERVISOR, DEPARTMENT, VIEWER})  # any logged-in actor


@dataclass(frozen=True)
class Rule:
    """Roles allowed on a route, and how scope applies: None (not scoped: calendar, admin
    pages), "list" (the handler filters), or the kind of object the path names ("site", "case",
    "ticket", "document", "clip"), checked before the handler runs."""

    roles: frozenset[str]
    scope: str | None = None
    page: bool = False  # an HTML page: not logged in → /login?next=…, refusals as pages (hub/pages.py)

    @property
    def is_public(self) -> bool:
        return PUBLIC in self.roles


def _r(*roles: str, scope: str | None = None, page: bool = False) -> Rule:
    return Rule(frozenset(roles), scope, page)


OPERATORS = (ADMIN, SUPERVISOR)
PAGE = _r(PUBLIC)  # the pages are empty shells: their data comes from the API below, role-checked
ROUTES: dict[tuple[str, str], Rule] = {
    # pages, static files, citizens, health and metrics
    ("GET", "/"): PAGE,
    ("GET", "/public"): PAGE,
    ("GET", "/calendar"): PAGE,
    ("GET", "/site"): PAGE,
    ("GET", "/static"): PAGE,
    ("GET", "/login"): PAGE,
    ("POST", "/login"): PAGE,  # its own CSRF token (double submit) and throttling
    ("GET", "/api/public/cases/{case_no}"): _r(PUBLIC),  # case number + query code, rate-limited
    # the citizen portal (hub/portal.py): guides, lookup, rating (number + code, rate-limited), results
    ("GET", "/public/items/{code}"): PAGE,
    ("POST", "/public/rating"): PAGE,  # public: cross-site posts refused by Origin/Sec-Fetch-Site
    ("GET", "/public/results"): PAGE,
    ("GET", "/public/forms/{name}"): PAGE,
    ("GET", "/api/public/items"): _r(PUBLIC),
    ("GET", "/api/public/items/{code}"): _r(PUBLIC),
    ("POST", "/api/public/cases/{case_no}/rating"): _r(PUBLIC),
    ("GET", "/api/public/results"): _r(PUBLIC),
    ("GET", "/api/public/openapi.json"): _r(PUBLIC),
    ("GET", "/api/health"): _r(PUBLIC),
    ("GET", "/metrics"): _r(PUBLIC),  # counts only, no case data (docs/operations.md)
    # the session itself
    ("POST", "/logout"): _r(*ANY),
    ("GET", "/api/me"): _r(*ANY),
    # the wall and cases
    ("GET", "/api/cases"): _r(*ANY, scope="list"),
    ("GET", "/api/cases/{case_no}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="case"),
    ("GET", "/api/sites"): _r(ADMIN, SUPERVISOR, VIEWER, scope="list"),
    ("GET", "/api/alerts"): _r(ADMIN, SUPERVISOR, VIEWER, scope="list"),
    ("GET", "/api/cards"): _r(*ANY, scope="list"),
    ("GET", "/api/wall"): _r(*ANY, scope="list"),
    ("GET", "/api/events/wall"): _r(*ANY),  # "something changed" only: no data to scope
    # 督办: tickets, replies, reviews, documents
    ("GET", "/api/tickets"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list"),
    ("GET", "/api/tickets/{id}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="ticket"),
    ("POST", "/api/tickets/{id}/reply"): _r(ADMIN, DEPARTMENT, scope="ticket"),
    ("POST", "/api/tickets/{id}/review"): _r(*OPERATORS, scope="ticket"),
    ("POST", "/api/cases/{case_no}/tickets"): _r(*OPERATORS, scope="case"),
    ("GET", "/api/documents"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list"),
    ("GET", "/api/documents/{id}.pdf"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="document"),
    # server-rendered pages with forms (hub/pages.py): the case page and the 督办 page
    ("GET", "/cases/{case_no}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="case", page=True),
    ("POST", "/cases/{case_no}/tickets"): _r(*OPERATORS, scope="case", page=True),
    ("GET", "/tickets"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list", page=True),
    ("POST", "/tickets/{id}/reply"): _r(ADMIN, DEPARTMENT, scope="ticket", page=True),
    ("POST", "/tickets/{id}/review"): _r(*OPERATORS, scope="ticket", page=True),
    # 差评 follow-ups (hub/api_followups.py checks scope, and who may take which step)
    ("GET", "/api/followups"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list"),
    ("GET", "/api/followups/{id}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list"),
    ("POST", "/api/followups/{id}/{action}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list"),
    ("GET", "/followups"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list", page=True),
    ("POST", "/followups/{id}/{action}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list", page=True),
    # a follow-up without a department: a supervisor in scope (the handler checks it) assigns one
    ("POST", "/api/followups/{id}/assign"): _r(*OPERATORS, scope="list"),
    ("POST", "/followups/{id}/assign"): _r(*OPERATORS, scope="list", page=True),
    # the working-day calendar: read by supervisors, changed by admins
    ("GET", "/api/calendar"): _r(*OPERATORS),
    ("POST", "/api/calendar"): _r(ADMIN),
    # sites and their devices
    ("GET", "/api/sites/{code}"): _r(*OPERATORS, scope="site"),
    ("GET", "/api/sites/{code}/votes"): _r(*OPERATORS, scope="site"),
    ("GET", "/api/sites/{code}/snapshots/{seq}.jpg"): _r(*OPERATORS, scope="site"),
    ("POST", "/api/sites/{code}/sign"): _r(*OPERATORS, scope="site"),
    ("GET", "/api/sites/{code}/signs/{window}.png"): _r(ADMIN, SUPERVISOR, VIEWER, scope="site"),
    ("POST", "/api/sites/{code}/clips"): _r(*OPERATORS, scope="site"),
    ("GET", "/api/clips"): _r(*OPERATORS, scope="list"),
    ("GET", "/api/clips/{clip_id}.mp4"): _r(*OPERATORS, scope="clip"),
    ("DELETE", "/api/clips/{clip_id}"): _r(ADMIN),
    # 投诉 (hub/api_complaints.py): citizens file and follow with number + code (rate-limited);
    # supervisors accept, refuse and assign; departments reply
    ("GET", "/public/complaints"): PAGE,
    ("POST", "/public/complaints"): PAGE,  # its own CSRF token (double submit) and rate limit
    ("GET", "/public/complaints/{no}"): PAGE,
    ("POST", "/public/complaints/{no}/confirm"): PAGE,
    ("POST", "/public/complaints/{no}/reopen"): PAGE,
    ("POST", "/api/public/complaints"): _r(PUBLIC),
    ("GET", "/api/public/complaints/{no}"): _r(PUBLIC),
    ("POST", "/api/public/complaints/{no}/confirm"): _r(PUBLIC),
    ("POST", "/api/public/complaints/{no}/reopen"): _r(PUBLIC),
    ("GET", "/complaints"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list", page=True),
    ("POST", "/complaints/{no}/accept"): _r(*OPERATORS, scope="complaint", page=True),
    ("POST", "/complaints/{no}/refuse"): _r(*OPERATORS, scope="complaint", page=True),
    ("POST", "/complaints/{no}/assign"): _r(*OPERATORS, scope="complaint", page=True),
    ("POST", "/complaints/{no}/reply"): _r(ADMIN, DEPARTMENT, scope="complaint", page=True),
    ("GET", "/api/complaints"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="list"),
    ("GET", "/api/complaints/{no}"): _r(ADMIN, SUPERVISOR, DEPARTMENT, scope="complaint"),
    ("POST", "/api/complaints/{no}/accept"): _r(*OPERATORS, scope="complaint"),
    ("POST", "/api/complaints/{no}/refuse"): _r(*OPERATORS, scope="complaint"),
    ("POST", "/api/complaints/{no}/assign"): _r(*OPERATORS, scope="complaint"),
    ("POST", "/api/complaints/{no}/reply"): _r(ADMIN, DEPARTMENT, scope="complaint"),
    # 绩效评估 (hub/api_scores.py filters what each role sees; docs/scores.md "Who sees what")
    ("GET", "/api/scores"): _r(*ANY, scope="list"),
    ("GET", "/scores"): _r(*ANY, scope="list", page=True),
    ("POST", "/scores/manual"): _r(*OPERATORS, page=True),
    ("POST", "/scores/close"): _r(*OPERATORS, page=True),
    ("GET", "/public/scores"): PAGE,  # closed periods, departments only, no names
    ("GET", "/api/public/scores"): _r(PUBLIC),
    # 统计分析 (hub/api_stats.py): every role reads the statistics of its own scope (viewers too:
    # read-only figures, no personal data); the numbered monthly bulletin is issued by operators
    # a parent's walls of its child hubs (hub/levels.py): counts and case summaries, no personal data
    ("GET", "/levels"): _r(*ANY, scope="list", page=True),
    ("GET", "/api/levels"): _r(*ANY, scope="list"),
    ("GET", "/levels/{child}"): _r(*ANY, scope="list", page=True),
    ("GET", "/levels/{child}/cards/{seq}"): _r(*ANY, scope="list", page=True),
    ("GET", "/api/stats"): _r(*ANY, scope="list"),
    ("GET", "/api/stats/export"): _r(*ANY, scope="list"),
    ("GET", "/stats"): _r(*ANY, scope="list", page=True),
    ("GET", "/stats/bulletin.pdf"): _r(*OPERATORS, scope="list"),
    # accounts and the audit log
    ("GET", "/api/users"): _r(ADMIN),
    ("POST", "/api/users"): _r(ADMIN),
    ("POST", "/api/users/{login}/disable"): _r(ADMIN),
    ("POST", "/api/users/{login}/reset"): _r(ADMIN),
    ("GET", "/api/audit"): _r(ADMIN),
}


@dataclass(frozen=True)
class Actor:
    """Who makes a request: an account's session, or a machine token (api.admin_token, a
    department token)."""

    name: str  # the login, or token:admin / token:DEPARTMENT for machine tokens
    role: str
    scope: str | None = None
    session_id: str | None = None  # raw id (cookie) of a session actor: its CSRF token derives from it
    session_hash: str | None = None

    @property
    def region(self) -> str | None:
        """The region code prefix this actor is limited to (supervisor, viewer), or None."""
        return self.scope if self.role in (SUPERVISOR, VIEWER) else None

    @property
    def department(self) -> str | None:
        """The department this actor is limited to (department officer), or None."""
        return self.scope if self.role == DEPARTMENT else None

    @property
    def is_scoped(self) -> bool:
        return self.region is not None or self.department is not None


def rule_for(method: str, canonical: str) -> Rule | None:
    """The rule of a route (HEAD follows GET), or None: no rule, refused."""
    return ROUTES.get(("GET" if method == "HEAD" else method, canonical))


def site_in_scope(actor: Actor, site: str | None) -> bool:
    """Whether a site (by code) is within the actor's scope (departments have no sites)."""
    if actor.department is not None:
        return False
    return actor.region is None or (site or "").startswith(actor.region)


def row_in_scope(actor: Actor, site: str | None, department: str | None) -> bool:
    """Whether a case, ticket or document (of that site and department) is within scope."""
    if actor.department is not None:
        return department == actor.department
    return site_in_scope(actor, site)


def scope_where(actor: Actor, site_col: str | None = "site", dept_col: str | None = "department"):
    """(SQL condition, args) limiting a list to the actor's scope, or (None, ()) for none.

    A table without the column a scope needs lists nothing for that scope."""
    if actor.department is not None:
        return (f"{dept_col} = ?", (actor.department,)) if dept_col else ("1 = 0", ())
    if actor.region is not None:
        # substr, not LIKE: '_' and '%' in a prefix mean nothing, and both engines agree
        return (f"substr({site_col}, 1, ?) = ?", (len(actor.region), actor.region)) if site_col else ("1 = 0", ())
    return None, ()


def object_in_scope(conn, actor: Actor, kind: str, match: dict[str, str]) -> bool:
    """Whether the object a path names is within the actor's scope. For a scoped actor an
    object that does not exist is not in scope either: both answer the same 404, so another
    county's case numbers (tickets, documents, clips) cannot be told from unused ones."""
    if not actor.is_scoped:
        return True
    if kind == "site":
        return site_in_scope(actor, match.get("code"))
    if kind == "case":
        row = conn.execute("SELECT site, department FROM cases WHERE case_no=?", (match["case_no"],)).fetchone()
    elif kind == "ticket":
        row = conn.execute("SELECT site, department FROM tickets WHERE id=?", (int(match["id"]),)).fetchone()
    elif kind == "document":
        # a ticket's document belongs where its ticket does (a complaint's or a follow-up's has no
        # case); one without a ticket, to its case
        row = conn.execute(
            "SELECT CASE WHEN t.id IS NULL THEN c.site ELSE t.site END, "
            "CASE WHEN t.id IS NULL THEN c.department ELSE t.department END FROM documents d "
            "LEFT JOIN tickets t ON t.id = d.ticket_id LEFT JOIN cases c ON c.case_no = d.case_no WHERE d.id=?",
            (int(match["id"]),),
        ).fetchone()
        row = None if row is None or (row[0] is None and row[1] is None) else row
        # a document whose case and ticket are unknown (row None): only unscoped actors see it
    elif kind == "complaint":  # one without a site (about a hall or person) is the city's
        row = conn.execute("SELECT site, department FROM complaints WHERE complaint_no=?", (match["no"],)).fetchone()
    elif kind == "clip":
        row = conn.execute("SELECT site, NULL FROM clips WHERE clip_id=?", (match["clip_id"],)).fetchone()
    else:
        raise ValueError(f"unknown scope kind {kind!r}")
    return row is not None and row_in_scope(actor, row[0], row[1])
