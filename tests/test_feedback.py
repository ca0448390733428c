"""GPIO feedback on gpiozero's MockFactory: pin states and their timing, non-blocking calls."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from kiosk.config import FeedbackConfig
from kiosk.errors import FeedbackError
from kiosk.feedback import Signals, make_pin_factory

# Timing tolerance: gpiozero's threads on a shared, busy 2-core machine.
TOL = 0.04
FAST = {"result_hold_s": 0.3, "beep_s": 0.05, "relay_pulse_s": 0.2, "relay_pin": 23}
GREEN, RED, BUZZER, RELAY, BLUE = 17, 27, 22, 23, 24


def timeline(pin: MockPin) -> list[tuple[float, float]]:
    """The pin's changes since clear_states(), as (seconds since then, level)."""
    t, out = 0.0, []
    for change in pin.states[1:]:
        t += change.timestamp
        out.append((t, float(change.state)))
    return out


def assert_timeline(pin: MockPin, expected: list[tuple[float, float]]) -> None:
    """Same levels in the same order, each change within TOL of its expected time."""
    actual = timeline(pin)
    assert [level for _, level in actual] == pytest.approx([level for _, level in expected]), actual
    for (t, _), (want, _) in zip(actual, expected, strict=True):
        assert abs(t - want) <= TOL, f"change at {t:.3f}s, expected {want:.3f}s: {actual}"


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


def timed(call: object) -> float:
    """Seconds a call took."""
    began = time.monotonic()
    call()  # type: ignore[operator]
    return time.monotonic() - began


def test_pass_is_green_one_beep_and_relay_pulse(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED, BUZZER, RELAY)
        assert timed(signals.passed) < 0.03
        time.sleep(0.45)
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])
    assert_timeline(factory.pin(BUZZER), [(0, 1), (0.05, 0)])
    assert_timeline(factory.pin(RELAY), [(0, 1), (0.2, 0)])
    assert timeline(factory.pin(RED)) == []


def test_fail_is_red_and_three_beeps_and_no_relay(factory: MockFactory) -> None:
    with Signals(FeedbackConfig(**FAST), pin_factory=factory) as signals:
        start(factory, GREEN, RED, BUZZER, RELAY)
        assert timed(signals.failed) < 0.03
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
        assert timed(signals.passed) < 0.03
        time.sleep(0.4)
    # The fail's red stops now and the pass's green starts now. The buzzer was in the
    # fail's first beep (due to end at 0.05 s): it stays on for the pass's whole beep.
    assert_timeline(factory.pin(RED), [(0, 0)])
    assert_timeline(factory.pin(GREEN), [(0, 1), (0.3, 0)])
    assert_timeline(factory.pin(BUZZER), [(0.1, 0)])
    assert_timeline(factory.pin(RELAY), [(0, 1), (0.2, 0)])


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
        assert timed(signals.hint) < 0.03
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
        assert timed(signals.idle) < 0.03
        time.sleep(2.2)
        assert_timeline(factory.pin(RED), [(0, 1), (0.4, 0), (2.0, 1)])
        start(factory, RED)
        signals.fault(False)
        signals.idle()
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
        time.sleep(0.02)
        assert buzzer.frequency == pytest.approx(880, rel=0.01)
        time.sleep(0.1)
        assert_timeline(buzzer, [(0, 0.5), (0.05, 0)])
        start(pwm_factory, BUZZER)
        signals.failed()
        time.sleep(0.02)
        assert buzzer.frequency == pytest.approx(440 * 2**-0.5, rel=0.01)
        time.sleep(0.35)
    beeps = [(0.1 * i + dt, level) for i in range(3) for dt, level in ((0, 0.5), (0.05, 0))]
    assert_timeline(buzzer, beeps)


def test_rgb_led_shows_green_red_and_amber(pwm_factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, leds="rgb", blue_pin=BLUE)
    with Signals(config, pin_factory=pwm_factory) as signals:
        red, green, blue = (pwm_factory.pin(p) for p in (RED, GREEN, BLUE))
        signals.passed()
        time.sleep(0.05)
        assert (red.state, green.state, blue.state) == (0, 1, 0)
        start(pwm_factory, RED, GREEN)
        signals.hint()
        time.sleep(0.05)
        assert (red.state, green.state, blue.state) == pytest.approx((1, 0.45, 0))
        time.sleep(0.25)
        assert (red.state, green.state) == (0, 0)
        assert_timeline(red, [(0, 1), (0.25, 0)])
        signals.failed()
        time.sleep(0.05)
        assert (red.state, green.state, blue.state) == (1, 0, 0)


def test_common_anode_rgb_led_is_inverted(pwm_factory: MockFactory) -> None:
    config = FeedbackConfig(**FAST, leds="rgb", blue_pin=BLUE, leds_active_high=False)
    with Signals(config, pin_factory=pwm_factory) as signals:
        signals.passed()
        time.sleep(0.05)
        assert [pwm_factory.pin(p).state for p in (RED, GREEN, BLUE)] == [1, 0, 1]


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
    assert_timeline(relay, [(0, 0), (0, 1)])


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
