"""The self-test: is this kiosk ready to stand at its entrance?

Each check exercises the real part (camera, decoder, pins, keys, broker,
clock, disk) the way the daemon will, and returns a `CheckResult` saying
pass, warn, fail or skip, what was measured, and what to do about a failure.
A check never raises: an error becomes its failure.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from kiosk import __version__
from kiosk.checkresult import CheckResult
from kiosk.config import Settings, load_config
from kiosk.errors import CameraEnded, ConfigError, KioskError, UplinkError
from kiosk.imaging import MIN_SHARPNESS, clipped_fraction, mean_level, sharpness
from kiosk.topics import DeviceTopics
from kiosk.trustcheck import TRUST_CHECKS, check_peers

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
# A payload the decoder check draws and must read back; any text would do.
TEST_PAYLOAD = "kiosk selftest 0123456789|NGUYEN VAN A|1987-01-18"
CAMERA_SAMPLE_S = 1.0
# More than this share of pixels at the ends of the range means the exposure is wrong.
MAX_CLIPPED = 0.05


@dataclass(frozen=True, slots=True)
class Report:
    """Every check's result; `ok` when none failed."""

    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """No check failed (warnings and skips are allowed)."""
        return all(r.status != "fail" for r in self.results)

    def to_json(self) -> str:
        """The report for scripts."""
        checks = [
            {"name": r.name, "status": r.status, "detail": r.detail, "advice": r.advice, "figures": r.figures}
            for r in self.results
        ]
        return json.dumps({"ok": self.ok, "software": __version__, "checks": checks}, indent=2)

    def table(self) -> str:
        """The report for people: one row per check, advice under each failure or warning."""
        width = max(len(r.name) for r in self.results)
        lines = []
        for r in self.results:
            lines.append(f"{r.name:<{width}}  {r.status.upper():<4}  {r.detail}")
            if r.advice and r.status in ("fail", "warn"):
                lines.append(f"{'':<{width}}        -> {r.advice}")
        verdict = "all checks passed" if self.ok else "some checks FAILED"
        return "\n".join([*lines, "", verdict])


@dataclass(frozen=True, slots=True)
class Probes:
    """What the checks use to reach the machine; tests swap in their own."""

    frames: Sequence[np.ndarray] | None = None  # replay camera frames instead of the configured source
    pin_factory: Any = None  # gpiozero factory; None = the one feedback.gpio names
    clock_command: Sequence[str] = ("timedatectl", "show", "-p", "NTPSynchronized", "--value")
    clock_flag: Path = TIMESYNCD_FLAG
    broker_timeout_s: float = 10.0
    screen_hold_s: float = 1.5  # how long a person gets to look at each test screen
    environ: Mapping[str, str] | None = None  # the environment the screen opens in; None = os.environ


Check = Callable[[Settings, Probes], CheckResult]


def run_selftest(config_path: Path | None, *, probes: Probes | None = None) -> Report:
    """Load the configuration and run every check against it."""
    probes = probes or Probes()
    try:
        settings = load_config(config_path)
    except ConfigError as e:
        advice = "; ".join(e.problems) + " (check with `kiosk config check`)"
        return Report((CheckResult("config", "fail", str(e), advice),))
    config = CheckResult("config", "pass", f"valid ({config_path or 'built-in defaults'})")
    return Report((config, *(run_check(check, settings, probes) for check in CHECKS)))


def run_check(check: Check, settings: Settings, probes: Probes) -> CheckResult:
    """Run one check; an error it raises becomes its failure."""
    name = check.__name__.removeprefix("check_").replace("_", " ")
    try:
        return check(settings, probes)
    except KioskError as e:
        return CheckResult(name, "fail", str(e))  # kiosk's messages already say what to do
    except Exception as e:  # a self-test reports every fault rather than stopping at one
        return CheckResult(name, "fail", f"{type(e).__name__}: {e}", "report this with the output of -v")


# --- keys and files --------------------------------------------------------------------------


