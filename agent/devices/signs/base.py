"""AreaSign: the shell every sign driver shares — contents per window, pages per area, pacing.

A hall sign shows one or more dynamic areas; each area shows the pages of its windows in turn
(see SignConfig.areas). A driver only says how to put an area's pages on its medium
(`_write`); what to write and when is decided here with the pure functions of content.py and
pacing.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agent.devices.config import SignArea, SignConfig
from agent.devices.signs.content import SignContent, expire_notice, render_pages
from agent.devices.signs.pacing import Pacer

log = logging.getLogger(__name__)

Pages = tuple[tuple[str, ...], ...]


class SignError(Exception):
    """A sign could not be written (connection, refusal by the card, bad answer)."""


class AreaSign:
    """Sign protocol for drivers that write whole areas; subclasses implement `_write`."""

    def __init__(self, config: SignConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.windows = tuple(config.windows)
        self._contents: dict[str, SignContent] = {}
        self._pacer = Pacer(config.min_interval_s, config.refresh_s)
        self._clock = clock
        self.writes = 0

    def geometry(self, area: SignArea) -> tuple[int, int]:
        """(cells per line, rows) of an area for the configured font."""
        return area.width // (self.config.font_px // 2), max(1, area.height // self.config.font_px)

    def pages(self, area: SignArea, now_mono: float) -> Pages:
        """What `area` should show now: its windows' pages in window order."""
        cells, rows = self.geometry(area)
        pages: Pages = ()
        for window in area.windows:
            content = self._contents.get(window)
            if content is not None:
                pages += render_pages(expire_notice(content, now_mono), cells, rows, self.config.encoding)
        return pages

    def content(self, window: str) -> SignContent | None:
        """The last content offered for a window."""
        return self._contents.get(str(window))

    def show(self, content: SignContent, now_mono: float | None = None) -> bool:
        """Offer a window's content; writes its area now if it changed and the rate allows."""
        if content.window not in self.windows:
            raise KeyError(
                f"window {content.window!r} is not on this sign (windows: {', '.join(self.windows) or 'none'})"
            )
        self._contents[content.window] = content
        area = self.config.area_of(content.window)
        now = self._clock() if now_mono is None else now_mono
        return area is not None and self._write_area(area, now)

    def flush(self, now_mono: float | None = None) -> bool:
        """Write every area whose content changed (or expired, or needs a refresh) when due."""
        now = self._clock() if now_mono is None else now_mono
        wrote = [self._write_area(area, now) for area in self.config.areas]
        return any(wrote)

    def _write_area(self, area: SignArea, now: float) -> bool:
        pages = self.pages(area, now)
        if not pages or not self._pacer.due(area.id, pages, now):
            return False
        try:
            self._write(area, pages, first=self._pacer.shown(area.id) is None)
        except (OSError, SignError) as exc:
            log.warning("sign area %s not written: %s", area.id, exc)
            self._pacer.failed(area.id, now)
            return False
        self._pacer.written(area.id, pages, now)
        self.writes += 1
        return True

    def _write(self, area: SignArea, pages: Pages, first: bool) -> None:
        """Put `pages` on `area`; `first` when the area's state on the device is unknown."""
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class FakeSign(AreaSign):
    """Sign without hardware: `shown[area_id]` is what each area shows, `log` every write."""

    def __init__(self, config: SignConfig, clock: Callable[[], float] = time.monotonic):
        super().__init__(config, clock)
        self.shown: dict[int, Pages] = {}
        self.log: list[tuple[int, Pages]] = []
        self.fail_next = 0

    def _write(self, area: SignArea, pages: Pages, first: bool) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise SignError("simulated failure")
        self.shown[area.id] = pages
        self.log.append((area.id, pages))
