"""The scan loop in-process: real decoder, policy, spool, feedback (MockFactory, dummy screen)."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from kiosk import cardmaker, keys, scenes, sealing
from kiosk.app import assemble, open_feedback
from kiosk.camera import ReplaySource
from kiosk.cards import parse_card
from kiosk.config import Settings, parse_config
from kiosk.daemon import Kiosk, Parts
from kiosk.decoder import Symbol
from kiosk.errors import CameraError, SpoolError
from kiosk.events import verify_event
from kiosk.feedback import Feedback, Signals
from kiosk.reasons import Reason
from kiosk.screen.states import FaultState, PassState
from tests.support import pins
from tests.support.central import SEALING_KEY, write_kiosk_keys

NATIONAL = cardmaker.national_payload()
CCCD = cardmaker.cccd_payload()
POSTER = "https://checkin.example.vn/venue/12345"
GARBAGE = "hello there"


_release_pins = pins.release_pins  # an autouse fixture, found by this name


def make_settings(state: Path, **sections: dict[str, Any]) -> Settings:
    """A provisioned laptop kiosk in `state`: keys made, uplink off, screen off-screen, fast replay."""
    if not (state / "device.key").exists():
        keys.generate_device_key(state / "device.key")
        write_kiosk_keys(state)
    data: dict[str, dict[str, Any]] = {
        "paths": {"state_dir": str(state)},
        "uplink": {"enabled": False},
        "feedback": {"screen": "offscreen", "result_hold_s": 0.2},
        "camera": {"replay_realtime": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data)


def frames_for(*payloads: str) -> list[np.ndarray]:
    """Each payload held up for a few frames, with empty frames between (as the demo shows them)."""
    return scenes.demo_frames(list(payloads))


def run_loop(settings: Settings, frames: list[np.ndarray], **options: Any) -> Kiosk:
    """Assemble the kiosk, run it over the frames to the end of the replay, and return it."""
    with assemble(settings, frames=frames, **options) as kiosk:
        kiosk.run()
    return kiosk


def spooled_events(settings: Settings) -> list[Any]:
    """Every event in the spool, verified with the device's public key, in seq order."""
    import sqlite3

    public = keys.load_private_key(settings.paths.key_file).public_key()
    with sqlite3.connect(settings.paths.spool_file) as db:
        tokens = [row[0] for row in db.execute("SELECT token FROM events ORDER BY seq")]
    return [verify_event(token, public) for token in tokens]


