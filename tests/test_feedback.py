"""Feedback: GPIO patterns on gpiozero's MockFactory (states and timing), the facade, sound."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pygame
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from kiosk.app import open_feedback
from kiosk.config import FeedbackConfig
from kiosk.errors import FeedbackError
from kiosk.feedback import NO_QR_SCREEN_S, Feedback
from kiosk.reasons import Reason, message
from kiosk.screen.painting import GREEN as GREEN_RGB
from kiosk.screen.samples import example_figures, example_finding
from kiosk.screen.states import (
    FailState,
    FaultState,
    HintState,
    IdleState,
    InspectionState,
    NoQrState,
    PassState,
    StreetState,
)
from kiosk.signals import NoQrButton, Signals, make_pin_factory
from kiosk.sound import TUNES, Sound
from kiosk.venue_check import INSPECTION_SCREEN_S

# Timing tolerances for gpiozero's threads on a shared, busy 2-core machine: each step of a
# pattern, the start of a pattern after the call, and how long a call may take (patterns last
# hundreds of milliseconds; a call that returns within 50 ms did not wait for one).
TOL = 0.04
START_TOL = 0.06
NON_BLOCKING = 0.05
FAST = {"result_hold_s": 0.3, "beep_s": 0.05, "relay_pulse_s": 0.2, "relay_pin": 23}
GREEN, RED, BUZZER, RELAY, BLUE, BUTTON = 17, 27, 22, 23, 24, 6


def timeline(pin: MockPin) -> list[tuple[float, float]]:
    """The pin's changes since clear_states(), as (seconds since then, level)."""
    t, out = 0.0, []
    for change in pin.states[1:]:
        t += change.timestamp
        out.append((t, float(change.state)))
    return out


def assert_timeline(pin: MockPin, expected: Sequence[tuple[float, float]]) -> None:
    """Same levels in the same order; the first change within START_TOL of its time, and every
    interval between changes within TOL of its length (gpiozero times each step from the last)."""
    actual = timeline(pin)
    assert [level for _, level in actual] == pytest.approx([level for _, level in expected]), actual
    assert abs(actual[0][0] - expected[0][0]) <= START_TOL, f"first change late: {actual}"
    for (a0, _), (a1, _), (e0, _), (e1, _) in zip(actual, actual[1:], expected, expected[1:], strict=False):
        assert abs((a1 - a0) - (e1 - e0)) <= TOL, f"step {a1 - a0:.3f}s, expected {e1 - e0:.3f}s: {actual}"


@pytest.fixture(autouse=True)
def _no_global_factory() -> Iterator[None]:
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = None


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory(pin_class=MockPin)
    yield mock
    mock.close()


@pytest.fixture
def pwm_factory() -> Iterator[MockFactory]:
    mock = MockFactory(pin_class=MockPWMPin)
    yield mock
    mock.close()


def start(factory: MockFactory, *pins: int) -> None:
    """Forget the pins' history: timelines count from now."""
    for pin in pins:
        factory.pin(pin).clear_states()


def eventually(check: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Whether `check()` becomes true within `timeout`: patterns start on a worker thread."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def timed(call: object) -> float:
    """Seconds a call took."""
    began = time.monotonic()
    call()  # type: ignore[operator]
    return time.monotonic() - began


def test_pass_is_green_one_beep_and_relay_pulse(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED, BUZZER, RELAY)
        assert timed(signals.passed) < NON_BLOCKING
        time.sleep(0.45)
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])
    assert_timeline(factory.pin(BUZZER), [(0, 1), (0.05, 0)])
    assert_timeline(factory.pin(RELAY), [(0, 1), (0.2, 0)])
    assert timeline(factory.pin(RED)) == []


def test_fail_is_red_and_three_beeps_and_no_relay(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED, BUZZER, RELAY)
        assert timed(signals.failed) < NON_BLOCKING
        time.sleep(0.45)
    assert_timeline(factory.pin(RED), [(0, 1), (0.3, 0)])
    beeps = [(0.1 * i + dt, level) for i in range(3) for dt, level in ((0, 1), (0.05, 0))]
    assert_timeline(factory.pin(BUZZER), beeps)
    assert timeline(factory.pin(GREEN)) == []
    assert timeline(factory.pin(RELAY)) == []


