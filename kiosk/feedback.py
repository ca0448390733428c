"""Feedback: LEDs, buzzer and relay over GPIO (gpiozero), and the `Feedback` facade.

`Signals` drives the pins: a call queues a pattern for its worker thread,
which hands it to gpiozero's own background blink/beep threads, so a call
returns at once and a new pattern replaces the running one. `Feedback` drives
the pins, the status screen and the optional speaker together, and brings them
back to rest when a result has been shown long enough (from `pump()`, which the
daemon calls from the main thread every loop turn; pygame wants that thread).
`NoQrButton` counts presses of the "person without a QR code" button, which
gpiozero reports from its own thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, Self

from kiosk.errors import FeedbackError
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
from kiosk.street_check import StreetFinding
from kiosk.text import Lang
from kiosk.venue_check import INSPECTION_SCREEN_S, InspectionFigures

if TYPE_CHECKING:
    import numpy as np
    from gpiozero import Factory

    from kiosk.config import FeedbackConfig
    from kiosk.screen.display import Screen
    from kiosk.sound import Tune

log = logging.getLogger(__name__)

Colour = Literal["green", "red", "amber"]

# Pitches for a passive buzzer, as gpiozero TonalBuzzer values (octaves around A4).
HIGH_PITCH = 1.0
LOW_PITCH = -0.5
# A slow blink says "something is wrong" without being mistaken for a result.
FAULT_ON_S = 0.4
FAULT_OFF_S = 1.6
HINT_ON_S = 0.25
HINT_BLINKS = 2
NO_QR_SCREEN_S = 2.0
# Contacts of a cheap push button chatter for a few milliseconds; one press must count once.
BUTTON_BOUNCE_S = 0.05

_PAIR_COLOURS: dict[Colour, tuple[str, ...]] = {
    "green": ("green",),
    "red": ("red",),
    "amber": ("green", "red"),
}
_RGB_COLOURS: dict[Colour, tuple[float, float, float]] = {
    "green": (0.0, 1.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "amber": (1.0, 0.45, 0.0),
}


class Lamp(Protocol):
    """Whatever lights up: two LEDs or one RGB LED."""

    def blink(self, colour: Colour, on_s: float, off_s: float, n: int | None) -> None:
        """Blink `colour` n times (None = until replaced), in the background."""

    def off(self) -> None:
        """Go dark at once."""

    def close(self) -> None:
        """Release the pins."""


class Beeper(Protocol):
    """Whatever beeps: an active buzzer (one pitch) or a passive one (tones)."""

    def beep(self, pitch: float, length_s: float, n: int) -> None:
        """Beep n times, each `length_s` long with an equal gap, in the background."""

    def off(self) -> None:
        """Fall silent at once."""

    def close(self) -> None:
        """Release the pin."""


class LedPair:
    """A green and a red LED (either may be absent); amber lights both."""

    def __init__(
        self, green: int | None, red: int | None, *, active_high: bool, pin_factory: Factory | None
    ) -> None:
        from gpiozero import LED

        self._leds = {}
        with contextlib.ExitStack() as undo:
            for name, pin in (("green", green), ("red", red)):
                if pin is not None:
                    self._leds[name] = LED(pin, active_high=active_high, pin_factory=pin_factory)
                    undo.callback(self._leds[name].close)
            undo.pop_all()

    def blink(self, colour: Colour, on_s: float, off_s: float, n: int | None) -> None:
        """Blink the LEDs that make `colour`; the others go dark."""
        lit = _PAIR_COLOURS[colour]
        for name, led in self._leds.items():
            if name in lit:
                led.blink(on_time=on_s, off_time=off_s, n=n, background=True)
            else:
                led.off()

    def off(self) -> None:
        """Both LEDs dark."""
        for led in self._leds.values():
            led.off()

    def close(self) -> None:
        """Release both pins (idempotent)."""
        for led in self._leds.values():
            led.close()


class RgbLamp:
    """One RGB LED on three PWM pins (amber is red with a little green)."""

    def __init__(
        self, red: int, green: int, blue: int, *, active_high: bool, pin_factory: Factory | None
    ) -> None:
        from gpiozero import RGBLED

        self._led = RGBLED(red, green, blue, active_high=active_high, pwm=True, pin_factory=pin_factory)

    def blink(self, colour: Colour, on_s: float, off_s: float, n: int | None) -> None:
        """Blink in `colour`."""
        self._led.blink(on_time=on_s, off_time=off_s, on_color=_RGB_COLOURS[colour], n=n, background=True)

    def off(self) -> None:
        """Dark."""
        self._led.off()

    def close(self) -> None:
        """Release the pins (idempotent)."""
        self._led.close()


class ActiveBeeper:
    """An active buzzer: it sounds its own pitch whenever its pin is high."""

    def __init__(self, pin: int, *, pin_factory: Factory | None) -> None:
        from gpiozero import Buzzer

        self._buzzer = Buzzer(pin, pin_factory=pin_factory)

    def beep(self, pitch: float, length_s: float, n: int) -> None:
        """Beep n times; an active buzzer ignores the pitch."""
        self._buzzer.beep(on_time=length_s, off_time=length_s, n=n, background=True)

    def off(self) -> None:
        """Silence."""
        self._buzzer.off()

    def close(self) -> None:
        """Release the pin (idempotent)."""
        self._buzzer.close()


class TonalBeeper:
    """A passive buzzer on a PWM pin, playing tones through gpiozero's TonalBuzzer."""

    def __init__(self, pin: int, *, pin_factory: Factory | None) -> None:
        from gpiozero import TonalBuzzer

        self._buzzer = TonalBuzzer(pin, pin_factory=pin_factory)

    def beep(self, pitch: float, length_s: float, n: int) -> None:
        """Play `pitch` n times; gpiozero's source thread steps through tone, silence, tone..."""
        self._buzzer.source = None  # stops the running sequence before its pace changes
        self._buzzer.source_delay = length_s
        self._buzzer.source = [pitch, None] * n

    def off(self) -> None:
        """Silence."""
        self._buzzer.source = None
        self._buzzer.stop()

    def close(self) -> None:
        """Release the pin (idempotent)."""
        self._buzzer.close()


