"""The technician's on-site check (`kiosk selftest --interactive`): each part shown, each confirmed.

The automatic self-test cannot see an LED light or hear a buzzer on real pins.
Here each LED is lit in turn, the buzzer beeps, the relay pulses, the screen
shows a test pattern: the person at the kiosk answers y or n for each. The
no-QR button must really be pressed (within a timeout), and a card shown to the
camera must really be read. The result is printed and saved as JSON in the
state folder (`onsite-check.json`), for the installation record.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kiosk import __version__
from kiosk.checkresult import CheckResult
from kiosk.config import Settings
from kiosk.errors import CameraEnded, KioskError

RESULT_FILE = "onsite-check.json"
BUTTON_TIMEOUT_S = 20.0
CARD_TIMEOUT_S = 30.0
LIT_S = 0.3  # a lit LED stays on while the question is asked; this is only the pause before it
ASKS = 3  # a person who types something else is asked again, this many times in all

Ask = Callable[[str], str]


@dataclass
class OnSite:
    """What the check reaches the kiosk and the person through; tests swap in their own."""

    ask: Ask = input
    say: Callable[[str], None] = print
    pin_factory: Any = None  # gpiozero factory; None = the one feedback.gpio names
    frames: Sequence[np.ndarray] | None = None  # replay camera frames instead of the configured source
    button_timeout_s: float = BUTTON_TIMEOUT_S
    card_timeout_s: float = CARD_TIMEOUT_S
    results: list[CheckResult] = field(default_factory=list)


def confirm(onsite: OnSite, question: str) -> bool | None:
    """The person's y or n; None when they gave neither (or stdin ended)."""
    for _ in range(ASKS):
        try:
            answer = onsite.ask(f"{question} [y/n] ").strip().lower()
        except EOFError:
            return None
        if answer in ("y", "yes", "c", "co", "có"):
            return True
        if answer in ("n", "no", "k", "khong", "không"):
            return False
    return None


def confirmed(onsite: OnSite, name: str, question: str, what: str) -> CheckResult:
    """A step's result from the person's answer."""
    answer = confirm(onsite, question)
    if answer is None:
        return CheckResult(name, "fail", f"{what}: no y/n answer")
    if not answer:
        return CheckResult(name, "fail", f"{what}: not seen", "check the wiring against docs/wiring.md")
    return CheckResult(name, "pass", f"{what}: confirmed")


# --- outputs ---------------------------------------------------------------------------------


def check_leds(settings: Settings, onsite: OnSite, factory: Any) -> list[CheckResult]:
    """Light each LED (or each leg of the RGB LED) alone, and ask whether it is lit."""
    from gpiozero import LED

    config = settings.feedback
    legs = (("green", config.green_pin), ("red", config.red_pin), ("blue", config.blue_pin))
    results = []
    for colour, pin in legs:
        if pin is None:
            continue
        with LED(pin, active_high=config.leds_active_high, pin_factory=factory) as led:
            led.on()
            time.sleep(LIT_S)
            results.append(confirmed(onsite, f"{colour} led", f"Is the {colour} LED lit?", f"GPIO{pin}"))
            led.off()  # dark before the next one: a released pin may keep its level
    return results or [CheckResult("leds", "skip", "no LED pins configured")]


def check_beep(settings: Settings, onsite: OnSite, factory: Any) -> CheckResult:
    """Two beeps on the buzzer; did the person hear them?"""
    config = settings.feedback
    if config.buzzer_pin is None:
        return CheckResult("beep", "skip", "no buzzer_pin configured")
    with _buzzer(config, factory) as beep:
        beep()
        return confirmed(
            onsite, "beep", "Did the buzzer beep twice?", f"{config.buzzer_kind} GPIO{config.buzzer_pin}"
        )


@contextlib.contextmanager
def _buzzer(config: Any, factory: Any) -> Iterator[Callable[[], None]]:
    from gpiozero import Buzzer, TonalBuzzer

    if config.buzzer_kind == "passive":
        with TonalBuzzer(config.buzzer_pin, pin_factory=factory) as tonal:
            tonal.source_delay = 0.2
            yield lambda: setattr(tonal, "source", [1.0, None, 1.0, None])
            tonal.source = None
    else:
        with Buzzer(config.buzzer_pin, pin_factory=factory) as buzzer:
            yield lambda: buzzer.beep(on_time=0.2, off_time=0.2, n=2, background=True)


def check_relay(settings: Settings, onsite: OnSite, factory: Any) -> CheckResult:
    """One relay pulse as on a pass; did the door or turnstile open (or the relay click)?"""
    from gpiozero import DigitalOutputDevice

    config = settings.feedback
    if config.relay_pin is None:
        return CheckResult("relay", "skip", "no relay_pin configured")
    with DigitalOutputDevice(
        config.relay_pin, active_high=config.relay_active_high, pin_factory=factory
    ) as relay:
        relay.blink(on_time=config.relay_pulse_s, off_time=0, n=1, background=True)
        question = f"Did the relay click (or the door open) for {config.relay_pulse_s:g} s?"
        return confirmed(onsite, "relay", question, f"GPIO{config.relay_pin}")