def test_a_new_result_replaces_the_running_pattern_at_once(factory: MockFactory) -> None:
    config = FeedbackConfig(**{**FAST, "beep_s": 0.1})
    with Signals(config, pin_factory=factory) as signals:
        signals.failed()
        time.sleep(0.05)
        start(factory, GREEN, RED, BUZZER, RELAY)
        assert timed(signals.passed) < NON_BLOCKING
        time.sleep(0.4)
    # The fail's red stops now and the pass's green starts now. The buzzer was in the
    # fail's first beep (due to end at 0.05 s): it stays on for the pass's whole beep.
    assert_timeline(factory.pin(RED), [(0, 0)])
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])
    assert_timeline(factory.pin(BUZZER), [(0.1, 0)])
    assert_timeline(factory.pin(RELAY), [(0, 1), (0.2, 0)])


def never_high(pin: MockPin) -> bool:
    """The pin stayed low through its whole history."""
    return not any(change.state for change in pin.states)


def test_a_pass_without_the_relay_leaves_it_alone(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, BUZZER, RELAY)
        assert timed(lambda: signals.passed(relay=False)) < NON_BLOCKING
        time.sleep(0.45)
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])
    assert_timeline(factory.pin(BUZZER), [(0, 1), (0.05, 0)])
    assert never_high(factory.pin(RELAY))


def test_a_fail_without_the_relay_does_not_drop_a_pulse(factory: MockFactory) -> None:
    config = FeedbackConfig(**{**FAST, "relay_pulse_s": 5})
    with Signals(config, pin_factory=factory) as signals:
        signals.passed()
        time.sleep(0.05)
        start(factory, RELAY)
        signals.failed(relay=False)
        assert signals.settle()
        time.sleep(0.05)
        assert factory.pin(RELAY).state and timeline(factory.pin(RELAY)) == []


def test_beep_is_one_short_beep_and_nothing_else(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED, BUZZER, RELAY)
        assert timed(signals.beep) < NON_BLOCKING
        time.sleep(0.2)
    assert_timeline(factory.pin(BUZZER), [(0, 1), (0.05, 0)])
    assert all(timeline(factory.pin(p)) == [] for p in (GREEN, RED, RELAY))


def test_a_fail_drops_the_relay_of_the_previous_pass(factory: MockFactory) -> None:
    config = FeedbackConfig(**{**FAST, "relay_pulse_s": 5})
    with Signals(config, pin_factory=factory) as signals:
        signals.passed()
        time.sleep(0.05)
        start(factory, RELAY)
        signals.failed()
        time.sleep(0.1)
        assert_timeline(factory.pin(RELAY), [(0, 0)])


def test_hint_is_a_short_amber_blink_of_both_leds(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED, BUZZER)
        assert timed(signals.hint) < NON_BLOCKING
        time.sleep(1.1)
    blinks = [(0, 1), (0.25, 0), (0.5, 1), (0.75, 0)]
    assert_timeline(factory.pin(GREEN), blinks)
    assert_timeline(factory.pin(RED), blinks)
    assert timeline(factory.pin(BUZZER)) == []


def test_fault_is_a_slow_red_blink_when_idle(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED)
        signals.fault()
        assert timeline(factory.pin(RED)) == [], "a fault waits for idle"
        assert timed(signals.idle) < NON_BLOCKING
        time.sleep(2.2)
        assert_timeline(factory.pin(RED), [(0, 1), (0.4, 0), (2.0, 1)])
        start(factory, RED)
        signals.fault(False)
        signals.idle()
        assert signals.settle()
        assert timeline(factory.pin(RED)) in ([], [(pytest.approx(0, abs=TOL), 0.0)])
        assert not factory.pin(RED).state
    assert timeline(factory.pin(GREEN)) == []


def test_result_during_fault_then_back_to_fault_blink(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        signals.fault()
        signals.idle()
        time.sleep(0.1)
        start(factory, GREEN, RED)
        signals.passed()
        time.sleep(0.35)
        signals.idle()
        time.sleep(0.1)
    assert_timeline(factory.pin(RED), [(0, 0), (0.35, 1)])
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])


