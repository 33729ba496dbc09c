"""Window traffic lamps (红黄绿灯): worst light of a window's open cases, GPIO and fake drivers."""

from agent.devices.lamps.fake import FakeLamps
from agent.devices.lamps.keeper import LampKeeper
from agent.devices.lamps.logic import lamp_changes, lamp_pattern, window_lights, worst_light

__all__ = ["FakeLamps", "LampKeeper", "lamp_changes", "lamp_pattern", "window_lights", "worst_light"]
# GpioLamps lives in agent.devices.lamps.gpio; import it from there (it needs gpiozero).
