"""A screen that may be missing: the kiosk runs headless while the display is out, and retries it.

A kiosk without a monitor (never plugged in, unplugged, or a driver that fails)
still scans and signals with its LEDs, buzzer and relay. `KeptScreen` stands
where the `Screen` would: it opens the display, and when that fails (at start or
mid-run, as a FeedbackError from the Screen) it drops it, says why in `problem`
(the loop puts it on the LEDs and the state topic), and tries again with a
growing pause. The state to show is kept meanwhile and shown when the display is
back. Nothing here imports pygame: the Screen does, when it is opened.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self

from kiosk.errors import FeedbackError
from kiosk.screen.states import IdleState, ScreenState

if TYPE_CHECKING:
    import numpy as np

    from kiosk.screen.display import Screen

log = logging.getLogger(__name__)

# Pauses before each new try: quick after a loose cable, then once a minute without spamming the log.
DISPLAY_BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)


class KeptScreen:
    """The status screen, reopened with backoff while it is out; call from the main thread only."""

    def __init__(
        self,
        open_screen: Callable[[], Screen],
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff_s: Sequence[float] = DISPLAY_BACKOFF_S,
    ) -> None:
        self._open = open_screen
        self._clock = clock
        self._backoff_s = tuple(backoff_s)
        self._screen: Screen | None = None
        self._state: ScreenState = IdleState()
        self._failures = 0
        self._retry_at = 0.0
        self.problem: str | None = None  # why nothing is shown; None while the display works
        self._try_open()

    @property
    def display(self) -> Screen | None:
        """The open display, or None while it is out."""
        return self._screen

    @property
    def state(self) -> ScreenState:
        """The state shown, or to be shown when the display is back."""
        return self._state

    def show(self, state: ScreenState) -> None:
        """Show `state` (from the next pump), now or once the display is back."""
        self._state = state
        if self._screen is not None:
            self._screen.show(state)

    def preview(self, frame: np.ndarray, outline: Sequence[tuple[float, float]] | None = None) -> None:
        """Hand a camera frame to the preview while the display works; dropped otherwise."""
        if self._screen is not None:
            self._screen.preview(frame, outline)

    def take_no_qr_keys(self) -> int:
        """Presses of `n` in the window since the last call (none while the display is out)."""
        return self._screen.take_no_qr_keys() if self._screen is not None else 0

    def pump(self) -> bool:
        """Pump the display, or retry it when due; False only when a desktop window was closed."""
        if self._screen is None and self._clock() >= self._retry_at:
            self._try_open()
        if self._screen is None:
            return True
        try:
            return self._screen.pump()
        except FeedbackError as e:
            self._drop(e)
            return True

    def redraw(self) -> None:
        """Draw the current state now, if the display works."""
        if self._screen is not None:
            try:
                self._screen.redraw()
            except FeedbackError as e:
                self._drop(e)

    def save(self, path: Path) -> None:
        """Write what the screen shows to a PNG file; raises FeedbackError while the display is out."""
        if self._screen is None:
            raise FeedbackError(f"no screen to save: {self.problem}")
        self._screen.save(path)

    def _try_open(self) -> None:
        try:
            screen = self._open()
        except FeedbackError as e:
            self._failed(e)
            return
        screen.show(self._state)
        self._screen = screen
        if self.problem is not None:
            log.info("the screen is back after %d failed tries", self._failures)
        self._failures, self.problem = 0, None

    def _drop(self, error: FeedbackError) -> None:
        """The display was lost mid-run: close what is left of it and retry later."""
        screen, self._screen = self._screen, None
        if screen is not None:
            with contextlib.suppress(Exception):  # a half-dead display must not stop the loop
                screen.close()
        self._failed(error)

    def _failed(self, error: FeedbackError) -> None:
        self._failures += 1
        pause = self._backoff_s[min(self._failures, len(self._backoff_s)) - 1]
        self._retry_at = self._clock() + pause
        if str(error) != self.problem:  # once per kind of failure, not once a minute all day
            log.error("screen out, the kiosk goes on with its lights and buzzer: %s", error)
        self.problem = str(error)

    def close(self) -> None:
        """Close the display, if open (idempotent)."""
        screen, self._screen = self._screen, None
        if screen is not None:
            screen.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