def needs_pwm(config: FeedbackConfig) -> bool:
    """Whether any output needs a PWM-capable pin (an RGB LED, a passive buzzer)."""
    return config.leds == "rgb" or (config.buzzer_pin is not None and config.buzzer_kind == "passive")


def make_pin_factory(config: FeedbackConfig) -> Factory | None:
    """gpiozero's MockFactory for `gpio = "mock"`; None (gpiozero's default, lgpio on a Pi) for native."""
    if config.gpio == "native":
        return None
    from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

    return MockFactory(pin_class=MockPWMPin if needs_pwm(config) else MockPin)


class _Relay:
    """A door or turnstile relay, pulsed on a pass."""

    def __init__(self, pin: int, *, active_high: bool, pin_factory: Factory | None) -> None:
        from gpiozero import DigitalOutputDevice

        self._device = DigitalOutputDevice(pin, active_high=active_high, pin_factory=pin_factory)

    def pulse(self, seconds: float) -> None:
        self._device.blink(on_time=seconds, off_time=0, n=1, background=True)

    def off(self) -> None:
        self._device.off()

    def close(self) -> None:
        self._device.close()


class Signals:
    """The kiosk's LEDs, buzzer and relay; every method returns at once.

    Calls only queue a pattern: a named worker thread hands it to gpiozero,
    whose own threads time the blinks and beeps. Starting and stopping those
    threads costs milliseconds on a busy Pi, which the capture loop must not
    pay. `fault(True)` makes idle a slow red blink until `fault(False)`; it
    shows at the next `idle()`, so it never cuts a result short.
    """

    def __init__(self, config: FeedbackConfig, *, pin_factory: Factory | None = None) -> None:
        self._config = config
        self._own_factory = pin_factory is None and config.gpio == "mock"
        self.pin_factory = pin_factory if pin_factory is not None else make_pin_factory(config)
        self._faulty = False
        self._closed = False
        try:
            with contextlib.ExitStack() as undo:
                self._lamp = _make_lamp(config, self.pin_factory)
                undo.callback(self._lamp.close)
                self._beeper = _make_beeper(config, self.pin_factory)
                undo.callback(_close_if(self._beeper))
                self._relay = _make_relay(config, self.pin_factory)
                undo.pop_all()
        except Exception as e:
            raise _gpio_error(e) from e
        self._commands: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="feedback-gpio", daemon=True)
        self._worker.start()

    def passed(self, relay: bool = True) -> None:
        """Green for the result hold time, one short high beep, the relay pulse (unless not `relay`)."""
        self._submit(lambda: self._show_passed(relay))

    def failed(self, relay: bool = True) -> None:
        """Red for the result hold time, three short low beeps; the relay drops (unless not `relay`)."""
        self._submit(lambda: self._show_failed(relay))

    def beep(self) -> None:
        """One short high beep; LEDs and relay untouched."""
        self._submit(lambda: self._beeper.beep(HIGH_PITCH, self._config.beep_s, 1) if self._beeper else None)

    def hint(self) -> None:
        """Two short amber blinks ("come closer", "hold still"); buzzer and relay untouched."""
        self._submit(lambda: self._lamp.blink("amber", HINT_ON_S, HINT_ON_S, HINT_BLINKS))

    def idle(self) -> None:
        """Dark, or a slow red blink while a fault is set."""
        if self._faulty:
            self._submit(lambda: self._lamp.blink("red", FAULT_ON_S, FAULT_OFF_S, None))
        else:
            self._submit(self._lamp.off)

    def fault(self, active: bool = True) -> None:
        """Set or clear the fault; it shows at the next `idle()`."""
        self._faulty = active

    @property
    def faulty(self) -> bool:
        """Whether a fault is set."""
        return self._faulty

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until every call so far has reached the pins; False if that took over `timeout`."""
        done = threading.Event()
        self._submit(done.set)
        return done.wait(timeout)

    def _submit(self, command: Callable[[], None]) -> None:
        if self._closed:
            raise FeedbackError("the LEDs, buzzer and relay were closed; open a new Signals")
        self._commands.put(command)

    def _run(self) -> None:
        while (command := self._commands.get()) is not None:
            try:
                command()
            except Exception:
                # A pin that fails mid-pattern must not end feedback for the rest of the day.
                log.exception("a GPIO pattern failed; the next result will try again")

    def _show_passed(self, relay: bool) -> None:
        self._lamp.blink("green", self._config.result_hold_s, 0, 1)
        if self._beeper:
            self._beeper.beep(HIGH_PITCH, self._config.beep_s, 1)
        if self._relay and relay:
            self._relay.pulse(self._config.relay_pulse_s)

    def _show_failed(self, relay: bool) -> None:
        self._lamp.blink("red", self._config.result_hold_s, 0, 1)
        if self._beeper:
            self._beeper.beep(LOW_PITCH, self._config.beep_s, 3)
        if self._relay and relay:
            self._relay.off()

    def close(self) -> None:
        """Finish queued patterns, then everything off and the pins released (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._commands.put(None)
        self._worker.join()
        for device in (self._relay, self._beeper, self._lamp):
            if device is not None:
                device.close()
        if self._own_factory and self.pin_factory is not None:
            self.pin_factory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoQrButton:
    """A push button from a GPIO pin to ground (internal pull-up) that counts its presses."""

    def __init__(self, pin: int, *, pin_factory: Factory | None, bounce_s: float = BUTTON_BOUNCE_S) -> None:
        from gpiozero import Button

        self._lock = threading.Lock()  # gpiozero calls when_pressed from its own thread
        self._presses = 0
        try:
            self._button = Button(pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory)
        except Exception as e:
            raise _gpio_error(e) from e
        self._button.when_pressed = self._pressed

    def _pressed(self) -> None:
        with self._lock:
            self._presses += 1

    def take(self) -> int:
        """Presses since the last call; resets the count."""
        with self._lock:
            presses, self._presses = self._presses, 0
        return presses

    def close(self) -> None:
        """Release the pin (idempotent)."""
        self._button.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_lamp(config: FeedbackConfig, factory: Factory | None) -> Lamp:
    if config.leds == "rgb":
        assert config.red_pin is not None and config.green_pin is not None and config.blue_pin is not None
        return RgbLamp(
            config.red_pin,
            config.green_pin,
            config.blue_pin,
            active_high=config.leds_active_high,
            pin_factory=factory,
        )
    return LedPair(config.green_pin, config.red_pin, active_high=config.leds_active_high, pin_factory=factory)


def _make_beeper(config: FeedbackConfig, factory: Factory | None) -> Beeper | None:
    if config.buzzer_pin is None:
        return None
    if config.buzzer_kind == "passive":
        return TonalBeeper(config.buzzer_pin, pin_factory=factory)
    return ActiveBeeper(config.buzzer_pin, pin_factory=factory)


def _make_relay(config: FeedbackConfig, factory: Factory | None) -> _Relay | None:
    if config.relay_pin is None:
        return None
    return _Relay(config.relay_pin, active_high=config.relay_active_high, pin_factory=factory)


def _close_if(device: Beeper | None) -> Callable[[], None]:
    return device.close if device is not None else lambda: None


def _gpio_error(e: Exception) -> FeedbackError:
    return FeedbackError(
        f"cannot drive the GPIO pins ({type(e).__name__}: {e}): on a Raspberry Pi install lgpio "
        "(sudo apt install python3-lgpio, in a venv made with --system-site-packages) and add the "
        "kiosk user to the gpio group; elsewhere set "
        'feedback.gpio = "mock"; check the pin numbers in [feedback] against docs/wiring.md'
    )


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
        screen: Screen | None = None,
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