def test_passive_buzzer_plays_tones_on_a_pwm_pin(pwm_factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, buzzer_kind="passive")
    with Signals(config, pin_factory=pwm_factory) as signals:
        buzzer = pwm_factory.pin(BUZZER)
        start(pwm_factory, BUZZER)
        signals.passed()
        assert eventually(lambda: buzzer.frequency == pytest.approx(880, rel=0.01)), buzzer.frequency
        time.sleep(0.1)
        assert_timeline(buzzer, [(0, 0.5), (0.05, 0)])
        start(pwm_factory, BUZZER)
        signals.failed()
        low = 440 * 2**-0.5
        assert eventually(lambda: buzzer.frequency == pytest.approx(low, rel=0.01)), buzzer.frequency
        time.sleep(0.35)
    beeps = [(0.1 * i + dt, level) for i in range(3) for dt, level in ((0, 0.5), (0.05, 0))]
    assert_timeline(buzzer, beeps)


def test_rgb_led_shows_green_red_and_amber(pwm_factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, leds="rgb", blue_pin=BLUE)
    with Signals(config, pin_factory=pwm_factory) as signals:
        red, green, blue = (pwm_factory.pin(p) for p in (RED, GREEN, BLUE))
        signals.passed()
        assert eventually(lambda: (red.state, green.state, blue.state) == (0, 1, 0))
        start(pwm_factory, RED, GREEN)
        signals.hint()
        assert eventually(lambda: (red.state, green.state, blue.state) == pytest.approx((1, 0.45, 0)))
        time.sleep(0.25)
        assert (red.state, green.state) == (0, 0)
        assert_timeline(red, [(0, 1), (0.25, 0)])
        signals.failed()
        assert eventually(lambda: (red.state, green.state, blue.state) == (1, 0, 0))


def test_common_anode_rgb_led_is_inverted(pwm_factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, leds="rgb", blue_pin=BLUE, leds_active_high=False)
    with Signals(config, pin_factory=pwm_factory) as signals:
        signals.passed()
        assert eventually(lambda: [pwm_factory.pin(p).state for p in (RED, GREEN, BLUE)] == [1, 0, 1])


def test_relay_active_low_and_absent_parts(factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, relay_active_high=False, buzzer_pin=None, red_pin=None)
    with Signals(config, pin_factory=factory) as signals:
        relay = factory.pin(RELAY)
        assert relay.state, "an active-low relay idles high"
        start(factory, RELAY)
        signals.passed()
        signals.failed()
        signals.hint()
        time.sleep(0.05)
    assert [level for _, level in timeline(relay)] == [0, 1], "on (low) for the pass, off (high) at the fail"


def test_mock_config_makes_its_own_factory() -> None:
    config = FeedbackConfig(**FAST, buzzer_kind="passive")
    factory = make_pin_factory(config)
    assert isinstance(factory, MockFactory) and factory.pin_class is MockPWMPin
    factory.close()
    with Signals(config) as signals:
        signals.passed()
        assert isinstance(signals.pin_factory, MockFactory)
    signals.close()


def test_close_releases_the_pins_and_is_idempotent(factory: MockFactory) -> None:
    signals = Signals(FeedbackConfig(**FAST), pin_factory=factory)
    signals.fault()
    signals.idle()
    signals.close()
    signals.close()
    assert all(factory.pin(p).function == "input" for p in (GREEN, RED, BUZZER, RELAY))
    assert not [t for t in threading.enumerate() if t.name == "feedback-gpio"]
    with pytest.raises(FeedbackError, match="closed"):
        signals.passed()
    again = Signals(FeedbackConfig(**FAST), pin_factory=factory)
    again.close()


def test_busy_pin_is_a_feedback_error(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory), pytest.raises(FeedbackError, match="pin"):
        Signals(FeedbackConfig(**FAST), pin_factory=factory)


def test_native_without_a_gpio_library_is_a_feedback_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "lgpio")
    monkeypatch.setattr(Device, "pin_factory", None)
    with pytest.raises(FeedbackError, match='gpio = "mock"'):
        Signals(FeedbackConfig(gpio="native"))


# --- the Feedback facade: pins, screen and speaker together ---------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


