"""Once-only submission of the clerk's change forms (防重复提交): a double click on 登记收件, a
second press while the first answer is on its way, or the back button and the same form sent
again must not register a second case or record a step twice.

Every page render puts a fresh random `form_id` in its forms. A submission is keyed by the
session, the path and everything the form sent (form_id included): the first one with a key
runs; one with the same key, sent meanwhile or later, waits for the first and is sent where the
first went (the case page). A first one that was refused (a field to correct, a rule's refusal)
spends nothing: the corrected form goes through. A form without a form_id (a department tool
posting by hand) is not deduplicated. At most `max_keys` keys are kept, the oldest go first.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping

FORM_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")


def submission_key(session_hash: str, path: str, form: Mapping) -> str | None:
    """The key of one submission, or None when the form carries no valid form_id."""
    if not FORM_ID_RE.fullmatch(str(form.get("form_id", ""))):
        return None
    h = hashlib.sha256(f"{session_hash}\0{path}".encode())
    for k, v in sorted((str(k), str(v)) for k, v in form.items()):
        h.update(b"\0" + k.encode("utf-8", "surrogateescape") + b"\0" + v.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class OnceForms:
    """The submissions seen lately: key → where the first one went (a future while it runs)."""

    def __init__(self, max_keys: int = 2000):
        self.max_keys = max_keys
        self.slots: OrderedDict[str, asyncio.Future] = OrderedDict()

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
