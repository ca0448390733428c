"""A kiosk without its display: it scans and signals with LEDs, buzzer and relay, puts the screen
fault on the LEDs and the state topic, retries the display with backoff, and never exits for it.

The display is pygame's own (dummy driver) under tests.support.fake_display, which fails as
pygame does: set_mode raising pygame.error with no monitor, flip raising once it is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import pygame
import pytest

from kiosk import keys
from kiosk.app import assemble, health, open_feedback
from kiosk.config import FeedbackConfig
from kiosk.screen.display import Screen
from kiosk.screen.keeper import DISPLAY_BACKOFF_S, KeptScreen
from kiosk.screen.states import FailState, PassState
from tests.support import pins
from tests.support.central import write_kiosk_keys
from tests.support.fake_display import FlakyDisplay
from tests.test_daemon import NATIONAL, frames_for, make_settings, spooled_events


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_release_pins = pins.release_pins  # an autouse fixture, found by this name


def kept(clock: Clock) -> KeptScreen:
    return KeptScreen(partial(Screen, FeedbackConfig(screen="window")), clock=clock)


def test_a_display_that_fails_to_open_is_retried_and_then_shows_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    display, clock = FlakyDisplay(monkeypatch, connected=False), Clock()
    with kept(clock) as screen:
        assert screen.display is None and "No available video device" in (screen.problem or "")
        passed = PassState("NGUYEN VAN A", "in", datetime(2024, 5, 1, 12))
        screen.show(passed)
        assert screen.pump() is True  # headless: the loop goes on
        clock.now = DISPLAY_BACKOFF_S[0] - 0.1
        screen.pump()
        assert display.opens == 1, "retried before its pause was over"
        display.connected = True
        clock.now = DISPLAY_BACKOFF_S[0]
        assert screen.pump() is True
        assert screen.problem is None and screen.display is not None
        assert screen.display.state == passed  # what was shown meanwhile is on the display at once
        assert pygame.display.get_surface() is screen.display.surface


def test_retries_back_off_to_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    display, clock = FlakyDisplay(monkeypatch, connected=False), Clock()
    tries: list[float] = []
    with kept(clock) as screen:
        for second in range(0, 300):
            clock.now = float(second)
            before = display.opens
            screen.pump()
            if display.opens > before:
                tries.append(clock.now)
    assert tries == [2.0, 7.0, 22.0, 52.0, 112.0, 172.0, 232.0, 292.0]
    assert display.opens == 1 + len(tries)


def test_a_display_lost_mid_run_is_closed_and_reopened(monkeypatch: pytest.MonkeyPatch) -> None:
    display, clock = FlakyDisplay(monkeypatch), Clock()
    with kept(clock) as screen:
        assert screen.pump() and screen.problem is None
        display.connected = False  # the monitor is unplugged
        screen.show(FailState("Thử lại"))
        assert screen.pump() is True
        assert screen.display is None and "the display was lost" in (screen.problem or "")
        assert not pygame.display.get_init(), "what was left of the display was not closed"
        display.connected = True
        clock.now = DISPLAY_BACKOFF_S[0]
        screen.pump()
        assert screen.display is not None and screen.display.state == FailState("Thử lại")


def test_a_headless_kiosk_scans_signals_and_reports_the_screen_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FlakyDisplay(monkeypatch, connected=False)
    settings = make_settings(tmp_path, feedback={"screen": "window"})
    feedback = open_feedback(settings.feedback)  # no FeedbackError: the display is retried later
    factory = feedback.signals.pin_factory
    with assemble(settings, frames=frames_for(NATIONAL), feedback=feedback) as kiosk:
        assert kiosk.run() == 0
        state = health(spool=kiosk.parts.spool, state=kiosk.state)
        assert feedback.signals.settle()
        time.sleep(0.1)  # gpiozero's own blink thread lights the LED
        green = {s.state for s in factory.pin(settings.feedback.green_pin).states}
        red = {s.state for s in factory.pin(settings.feedback.red_pin).states}
    assert [(e.verdict, e.reason) for e in spooled_events(settings)] == [("pass", "ok")]
    assert green == {False, True}, "no green for the pass"
    assert True in red, "no slow red blink for the screen fault"
    assert kiosk.state.fault == "screen" and "No available video device" in (kiosk.state.screen_problem or "")
    assert "fault: screen" in state.alarms


def test_kiosk_run_without_a_usable_display_stays_up(tmp_path: Path) -> None:
    """The unit's kmsdrm is not in this pygame's SDL: the screen fails for real, the kiosk does not."""
    state = tmp_path / "state"
    keys.generate_device_key(state / "device.key")
    write_kiosk_keys(state)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[feedback]\nscreen = "fullscreen"\n[uplink]\nenabled = false\n[paths]\nstate_dir = "{state}"\n'
    )
    env = {**os.environ, "SDL_VIDEODRIVER": "kmsdrm", "SDL_AUDIODRIVER": "dummy"}
    env.pop("DISPLAY", None)
    log_file = tmp_path / "kiosk.log"
    with log_file.open("w") as log_out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "run", "--config", str(config)], env=env, stderr=log_out
        )
    try:
        deadline = time.monotonic() + 60
        while "screen out" not in log_file.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # past start-up: the loop is running headless
        assert process.poll() is None, log_file.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, log_file.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "no kmsdrm video driver" in log_file.read_text()
