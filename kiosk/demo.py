"""`kiosk demo`: the whole kiosk on a laptop, on a scene it makes itself.

It provisions a venue with two lanes, an entry kiosk and an exit kiosk (keys,
a vaccine-passport signer and trust list, a signed status list with one person
in quarantine, each lane's peer records), renders cards and phones entering and
leaving the cameras' view, and plays them through the real daemon: replay
camera, gpiozero's MockFactory (the entry lane's shown as a live line in the
terminal), the entry lane's screen in a window when there is a display and
otherwise saved as PNG files (the exit lane's always saved), and a local
mosquitto when one is installed, through which the two lanes share who is
inside (spool only when not: then each lane knows only its own scans).
The exit lane runs in a second process, as it would on its own Raspberry Pi.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from kiosk import cardmaker, keys, scenes, sealing
from kiosk.app import assemble, open_feedback
from kiosk.cards.inspector import make_inspector_payload
from kiosk.config import Settings, parse_config
from kiosk.daemon import LoopCounters
from kiosk.feedback import Feedback
from kiosk.localbroker import LocalBroker, find_mosquitto
from kiosk.screen.states import IdleState
from kiosk.statuslist import Entry, Status, build_payload, sign_payload

FPS = 30
SIZE = (640, 480)


@dataclass(frozen=True)
class DemoCard:
    """One person at the kiosk: what they show, how it looks, and what the kiosk should say."""

    label: str
    payload: str
    expected: str
    look: dict[str, Any] = field(default_factory=dict)
    poster: str = ""  # an old venue poster on the wall behind the person, in view with their card


def demo_cards(signer: cardmaker.DccSigner, now: datetime) -> list[DemoCard]:
    """The people of the demo, each showing a different card (some invalid)."""

    def dcc(certificate: dict[str, Any]) -> str:
        return cardmaker.dcc_payload(
            certificate,
            signer=signer,
            issued_at=now - timedelta(days=30),
            expires_at=now + timedelta(days=365),
        )

    return [
        DemoCard("PC-Covid QR, printed card", cardmaker.national_payload(), "ok", {"tilt": 0.2}),
        DemoCard("Citizen ID card (CCCD)", cardmaker.cccd_payload(), "ok", {"rotation_deg": -12}),
        DemoCard(
            "Vaccine passport, 2 of 2 doses",
            dcc(cardmaker.dcc_vaccination_complete()),
            "ok",
            {"phone": True},
        ),
        DemoCard(
            "Vaccine passport, test 5 days old",
            dcc(cardmaker.dcc_test_negative(sampled_at=now - timedelta(days=5))),
            "dcc_test_too_old",
            {"phone": True, "glare": 0.4},
        ),
        DemoCard("Hue-S QR of a person in quarantine", QUARANTINED, "status_blocked", {"blur_sigma": 0.8}),
        DemoCard(
            "CCCD whose number disagrees with the birth year",
            cardmaker.cccd_payload(id_number="001095012345"),
            "cccd_inconsistent",
            {"tilt": 0.3},
        ),
        DemoCard("Old venue poster", "https://qr.tokhaiyte.vn/venue/0123456789", "old_venue_qr", {}),
        DemoCard(
            "Hue-S QR held up in front of an old poster still on the wall",
            cardmaker.national_payload(
                id_number="046190004567", name="LE VAN C", birth_date="1990-03-02", qid="162979388586172222"
            ),
            "ok",
            {"phone": True},
            poster="QRDD-HUE0042",
        ),
    ]


def exit_cards(*, shared: bool) -> list[DemoCard]:
    """The people at the exit lane: the first visitor leaving, and one nobody saw entering."""
    return [
        DemoCard(
            "PC-Covid in dark mode: the first person leaves by the exit",
            cardmaker.national_payload(),
            "ok" if shared else "exit_unseen",  # without a broker the exit lane never heard of the entry
            {"phone": True, "inverted": True},
        ),
        DemoCard(
            "Someone leaves who never came in at the entry",
            cardmaker.cccd_payload(
                name="Phạm Văn D", birth_date=date(1995, 1, 1), province="079", serial="001234"
            ),
            "exit_unseen",
            {"tilt": 0.2},
        ),
    ]


QUARANTINED = cardmaker.national_payload(
    id_number="079201001234", name="TRAN THI B", birth_date="2001-05-20", qid="162979388586179999", phone=""
)
QUARANTINED_QID = "162979388586179999"


# -- the scene -------------------------------------------------------------------------------


def render_show(cards: list[DemoCard], *, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """Cards entering the view (blurred by motion), held still, and leaving, with empty frames between.

    Held frames repeat a few renders, so a 20-second show stays small in memory.
    """
    base = scenes.Scene(width=size[0], height=size[1], module_px=min(size) / 75)
    empties = [scenes.empty_frame(base.with_(seed=900 + i)) for i in range(3)]
    frames: list[np.ndarray] = []
    for index, card in enumerate(cards):
        frames += [empties[i % 3] for i in range(FPS)]
        frames += _card_frames(card, base.with_(seed=index, **card.look))
    return frames + [empties[0]] * FPS


def _card_frames(card: DemoCard, scene: scenes.Scene) -> list[np.ndarray]:
    def shot(view: scenes.Scene) -> np.ndarray:
        if not card.poster:
            return scenes.render(card.payload, view)
        # The poster hangs high on the left of the wall, in focus; the person's phone moves in front.
        wall = view.with_(center=(0.2, 0.22), rotation_deg=0.0, tilt=0.0, phone=False, module_px=4.0)
        return scenes.render_codes(
            [(card.poster, wall), (card.payload, view.with_(center=_lower_right(view)))]
        )

    entering = [
        shot(scene.with_(center=(0.5 + 0.12 * s, 0.5), motion_px=int(30 * s))) for s in (3.0, 2.0, 1.2, 0.6)
    ]
    held = [shot(scene.with_(seed=scene.seed + i, noise_sigma=3.0)) for i in range(3)]
    leaving = [shot(scene.with_(center=(0.5 - 0.15 * s, 0.55), motion_px=25)) for s in (1.0, 2.0)]
    return entering + [held[i % 3] for i in range(int(FPS * 1.2))] + leaving


def _lower_right(view: scenes.Scene) -> tuple[float, float]:
    """The card's place beside a poster: shifted right and down, clear of the poster."""
    return (view.center[0] + 0.12, view.center[1] + 0.12)