NOON = datetime(2026, 11, 29, 12, 0, 0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feedback(factory: MockFactory, clock: Clock) -> Iterator[Feedback]:
    config = FeedbackConfig(**FAST, screen="offscreen")
    signals = Signals(config, pin_factory=factory)
    with open_feedback(config, signals=signals, clock=clock, now=lambda: NOON) as fb:
        yield fb


def test_pass_shows_then_returns_to_idle(feedback: Feedback, factory: MockFactory, clock: Clock) -> None:
    feedback.idle(IdleState("Chợ", count_in=3))
    assert feedback.state == IdleState("Chợ", count_in=3)
    assert timed(lambda: feedback.passed("Nguyễn Văn An", "out")) < NON_BLOCKING
    assert feedback.state == PassState("Nguyễn Văn An", "out", NOON)
    assert feedback.signals.settle()
    assert factory.pin(GREEN).state
    feedback.pump()
    assert feedback.screen is not None and feedback.screen.display.surface.get_at((2, 2))[:3] == GREEN_RGB
    clock.advance(0.29)
    feedback.pump()
    assert isinstance(feedback.state, PassState)
    clock.advance(0.02)
    feedback.pump()
    assert feedback.state == IdleState("Chợ", count_in=3)


def test_fail_shows_the_reason_message(feedback: Feedback, factory: MockFactory) -> None:
    feedback.failed(Reason.STATUS_BLOCKED, status="F1")
    assert feedback.state == FailState(message(Reason.STATUS_BLOCKED, "vi", status="F1"))
    assert feedback.signals.settle()
    assert factory.pin(RED).state
    feedback.failed("Thẻ hết hạn")
    assert feedback.state == FailState("Thẻ hết hạn")


def test_hint_waits_for_a_result_to_end(feedback: Feedback, clock: Clock) -> None:
    feedback.passed("An")
    assert not feedback.hint("closer")
    assert isinstance(feedback.state, PassState)
    clock.advance(0.31)
    assert feedback.hint("closer")
    assert feedback.state == HintState.named("closer", "vi")
    assert feedback.hint("Giữ yên", "Hold still")
    assert feedback.state == HintState("Giữ yên", "Hold still")
    clock.advance(1.2)
    feedback.pump()
    assert feedback.state == IdleState()


def test_fault_blinks_red_at_rest_and_survives_results(
    feedback: Feedback, factory: MockFactory, clock: Clock
) -> None:
    start(factory, RED)
    feedback.fault("camera")
    assert feedback.state == FaultState.named("camera", "vi")
    time.sleep(0.1)
    feedback.fault("camera")  # the daemon repeating itself must not restart the blink
    time.sleep(0.4)
    assert_timeline(factory.pin(RED), [(0, 1), (0.4, 0)])
    feedback.passed("An")
    assert isinstance(feedback.state, PassState)
    clock.advance(0.31)
    feedback.pump()
    assert feedback.state == FaultState.named("camera", "vi")
    assert feedback.signals.settle()
    assert factory.pin(RED).state, "the slow blink starts again"
    feedback.clear_fault()
    assert feedback.state == IdleState()
    time.sleep(0.05)
    assert not factory.pin(RED).state


def test_fault_during_a_result_waits_for_it(feedback: Feedback, factory: MockFactory, clock: Clock) -> None:
    feedback.passed("An")
    feedback.fault("Mất mạng", "Kiểm tra cáp mạng")
    assert isinstance(feedback.state, PassState)
    assert feedback.signals.settle()
    assert factory.pin(GREEN).state and not factory.pin(RED).state
    clock.advance(0.31)
    feedback.pump()
    assert feedback.state == FaultState("Mất mạng", "Kiểm tra cáp mạng")


def test_english_and_no_screen(factory: MockFactory, clock: Clock) -> None:
    config = FeedbackConfig(**FAST, screen="none")
    signals = Signals(config, pin_factory=factory)
    with Feedback(config, lang="en", signals=signals, clock=clock) as fb:
        assert fb.screen is None
        fb.failed(Reason.OLD_VENUE_QR)
        assert fb.state == FailState(message(Reason.OLD_VENUE_QR, "en"))
        fb.fault("spool")
        assert fb.pump()
    fb.close()


def test_feedback_owns_and_closes_everything(factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, screen="window")
    fb = open_feedback(config, signals=Signals(config, pin_factory=factory))
    assert pygame.display.get_init()
    fb.close()
    fb.close()
    assert not pygame.display.get_init()
    assert factory.pin(GREEN).function == "input"


def test_a_screen_that_cannot_open_leaves_the_feedback_headless(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "nosuchdriver")
    config = FeedbackConfig(**FAST, screen="window")
    with open_feedback(config, signals=Signals(config, pin_factory=factory)) as feedback:
        assert "nosuchdriver" in (feedback.screen_problem or "")
        assert feedback.pump()
        assert factory.pin(GREEN).function == "output"
    assert factory.pin(GREEN).function == "input"


# --- inspectors and people without a QR code -------------------------------------------------


def test_inspection_shows_for_a_minute_with_a_pass_beep_and_never_the_relay(
    feedback: Feedback, factory: MockFactory, clock: Clock
) -> None:
    start(factory, GREEN, BUZZER, RELAY)
    figures = example_figures()
    assert timed(lambda: feedback.inspection(figures)) < NON_BLOCKING
    assert feedback.state == InspectionState(figures)
    time.sleep(0.45)
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])
    assert_timeline(factory.pin(BUZZER), [(0, 1), (0.05, 0)])
    assert never_high(factory.pin(RELAY))
    assert not feedback.hint("closer"), "an inspector is reading"
    clock.advance(INSPECTION_SCREEN_S - 0.01)
    feedback.pump()
    assert feedback.state == InspectionState(figures)
    clock.advance(0.02)
    feedback.pump()
    assert feedback.state == IdleState()