def test_each_card_gives_its_decision_and_a_signed_event(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    kiosk = run_loop(settings, frames_for(NATIONAL, CCCD, POSTER, GARBAGE))
    events = spooled_events(settings)
    assert [(e.verdict, e.reason, e.format) for e in events] == [
        ("pass", "ok", "national"),
        ("pass", "ok", "cccd"),
        ("fail", "old_venue_qr", "poster"),
        ("fail", "unrecognised", "unknown"),
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    # Every identity of each card travels sealed; only the authority's key opens them.
    national, cccd = (parse_card(p.encode(), trust=None, now=datetime.now(UTC)) for p in (NATIONAL, CCCD))
    opened = [tuple(sealing.open_sealed(SEALING_KEY, e.device, i) for i in e.identities) for e in events]
    assert opened == [national.identities, cccd.identities, (), ()]
    assert all(i.startswith("hpke:") for e in events for i in e.identities)
    assert kiosk.counters.decisions == 4
    assert kiosk.counters.repeats > 0, "a code held up for several frames is one scan"


class RecordingFeedback(Feedback):
    """The real facade, noting how many events the spool held when each result was signalled."""

    spool_depth_seen: list[int]
    spool: Any = None

    def passed(self, name: str, direction: Any = "in", *, at: datetime | None = None) -> None:
        self.spool_depth_seen.append(self.spool.depth())
        super().passed(name, direction, at=at)


def test_the_decision_is_durable_before_the_feedback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    feedback = open_feedback(settings.feedback, kind=RecordingFeedback)
    feedback.spool_depth_seen = []
    with assemble(settings, frames=frames_for(NATIONAL, CCCD), feedback=feedback) as kiosk:
        feedback.spool = kiosk.parts.spool
        kiosk.run()
    assert feedback.spool_depth_seen == [1, 2]


def test_auto_direction_toggles_per_person(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, destination={"direction": "auto"}, policy={"repeat_window_s": 5})
    clock = iter(datetime(2026, 11, 29, 8, 0, tzinfo=UTC) + timedelta(seconds=2 * i) for i in range(10_000))
    with assemble(settings, frames=frames_for(NATIONAL, CCCD, NATIONAL)) as kiosk:
        kiosk.parts = replace_parts(kiosk.parts, now=lambda: next(clock))
        kiosk.run()
    events = spooled_events(settings)
    assert [(e.format, e.direction) for e in events] == [
        ("national", "in"),
        ("cccd", "in"),
        ("national", "out"),
    ]
    assert kiosk.parts.policy.occupancy == 1


def replace_parts(parts: Parts, **changes: Any) -> Parts:
    """A copy of the frozen Parts with some collaborators swapped."""
    from dataclasses import replace

    return replace(parts, **changes)


class FlakyCamera:
    """Opens fail `failures` times (a loose ribbon cable), then a replay of `frames` starts."""

    def __init__(self, frames: list[np.ndarray], failures: int) -> None:
        self.frames = frames
        self.failures = failures
        self.opens = 0

    def __call__(self) -> ReplaySource:
        self.opens += 1
        if self.opens <= self.failures:
            raise CameraError("camera not found: is the ribbon cable seated? run `kiosk selftest`")
        return ReplaySource.from_frames(self.frames)


def test_a_lost_camera_is_reported_and_reopened(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    camera = FlakyCamera(frames_for(NATIONAL), failures=2)
    shown: list[object] = []
    with assemble(settings) as kiosk:
        kiosk.parts = replace_parts(kiosk.parts, open_camera=camera)
        original_fault = kiosk.parts.feedback.fault
        kiosk.parts.feedback.fault = lambda problem, action="": (
            shown.append(problem),
            original_fault(problem),
        )  # type: ignore[method-assign]
        started = time.monotonic()
        kiosk.run()
    assert camera.opens == 3
    assert shown == ["camera"]
    assert kiosk.counters.camera_restarts == 2
    assert 1.4 <= time.monotonic() - started < 10, "backoff of 0.5 s then 1 s"
    assert [e.reason for e in spooled_events(settings)] == ["ok"]
    assert not isinstance(kiosk.parts.feedback.state, FaultState), "the fault clears when frames flow"


class NotifySocket:
    """A real unix datagram socket standing in for systemd's: a thread notes each message as it lands."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="test-notify", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> list[tuple[float, str]]:
        """Stop listening and return what was received, with arrival times."""
        time.sleep(0.1)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.messages


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    path = tmp_path / "notify.sock"
    sock = NotifySocket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # petted every 0.1 s while healthy
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


class StallingCamera:
    """Delivers `frames` at 30 fps, then stalls: reads block until the stall timeout, then fail."""

    def __init__(self, frames: list[np.ndarray], stall_s: float) -> None:
        self.source = ReplaySource.from_frames(frames, fps=30.0)
        self.stall_s = stall_s
        self.stalled_at: float | None = None

    def __call__(self) -> StallingCamera:
        return self

    def read(self) -> Any:
        try:
            return self.source.read()
        except CameraError:
            self.stalled_at = self.stalled_at or time.monotonic()
            time.sleep(self.stall_s)
            raise CameraError("no frame for 0.3 s: the camera stalled") from None

    @property
    def fps(self) -> float:
        return self.source.fps

    def close(self) -> None:
        self.source.close()


def test_systemd_hears_ready_and_the_watchdog_while_the_loop_turns_through_a_stall(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    settings = make_settings(tmp_path)
    camera = StallingCamera(frames_for(NATIONAL)[:24], stall_s=0.3)
    stop = threading.Event()
    with assemble(settings, stop=stop) as kiosk:
        kiosk.parts = replace_parts(kiosk.parts, open_camera=camera)
        threading.Timer(2.5, stop.set).start()
        kiosk.run()
    messages = notify_socket.close()
    texts = [text for _, text in messages]
    assert texts[0].startswith("READY=1\nSTATUS=")
    pets = [at for at, text in messages if text == "WATCHDOG=1"]
    assert camera.stalled_at is not None
    assert len([at for at in pets if at < camera.stalled_at]) >= 3, "petted while frames arrive"
    # The stalled camera is a fault the loop shows and retries: it is not a reason for systemd to restart.
    assert len([at for at in pets if at > camera.stalled_at + 0.5]) >= 5, "the loop still turns"
    assert kiosk.state.fault == "camera"
    assert texts[-1] == "STOPPING=1"


class AbsentCamera:
    """No camera at all: every open fails, as picamera2 does with no camera on the ribbon."""

    def __init__(self) -> None:
        self.opened_at: list[float] = []

    def __call__(self) -> ReplaySource:
        self.opened_at.append(time.monotonic())
        raise CameraError("Pi camera not found: is the ribbon cable seated? run `kiosk selftest`")


def test_boot_without_a_camera_is_ready_shows_the_fault_and_retries_with_backoff(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    settings = make_settings(tmp_path)
    camera = AbsentCamera()
    stop = threading.Event()
    with assemble(settings, stop=stop) as kiosk:
        kiosk.parts = replace_parts(kiosk.parts, open_camera=camera)
        threading.Timer(3.0, stop.set).start()
        started = time.monotonic()
        kiosk.run()
        shown = kiosk.parts.feedback.state
    messages = notify_socket.close()
    texts = [text for _, text in messages]
    assert texts[0].startswith("READY=1\nSTATUS=") and "fault: camera" in texts[0]
    pets = [at for at, text in messages if text == "WATCHDOG=1"]
    assert len([at for at in pets if at > started + 2.0]) >= 3, "petted all along: no restart loop"
    gaps = [b - a for a, b in zip(camera.opened_at, camera.opened_at[1:], strict=False)]
    assert len(camera.opened_at) == 3 and gaps[1] > gaps[0] >= 0.45, "reopened at 0.5 s, then 1 s later"
    assert isinstance(shown, FaultState) and kiosk.state.fault == "camera"


class HungCamera:
    """Delivers a few frames, then a read never returns (until the test lets it go)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.source = ReplaySource.from_frames(frames, fps=30.0)
        self.release = threading.Event()
        self.hung_at: float | None = None

    def __call__(self) -> HungCamera:
        return self

    def read(self) -> Any:
        try:
            return self.source.read()
        except CameraError:
            self.hung_at = self.hung_at or time.monotonic()
            self.release.wait(10)
            raise CameraError("released") from None

    @property
    def fps(self) -> float:
        return self.source.fps

    def close(self) -> None:
        self.source.close()


def test_the_watchdog_stops_when_the_loop_hangs(tmp_path: Path, notify_socket: NotifySocket) -> None:
    settings = make_settings(tmp_path)
    camera = HungCamera(frames_for(NATIONAL)[:24])
    stop = threading.Event()

    def end() -> None:
        stop.set()
        camera.release.set()

    with assemble(settings, stop=stop) as kiosk:
        kiosk.parts = replace_parts(kiosk.parts, open_camera=camera)
        threading.Timer(2.0, end).start()
        kiosk.run()
    pets = [at for at, text in notify_socket.close() if text == "WATCHDOG=1"]
    assert camera.hung_at is not None
    assert len([at for at in pets if at < camera.hung_at]) >= 3
    # Allow one pet for the turn that was under way when the read hung.
    assert [at for at in pets if camera.hung_at + 0.25 < at < camera.hung_at + 1.0] == []


def test_a_bad_reload_keeps_the_old_trust_list(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    signer = cardmaker.make_dcc_signer(
        "ES256", not_before=now - timedelta(days=1), not_after=now + timedelta(days=1)
    )
    trust = tmp_path / "trust.pem"
    cardmaker.save_signer(signer, tmp_path / "signer.key", trust)
    settings = make_settings(tmp_path, policy={"trust_list": str(trust)})
    with assemble(settings, frames=frames_for(NATIONAL)) as kiosk:
        trust.write_text("not a certificate")
        kiosk.request_reload()
        kiosk.run()
        assert kiosk.parts.trust is not None and len(kiosk.parts.trust) == 1
    assert kiosk.counters.errors == 1


def test_sighup_applies_new_rules_and_keeps_them_on_a_bad_file(tmp_path: Path) -> None:
    from kiosk.config import load_config

    keys.generate_device_key(tmp_path / "device.key")
    write_kiosk_keys(tmp_path)
    config = tmp_path / "kiosk.toml"
    common = (
        f'[paths]\nstate_dir = "{tmp_path}"\n[uplink]\nenabled = false\n[feedback]\nscreen = "offscreen"\n'
    )
    config.write_text(common + '[destination]\nvenue_name = "Chợ cũ"\n')
    with assemble(load_config(config), frames=frames_for(NATIONAL), config_path=config) as kiosk:
        config.write_text(
            common + '[destination]\nvenue_name = "Chợ mới"\n[policy]\naccepted_formats = ["cccd"]\n'
        )
        kiosk.request_reload()
        kiosk.turn()
        assert kiosk.parts.policy.rules.accepted_formats == ["cccd"]
        assert kiosk.parts.idle is not None and kiosk.parts.idle().venue == "Chợ mới"
        config.write_text(common + "[policy]\nrepeat_window_s = -5\n")
        kiosk.request_reload()
        kiosk.run()
    assert kiosk.parts.policy.rules.accepted_formats == ["cccd"], "a bad file changes nothing"
    assert kiosk.counters.errors == 1
    assert [e.reason for e in spooled_events(make_settings(tmp_path))] == ["format_not_accepted"]


def test_a_full_disk_refuses_people_but_never_stops_the_loop(tmp_path: Path) -> None:

    settings = make_settings(tmp_path)
    refused: list[object] = []
    with assemble(settings, frames=frames_for(NATIONAL, CCCD)) as kiosk:
        attempts = _fail_times(kiosk.parts.spool, 10**6)
        failed = kiosk.parts.feedback.failed
        kiosk.parts.feedback.failed = lambda reason, **d: (refused.append(reason), failed(reason, **d))  # type: ignore[method-assign]
        kiosk.run()
    # Fail closed, and never silently: each sighting is a new try; each card held up is refused once.
    assert len(attempts) == kiosk.counters.decoded > 2 and kiosk.counters.repeats == 0
    assert refused == [Reason.INTERNAL_ERROR] * 2
    assert kiosk.counters.errors == 2
    assert kiosk.counters.frames == len(frames_for(NATIONAL, CCCD))
    assert kiosk.state.fault == "spool"


def _fail_once(spool: Any) -> None:
    """The spool's next record fails as on a full disk; the ones after it succeed."""
    record = spool.record

    def full(_draft: object) -> None:
        spool.record = record
        raise SpoolError("cannot write the spool: database or disk is full")

    spool.record = full


def _fail_times(spool: Any, n: int) -> list[bool]:
    """The spool's next `n` records fail as on a full disk, the later ones succeed; returns the attempts."""
    record, attempts = spool.record, []

    def full_at_first(draft: Any) -> Any:
        attempts.append(len(attempts) >= n)
        if not attempts[-1]:
            raise SpoolError("cannot write the spool: database or disk is full")
        return record(draft)

    spool.record = full_at_first
    return attempts


def _symbol(payload: str) -> Symbol:
    return Symbol(raw=payload.encode(), text=payload, corners=(), format="QRCode")


def test_after_a_failed_record_the_same_card_gets_a_real_decision(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, destination={"direction": "auto"})
    shown: list[object] = []
    with assemble(settings, frames=frames_for(NATIONAL)) as kiosk:
        fb = kiosk.parts.feedback
        failed, passed = fb.failed, fb.passed
        fb.failed = lambda reason, **d: (shown.append(reason), failed(reason, **d))  # type: ignore[method-assign]
        fb.passed = lambda name, direction, **k: (shown.append(direction), passed(name, direction, **k))  # type: ignore[method-assign]
        _fail_once(kiosk.parts.spool)
        kiosk.handle_symbol(_symbol(NATIONAL), 1.0)
        assert kiosk.parts.policy.occupancy == 0, "a refused, unrecorded scan counts nobody in"
        kiosk.handle_symbol(_symbol(NATIONAL), 1.0)  # the retry, well within the repeat window
        assert kiosk.parts.policy.occupancy == 1
        kiosk.handle_symbol(_symbol(NATIONAL), 1.0)  # now it is a repeat of the recorded pass
    assert shown == [Reason.INTERNAL_ERROR, "in"]
    assert [(e.verdict, e.direction) for e in spooled_events(settings)] == [("pass", "in")]
    assert (kiosk.counters.errors, kiosk.counters.decisions, kiosk.counters.repeats) == (1, 1, 1)


@pytest.mark.parametrize(("failures", "notices"), [(1, 1), (49, 1), (50, 1), (51, 2), (120, 3)])
def test_a_card_held_up_while_the_disk_is_full_is_told_now_and_then_and_recorded_once_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failures: int, notices: int
) -> None:
    settings = make_settings(tmp_path)
    shown: list[object] = []
    # One frame every 100 ms: a notice at most every NOT_RECORDED_NOTICE_S (5 s, 50 frames).
    clock = iter(
        datetime(2026, 11, 29, 8, 0, tzinfo=UTC) + timedelta(milliseconds=100 * i) for i in range(10**4)
    )
    with assemble(settings, frames=[]) as kiosk:
        kiosk.parts = replace_parts(kiosk.parts, now=lambda: next(clock))
        fb = kiosk.parts.feedback
        failed, passed = fb.failed, fb.passed
        fb.failed = lambda reason, **d: (shown.append(reason), failed(reason, **d))  # type: ignore[method-assign]
        fb.passed = lambda name, direction, **k: (shown.append(direction), passed(name, direction, **k))  # type: ignore[method-assign]
        attempts = _fail_times(kiosk.parts.spool, failures)
        for _ in range(failures + 5):  # held up until a few frames after the disk has room again
            kiosk.handle_symbol(_symbol(NATIONAL), 1.0)
        assert kiosk.state.fault == "spool"
    assert attempts == [False] * failures + [True], "retried on every frame until recorded, then a repeat"
    assert shown == [Reason.INTERNAL_ERROR] * notices + ["in"]
    logged = [r for r in caplog.records if "could not be recorded" in r.getMessage()]
    assert len(logged) == kiosk.counters.errors == notices
    assert [(e.verdict, e.reason) for e in spooled_events(settings)] == [("pass", "ok")]
    assert (kiosk.counters.decisions, kiosk.counters.repeats) == (1, 4)


def test_sighup_is_all_or_nothing(tmp_path: Path) -> None:
    from kiosk.config import load_config

    keys.generate_device_key(tmp_path / "device.key")
    write_kiosk_keys(tmp_path)
    now = datetime.now(UTC)
    signer = cardmaker.make_dcc_signer(
        "ES256", not_before=now - timedelta(days=1), not_after=now + timedelta(days=1)
    )
    cardmaker.save_signer(signer, tmp_path / "signer.key", tmp_path / "trust.pem")
    config = tmp_path / "kiosk.toml"
    common = (
        f'[paths]\nstate_dir = "{tmp_path}"\n[uplink]\nenabled = false\n[feedback]\nscreen = "offscreen"\n'
        f'[policy]\ntrust_list = "{tmp_path / "trust.pem"}"\n'
    )
    config.write_text(common)
    with assemble(load_config(config), frames=frames_for(NATIONAL), config_path=config) as kiosk:
        config.write_text(common + 'accepted_formats = ["cccd"]\n')
        (tmp_path / "trust.pem").write_text("damaged")
        kiosk.request_reload()
        kiosk.run()
    assert kiosk.parts.policy.rules.accepted_formats == ["national", "cccd", "dcc"], "nothing changed"
    assert kiosk.counters.errors == 1


def test_who_is_inside_survives_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, destination={"direction": "auto"}, policy={"repeat_window_s": 1})
    cccd_number = parse_card(CCCD.encode(), trust=None, now=datetime.now(UTC)).identity
    assert cccd_number is not None
    with assemble(settings, frames=frames_for(CCCD, NATIONAL)) as kiosk:
        kiosk.run()
        assert kiosk.parts.policy.occupancy == 2
    # The kiosk restarts; the first person leaves showing a PC-Covid QR that names the same citizen number.
    leaving = cardmaker.national_payload(id_number=cccd_number, qid="162979388586170001")
    with assemble(settings, frames=frames_for(leaving)) as kiosk:
        assert kiosk.parts.policy.occupancy == 2, "rebuilt from the spool"
        kiosk.run()
        assert kiosk.parts.policy.occupancy == 1
    assert [e.direction for e in spooled_events(settings)] == ["in", "in", "out"]


def test_the_live_preview_shows_the_camera_when_enabled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, feedback={"preview": True})
    with assemble(settings, frames=frames_for(NATIONAL)) as kiosk:
        screen = kiosk.parts.feedback.screen
        assert screen is not None
        kiosk.run()
        assert screen.display is not None, "the off-screen surface always opens"
        preview = screen.display._preview
        assert preview is not None and preview._image is not None, "frames reached the preview"
        assert preview._image.get_width() <= settings.feedback.screen_width // 3, (
            "a small picture in the corner"
        )


