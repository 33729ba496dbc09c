"""通讯录 — who is told about a department's cases: handlers (经办人) and the head (负责人).

Operators keep the directory in a YAML or CSV file; `load_directory` validates it (every error
names the line or key and the field), the hub stores it in the `directory` table, and the
supervision sweep asks `Directory.recipients(department)`.

YAML::

    departments:
      - name: 市场监督管理局
        head: {name: 王局长, phone: "13800138000", email: wang@scjg.example.gov.cn}
        handlers:
          - {name: 张三, phone: "139 0013 9000", items: [SC001, SC002]}

CSV (UTF-8 or GBK, header required): ``department,role,name,phone,email,items``; role is
``handler``/``经办人``/``承办人`` or ``head``/``负责人``; items separated by ``;`` or ``、``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Role = Literal["handler", "head"]
ROLE_LABELS = {
    "handler": "handler",
    "经办人": "handler",
    "承办人": "handler",
    "办理人": "handler",
    "head": "head",
    "负责人": "head",
    "部门负责人": "head",
}
CSV_COLUMNS = ("department", "role", "name", "phone", "email", "items")
CSV_REQUIRED = ("department", "role", "name")

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_NOISE = re.compile(r"[\s\-()（）]")


class DirectoryError(ValueError):
    """The directory file is unreadable or invalid; the message lists every problem found."""


def normalize_mobile(value: str) -> str:
    """Mainland mobile number, 11 digits; spaces, dashes and a +86/0086 prefix are removed."""
    raw = str(value).strip()
    digits = _PHONE_NOISE.sub("", raw)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if not MOBILE_RE.match(digits):
        raise ValueError(f"{raw!r} is not a mainland mobile number (11 digits, 1[3-9]xxxxxxxxx)")
    return digits


def normalize_email(value: str) -> str:
    """A plausible mail address (one @, a dot in the domain), stripped."""
    v = str(value).strip()
    if not EMAIL_RE.match(v):
        raise ValueError(f"{v!r} is not an e-mail address")
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Model):
    """One contact; at least one of phone and email."""

    name: str = Field(min_length=1, max_length=32, description="Full name, e.g. 张三")
    phone: str | None = Field(None, description="Mainland mobile, e.g. 13800138000")
    email: str | None = Field(None, description="Mail address")
    items: tuple[str, ...] = Field((), description="Item codes this handler answers for; empty = all")

    @field_validator("name", mode="before")
    @classmethod
    def _strip(cls, v):
        return v.strip() if isinstance(v, str) else v

    @field_validator("phone", mode="before")
    @classmethod
    def _phone(cls, v):
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if isinstance(v, float):  # a spreadsheet turned the number into 1.38e10
            raise ValueError(f"{v!r} looks like a number mangled by a spreadsheet; quote it as text")
        return normalize_mobile(str(v))

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, v):
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return normalize_email(v)

    @model_validator(mode="after")
    def _reachable(self):
        if not self.phone and not self.email:
            raise ValueError(f"{self.name}: needs a phone or an email")
        return self


class Department(_Model):
    """A department (部门/窗口单位): its head and its handlers."""

    name: str = Field(min_length=1, max_length=64, description="As in the item catalog's department column")
    head: Person | None = Field(None, description="负责人")
    handlers: tuple[Person, ...] = Field((), description="经办人")

    @field_validator("name", mode="before")
    @classmethod
    def _strip(cls, v):
        return v.strip() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _someone(self):
        if self.head is None and not self.handlers:
            raise ValueError(f"department {self.name}: needs a head or at least one handler")
        return self


class Recipient(_Model):
    """One person to notify, with the role they hold in that department."""

    department: str
    role: Role
    name: str
    phone: str | None
    email: str | None


class Directory(_Model):
    """The whole 通讯录."""

    departments: tuple[Department, ...] = ()

    @model_validator(mode="after")
    def _unique(self):
        seen = set()
        for d in self.departments:
            if d.name in seen:
                raise ValueError(f"department {d.name!r} is listed twice")
            seen.add(d.name)
        return self

    def department(self, name: str) -> Department | None:
        """The department called `name` (surrounding spaces ignored), or None."""
        name = name.strip()
        return next((d for d in self.departments if d.name == name), None)

    def recipients(
        self, department: str, roles: Iterable[Role] = ("handler", "head"), *, item_code: str | None = None
    ) -> list[Recipient]:
        """People of `department` in `roles`; with `item_code`, handlers limited to their items.
        An unknown department gives an empty list (the caller records that nobody was told)."""
        dep = self.department(department)
        if dep is None:
            return []
        roles = tuple(roles)
        out = []
        if "handler" in roles:
            for p in dep.handlers:
                if item_code is None or not p.items or item_code in p.items:
                    out.append(
                        Recipient(department=dep.name, role="handler", name=p.name, phone=p.phone, email=p.email)
                    )
        if "head" in roles and dep.head is not None:
            p = dep.head
            out.append(Recipient(department=dep.name, role="head", name=p.name, phone=p.phone, email=p.email))
        return out


# -- files -----------------------------------------------------------------------------------


def load_directory(path: str | Path) -> Directory:
    """Read and validate a directory file (.yaml/.yml or .csv)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    text = _decode(path, data)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _from_yaml(path, text)
    if path.suffix.lower() == ".csv":
        return _from_csv(path, text)
    raise DirectoryError(f"{path}: expected a .yaml, .yml or .csv file")


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")  # spreadsheets on Chinese Windows save CSV in GBK
    except UnicodeDecodeError:
        raise DirectoryError(f"{path}: not UTF-8 or GBK text") from None