# -- the demo venue ------------------------------------------------------------------------------

VENUE = "cho-ben-thanh"
ENTRY, EXIT = "demo-kiosk-01", "demo-kiosk-02"


@dataclass(frozen=True)
class Venue:
    """The demo venue: its entry and exit lanes' settings, and the people each lane sees."""

    entry: Settings
    exit: Settings
    entry_cards: list[DemoCard]
    exit_cards: list[DemoCard]


def provision(out: Path, *, broker_url: str | None, now: datetime) -> Venue:
    """Keys, trust list, status list, peer records and config of both lanes, all under `out`."""
    signer = cardmaker.make_dcc_signer(
        "ES256", not_before=now - timedelta(days=365), not_after=now + timedelta(days=365)
    )
    cardmaker.save_signer(signer, out / "dcc-signer.key", out / "trust.pem")
    authority = keys.generate_device_key(out / "authority.key", overwrite=True)
    (out / "authority.pem").write_text(keys.public_pem(authority.public_key()))
    venue_key = os.urandom(32)  # held by the venue's lanes alone: they know a person by the same tag
    # The authority's sealing key pair: the lanes get the public half; the private half stays in `out`.
    seal = sealing.generate_authority_key(out / "authority-seal.key", overwrite=True).public_key()
    states = {ENTRY: out / "state", EXIT: out / "exit-state"}
    records = [
        _provision_lane(device, state, (venue_key, seal), authority, now) for device, state in states.items()
    ]
    for state in states.values():
        (state / "peers.json").write_text(json.dumps(records))  # as `kiosk-central peers` writes it
    entry, exit_ = (
        parse_config(_config(out, states[device], broker_url, device=device, direction=direction))
        for device, direction in ((ENTRY, "in"), (EXIT, "out"))
    )
    inspector = make_inspector_payload(
        authority,
        inspector="insp-hcm-007",
        name="Lê Văn Kiểm",
        valid_from=now,
        valid_until=now + timedelta(days=30),
    )
    people = [*demo_cards(signer, now), DemoCard("An inspector checks the venue", inspector,
                                                 "inspector_card_ok", {"phone": True})]  # fmt: skip
    return Venue(entry, exit_, people, exit_cards(shared=broker_url is not None))