class ResultsFeedback(Feedback):
    """The real facade, noting each result it is asked to show, in order."""

    shown: list[str]

    def passed(self, name: str, direction: Any = "in", *, at: datetime | None = None) -> None:
        self.shown.append("pass")
        super().passed(name, direction, at=at)

    def failed(self, reason: Any, **details: object) -> None:
        self.shown.append(str(reason))
        super().failed(reason, **details)


def card_before_poster(card: str, *, seed: int) -> np.ndarray:
    """An old poster high on the wall (the code zxing-cpp meets first) and a card held up below it."""
    poster = scenes.Scene(center=(0.25, 0.28), module_px=3.5, seed=seed, noise_sigma=2.0)
    return scenes.render_codes([(POSTER, poster), (card, scenes.Scene(center=(0.68, 0.62), module_px=3.5))])


def poster_only(seed: int = 0) -> np.ndarray:
    """The old poster on the wall, nobody in front of it."""
    return scenes.render(POSTER, scenes.Scene(center=(0.25, 0.28), module_px=3.5, seed=seed))


def card_only(card: str, *, seed: int) -> np.ndarray:
    """The card held up where card_before_poster holds it, the poster out of view."""
    return scenes.render(card, scenes.Scene(center=(0.68, 0.62), module_px=3.5, seed=seed))


