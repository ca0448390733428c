"""The `Feedback` facade: the lights, buzzer and relay, the status screen and the speaker together.

`Feedback` shows a result on all of them at once and brings them back to rest
when it has been shown long enough (from `pump()`, which the daemon calls from
the main thread every loop turn; pygame wants that thread). The GPIO side
(`Signals`, `NoQrButton`) lives in kiosk.signals, the screen in kiosk.screen.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, Self

from kiosk.reasons import Reason, message
from kiosk.screen.states import (
    FailState,
    FaultState,
    HintState,
    IdleState,
    InspectionState,
    NoQrState,
    PassState,
    ScreenState,
    StreetState,
)
from kiosk.screen.texts import FAULTS, HINTS, INSPECTION_UNAVAILABLE
from kiosk.signals import NoQrButton, Signals
from kiosk.street_check import StreetFinding
from kiosk.text import Lang
from kiosk.venue_check import INSPECTION_SCREEN_S, InspectionFigures

if TYPE_CHECKING:
    import numpy as np

    from kiosk.config import FeedbackConfig
    from kiosk.screen.display import Screen
    from kiosk.screen.keeper import KeptScreen
    from kiosk.sound import Tune

NO_QR_SCREEN_S = 2.0


class Speaker(Protocol):
    """Tones alongside the buzzer (kiosk.sound.Sound plays them through pygame.mixer)."""

    def play(self, name: Tune) -> bool:
        """Start one tune; whether it plays."""
        ...

    def close(self) -> None:
        """Release the audio device."""
        ...


class Silence:
    """The speaker of a kiosk without one."""

    def play(self, name: Tune) -> bool:
        """Plays nothing."""
        return False

    def close(self) -> None:
        """Nothing to release."""


class Feedback:
    """LEDs, buzzer, relay, screen and speaker together; every method returns at once.

    A pass or fail shows for `result_hold_s`, a hint for `hint_hold_s`, an
    inspection for INSPECTION_SCREEN_S, a street check for `street_hold_s` and
    a recorded person without a QR code for NO_QR_SCREEN_S; then
    `pump()` brings everything back to rest: the idle screen with dark LEDs, or,
    while a fault is set, the fault screen with a slow red blink. Without a
    screen it shows nothing and without a speaker it is silent (`open_feedback`
    builds both from the config); the LEDs default to the config's pins.
    Feedback closes them all.
    """

    def __init__(
        self,
        config: FeedbackConfig,
        *,
        lang: Lang = "vi",
        signals: Signals | None = None,
        screen: Screen | KeptScreen | None = None,
        sound: Speaker | None = None,
        button: NoQrButton | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self._config = config
        self._lang = lang
        self._clock = clock
        self._now = now
        with contextlib.ExitStack() as undo:
            self.signals = signals if signals is not None else Signals(config)
            undo.callback(self.signals.close)
            self.screen = screen
            if self.screen is not None:
                undo.callback(self.screen.close)
            self.sound: Speaker = sound if sound is not None else Silence()
            undo.callback(self.sound.close)
            self.button = button if button is not None else _default_button(config, self.signals)
            undo.pop_all()
        self._idle = IdleState()
        self._fault: FaultState | None = None
        self._until: float | None = None  # when the result or hint on show ends; None = at rest
        self._result = False
        self._closed = False
        self._rest()

    def passed(
        self, name: str, direction: Literal["in", "out"] = "in", *, at: datetime | None = None
    ) -> None:
        """The person may pass: green, one beep, relay pulse, their masked name."""
        self._show_result(PassState(name, direction, at or self._now()))
        self.signals.passed()
        self.sound.play("pass")

    def failed(self, reason: Reason | str, **details: object) -> None:
        """The person may not pass: red, three beeps, and the reason's message (or this text) on screen."""
        text = message(reason, self._lang, **details) if isinstance(reason, Reason) else reason
        self._show_result(FailState(text))
        self.signals.failed()
        self.sound.play("fail")

    def inspection(self, figures: InspectionFigures) -> None:
        """An inspector card: the inspection screen for INSPECTION_SCREEN_S, a pass's green and beep.

        Never the relay. A new scan result replaces it; hints wait for it to end.
        """
        self._show(InspectionState(figures), INSPECTION_SCREEN_S, result=True)
        self.signals.passed(relay=False)
        self.sound.play("pass")

    def inspection_unavailable(self) -> None:
        """An inspector card was recorded but its figures could not be shown: say so, no relay."""
        what, then = INSPECTION_UNAVAILABLE
        self._show_result(HintState(what.of(self._lang), then.of(self._lang)))
        self.signals.passed(relay=False)
        self.sound.play("pass")

    def street(self, finding: StreetFinding) -> None:
        """A street check: the finding for `street_hold_s`, a pass's or fail's lights and beeps, no relay."""
        self._show(StreetState(finding), self._config.street_hold_s, result=True)
        if finding.verdict == "pass":
            self.signals.passed(relay=False)
            self.sound.play("pass")
        else:
            self.signals.failed(relay=False)
            self.sound.play("fail")

    def take_no_qr_presses(self) -> int:
        """Presses of the no-QR button, and of `n` in the screen's window, since the last call; resets."""
        presses = self.button.take() if self.button is not None else 0
        if self.screen is not None:
            presses += self.screen.take_no_qr_keys()  # counted by pump(), on this (the main) thread
        return presses

    def no_qr_recorded(self) -> None:
        """Confirm that a person without a QR code was recorded: NO_QR_SCREEN_S on screen, one short beep."""
        self._show(NoQrState(), NO_QR_SCREEN_S, result=True)
        self.signals.beep()
        self.sound.play("hint")

    def hint(self, text: str, detail: str = "") -> bool:
        """Help with the scan: a key of HINTS ("closer", "still", "glare") or text.

        Returns False, and does nothing, while a result is on show.
        """
        if self._result and not self._expired():
            return False
        state = HintState.named(text, self._lang) if text in HINTS else HintState(text, detail)
        self._show(state, self._config.hint_hold_s, result=False)
        self.signals.hint()
        self.sound.play("hint")
        return True

    def idle(self, state: IdleState) -> None:
        """New idle content (venue, counts, uplink health); shown whenever nothing else is."""
        self._idle = state
        if self._until is None and self._fault is None:
            self._show_screen(state)

    def fault(self, problem: str, action: str = "") -> None:
        """Something is wrong: at rest the screen says what and what staff should do; red blinks slowly.

        `problem` is a key of FAULTS ("camera", "broker", "spool") or text with its `action`.
        """
        state = FaultState.named(problem, self._lang) if problem in FAULTS else FaultState(problem, action)
        if state == self._fault:
            return  # repeating the same fault must not restart the blink
        self._fault = state
        self.signals.fault(True)
        if self._until is None:
            self._rest()

    def clear_fault(self) -> None:
        """The fault is over."""
        if self._fault is None:
            return
        self._fault = None
        self.signals.fault(False)
        if self._until is None:
            self._rest()

    def preview(self, frame: np.ndarray, outline: Sequence[tuple[float, float]] | None = None) -> None:
        """Hand a camera frame and a found code's corners to the screen's preview (when enabled)."""
        if self.screen is not None:
            self.screen.preview(frame, outline)

    def pump(self) -> bool:
        """Call every loop turn from the main thread: ends expired results, redraws; False = quit asked."""
        if self._until is not None and self._expired():
            self._rest()
        return self.screen.pump() if self.screen is not None else True

    @property
    def screen_problem(self) -> str | None:
        """Why the screen shows nothing while it should (a display out), or None."""
        return getattr(self.screen, "problem", None)

    @property
    def state(self) -> ScreenState:
        """What the screen shows (or would, without a screen)."""
        return self._shown

    def _show_result(self, state: ScreenState) -> None:
        self._show(state, self._config.result_hold_s, result=True)

    def _show(self, state: ScreenState, hold_s: float, *, result: bool) -> None:
        self._until = self._clock() + hold_s
        self._result = result
        self._show_screen(state)

    def _show_screen(self, state: ScreenState) -> None:
        self._shown = state
        if self.screen is not None:
            self.screen.show(state)

    def _expired(self) -> bool:
        return self._until is None or self._clock() >= self._until

    def _rest(self) -> None:
        self._until = None
        self._result = False
        self.signals.idle()
        self._show_screen(self._fault or self._idle)

    def close(self) -> None:
        """Everything off and released (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.button is not None:
            self.button.close()
        self.sound.close()
        if self.screen is not None:
            self.screen.close()
        self.signals.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default_button(config: FeedbackConfig, signals: Signals) -> NoQrButton | None:
    if config.no_qr_pin is None:
        return None
    return NoQrButton(config.no_qr_pin, pin_factory=signals.pin_factory)