def _provision_lane(
    device: str,
    state: Path,
    venue: tuple[bytes, X25519PublicKey],
    authority: Ed25519PrivateKey,
    now: datetime,
) -> dict[str, str]:
    """One lane's keys and status list; its registration record (what its peers verify it with)."""
    for path in (state / "device.key", state / "destination.key", state / "statuslist.json"):
        path.unlink(missing_ok=True)
    key = keys.generate_device_key(state / "device.key")
    keys.write_secret(state / "destination.key", venue[0])
    (state / "authority-seal.pem").write_text(sealing.public_pem(venue[1]))
    _write_statuslist(authority, state, now)
    return {"device": device, "destination": VENUE, "public_key": keys.public_pem(key.public_key())}


def _write_statuslist(authority: Ed25519PrivateKey, state: Path, now: datetime) -> None:
    until = now + timedelta(days=14)
    payload = build_payload([Entry(QUARANTINED_QID, Status("quarantine", until))], version=1, issued=now)
    keys.write_secret(state / "statuslist.json", sign_payload(payload, authority), overwrite=True)


def _config(out: Path, state: Path, broker_url: str | None, *, device: str, direction: str) -> dict[str, Any]:
    windowed = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and device == ENTRY
    return {
        "device": {"id": device},
        "destination": {
            "id": VENUE,
            "venue_name": "Chợ Bến Thành",
            "direction": direction,
            "share_presence": True,
        },
        "camera": {"fps": FPS, "width": SIZE[0], "height": SIZE[1]},
        "policy": {
            "trust_list": str(out / "trust.pem"),
            "authority_keys": str(out / "authority.pem"),
            "repeat_window_s": 5,
        },
        "feedback": {"screen": "window" if windowed else "offscreen", "result_hold_s": 1.5},
        "uplink": {"enabled": broker_url is not None, "broker": broker_url or "mqtt://127.0.0.1:1883"},
        "paths": {"state_dir": str(state)},
    }


# -- what the demo shows besides the screen ----------------------------------------------------


class ScreenRecorder(Feedback):
    """The real feedback, saving a PNG of the screen each time what it shows changes."""

    folder: Path
    saved: int = 0
    inside_shown: tuple[int, ...] = ()  # each new count of people inside that the idle screen showed
    _last: object = None

    def pump(self) -> bool:
        """Pump as usual, then save the screen if its state is new."""
        alive = super().pump()
        state = self.state
        if (
            isinstance(state, IdleState)
            and state.inside is not None
            and state.inside not in self.inside_shown[-1:]
        ):
            self.inside_shown = (*self.inside_shown, state.inside)
        if self.screen is not None and self.state != self._last:
            self._last = self.state
            self.saved += 1
            self.screen.redraw()
            self.screen.save(self.folder / f"{self.saved:03d}-{type(self.state).__name__[:-5].lower()}.png")
        return alive


