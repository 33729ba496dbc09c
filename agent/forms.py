"""Validation of what a clerk types into the window page, with the Chinese message shown beside
the field. Pure functions over the submitted values; the store's own checks come after."""

from __future__ import annotations

import re
import unicodedata

from protocol.models import Applicant, NewEvent

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")  # 统一社会信用代码
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
MOBILE_RE = re.compile(r"1[3-9][0-9]{9}")
LANDLINE_RE = re.compile(r"0[0-9]{2,3}-?[0-9]{7,8}")
MAX_FIELD = 200


class FormErrors(Exception):
    """Field → Chinese message for every bad field of a form."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def clean(value: object, limit: int = MAX_FIELD) -> str:
    """A submitted value as text: NFKC (full-width digits become ASCII), line breaks as LF (the
    browser's maxlength counts one where it sends CR LF), trimmed, at most `limit`."""
    return unicodedata.normalize("NFKC", str(value or "")).replace("\r\n", "\n").strip()[:limit]


def is_id_number(text: str) -> bool:
    """A mainland resident ID number (居民身份证号码, GB 11643) with a right check digit."""
    if len(text) != 18 or not text[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(text[:17], ID_WEIGHTS))
    return ID_CHECK[total % 11] == text[17].upper()


def is_credit_code(text: str) -> bool:
    """A unified social credit code (统一社会信用代码, GB 32100) with a right check character."""
    if not USCC_RE.fullmatch(text):
        return False
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(text[:17], USCC_WEIGHTS))
    return USCC_CHARS[(31 - total % 31) % 31] == text[17]


def applicant_from(form) -> Applicant:
    """The applicant (申请人) of a registration form; FormErrors naming each bad field."""
    errors: dict[str, str] = {}
    name = clean(form.get("name"), 101)
    if not name:
        errors["name"] = "请填写申请人姓名或单位名称"
    elif len(name) > 100:
        errors["name"] = "姓名或单位名称不能超过 100 个字"
    id_no = clean(form.get("id_no"), 33).upper()
    if id_no and not (is_id_number(id_no) or is_credit_code(id_no)):
        errors["id_no"] = "证件号码无效：须为 18 位居民身份证号码（校验位正确）或统一社会信用代码（校验位正确）"
    phone = clean(form.get("phone"), 33).replace(" ", "")
    if not phone:
        errors["phone"] = "请填写联系电话（办结时通知申请人）"
    elif not (MOBILE_RE.fullmatch(phone) or LANDLINE_RE.fullmatch(phone)):
        errors["phone"] = "联系电话无效：须为 11 位手机号或带区号的固定电话（如 0354-1234567）"
    if errors:
        raise FormErrors(errors)
    return Applicant(name=name, id_no=id_no or None, phone=phone)


def event_from(event_type: str, form, actor: str) -> NewEvent:
    """A step's event from its form (the clerk is the actor, the time is now); FormErrors for a
    value of the wrong shape. Whether the step is allowed is the rules' decision, not this one's."""
    errors: dict[str, str] = {}
    fields: dict[str, object] = {}
    for name, limit in (("reason", 2000), ("approver", 64), ("step", 64), ("link", 64), ("procedure", 32)):
        value = clean(form.get(name), limit + 1)
        if len(value) > limit:
            errors[name] = f"不能超过 {limit} 个字"
        elif value:
            fields[name] = value
    days = clean(form.get("days"), 8)
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 60:
            errors["days"] = "延长天数须为 1–60 之间的整数"
        else:
            fields["days"] = int(days)
    if event_type == "request_supplement" and "reason" not in fields and "reason" not in errors:
        # the rules accept it, but the notice (补正告知书) must tell every missing material at once
        errors["reason"] = "请列出需补正的全部材料（将印在补正告知书上）"
    if errors:
        raise FormErrors(errors)
    try:
        return NewEvent(type=event_type, actor=actor[:64], **fields)
    except ValueError as exc:  # pydantic: a procedure not in the list
        raise FormErrors({"procedure": "请从列表中选择特别程序"}) from exc