def test_a_scan_result_replaces_the_inspection_screen(feedback: Feedback, clock: Clock) -> None:
    feedback.inspection(example_figures())
    clock.advance(5)
    feedback.passed("NGUYEN V** A")
    assert feedback.state == PassState("NGUYEN V** A", "in", NOON)
    clock.advance(0.31)
    feedback.pump()
    assert feedback.state == IdleState(), "the pass's own hold time, not the inspection's"


@pytest.mark.parametrize(("status", "lamp", "beeps"), [(None, GREEN, 1), ("quarantine", RED, 3)])
def test_street_check_signals_its_verdict_without_the_relay(
    factory: MockFactory, clock: Clock, status: str | None, lamp: int, beeps: int
) -> None:
    config = FeedbackConfig(**FAST, screen="offscreen", street_hold_s=0.5)
    finding = example_finding(status)
    with open_feedback(config, signals=Signals(config, pin_factory=factory), clock=clock) as fb:
        start(factory, GREEN, RED, BUZZER, RELAY)
        fb.street(finding)
        assert fb.state == StreetState(finding)
        time.sleep(0.45)
        clock.advance(0.49)
        fb.pump()
        assert fb.state == StreetState(finding), "street_hold_s, not result_hold_s"
        clock.advance(0.02)
        fb.pump()
        assert fb.state == IdleState()
    assert_timeline(factory.pin(lamp), [(0, 1), (0.3, 0)])
    expected = [(0.1 * i + dt, level) for i in range(beeps) for dt, level in ((0, 1), (0.05, 0))]
    assert_timeline(factory.pin(BUZZER), expected)
    assert never_high(factory.pin(RELAY))


def test_no_qr_recorded_confirms_briefly_with_one_beep(
    feedback: Feedback, factory: MockFactory, clock: Clock
) -> None:
    start(factory, GREEN, RED, BUZZER, RELAY)
    feedback.no_qr_recorded()
    assert feedback.state == NoQrState()
    time.sleep(0.2)
    assert_timeline(factory.pin(BUZZER), [(0, 1), (0.05, 0)])
    assert all(timeline(factory.pin(p)) == [] for p in (GREEN, RED, RELAY))
    clock.advance(NO_QR_SCREEN_S)
    feedback.pump()
    assert feedback.state == IdleState()


def test_button_counts_one_press_per_push(factory: MockFactory) -> None:
    with NoQrButton(BUTTON, pin_factory=factory) as button:
        pin = factory.pin(BUTTON)
        assert pin.pull == "up" and pin.state, "idles high on its pull-up"
        pin.drive_low()
        pin.drive_high()
        assert button.take() == 1
        assert button.take() == 0, "taking resets the count"
        for _ in range(3):
            pin.drive_low()
            pin.drive_high()
        assert button.take() == 3
    NoQrButton(BUTTON, pin_factory=factory).close()  # the pin was released


