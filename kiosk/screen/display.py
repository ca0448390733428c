"""The display: `Screen` opens it (KMS/DRM full screen on the Pi, a window on a desktop, or an
off-screen surface) and is driven from the main thread: `show(state)` only records the state,
`pump()` handles window events and redraws when something changed; it also counts presses of
`n` ("a person without a QR code") on a desktop keyboard.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

import pygame

from kiosk.errors import FeedbackError
from kiosk.screen.painting import Painter, save_png
from kiosk.screen.preview import Preview
from kiosk.screen.states import HintState, IdleState, ScreenState
from kiosk.text import Lang

if TYPE_CHECKING:
    import numpy as np

    from kiosk.config import FeedbackConfig


ScreenMode = Literal["window", "fullscreen", "offscreen"]


def resolve_mode(configured: str, environ: dict[str, str] | None = None) -> ScreenMode:
    """What `screen = "auto"` means here: a window on a desktop, full screen on a bare Pi."""
    env = os.environ if environ is None else environ
    if configured != "auto":
        return configured  # type: ignore[return-value]
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("SDL_VIDEODRIVER") == "dummy":
        return "window"
    if env.get("SDL_VIDEODRIVER") or any(Path("/dev/dri").glob("card*")):
        return "fullscreen"
    return "offscreen"


class Screen:
    """The status screen; call `show` and `pump` from the main thread only."""

    def __init__(
        self,
        config: FeedbackConfig,
        *,
        lang: Lang = "vi",
        now: Callable[[], datetime] = datetime.now,
        mode: ScreenMode | None = None,
    ) -> None:
        self.mode = mode or resolve_mode(config.screen)
        self._display = self.mode != "offscreen"
        self.surface = _open_surface(self.mode, (config.screen_width, config.screen_height))
        self.painter = Painter(self.surface.get_size(), lang=lang)
        self.painter.warm_up(now())  # tens of milliseconds now rather than on the first scan
        self._now = now
        self._state: ScreenState = IdleState()
        self._drawn: tuple[ScreenState, str] | None = None
        self._preview: Preview | None = Preview(self.surface.get_size()) if config.preview else None
        self._closed = False
        self._no_qr_keys = 0

    @property
    def state(self) -> ScreenState:
        """The state shown (or about to be, at the next pump)."""
        return self._state

    def take_no_qr_keys(self) -> int:
        """How often `n` ("no QR code") was pressed in the window since the last call; resets."""
        presses, self._no_qr_keys = self._no_qr_keys, 0
        return presses

    def show(self, state: ScreenState) -> None:
        """Show `state` from the next `pump()`; cheap, never draws."""
        self._state = state

    def preview(self, frame: np.ndarray, outline: Sequence[tuple[float, float]] | None = None) -> None:
        """Hand the latest camera frame (gray) and a found code's corners to the preview, if enabled."""
        if self._preview is not None:
            self._preview.update(frame, outline)

    def pump(self) -> bool:
        """Handle window events and redraw if needed; False once the window was closed or Esc pressed."""
        if self._closed:
            return False
        with _display_errors():
            running = self._events()
        now = self._now()
        stamp = now.strftime("%H:%M") if isinstance(self._state, IdleState) else ""
        fresh = self._preview is not None and self._preview.fresh
        if (self._state, stamp) != self._drawn or fresh:
            self.redraw(now)
            self._drawn = (self._state, stamp)
        return running

    def redraw(self, now: datetime | None = None) -> None:
        """Draw the current state now; FeedbackError when the display is gone."""
        self.painter.paint(self.surface, self._state, now or self._now())
        if self._preview is not None and isinstance(self._state, IdleState | HintState):
            self._preview.draw(self.surface)
        if self._display:
            with _display_errors():
                pygame.display.flip()

    def _events(self) -> bool:
        if not self._display:
            return True
        running = True
        for event in pygame.event.get():
            # A kiosk's own screen never quits on a key: a visitor's keyboard must not stop the scanner.
            if _is_quit(event) and self.mode == "window":
                running = False
            elif event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
                self._drawn = None
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_n:
                self._no_qr_keys += 1  # pump() runs on the main thread, as does take_no_qr_keys()
        return running

    def save(self, path: Path) -> None:
        """Write what the screen shows to a PNG file."""
        save_png(self.surface, path)

    def close(self) -> None:
        """Close the display (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._display:
            pygame.display.quit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _display_errors() -> Iterator[None]:
    """SDL's error for a display that went away (unplugged, driver reset) as the kiosk's own."""
    try:
        yield
    except pygame.error as e:
        raise FeedbackError(
            f"the display was lost ({e}): is the monitor still connected and switched on? "
            "the kiosk goes on with its lights and buzzer and tries the screen again"
        ) from e


def _is_quit(event: pygame.event.Event) -> bool:
    """The window was closed, or Esc / q pressed (honoured only in a desktop window)."""
    return event.type == pygame.QUIT or (
        event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
    )


def _open_surface(mode: ScreenMode, size: tuple[int, int]) -> pygame.Surface:
    if mode == "offscreen":
        return pygame.Surface(size)
    if mode == "fullscreen" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "kmsdrm")  # a Pi without a desktop
    try:
        pygame.display.init()
        if mode == "fullscreen":
            surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
        else:
            surface = pygame.display.set_mode(size)
    except pygame.error as e:
        pygame.display.quit()
        raise FeedbackError(_open_failure(mode, e)) from e
    pygame.display.set_caption("kiosk")
    pygame.mouse.set_visible(mode != "fullscreen")
    return surface


def _open_failure(mode: ScreenMode, error: pygame.error) -> str:
    """Why the display did not open: a driver this SDL lacks, else the cable or the groups."""
    from kiosk.screen.sdl import missing_driver_advice, sdl_build, wanted_drivers

    build = sdl_build()
    wanted = wanted_drivers(mode, os.environ)
    if build is not None and wanted and not any(build.has(d) for d in wanted):
        return f"cannot open the screen ({mode}: {error}): {missing_driver_advice(build, wanted)}"
    return (
        f"cannot open the screen ({mode}: {error}): is the display connected and the kiosk user in "
        'the video and render groups? set feedback.screen = "offscreen" to run without one'
    )