class GpioLine:
    """A live line in the terminal showing the mock LEDs, buzzer and relay."""

    def __init__(self, feedback: Feedback, settings: Settings, *, out: TextIO = sys.stdout) -> None:
        assert feedback.signals.pin_factory is not None, "the demo runs on gpiozero's MockFactory"
        self._factory = feedback.signals.pin_factory
        self._pins = {
            "green": settings.feedback.green_pin,
            "red": settings.feedback.red_pin,
            "buzzer": settings.feedback.buzzer_pin,
            "relay": settings.feedback.relay_pin,
        }
        self._out = out
        self._tty = out.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="demo-gpio-line", daemon=True)

    def _levels(self) -> tuple[bool, ...]:
        return tuple(bool(pin is not None and self._factory.pin(pin).state) for pin in self._pins.values())

    def _render(self, levels: tuple[bool, ...]) -> str:
        marks = {"green": ("●", "○"), "red": ("●", "○"), "buzzer": ("♪", "·"), "relay": ("▮", "▯")}
        parts = [
            f"{name} {marks[name][0] if on else marks[name][1]}"
            for name, on in zip(self._pins, levels, strict=True)
        ]
        return "  GPIO  " + "   ".join(parts)

    def _watch(self) -> None:
        last: tuple[bool, ...] = ()
        while not self._stop.wait(0.02):
            levels = self._levels()
            if levels != last and (self._tty or levels[:2] != last[:2]):
                self._out.write(
                    ("\r" if self._tty else "") + self._render(levels) + ("" if self._tty else "\n")
                )
                self._out.flush()
            last = levels

    def __enter__(self) -> GpioLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty:
            self._out.write("\n")


# -- running it -----------------------------------------------------------------------------------


@contextlib.contextmanager
def maybe_broker(out: Path, *, wanted: bool) -> Iterator[LocalBroker | None]:
    """A local mosquitto when one is installed (and wanted); otherwise the kiosk only spools."""
    if not wanted or find_mosquitto() is None:
        yield None
        return
    with LocalBroker(out / "broker") as broker:
        yield broker


@dataclass(frozen=True)
class DemoResult:
    """What happened at one lane: the loop's counters, events published, screens saved, people inside."""

    counters: LoopCounters
    published: int
    screens: Path
    saved: int
    inside: int | None  # the lane's count when it stopped (None: it does not count)
    inside_shown: tuple[int, ...]

    def matches(self, cards: list[DemoCard]) -> bool:
        """Whether every person got the decision the demo expects."""
        return self.counters.by_reason == expected_reasons(cards)


def expected_reasons(cards: list[DemoCard]) -> Counter[str]:
    """What the demo should record: each person's decision, and each poster behind one of them."""
    return Counter([card.expected for card in cards] + ["old_venue_qr" for card in cards if card.poster])


EXIT_LEAD_S = 8  # the exit lane's camera sees nobody at first: the first person is inside by then
EXIT_TAIL_S = 4  # and it runs on after the entry lane, to hear of the last entries
START_TIMEOUT_S = 120  # for both lanes to be ready (the exit lane renders its scene meanwhile)


def run_demo(out: Path, *, use_broker: bool = True) -> int:
    """Provision, render, run both lanes over their scenes, print a summary; 0 if all went as expected."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("state", "exit-state"):
        shutil.rmtree(out / name, ignore_errors=True)
    now = datetime.now(UTC)
    with maybe_broker(out, wanted=use_broker) as broker:
        venue = provision(out, broker_url=broker.url if broker else None, now=now)
        print(
            f"kiosk demo: {venue.entry.destination.venue_name}, an entry lane and an exit lane;"
            f" broker: {broker.url if broker else 'none (spool only; the lanes cannot share who is inside)'}"
        )
        for lane, cards in (("entry", venue.entry_cards), ("exit", venue.exit_cards)):
            print(f" at the {lane} lane:")
            for number, card in enumerate(cards, 1):
                print(f"  {number}. {card.label}")
        entry, exit_ = _play_venue(venue, out / "screens")
    _print_summary(venue, entry, exit_, out, shared=broker is not None)
    return 0 if entry.matches(venue.entry_cards) and exit_.matches(venue.exit_cards) else 1


def _play_venue(venue: Venue, screens: Path) -> tuple[DemoResult, DemoResult]:
    """The entry lane here, the exit lane in its own process (its own pins and screen), started together."""
    shutil.rmtree(screens, ignore_errors=True)
    frames = render_show(venue.entry_cards)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or pins inherited
    start = context.Barrier(2, timeout=START_TIMEOUT_S)
    results = context.Queue()
    length = len(frames) + EXIT_TAIL_S * FPS
    args = (venue.exit, venue.exit_cards, screens / "exit", length, start, results)
    lane = context.Process(target=play_exit_lane, args=args, name="demo-exit-lane")
    lane.start()
    try:
        entry = _play(venue.entry, frames, screens / "entry", start=start, gpio=True)
        exit_ = results.get(timeout=START_TIMEOUT_S + length / FPS)
    finally:
        lane.join(timeout=10)
        if lane.is_alive():
            lane.terminate()
    if isinstance(exit_, str):
        raise RuntimeError(f"the exit lane failed: {exit_}")
    return entry, exit_


def play_exit_lane(
    settings: Settings,
    cards: list[DemoCard],
    screens: Path,
    length: int,
    start: Any,
    results: Any,
) -> None:
    """The exit lane's process: render its scene, start with the entry lane, hand back what happened."""
    try:
        show = render_show(cards)
        quiet = [show[0]] * (EXIT_LEAD_S * FPS)
        frames = quiet + show + [show[0]] * max(0, length - len(quiet) - len(show))
        results.put(_play(settings, frames, screens, start=start))
    except Exception as e:  # told to the entry lane, which reports it
        start.abort()
        results.put(f"{type(e).__name__}: {e}")