def check_device_key(settings: Settings, probes: Probes) -> CheckResult:
    """The signing key exists, is only readable by its owner, and loads."""
    from kiosk import keys

    path = settings.paths.key_file
    key = keys.load_private_key(path)
    detail = f"{path}: Ed25519, mode {_mode(path)}, fingerprint {keys.thumbprint(key.public_key())}"
    return CheckResult("device key", "pass", detail)


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def check_disk(settings: Settings, probes: Probes) -> CheckResult:
    """The spool's folder has room for the spool's whole disk budget."""
    folder = settings.paths.spool_file.parent
    while not folder.exists():
        folder = folder.parent
    free_mb = shutil.disk_usage(folder).free / 2**20
    budget = settings.spool.disk_budget_mb
    figures: dict[str, float | str] = {"free_mb": round(free_mb), "budget_mb": budget}
    detail = f"{free_mb:.0f} MB free in {folder}, spool budget {budget} MB"
    if free_mb < budget:
        advice = "free disk space, or lower spool.disk_budget_mb"
        return CheckResult("disk", "fail", detail, advice, figures)
    return CheckResult("disk", "pass", detail, figures=figures)


# --- clock -----------------------------------------------------------------------------------


def check_clock(settings: Settings, probes: Probes) -> CheckResult:
    """The system clock is synchronised (events carry the time a person entered)."""
    synced, source = clock_synchronised(probes)
    advice = "connect the network and enable NTP: sudo timedatectl set-ntp true"
    if synced is None:
        return CheckResult("clock", "warn", f"synchronisation unknown ({source})", advice)
    if not synced:
        return CheckResult("clock", "fail", f"not synchronised ({source})", advice)
    return CheckResult("clock", "pass", f"synchronised ({source})")


