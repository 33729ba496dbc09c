"""LED text signs (显示屏): content, layout, pacing, and the BX card, PNG and fake drivers."""

from agent.devices.signs.base import AreaSign, FakeSign, SignError
from agent.devices.signs.content import (
    SignCommandError,
    SignContent,
    SignItem,
    apply_command,
    expire_notice,
    gbk_safe,
    render_lines,
    render_pages,
    sign_items,
)
from agent.devices.signs.pacing import Pacer, should_write

__all__ = [
    "AreaSign",
    "FakeSign",
    "Pacer",
    "SignCommandError",
    "SignContent",
    "SignError",
    "SignItem",
    "apply_command",
    "expire_notice",
    "gbk_safe",
    "make_sign",
    "render_lines",
    "render_pages",
    "should_write",
    "sign_items",
]


def make_sign(config, data_dir=None):
    """The driver for a SignConfig (None for type 'none'); a png folder is relative to data_dir."""
    from pathlib import Path

    if config is None or config.type == "none":
        return None
    if config.type == "png":
        from agent.devices.signs.png import PngSign

        out = Path(config.port or "signs")
        if data_dir is not None and not out.is_absolute():
            out = Path(data_dir) / out
        return PngSign(config, out_dir=out)
    from agent.devices.signs.bx_sign import BxSign

    return BxSign(config)