@dataclass
class Shown:
    """What the person at the kiosk saw and heard: results asked for, LED and buzzer pins, the screen."""

    results: list[str]
    red_lit: bool
    green_lit: bool
    beeps: int
    screen: Any


def run_watched(tmp_path: Path, frames: list[np.ndarray]) -> tuple[Kiosk, Shown]:
    """Run the loop over the frames with its LEDs and buzzer on a MockFactory, and note what they did.

    The result stays on the screen for 30 s, so the last result shown is the screen's state at the end.
    """
    settings = make_settings(tmp_path, feedback={"result_hold_s": 30.0, "beep_s": 0.02})
    factory = MockFactory(pin_class=MockPin)
    signals = Signals(settings.feedback, pin_factory=factory)
    feedback = ResultsFeedback(settings.feedback, signals=signals)
    feedback.shown = []
    kiosk = run_loop(settings, frames, feedback=feedback)  # closing the feedback lets every pattern run
    pins = settings.feedback
    watched = (pins.red_pin, pins.green_pin, pins.buzzer_pin)
    levels = {pin: [s.state for s in factory.pin(pin).states] for pin in watched}
    factory.close()
    buzzer = levels[pins.buzzer_pin]
    shown = Shown(
        results=feedback.shown,
        red_lit=any(levels[pins.red_pin]),
        green_lit=any(levels[pins.green_pin]),
        beeps=sum(1 for before, after in itertools.pairwise(buzzer) if after and not before),
        screen=feedback.state,
    )
    return kiosk, shown