def clock_synchronised(probes: Probes) -> tuple[bool | None, str]:
    """(synchronised or None if unknown, how it was found out)."""
    try:
        done = subprocess.run(list(probes.clock_command), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip() in ("yes", "no"):
        return done.stdout.strip() == "yes", "timedatectl"
    if probes.clock_flag.exists():
        return True, str(probes.clock_flag)
    return None, "no timedatectl answer, no timesyncd flag"


# --- camera and decoder ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraSample:
    """Frames read from the camera for a moment, and what the decoder found in them."""

    count: int
    fps: float
    sharpness: float
    mean_level: float
    clipped: float
    decoded: tuple[str, ...]


def sample_camera(settings: Settings, probes: Probes, *, seconds: float = CAMERA_SAMPLE_S) -> CameraSample:
    """Read frames for `seconds`, measuring rate, sharpness, exposure and decoding each."""
    from kiosk.camera import open_camera
    from kiosk.decoder import open_decoder

    decoder = open_decoder(settings.decoder)
    stats: list[tuple[float, float, float]] = []
    decoded: set[str] = set()
    with open_camera(settings.camera, frames=probes.frames) as camera:
        for pixels in _frames_for(camera, seconds):
            stats.append(frame_figures(pixels))
            decoded |= {s.text or s.raw.hex() for s in decoder.decode(pixels).symbols}
        fps = camera.fps
    return _summarise(stats, fps, decoded)


def _frames_for(camera: Any, seconds: float) -> Iterator[np.ndarray]:
    """The frames a camera delivers within `seconds` (fewer if a replay ends)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            yield camera.read().pixels
        except CameraEnded:
            return


def _summarise(stats: list[tuple[float, float, float]], fps: float, decoded: set[str]) -> CameraSample:
    if not stats:
        return CameraSample(0, 0.0, 0.0, 0.0, 0.0, ())
    sharp, mean, clipped = (float(np.median(column)) for column in zip(*stats, strict=True))
    return CameraSample(len(stats), fps, sharp, mean, clipped, tuple(sorted(decoded)))


def frame_figures(pixels: np.ndarray) -> tuple[float, float, float]:
    """(sharpness as the variance of the Laplacian, mean level, fraction of clipped pixels)."""
    return sharpness(pixels), mean_level(pixels), clipped_fraction(pixels)


def check_camera(settings: Settings, probes: Probes) -> CheckResult:
    """Frames arrive at the configured rate, sharp and well exposed, and a code in view decodes."""
    sample = sample_camera(settings, probes)
    figures: dict[str, float | str] = {
        "frames": sample.count,
        "fps": round(sample.fps, 1),
        "sharpness": round(sample.sharpness, 1),
        "mean_level": round(sample.mean_level, 1),
        "clipped": round(sample.clipped, 3),
        "decoded": len(sample.decoded),
    }
    detail = (
        f"{settings.camera.backend}: {sample.count} frames, {sample.fps:.1f}/{settings.camera.fps:g} fps, "
        f"sharpness {sample.sharpness:.0f}, mean level {sample.mean_level:.0f}, "
        f"clipped {sample.clipped:.1%}, codes read {len(sample.decoded)}"
    )
    problem = camera_problem(sample, settings.camera.fps)
    return CheckResult("camera", "fail" if problem else "pass", detail, problem, figures)


def camera_problem(sample: CameraSample, wanted_fps: float) -> str:
    """What is wrong with a camera sample and what to do, or "" when it is fine."""
    if sample.count < 2:
        return "no frames: is the ribbon cable seated and the camera enabled? check camera.backend"
    if sample.fps < 0.7 * wanted_fps:
        return f"only {sample.fps:.1f} fps: lower camera.width/height or camera.fps, or add light"
    if sample.clipped > MAX_CLIPPED or not 40 <= sample.mean_level <= 215:
        return "badly exposed: shade the camera from direct light or add light; check camera.max_exposure_us"
    if sample.sharpness < MIN_SHARPNESS:
        return "blurred: clean the lens and check focus (camera.autofocus, camera.lens_position)"
    if not sample.decoded:
        return "no code decoded: hold a QR code 20-30 cm in front of the camera and run again"
    return ""


def check_decoder(settings: Settings, probes: Probes) -> CheckResult:
    """The configured decoder reads a QR code drawn here and now."""
    from kiosk import scenes
    from kiosk.decoder import open_decoder

    frame = scenes.render(TEST_PAYLOAD, scenes.Scene(width=640, height=480, blur_sigma=0.8, noise_sigma=3))
    decoder = open_decoder(settings.decoder)
    started = time.perf_counter()
    texts = [s.text for s in decoder.decode(frame).symbols]
    ms = (time.perf_counter() - started) * 1000
    detail = f"{decoder.name}: built-in 640x480 test code in {ms:.0f} ms"
    if TEST_PAYLOAD not in texts:
        advice = 'reinstall the decoder library, or try decoder.backend = "pyzbar"'
        return CheckResult("decoder", "fail", f"{detail}: not read (got {texts})", advice)
    return CheckResult("decoder", "pass", detail, figures={"ms": round(ms, 1)})


# --- LEDs, buzzer and relay ------------------------------------------------------------------


def check_signals(settings: Settings, probes: Probes) -> CheckResult:
    """Cycle the LEDs, buzzer and relay through pass, fail and hint; on mock pins, read them back."""
    from kiosk.signals import Signals

    config = settings.feedback
    with Signals(config, pin_factory=probes.pin_factory) as signals:
        missed = _cycle(signals, config)
    outputs = _outputs(config)
    if missed:
        advice = "check the wiring against docs/wiring.md and the pins in [feedback]"
        return CheckResult("signals", "fail", f"pins did not switch: {', '.join(missed)}", advice)
    if config.gpio == "native":
        return CheckResult("signals", "pass", f"cycled {outputs}: check that each lit or sounded")
    return CheckResult("signals", "pass", f"mock pins switched as expected: {outputs}")


def _outputs(config: Any) -> str:
    names = ("green_pin", "red_pin", "blue_pin", "buzzer_pin", "relay_pin")
    return ", ".join(
        f"{n.removesuffix('_pin')} GPIO{getattr(config, n)}" for n in names if getattr(config, n) is not None
    )


def _cycle(signals: Any, config: Any) -> list[str]:
    """Show pass, fail and hint in turn; the outputs (on mock pins) that never switched on."""
    seen: set[int] = set()
    for show in (signals.passed, signals.failed, signals.hint):
        show()
        seen |= _watch_pins(signals.pin_factory, _pin_numbers(config), seconds=0.3)
        signals.idle()
    if config.gpio == "native":
        return []
    return [f"GPIO{pin}" for pin in _pin_numbers(config) if pin not in seen]


def _pin_numbers(config: Any) -> list[int]:
    pins = (config.green_pin, config.red_pin, config.blue_pin, config.buzzer_pin, config.relay_pin)
    return [p for p in pins if p is not None]


def _watch_pins(factory: Any, pins: list[int], *, seconds: float) -> set[int]:
    """Pins (of a mock factory) that changed level within `seconds`; real pins cannot be read back."""
    from gpiozero.pins.mock import MockFactory

    if not isinstance(factory, MockFactory):
        time.sleep(seconds)
        return set()
    active: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(active) < len(pins):
        active |= {pin for pin in pins if len({s.state for s in factory.pin(pin).states}) > 1}
        time.sleep(0.01)
    return active


# --- screen ----------------------------------------------------------------------------------

# Colour bars of the test pattern: a missing colour channel or a stuck panel shows at once.
BARS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (128, 128, 128),
    (0, 0, 0),
)


def check_screen(settings: Settings, probes: Probes) -> CheckResult:
    """Show colour bars, then the idle, pass and fail screens; check the font draws Vietnamese."""
    from kiosk.screen.display import Screen
    from kiosk.screen.typesetting import missing_glyphs

    if settings.feedback.screen == "none":
        return CheckResult("screen", "skip", 'feedback.screen = "none"')
    with Screen(settings.feedback, lang=settings.destination.language) as display:
        wrong = show_test_pattern(display.surface, flip=display.mode != "offscreen")
        time.sleep(probes.screen_hold_s)
        _show_samples(display, settings, hold_s=probes.screen_hold_s / 3)
        width, height = display.surface.get_size()
        mode = display.mode
    missing = missing_glyphs(settings.destination.venue_name + VIETNAMESE_SAMPLE)
    detail = f"{mode} {width}x{height}: colour bars, idle, pass and fail screens drawn"
    return _screen_result(detail, wrong, missing)


def check_video_driver(settings: Settings, probes: Probes) -> CheckResult:
    """The SDL that pygame loaded has the video driver the screen will ask for (kmsdrm on a bare Pi)."""
    from kiosk.screen.display import resolve_mode
    from kiosk.screen.sdl import missing_driver_advice, sdl_build, wanted_drivers

    mode = "none" if settings.feedback.screen == "none" else resolve_mode(settings.feedback.screen)
    wanted = wanted_drivers(mode, probes.environ if probes.environ is not None else os.environ)
    build = sdl_build()
    if build is None:
        return CheckResult("video driver", "warn", "cannot tell which SDL pygame loaded (no /proc?)")
    figures: dict[str, float | str] = {"sdl": build.version, "drivers": ",".join(build.drivers)}
    compiled = f"SDL {build.version} has {', '.join(build.drivers)}"
    if not wanted:
        return CheckResult(
            "video driver",
            "pass",
            f"{compiled}; the screen ({mode}) needs none of them by name",
            figures=figures,
        )
    if not any(build.has(d) for d in wanted):
        detail = f"{' or '.join(wanted)} missing: {compiled}"
        return CheckResult("video driver", "fail", detail, missing_driver_advice(build, wanted), figures)
    return CheckResult("video driver", "pass", f"{' or '.join(wanted)} present: {compiled}", figures=figures)


def _show_samples(display: Any, settings: Settings, *, hold_s: float) -> None:
    """Each kind of screen in turn, ending on idle."""
    states = _sample_states(settings)
    for state in [*states, states[0]]:
        display.show(state)
        display.redraw()
        time.sleep(hold_s)


# Every Vietnamese vowel with its tone marks, and đ: what names and messages need.
VIETNAMESE_SAMPLE = "ăâđêôơư ÀÁẢÃẠ ằắẳẵặ ầấẩẫậ èéẻẽẹ ềếểễệ ìíỉĩị òóỏõọ ồốổỗộ ờớởỡợ ùúủũụ ừứửữự ỳýỷỹỵ Đ"


def _screen_result(detail: str, wrong: list[str], missing: str) -> CheckResult:
    if wrong:
        advice = "the display did not take the test pattern: check feedback.screen and the display cable"
        return CheckResult("screen", "fail", f"{detail}; wrong bars: {', '.join(wrong)}", advice)
    if missing:
        advice = "install the DejaVu fonts: sudo apt install fonts-dejavu-core"
        return CheckResult("screen", "fail", f"{detail}; the font lacks {missing!r}", advice)
    return CheckResult("screen", "pass", detail + ", Vietnamese text complete")


def _sample_states(settings: Settings) -> list[Any]:
    from datetime import datetime

    from kiosk.screen.states import FailState, IdleState, PassState

    return [
        IdleState(venue=settings.destination.venue_name, count_in=12, count_out=3),
        PassState(name="Nguyễn Văn Ánh", direction="in", at=datetime.now()),
        FailState(message="Kiểm tra thử. Đây không phải là một lần quét thật."),
    ]


def show_test_pattern(surface: Any, *, flip: bool) -> list[str]:
    """Draw vertical colour bars with a white border; the bars that read back wrong."""
    import pygame

    width, height = surface.get_size()
    bar = width / len(BARS)
    for i, colour in enumerate(BARS):
        surface.fill(colour, pygame.Rect(round(i * bar), 0, round(bar) + 1, height))
    # A border shows whether the panel crops the picture (overscan).
    pygame.draw.rect(surface, (255, 255, 255), surface.get_rect(), width=2)
    if flip:
        pygame.display.flip()
    found = [tuple(surface.get_at((round((i + 0.5) * bar), height // 2)))[:3] for i in range(len(BARS))]
    return [f"{want}->{got}" for want, got in zip(BARS, found, strict=True) if want != got]


# --- broker ----------------------------------------------------------------------------------


def check_broker(settings: Settings, probes: Probes) -> CheckResult:
    """Connect as the device and have a QoS 1 publish on its own state topic acknowledged."""
    uplink = settings.uplink
    if not uplink.enabled:
        return CheckResult("broker", "skip", "uplink.enabled is false: events are only spooled")
    topic = DeviceTopics(uplink.topic_prefix, settings.destination.id, settings.device.id).state
    started = time.monotonic()
    publish_test_message(settings, topic, timeout_s=probes.broker_timeout_s)
    ms = (time.monotonic() - started) * 1000
    secure = "TLS" if urlsplit(uplink.broker).scheme == "mqtts" else "no TLS"
    detail = f"{uplink.broker} ({secure}): publish on {topic} acknowledged in {ms:.0f} ms"
    if secure == "no TLS":
        advice = "use mqtts:// in production so scans travel encrypted"
        return CheckResult("broker", "warn", detail, advice, {"ms": round(ms)})
    return CheckResult("broker", "pass", detail, figures={"ms": round(ms)})


def publish_test_message(settings: Settings, topic: str, *, timeout_s: float) -> None:
    """Connect, publish one non-retained QoS 1 message, wait for its PUBACK; raise UplinkError."""
    from kiosk import broker  # paho only where the broker is checked

    connection = broker.BrokerSettings.for_device(settings.uplink, settings.device.id)
    client = broker.new_client(connection, f"{settings.device.id}-selftest")
    broker.connect(client, connection, timeout_s=timeout_s)
    acked = _Outcome()
    client.on_publish = lambda _c, _u, _mid, reason, _p: acked.set(reason)
    try:
        client.publish(topic, _test_payload(), qos=1, retain=False)
        _await(acked, timeout_s, "publish not accepted", settings)
    finally:
        broker.close(client)


def _test_payload() -> str:
    # Not retained: the daemon's retained state on this topic stays as it was.
    return json.dumps({"selftest": True, "software": __version__, "time": time.time()})


class _Outcome:
    """A reason code delivered by a paho callback thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: Any = None

    def set(self, reason: Any) -> None:
        self.reason = reason
        self._event.set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)


def _await(outcome: _Outcome, timeout_s: float, what: str, settings: Settings) -> None:
    if not outcome.wait(timeout_s):
        raise UplinkError(
            f"{settings.uplink.broker}: no answer within {timeout_s:g} s: check the network and the broker"
        )
    if outcome.reason.is_failure:
        raise UplinkError(
            f"{settings.uplink.broker}: {what}: {outcome.reason}: check uplink.username, the password file, "
            f"and that the authority registered device {settings.device.id} (its ACL)"
        )


CHECKS: tuple[Check, ...] = (
    check_device_key,
    *TRUST_CHECKS,
    check_peers,
    check_disk,
    check_clock,
    check_decoder,
    check_camera,
    check_signals,
    check_video_driver,
    check_screen,
    check_broker,
)
