"""Case numbers (办件编号): ``{site}-{YYYYMMDD}-{NNNN}``, and which site owns one.

Site codes may contain ``-`` and one may prefix another (``140702`` and ``140702-001``), so
ownership is never decided by a prefix test: the date and the counter are parsed off the right
end, and the rest must equal the site code exactly.
"""

from __future__ import annotations

import re

_CASE_NO_RE = re.compile(r"(?P<site>[A-Za-z0-9][A-Za-z0-9_-]*)-(?P<day>\d{8})-(?P<n>\d{4,9})")


def make_case_no(site: str, day: str, n: int) -> str:
    """The case number of the n-th case a site received on `day` (YYYYMMDD)."""
    return f"{site}-{day}-{n:04d}"


def case_site(case_no: str) -> str | None:
    """The site code inside a case number, or None when it is not one of ours."""
    m = _CASE_NO_RE.fullmatch(case_no) if isinstance(case_no, str) else None
    return m["site"] if m else None


def owned_by(case_no: str, site: str) -> bool:
    """True only when `case_no` is a case number of exactly this site."""
    return case_site(case_no) == site