def test_a_card_and_a_poster_new_in_the_same_frame_show_only_the_cards_pass(tmp_path: Path) -> None:
    both = [card_before_poster(NATIONAL, seed=i) for i in range(4)]
    kiosk, shown = run_watched(tmp_path, both)
    assert kiosk.parts.decoder.decode(both[0]).symbols[0].text == POSTER, "the poster is read first"
    events = spooled_events(make_settings(tmp_path))
    assert [(e.verdict, e.reason) for e in events] == [("fail", "old_venue_qr"), ("pass", "ok")], (
        "the poster is still recorded, as the policy counts it"
    )
    assert shown.results == ["pass"]
    assert (shown.green_lit, shown.red_lit, shown.beeps) == (True, False, 1), "a pass: green, one beep"
    assert isinstance(shown.screen, PassState)
    counters = kiosk.counters
    assert counters.decoded == 2 * len(both), "both codes are read in every frame"
    assert counters.decisions == 2 and counters.repeats == counters.decoded - 2


def test_a_poster_coming_into_view_behind_a_card_leaves_the_pass_on_screen(tmp_path: Path) -> None:
    alone = [card_only(NATIONAL, seed=i) for i in range(3)]
    frames = alone + [card_before_poster(NATIONAL, seed=i) for i in range(3)]
    kiosk, shown = run_watched(tmp_path, frames)
    events = spooled_events(make_settings(tmp_path))
    assert [(e.verdict, e.reason) for e in events] == [("pass", "ok"), ("fail", "old_venue_qr")]
    assert shown.results == ["pass"], "the card was a repeat when the poster came into view"
    assert (shown.green_lit, shown.red_lit, shown.beeps) == (True, False, 1)
    assert isinstance(shown.screen, PassState)
    assert kiosk.counters.decisions == 2