def _from_yaml(path: Path, text: str) -> Directory:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path}: cannot parse YAML: {exc}") from None
    if not isinstance(raw, dict) or "departments" not in raw:
        raise DirectoryError(f"{path}: expected a mapping with a 'departments' list")
    try:
        return Directory.model_validate(raw)
    except ValidationError as exc:
        raise DirectoryError(
            "\n".join([f"{path}: invalid directory"] + [f"  {_where(raw, e['loc'])}: {_msg(e)}" for e in exc.errors()])
        ) from None


def _where(raw, loc) -> str:
    """departments[0](市场监管局).handlers[1].phone — indices plus the department's name."""
    out, node = "", raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f"({node['name']})"
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _msg(err) -> str:
    return err["msg"].removeprefix("Value error, ")


def _from_csv(path: Path, text: str) -> Directory:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        raise DirectoryError(
            f"{path}: line 1 (header): "
            + "; ".join(
                filter(
                    None,
                    [
                        missing and f"missing column(s) {', '.join(missing)}",
                        unknown and f"unknown column(s) {', '.join(unknown)}",
                    ],
                )
            )
            + f"; expected {','.join(CSV_COLUMNS)}"
        )
    reader.fieldnames = header
    errors: list[str] = []
    deps: dict[str, dict] = {}
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        person, role, dep = _csv_row(row, line, errors)
        if person is None:
            continue
        d = deps.setdefault(dep, {"name": dep, "head": None, "handlers": []})
        if role == "head":
            if d["head"] is not None:
                errors.append(
                    f"line {line} ({person.name}): role: department {dep} already has a head ({d['head'].name})"
                )
                continue
            d["head"] = person
        else:
            d["handlers"].append(person)
    if errors:
        raise DirectoryError("\n".join([f"{path}: invalid directory"] + [f"  {e}" for e in errors]))
    if not deps:
        raise DirectoryError(f"{path}: no rows")
    return Directory(departments=tuple(Department(**d) for d in deps.values()))


def _csv_row(row: dict, line: int, errors: list[str]):
    get = lambda k: (row.get(k) or "").strip()
    who = f"line {line}" + (f" ({get('name')})" if get("name") else "")
    role = ROLE_LABELS.get(get("role").lower() if get("role").isascii() else get("role"))
    dep = get("department")
    problems = []
    if not dep:
        problems.append("department: empty")
    if role is None:
        problems.append(f"role: {get('role')!r} is not handler/经办人 or head/负责人")
    items = tuple(i for i in re.split(r"[;；、,，\s]+", get("items")) if i)
    try:
        person = Person(name=get("name"), phone=get("phone") or None, email=get("email") or None, items=items)
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "row"
            problems.append(f"{field}: {_msg(e)}")
        person = None
    if problems:
        errors.extend(f"{who}: {p}" for p in problems)
        return None, None, None
    return person, role, dep


# -- the hub's store (SQLite or PostgreSQL) --------------------------------------------------


def save_directory(conn: sqlite3.Connection, directory: Directory, *, now_ms: int) -> int:
    """Replace the stored directory (inside the caller's transaction); returns rows written."""
    conn.execute("DELETE FROM directory")
    n = 0
    for d in directory.departments:
        people = ([("head", d.head)] if d.head else []) + [("handler", p) for p in d.handlers]
        for pos, (role, p) in enumerate(people):
            conn.execute(
                "INSERT INTO directory(department, role, position, name, phone, email, items_json, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (d.name, role, pos, p.name, p.phone, p.email, json.dumps(list(p.items)), now_ms),
            )
            n += 1
    return n


def read_directory(conn: sqlite3.Connection) -> Directory:
    """The stored directory (empty when none was imported)."""
    deps: dict[str, dict] = {}
    for dep, role, name, phone, email, items in conn.execute(
        "SELECT department, role, name, phone, email, items_json FROM directory ORDER BY department, position"
    ):
        d = deps.setdefault(dep, {"name": dep, "head": None, "handlers": []})
        p = Person(name=name, phone=phone, email=email, items=tuple(json.loads(items)))
        if role == "head":
            d["head"] = p
        else:
            d["handlers"].append(p)
    return Directory(departments=tuple(Department(**d) for d in deps.values()))
