"""Once-only submission of the clerk's change forms (防重复提交): a double click on 登记收件, a
second press while the first answer is on its way, or the back button and the same form sent
again must not register a second case or record a step twice.

Every page render puts a fresh random `form_id` in its forms. A submission is keyed by the
session, the path and everything the form sent (form_id included): the first one with a key
runs; one with the same key, sent meanwhile or later, waits for the first and is sent where the
first went (the case page). A first one that was refused (a field to correct, a rule's refusal)
spends nothing: the corrected form goes through. A form without a form_id (a department tool
posting by hand) is not deduplicated. At most `max_keys` keys are kept, the oldest go first.

The back button defeats form_id: the browser fetches the form anew (pages are no-store), with a
new form_id, and puts back what the clerk had typed. So a registration also remembers its content
(everything but the tokens) for `recent_s`: the same content sent again by the same session is
asked to be confirmed (docs/clerk.md), not registered a second time unseen.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping

FORM_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")
TOKENS = frozenset({"csrf", "form_id", "again", "materials"})  # not what a registration says


def submission_key(session_hash: str, path: str, form: Mapping) -> str | None:
    """The key of one submission, or None when the form carries no valid form_id."""
    if not FORM_ID_RE.fullmatch(str(form.get("form_id", ""))):
        return None
    h = hashlib.sha256(f"{session_hash}\0{path}".encode())
    for k, v in sorted((str(k), str(v)) for k, v in form.items()):
        h.update(b"\0" + k.encode("utf-8", "surrogateescape") + b"\0" + v.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def content_key(session_hash: str, path: str, form: Mapping) -> str:
    """The key of what a form says (its tokens left out): the same registration typed again."""
    h = hashlib.sha256(f"{session_hash}\0{path}".encode())
    for k, v in sorted((str(k), str(v)) for k, v in form.items() if str(k) not in TOKENS):
        h.update(b"\0" + k.encode("utf-8", "surrogateescape") + b"\0" + v.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class OnceForms:
    """The submissions seen lately: key → where the first one went (a future while it runs)."""

    def __init__(self, max_keys: int = 2000, recent_s: float = 600.0):
        self.max_keys, self.recent_s = max_keys, recent_s
        self.slots: OrderedDict[str, asyncio.Future] = OrderedDict()
        self.contents: OrderedDict[str, tuple[float, str]] = OrderedDict()  # content key → (when, where)

    def remember(self, key: str, location: str, now: float) -> None:
        """A form with this content was carried out and led to `location`."""
        self.contents[key] = (now, location)
        self.contents.move_to_end(key)
        while len(self.contents) > self.max_keys:
            self.contents.popitem(last=False)

    def recent(self, key: str, now: float) -> str | None:
        """Where a form with the same content went within the last `recent_s`, or None."""
        got = self.contents.get(key)
        return got[1] if got is not None and now - got[0] < self.recent_s else None

    def __len__(self) -> int:
        return len(self.slots)

    async def claim(self, key: str | None) -> str | None:
        """Where an earlier submission with this key went; None: this one is the first and must
        call `finish(key, ...)` when done."""
        while key is not None:
            fut = self.slots.get(key)
            if fut is None:
                self.slots[key] = asyncio.get_running_loop().create_future()
                while len(self.slots) > self.max_keys:
                    self.slots.popitem(last=False)
                return None
            went = await asyncio.shield(fut)
            if went is not None:
                return went
        return None

    def finish(self, key: str | None, location: str | None) -> None:
        """The first submission is done: it went to `location`, or None (refused: the key is freed)."""
        if key is None:
            return
        fut = self.slots.get(key)
        if location is None:
            self.slots.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(location)