def test_a_poster_alone_is_refused_aloud_then_a_card_held_up_before_it_passes(tmp_path: Path) -> None:
    frames = [poster_only()] * 3 + [card_before_poster(NATIONAL, seed=i) for i in range(4)]
    kiosk, shown = run_watched(tmp_path, frames)
    events = spooled_events(make_settings(tmp_path))
    assert [(e.verdict, e.reason) for e in events] == [("fail", "old_venue_qr"), ("pass", "ok")]
    assert shown.results == ["old_venue_qr", "pass"], "the card's decision is the last one shown"
    assert shown.green_lit and shown.red_lit  # (the pass may cut the fail's three beeps short)
    assert isinstance(shown.screen, PassState)
    assert kiosk.counters.decoded == 3 + 2 * 4


def test_a_poster_read_alone_just_after_a_card_is_recorded_silently(tmp_path: Path) -> None:
    # The card is not read for a frame or two (the person moves), the poster behind them is.
    frames = [card_only(NATIONAL, seed=i) for i in range(2)] + [poster_only(seed=i) for i in range(2)]
    _, shown = run_watched(tmp_path, frames)
    events = spooled_events(make_settings(tmp_path))
    assert [(e.verdict, e.reason) for e in events] == [("pass", "ok"), ("fail", "old_venue_qr")]
    assert shown.results == ["pass"] and not shown.red_lit


