"""The kiosk's LEDs, buzzer, relay and no-QR button over GPIO (gpiozero).

`Signals` drives the outputs: a call queues a pattern for its worker thread,
which hands it to gpiozero's own background blink/beep threads, so a call
returns at once and a new pattern replaces the running one. The lamp is two
LEDs (`LedPair`) or one RGB LED (`RgbLamp`), the buzzer active or passive.
`NoQrButton` counts presses of the "person without a QR code" button, which
gpiozero reports from its own thread. gpiozero is imported inside the devices,
and `gpio = "mock"` runs them all on gpiozero's MockFactory.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol, Self

from kiosk.errors import FeedbackError

if TYPE_CHECKING:
    from gpiozero import Factory

    from kiosk.config import FeedbackConfig

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
