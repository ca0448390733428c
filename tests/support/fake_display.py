"""pygame's display as it fails on a kiosk, over the real pygame (dummy video driver).

Derived from pygame's src_c/display.c: `set_mode` raises `pygame.error` with SDL's
message when SDL cannot create the window (no monitor: "No available video
device"; kmsdrm without a connected display), and `flip` raises `pygame.error`
when SDL cannot update the window's surface (the monitor went away mid-run).
While `connected`, both are pygame's own functions.
"""

from __future__ import annotations

from typing import Any

import pygame
import pytest


class FlakyDisplay:
    """Replaces pygame.display.set_mode and flip; unplug with `connected = False`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, connected: bool = True) -> None:
        self.connected = connected
        self.opens = 0  # calls of set_mode, successful or not
        self._set_mode = pygame.display.set_mode
        self._flip = pygame.display.flip
        monkeypatch.setattr(pygame.display, "set_mode", self.set_mode)
        monkeypatch.setattr(pygame.display, "flip", self.flip)

    def set_mode(self, *args: Any, **kwargs: Any) -> pygame.Surface:
        """pygame's set_mode, or SDL's refusal while no monitor is connected."""
        self.opens += 1
        if not self.connected:
            raise pygame.error("No available video device")
        return self._set_mode(*args, **kwargs)

    def flip(self) -> None:
        """pygame's flip, or SDL's failure to update a window whose display is gone."""
        if not self.connected:
            raise pygame.error("Couldn't update the window surface: display disconnected")
        self._flip()