def test_button_presses_from_other_threads_are_all_counted(factory: MockFactory) -> None:
    with NoQrButton(BUTTON, pin_factory=factory) as button:
        presses = [threading.Thread(target=button._pressed) for _ in range(200)]  # as gpiozero would
        taken = 0
        for i, thread in enumerate(presses):
            thread.start()
            taken += button.take() if i % 10 == 0 else 0
        for thread in presses:
            thread.join()
        assert taken + button.take() == 200


def test_no_qr_presses_from_the_button_and_the_window_key(factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, screen="window", no_qr_pin=BUTTON)
    with open_feedback(config, signals=Signals(config, pin_factory=factory)) as fb:
        assert fb.take_no_qr_presses() == 0
        factory.pin(BUTTON).drive_low()
        factory.pin(BUTTON).drive_high()
        key = pygame.event.Event(pygame.KEYDOWN, key=pygame.K_n, mod=0, unicode="n", scancode=17)
        pygame.event.post(key)
        assert fb.take_no_qr_presses() == 1, "the key counts once the screen has pumped"
        assert fb.pump()
        assert fb.take_no_qr_presses() == 1
        assert fb.take_no_qr_presses() == 0
    assert factory.pin(BUTTON).function == "input"


def test_no_button_configured_counts_nothing(feedback: Feedback) -> None:
    assert feedback.button is None and feedback.take_no_qr_presses() == 0


def test_button_on_an_output_pin_is_refused() -> None:
    with pytest.raises(ValueError, match="share a pin"):
        FeedbackConfig(no_qr_pin=17)


# --- sound ----------------------------------------------------------------------------------


def dominant_hz(sound: pygame.mixer.Sound, rate: int) -> float:
    """The strongest frequency in a tune's first 100 ms."""
    samples = pygame.sndarray.array(sound).astype(float)
    mono = samples if samples.ndim == 1 else samples[:, 0]
    head = mono[: rate // 10]
    spectrum = np.abs(np.fft.rfft(head))
    return float(np.fft.rfftfreq(len(head), 1 / rate)[spectrum.argmax()])


def test_tunes_have_their_length_and_pitch() -> None:
    with Sound() as sound:
        assert sound.available
        rate = pygame.mixer.get_init()[0]
        for name, notes in TUNES.items():
            tune = sound.tune(name)
            assert tune is not None
            assert tune.get_length() == pytest.approx(sum(s for _, s in notes), abs=0.002)
            assert dominant_hz(tune, rate) == pytest.approx(notes[0][0], abs=15)
        assert sound.play("fail")
        assert pygame.mixer.get_busy()
    assert not pygame.mixer.get_init()


def test_no_audio_device_is_a_warning_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SDL_AUDIODRIVER", "nosuchdriver")
    with Sound() as sound:
        assert not sound.available
        assert not sound.play("pass")
    assert "no audio device" in caplog.text


def test_sound_disabled_plays_nothing() -> None:
    with Sound(enabled=False) as sound:
        assert not sound.play("pass")
        assert not pygame.mixer.get_init()


def test_feedback_plays_tunes_when_sound_is_on(factory: MockFactory, clock: Clock) -> None:
    config = FeedbackConfig(**FAST, screen="none", sound=True)
    with open_feedback(config, signals=Signals(config, pin_factory=factory), clock=clock) as fb:
        assert fb.sound.available
        fb.passed("An")
        assert pygame.mixer.get_busy()


# --- docs/wiring.md follows the config ------------------------------------------------------

# BCM number -> physical pin on the 40-pin header, for the pins the kiosk uses by default.
PHYSICAL = {17: 11, 27: 13, 22: 15, 23: 16, 24: 18, 6: 31}


def test_wiring_doc_matches_the_config_defaults() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "wiring.md").read_text()
    rows = {line.split("|")[2].strip(" `"): line for line in text.splitlines() if line.startswith("| ")}
    fields = FeedbackConfig.model_fields
    for key in ("green_pin", "red_pin", "buzzer_pin", "relay_pin", "blue_pin", "no_qr_pin"):
        pin = fields[key].default if fields[key].default is not None else (fields[key].examples or [])[0]
        row = rows[key]
        assert f"| GPIO{pin} | {PHYSICAL[pin]} |" in row, f"{key}: {row}"
