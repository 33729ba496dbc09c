"""Small asyncio helpers for the agent's long-running loops."""

from __future__ import annotations

import asyncio
import logging


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel a background loop and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        logging.getLogger("jiancha.agent").exception("a background loop had failed")


def release_memory() -> None:
    """Give freed heap back to the OS (glibc keeps it after a big drain); a no-op elsewhere."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