# --- inputs ----------------------------------------------------------------------------------


def check_button(settings: Settings, onsite: OnSite, factory: Any) -> CheckResult:
    """Wait for a real press of the no-QR button."""
    from gpiozero import Button

    config = settings.feedback
    if config.no_qr_pin is None:
        return CheckResult("button", "skip", "no no_qr_pin configured")
    with Button(config.no_qr_pin, pull_up=True, bounce_time=0.05, pin_factory=factory) as button:
        onsite.say(f"Press the no-QR button now (within {onsite.button_timeout_s:g} s)...")
        if button.wait_for_press(timeout=onsite.button_timeout_s):
            return CheckResult("button", "pass", f"GPIO{config.no_qr_pin}: press seen")
    advice = "check the button's wiring (GPIO to ground) and feedback.no_qr_pin"
    return CheckResult(
        "button", "fail", f"GPIO{config.no_qr_pin}: no press within {onsite.button_timeout_s:g} s", advice
    )


def check_test_pattern(settings: Settings, onsite: OnSite, factory: Any) -> CheckResult:
    """Colour bars on the screen; does the person see all six, with the white border?"""
    from kiosk.screen.display import Screen
    from kiosk.selftest import show_test_pattern

    if settings.feedback.screen == "none":
        return CheckResult("screen", "skip", 'feedback.screen = "none"')
    with Screen(settings.feedback, lang=settings.destination.language) as display:
        show_test_pattern(display.surface, flip=display.mode != "offscreen")
        question = "Does the screen show white, red, green, blue, grey and black bars with a white border?"
        return confirmed(onsite, "screen", question, f"{display.mode} test pattern")


def check_card(settings: Settings, onsite: OnSite, factory: Any) -> CheckResult:
    """Read a card shown to the camera; the person confirms it is the one they hold."""
    from kiosk.camera import open_camera
    from kiosk.cards import parse_card
    from kiosk.decoder import open_decoder

    decoder = open_decoder(settings.decoder)
    onsite.say(f"Hold a QR card in front of the camera (within {onsite.card_timeout_s:g} s)...")
    with open_camera(settings.camera, frames=onsite.frames) as camera:
        raw = _first_code(camera, decoder, onsite.card_timeout_s)
    if raw is None:
        advice = "check the camera's aim and focus (kiosk selftest shows its sharpness)"
        return CheckResult("card", "fail", f"no code read within {onsite.card_timeout_s:g} s", advice)
    card = parse_card(raw, trust=None, now=datetime.now(UTC))
    kind = getattr(card, "format", None) or f"not a card ({getattr(card, 'reason', '?')})"
    return confirmed(
        onsite, "card", f"Read a code of {len(raw)} bytes: {kind}. Was it the card you held up?", kind
    )


def _first_code(camera: Any, decoder: Any, timeout_s: float) -> bytes | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            frame = camera.read()
        except CameraEnded:
            return None
        if frame is not None and (symbols := decoder.decode(frame.pixels).symbols):
            return bytes(symbols[0].raw)
    return None


# --- the whole check ---------------------------------------------------------------------------

Step = Callable[[Settings, OnSite, Any], "CheckResult | list[CheckResult]"]
STEPS: tuple[Step, ...] = (check_leds, check_beep, check_relay, check_button, check_test_pattern, check_card)


def run_onsite_check(settings: Settings, onsite: OnSite | None = None) -> list[CheckResult]:
    """Every step in turn; a step that raises becomes its failure and the next one still runs."""
    from kiosk.signals import make_pin_factory

    onsite = onsite or OnSite()
    factory = onsite.pin_factory if onsite.pin_factory is not None else make_pin_factory(settings.feedback)
    results: list[CheckResult] = []
    for step in STEPS:
        name = step.__name__.removeprefix("check_").replace("_", " ")
        try:
            outcome = step(settings, onsite, factory)
        except KioskError as e:
            outcome = CheckResult(name, "fail", str(e))
        except Exception as e:  # the technician needs the whole list, not the first fault
            outcome = CheckResult(
                name, "fail", f"{type(e).__name__}: {e}", "report this with the output of -v"
            )
        step_results = outcome if isinstance(outcome, list) else [outcome]
        for result in step_results:
            onsite.say(f"  {result.name}: {result.status.upper()} {result.detail}")
        results += step_results
    return results


def save_results(settings: Settings, results: Sequence[CheckResult], *, now: datetime | None = None) -> Path:
    """Write the results to the state folder for the installation record; the file's path."""
    path = settings.paths.state_dir / RESULT_FILE
    record = {
        "device": settings.device.id,
        "destination": settings.destination.id,
        "software": __version__,
        "checked_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "ok": all(r.status != "fail" for r in results),
        "steps": [
            {"name": r.name, "status": r.status, "detail": r.detail, "advice": r.advice} for r in results
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path
