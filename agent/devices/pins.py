"""gpiozero pin factories by the board profile's name for them (imported lazily)."""

from __future__ import annotations

from typing import Any

# Board.gpio value -> (module, class) in gpiozero.pins
FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),  # Pi 4/5, current kernels
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "mock": ("gpiozero.pins.mock", "MockFactory"),  # laptops, tests, the demo
}
APT_HINT = {
    "lgpio": "pip install gpiozero lgpio (or apt-get install python3-gpiozero python3-lgpio)",
    "rpigpio": "pip install gpiozero RPi.GPIO (or apt-get install python3-rpi.gpio)",
}


class GpioUnavailable(RuntimeError):
    """The pin library a board profile asks for is not installed or cannot open the pins."""


def make_pin_factory(name: str) -> Any:
    """A gpiozero pin factory for a board's ``gpio`` setting; GpioUnavailable says what to install."""
    import importlib

    if name == "none":
        raise GpioUnavailable("this board has no GPIO (gpio: none); keypads and lamps on GPIO cannot be opened")
    try:
        module, cls = FACTORIES[name]
    except KeyError:
        raise GpioUnavailable(f"unknown gpio pin factory {name!r}; known: {', '.join(FACTORIES)}") from None
    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        hint = APT_HINT.get(name, "pip install gpiozero")
        raise GpioUnavailable(f"gpio {name!r} needs {exc.name or 'gpiozero'}: {hint}") from exc
    except Exception as exc:  # the factory could not open /dev/gpiochip*, no permission, ...
        raise GpioUnavailable(f"gpio {name!r} cannot open the pins: {exc}") from exc