def _play(
    settings: Settings, frames: list[np.ndarray], screens: Path, *, start: Any, gpio: bool = False
) -> DemoResult:
    feedback = open_feedback(settings.feedback, lang=settings.destination.language, kind=ScreenRecorder)
    feedback.folder = screens
    screens.mkdir(parents=True)
    with assemble(settings, frames=frames, feedback=feedback) as kiosk, contextlib.ExitStack() as stack:
        if gpio:
            stack.enter_context(GpioLine(feedback, settings))
        start.wait()  # both lanes' cameras start together: the scenes are timed against each other
        kiosk.run()
        spool = kiosk.parts.spool
        deadline = time.monotonic() + 5
        while settings.uplink.enabled and spool.unsent_count() and time.monotonic() < deadline:
            time.sleep(0.1)  # let the uplink drain before it is closed
        published = kiosk.counters.decisions - spool.unsent_count()
        inside = kiosk.parts.policy.occupancy
    return DemoResult(
        kiosk.counters, published if settings.uplink.enabled else 0, screens, feedback.saved,
        inside, feedback.inside_shown,
    )  # fmt: skip


def _print_summary(venue: Venue, entry: DemoResult, exit_: DemoResult, out: Path, *, shared: bool) -> None:
    for name, settings, result in (("entry", venue.entry, entry), ("exit", venue.exit, exit_)):
        c = result.counters
        print(f"\n{name} lane ({settings.device.id}, direction {settings.destination.direction}):"
              f" {c.frames} frames, {c.decisions} scans ({c.repeats} repeated frames ignored)")  # fmt: skip
        for reason, count in sorted(c.by_reason.items()):
            print(f"  {reason:<22} {count}")
        print(f"  screens: {result.saved} PNG files in {result.screens}")
        print(f"  inside, as its idle screen showed it: {' → '.join(map(str, result.inside_shown)) or '-'}")
    spooled = entry.counters.decisions + exit_.counters.decisions
    published = entry.published + exit_.published
    print(f"\nevents signed and spooled: {spooled}; acknowledged by the broker: {published}")
    agree = "both lanes agree" if entry.inside == exit_.inside else "the lanes disagree"
    print(f"inside the venue: {entry.inside} at the entry lane, {exit_.inside} at the exit lane ({agree})"
          + ("" if shared else "; without a broker each lane knows only its own scans"))  # fmt: skip
    wanted = expected_reasons(venue.entry_cards), expected_reasons(venue.exit_cards)
    print(
        "every person got the expected decision"
        if entry.matches(venue.entry_cards) and exit_.matches(venue.exit_cards)
        else f"UNEXPECTED: wanted {dict(wanted[0])} at the entry and {dict(wanted[1])} at the exit"
    )
    print(f"state (keys, spool, config) in {out / 'state'} and {out / 'exit-state'}")