def card_then_poster(card: str, *, seed: int, module_px: float, motion_px: int) -> np.ndarray:
    """A card held up, and a small old poster high on the wall smeared by the camera's motion.

    zxing-cpp locates only the card; the poster is read by the decoder's look beside it.
    """
    wall = scenes.Scene(center=(0.2, 0.22), module_px=module_px, seed=seed, motion_px=motion_px)
    held = scenes.Scene(center=(0.62, 0.6), module_px=3.5, seed=seed, noise_sigma=2.0)
    return scenes.render_codes([(POSTER, wall), (card, held)])


def test_a_poster_beside_a_card_read_first_is_recorded_silently(tmp_path: Path) -> None:
    smeared = [(1, 2.0, 3), (0, 2.5, 4)] * 2  # seed, poster's module and smear (px)
    frames = [card_then_poster(NATIONAL, seed=s, module_px=m, motion_px=n) for s, m, n in smeared]
    kiosk, shown = run_watched(tmp_path, frames)
    assert [s.text for s in kiosk.parts.decoder.decode(frames[0]).symbols] == [NATIONAL, POSTER], (
        "the card is read first, the poster beside it too"
    )
    events = spooled_events(make_settings(tmp_path))
    assert [(e.verdict, e.reason) for e in events] == [("fail", "old_venue_qr"), ("pass", "ok")], (
        "the poster is recorded, as the policy counts it"
    )
    assert shown.results == ["pass"] and not shown.red_lit
    assert kiosk.counters.decoded == 2 * len(frames)


