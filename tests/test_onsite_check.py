"""`kiosk selftest --interactive`: each part shown on gpiozero's MockFactory, each answered by a
scripted person, the button really pressed, a card really read, and the results saved."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.cli import main
from kiosk.config import Settings
from kiosk.onsite_check import RESULT_FILE, OnSite, run_onsite_check, save_results
from tests.test_daemon import NATIONAL, frames_for, make_settings

GREEN, RED, BUZZER, RELAY, BUTTON = 17, 27, 22, 23, 24


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()


def site_settings(tmp_path: Path) -> Settings:
    pins = {"buzzer_pin": BUZZER, "relay_pin": RELAY, "no_qr_pin": BUTTON, "relay_pulse_s": 0.2}
    return make_settings(tmp_path, feedback={"screen": "offscreen", **pins})


class Person:
    """Answers each question from a script, noting which LEDs were lit when it was asked."""

    def __init__(self, factory: MockFactory, answers: list[str], *, presses: bool = True) -> None:
        self.factory, self.answers, self.presses = factory, answers, presses
        self.asked: list[tuple[str, bool, bool]] = []
        self.said: list[str] = []

    def ask(self, question: str) -> str:
        lit = (self.factory.pin(GREEN).state, self.factory.pin(RED).state)
        self.asked.append((question, bool(lit[0]), bool(lit[1])))
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)

    def say(self, text: str) -> None:
        self.said.append(text)
        if self.presses and text.startswith("Press the no-QR button"):
            threading.Timer(0.1, self.factory.pin(BUTTON).drive_low).start()


def onsite(person: Person, factory: MockFactory, **options: Any) -> OnSite:
    return OnSite(ask=person.ask, say=person.say, pin_factory=factory, frames=frames_for(NATIONAL), **options)


def test_every_step_confirmed_passes_and_is_saved(tmp_path: Path, factory: MockFactory) -> None:
    settings = site_settings(tmp_path)
    person = Person(factory, ["y", "yes", "y", "y", "y", "y"])
    results = run_onsite_check(settings, onsite(person, factory))
    assert [(r.name, r.status) for r in results] == [
        ("green led", "pass"),
        ("red led", "pass"),
        ("beep", "pass"),
        ("relay", "pass"),
        ("button", "pass"),
        ("screen", "pass"),
        ("card", "pass"),
    ]
    # Each LED was lit alone while the person was asked about it.
    assert person.asked[0][1:] == (True, False) and person.asked[1][1:] == (False, True)
    assert "national" in person.asked[-1][0], "the person is told what the camera read"
    assert {s.state for s in factory.pin(BUZZER).states} >= {True}
    assert {s.state for s in factory.pin(RELAY).states} >= {True}
    saved = json.loads(save_results(settings, results).read_text())
    assert saved["ok"] is True and saved["device"] == settings.device.id
    assert [step["name"] for step in saved["steps"]][-1] == "card"


def test_a_no_an_unpressed_button_and_silence_are_failures(tmp_path: Path, factory: MockFactory) -> None:
    settings = site_settings(tmp_path)
    person = Person(factory, ["y", "n", "maybe", "what", "?"], presses=False)
    results = {r.name: r for r in run_onsite_check(settings, onsite(person, factory, button_timeout_s=0.3))}
    assert results["green led"].status == "pass"
    assert results["red led"].status == "fail" and "wiring" in results["red led"].advice
    assert results["beep"].detail.endswith("no y/n answer")  # three answers that were neither
    assert results["button"].status == "fail" and "no press within 0.3 s" in results["button"].detail
    assert results["screen"].detail.endswith("no y/n answer")  # stdin ended


def test_cli_interactive_reads_stdin_prints_and_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    make_settings(state)  # the keys
    frames = tmp_path / "frames"
    frames.mkdir()
    for number, frame in enumerate(frames_for(NATIONAL)):
        cv2.imwrite(str(frames / f"{number:03d}.png"), frame)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        '[feedback]\nscreen = "offscreen"\nno_qr_pin = 24\n'
        f'[camera]\nsource = "{frames}"\nreplay_realtime = false\n[paths]\nstate_dir = "{state}"\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("y\ny\ny\ny\ny\n"))
    code = main(["selftest", "--interactive", "--wait", "2", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1, out  # nobody pressed the button
    assert "Is the green LED lit? [y/n]" in out and "button" in out and "FAIL" in out
    saved = json.loads((state / RESULT_FILE).read_text())
    assert saved["ok"] is False
    assert {step["name"]: step["status"] for step in saved["steps"]}["card"] == "pass"