class FailingWrites(logging.Handler):
    """A log handler whose write fails, as a stream does when a signal re-enters its write."""

    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")


def test_sigterm_stops_the_loop_even_while_logging_fails(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    failing = FailingWrites()
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    with assemble(settings, frames=frames_for(NATIONAL)) as kiosk:
        kiosk.install_signal_handlers()
        logger = logging.getLogger("kiosk")
        level = logger.level
        logger.setLevel(logging.INFO)  # so that a log line in the handler would be written
        logger.addHandler(failing)
        try:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator,misc]
        finally:
            logger.removeHandler(failing)
            logger.setLevel(level)
            for number, handler in saved.items():
                signal.signal(number, handler)
        assert kiosk.stop.is_set(), "the stop request must not depend on a log line"


class BrokenSignals(ResultsFeedback):
    """The real facade whose pass and street-check signals fail (a display or GPIO fault)."""

    def passed(self, name: str, direction: Any = "in", *, at: datetime | None = None) -> None:
        raise OSError("GPIO busy")

    def street(self, finding: Any) -> None:
        raise OSError("GPIO busy")


@pytest.mark.parametrize(("mode", "what"), [("kiosk", "scan"), ("inspector", "street check")])
def test_a_signal_failing_after_the_record_says_the_decision_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str, what: str
) -> None:
    settings = make_settings(tmp_path, device={"mode": mode})
    feedback = open_feedback(settings.feedback, kind=BrokenSignals)
    feedback.shown = []
    with assemble(settings, frames=frames_for(NATIONAL), feedback=feedback) as kiosk:
        kiosk.handle_symbol(_symbol(NATIONAL), 1.0)
    assert [(e.verdict, e.format) for e in spooled_events(settings)] == [("pass", "national")]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"the {what} is recorded (seq 1), but signalling it failed: GPIO busy"]
    assert feedback.shown == [], "nobody is told it was not recorded"
    assert (kiosk.counters.decisions, kiosk.counters.errors) == (1, 1)
