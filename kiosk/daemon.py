"""The scan loop: capture → decode → decide → record → feedback.

The main thread runs this loop and drives the screen (pygame wants the main
thread). The uplink's drain and paho's network loop run in their own threads;
gpiozero runs its own blink and beep threads. One stop Event is shared; SIGTERM
and SIGINT set it, SIGHUP asks for a reload. Nothing slow sits on the loop: the
only disk write there is the one event's commit, made BEFORE the feedback, so a
person who was let in always has a record.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Literal, Protocol

import numpy as np

from kiosk.camera import Frame, FrameSource
from kiosk.cards import Card, InspectorCard, Rejection, parse_card, read_payload
from kiosk.cards.dcc import PREFIX as DCC_PREFIX
from kiosk.cards.inspector import is_inspector_payload
from kiosk.clock import ClockWatch
from kiosk.decoder import Decoder, DecodeResult, Symbol
from kiosk.errors import CameraEnded, CameraError, KioskError, SpoolError
from kiosk.events import EventDraft
from kiosk.feedback import Feedback
from kiosk.notify import Notifier, watchdog_interval_s
from kiosk.policy import Decision, Policy, listed_status
from kiosk.presence import PresenceBoard, Sighting
from kiosk.reasons import Reason
from kiosk.repeats import PayloadKeys, RecentScans
from kiosk.screen.states import IdleState
from kiosk.spool import Spool
from kiosk.statuslist import KeySource, StatusListStore
from kiosk.street_check import street_finding
from kiosk.trustlist import TrustList
from kiosk.venue_check import INSPECTION_SCREEN_S, DeviceReadings, inspection_figures, inspector_draft

log = logging.getLogger("kiosk.daemon")
decisions_log = logging.getLogger("kiosk.decision")

CAMERA_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
STATUS_INTERVAL_S = 5.0
STATS_INTERVAL_S = 60.0
IDLE_INTERVAL_S = 2.0
RUN_STATUS_INTERVAL_S = 1.0  # how often the run status is offered; its file throttles the writes
BROKER_FAULT_AFTER_S = 120.0
# A card held up while nothing can be recorded is retried on every frame, but refused aloud
# (and logged) once per this many seconds: not the repeat window, which may be zero or minutes.
NOT_RECORDED_NOTICE_S = 5.0


class UplinkPort(Protocol):
    """What the loop needs from the MQTT uplink (the pipeline never imports paho)."""

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        ...

    def wake(self) -> None:
        """A new event is in the spool: drain soon (never blocks)."""
        ...


@dataclass
class LoopCounters:
    """What the loop has done since start; read by the state topic and the demo summary."""

    frames: int = 0
    decoded: int = 0
    decisions: int = 0
    repeats: int = 0
    hints: int = 0
    errors: int = 0
    camera_restarts: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)


@dataclass
class LoopState:
    """How the loop stands now: frame rate, clock, and the fault in force; read by the state topic."""

    fps: float = 0.0
    clock_synced: bool = False
    fault: str | None = None  # camera, spool, broker or screen: what the screen and LEDs show
    screen_problem: str | None = None  # why the display is out (the kiosk runs headless meanwhile)
    inside: int = 0  # people counted inside the venue (every lane), as the policy knows it


@dataclass(frozen=True)
class Scan:
    """One decoded code on its way through the loop: its bytes, when it was read, how long decoding took."""

    raw: bytes
    at: datetime
    clock_synced: bool
    decode_ms: float


@dataclass(frozen=True)
class Parts:
    """The collaborators of the loop, each already open."""

    open_camera: Callable[[], FrameSource]
    decoder: Decoder
    policy: Policy
    spool: Spool
    feedback: Feedback
    uplink: UplinkPort | None = None
    trust: TrustList | None = None
    notifier: Notifier = field(default_factory=Notifier)
    clock: ClockWatch = field(default_factory=ClockWatch)
    reload: Callable[[], None] | None = None
    idle: Callable[[], IdleState] | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    mode: Literal["kiosk", "inspector"] = "kiosk"
    log_name: bool = False  # the decision line carries the masked name (log.decision_name = "masked")
    authority_keys: KeySource | None = None
    statuslist: StatusListStore | None = None
    readings: Callable[[np.ndarray | None], DeviceReadings] | None = None
    presence: PresenceBoard | None = None  # the venue's other lanes (destination.share_presence)
    run_status: Callable[[str | None], object] | None = None  # told the fault in force (kiosk.runstatus)


class Kiosk:
    """The scan loop. `run()` returns when the stop event is set or a replay ends."""

    def __init__(
        self,
        parts: Parts,
        *,
        stop: threading.Event | None = None,
        counters: LoopCounters | None = None,
        state: LoopState | None = None,
        end_on_replay_end: bool = True,
    ) -> None:
        self.parts = parts
        self.stop = stop or threading.Event()
        self.counters = counters or LoopCounters()
        self.state = state or LoopState()
        self.end_on_replay_end = end_on_replay_end
        self._reload_requested = threading.Event()
        self._camera: FrameSource | None = None
        self._camera_failures = 0
        self._ready = False
        self._offline_since: float | None = None
        self._watchdog_s = watchdog_interval_s() or 2.0
        # Inspector cards and street checks, by payload (entrance scans repeat in the policy).
        self._checked: RecentScans[str] = RecentScans()
        self._not_recorded_told: RecentScans[bool] = RecentScans()  # payloads refused lately, unrecorded
        self._payload_key = PayloadKeys()  # both tables know a payload by its keyed hash, not its text
        # A person's card in this frame, and when one was last handled: a poster then passes silently.
        self._person_in_view = False
        self._person_at: datetime | None = None
        self._spool_failing = False
        self._stop_signal: str | None = None  # the signal that asked the loop to stop
        self._due = {
            "watchdog": 0.0,
            "status": 0.0,
            "idle": 0.0,
            "run_status": 0.0,
            "stats": time.monotonic() + STATS_INTERVAL_S,
        }

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        """Loop until the stop event is set (or a replay ends), with READY to systemd after the first turn."""
        try:
            while not self.stop.is_set():
                self.turn()
            if self._stop_signal is not None:
                log.info("%s: stopping", self._stop_signal)
        except CameraEnded:
            log.info("replay finished")
        finally:
            self._close_camera()
        return 0

    def request_reload(self) -> None:
        """Ask the loop to reload the trust list, status list and config at its next turn."""
        self._reload_requested.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the loop cleanly; SIGHUP reloads."""

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            # No I/O here: the signal may arrive while this thread is inside a log
            # handler's write, and logging from the handler then fails mid-way and
            # loses the stop. The loop logs it when it ends.
            self.stop.set()
            self._stop_signal = signal.Signals(signum).name

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def _close_camera(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None

    # -- one turn --------------------------------------------------------------------

    def turn(self) -> None:
        """Read one frame (reopening a lost camera), handle it, and do what is due."""
        try:
            frame = self._read_or_reopen()
        except CameraEnded:
            if self.end_on_replay_end:
                raise
            frame = None
            self.stop.wait(0.1)
        self._announce_ready()
        if frame is not None:
            self._handle_frame(frame)
        self._housekeeping()

    def _announce_ready(self) -> None:
        """Tell systemd READY once, after the first camera try (frame or fault)."""
        # A kiosk booted without its camera stays up to show the fault; no restart loop.
        if not self._ready:
            self._ready = True
            self.parts.notifier.ready(self.summary())

    def _read_or_reopen(self) -> Frame | None:
        try:
            if self._camera is None:
                self._camera = self.parts.open_camera()
            frame = self._camera.read()
        except CameraEnded:
            raise
        except CameraError as e:
            self._camera_lost(e)
            return None
        self._frame_arrived()
        return frame

    def _frame_arrived(self) -> None:
        self.counters.frames += 1
        self._camera_failures = 0
        if self.state.fault == "camera":
            self._set_fault(None)

    def _camera_lost(self, error: CameraError) -> None:
        """Say so on the screen and LEDs, close the camera, and wait (with backoff) before reopening."""
        self._camera_failures += 1
        self.counters.camera_restarts += 1
        self.counters.errors += 1
        log.error("camera: %s", error)
        self._set_fault("camera")
        self._announce_ready()
        self._close_camera()
        delay = CAMERA_BACKOFF_S[min(self._camera_failures, len(CAMERA_BACKOFF_S)) - 1]
        self._wait_pumping(delay)

    def _wait_pumping(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            self._pump()
            self._pet_watchdog(time.monotonic())
            self.stop.wait(0.05)

    def _handle_frame(self, frame: Frame) -> None:
        started = time.perf_counter()
        result = read_codes(self.parts.decoder, frame.pixels)
        decode_ms = (time.perf_counter() - started) * 1000
        # The small live preview (off by default) keeps a scaled copy now: a camera frame is only lent.
        self.parts.feedback.preview(frame.pixels, result.symbols[0].corners if result.symbols else None)
        self._person_in_view = not all(passes_by(s.raw) for s in result.symbols)
        for symbol in result.symbols:
            self.counters.decoded += 1
            self.handle_symbol(symbol, decode_ms, pixels=frame.pixels)
        self._person_in_view = False
        if result.undecoded and self.parts.feedback.hint("still"):
            self.counters.hints += 1
        self._pump()

    def handle_symbol(self, symbol: Symbol, decode_ms: float, *, pixels: np.ndarray | None = None) -> None:
        """Route one code: an inspector card, a street check (inspector mode), or an entrance scan."""
        now = self.parts.now()
        synced = self.parts.clock.synced()
        try:
            item = read_payload(
                symbol.raw, trust=self.parts.trust, authority_keys=self.parts.authority_keys,
                now=now, clock_synced=synced,
            )  # fmt: skip
            scan = Scan(symbol.raw, now, synced, decode_ms)
            if isinstance(item, InspectorCard) or item.format == "inspector":
                self._inspector_card(item, scan, pixels)
            elif self.parts.mode == "inspector":
                self._street_check(item, scan)
            else:
                self._entrance_scan(item, scan)
        except Exception as e:  # no code and no full disk may stop the loop; nobody passes unrecorded
            self._not_recorded(e, symbol.raw, now)

    def _not_recorded(self, error: Exception, payload: bytes, now: datetime) -> None:
        """The decision could not be recorded: refuse (fail closed), say so now and then, keep scanning."""
        if isinstance(error, SpoolError):
            self._spool_failing = True  # until a record succeeds again
            self._set_fault("spool")
        key = self._payload_key(payload)
        if self._not_recorded_told.find(key, now):
            return  # the same card, still held up: told already; the next frame tries the record again
        self._not_recorded_told.remember((key,), True, now, timedelta(seconds=NOT_RECORDED_NOTICE_S))
        self.counters.errors += 1
        log.error(
            "a scan could not be recorded, the person was refused: %s",
            error,
            exc_info=not isinstance(error, KioskError),
        )
        self.parts.feedback.failed(Reason.INTERNAL_ERROR)

    def _entrance_scan(self, item: Card | Rejection, scan: Scan) -> None:
        """Decide, record durably, and only then commit the decision and signal; a repeat does nothing.

        A poster (or an unrecognised code) seen with a person's card, or within the repeat
        window of one, is recorded as the policy counts it but not signalled: the person's
        decision is the one shown, not "old venue QR" from the wall behind them.
        """
        policy = self.parts.policy
        decision = policy.evaluate(item, now=scan.at, clock_synced=scan.clock_synced, payload=scan.raw)
        quiet = self._behind_a_person(item, scan.at)
        if decision.repeat:
            policy.commit(decision)  # the window slides; nothing is recorded
            self.counters.repeats += 1
            return
        spooled = self.parts.spool.record(draft_for(decision, scan.decode_ms))
        policy.commit(decision)
        self._tell_lanes(decision, epoch=spooled.epoch, seq=spooled.seq)
        self._recorded(str(decision.reason))
        if not quiet:
            self._signal_recorded("scan", spooled.seq, lambda: show_decision(self.parts.feedback, decision))
        log_decision(decision, seq=spooled.seq, decode_ms=scan.decode_ms, name=self.parts.log_name)

    def _signal_recorded(self, what: str, seq: int, show: Callable[[], None]) -> None:
        """Signal a recorded decision; when that fails the record stands, and the log says what failed."""
        try:
            show()
        except Exception as e:  # the event is in the spool: only the signal failed
            self.counters.errors += 1
            log.error("the %s is recorded (seq %d), but signalling it failed: %s", what, seq, e,
                      exc_info=not isinstance(e, KioskError))  # fmt: skip

    def _tell_lanes(self, decision: Decision, *, epoch: int, seq: int) -> None:
        """Share a recorded entry or exit with the venue's other lanes (numbered by its event)."""
        effects = decision.effects
        if self.parts.presence is None or effects.move is None or not effects.presence_keys:
            return
        self.parts.presence.mine(
            Sighting(decision.at, effects.move, effects.presence_keys), epoch=epoch, seq=seq
        )

    def _merge_lanes(self) -> None:
        """Apply the other lanes' entries and exits that the uplink received (on the loop's thread)."""
        if self.parts.presence is None:
            return
        received = self.parts.presence.take_received()
        if received:
            changed = self.parts.policy.merge(received, now=self.parts.now())
            log.debug("presence: %d moves from other lanes, %d changed who is inside", len(received), changed)

    def _behind_a_person(self, item: Card | Rejection, at: datetime) -> bool:
        """Whether a code nobody shows is in view with a person's card (noting when a person's was seen)."""
        if not (isinstance(item, Rejection) and item.reason in PASSING_REASONS):
            self._person_at = at
            return False
        window = timedelta(seconds=self._repeat_window())
        return self._person_in_view or (self._person_at is not None and at - self._person_at <= window)

    def _inspector_card(
        self, result: InspectorCard | Rejection, scan: Scan, pixels: np.ndarray | None
    ) -> None:
        """An inspector's card: the inspection screen for a minute (or a plain fail), never the relay."""
        if self._repeated(scan):
            return
        spooled = self.parts.spool.record(
            inspector_draft(result, at=scan.at, clock_synced=scan.clock_synced, decode_ms=scan.decode_ms)
        )
        reason = str(result.reason) if isinstance(result, Rejection) else "inspector_card_ok"
        window = INSPECTION_SCREEN_S if isinstance(result, InspectorCard) else self._repeat_window()
        self._checked.remember((self._payload_key(scan.raw),), reason, scan.at, timedelta(seconds=window))
        self._recorded(reason)
        log.info("inspector card: %s seq=%d", reason, spooled.seq)
        if isinstance(result, Rejection):
            self.parts.feedback.failed(result.reason)
        else:
            self._show_inspection(pixels, scan.at)

    def _show_inspection(self, pixels: np.ndarray | None, at: datetime) -> None:
        """The inspection screen; the visit is recorded already, so a failure here refuses nobody."""
        if self.parts.readings is None:
            return
        try:
            figures = inspection_figures(self.parts.spool, self.parts.readings(pixels), now=at)
        except Exception as e:  # the figures are a courtesy: the loop and the record stand
            self.counters.errors += 1
            log.error("the inspector's visit is recorded, but the inspection screen could not be built: %s",
                      e, exc_info=not isinstance(e, KioskError))  # fmt: skip
            self.parts.feedback.inspection_unavailable()
            return
        self.parts.feedback.inspection(figures)

    def _street_check(self, item: Card | Rejection, scan: Scan) -> None:
        """Inspector mode: what the card says and its status-list state, recorded as an inspection."""
        if self._repeated(scan):
            return
        store = self.parts.statuslist
        blocked = self.parts.policy.rules.blocked_statuses
        finding = street_finding(
            item,
            status=listed_status(store, item, scan.at, blocked=blocked),
            now=scan.at,
            blocked=blocked,
            statuslist_loaded=store is not None and store.current is not None,
        )
        draft = finding.draft(clock_synced=scan.clock_synced, decode_ms=scan.decode_ms)
        spooled = self.parts.spool.record(draft)
        window = timedelta(seconds=self._repeat_window())
        self._checked.remember((self._payload_key(scan.raw),), draft.reason, scan.at, window)
        self._recorded(str(finding.reason))
        self._signal_recorded("street check", spooled.seq, lambda: self.parts.feedback.street(finding))
        log.info("street check: verdict=%s reason=%s seq=%d", finding.verdict, finding.reason, spooled.seq)

    def _repeated(self, scan: Scan) -> bool:
        """Whether this payload was checked within its window (counted as a repeat; nothing is redone)."""
        key = self._payload_key(scan.raw)
        if self._checked.find(key, scan.at) is None:
            return False
        self._checked.touch(key, scan.at)
        self.counters.repeats += 1
        return True

    def _no_qr_presses(self) -> None:
        """Each press of the no-QR button (or key) records a person without a QR (street or venue)."""
        for _ in range(self.parts.feedback.take_no_qr_presses()):
            now = self.parts.now()
            try:
                if self.parts.mode == "inspector":
                    self._street_no_qr(now)
                else:
                    self._venue_no_qr(now)
            except Exception as e:  # a press that cannot be recorded is told to staff; the loop goes on
                self._press_not_recorded(e)

    def _street_no_qr(self, now: datetime) -> None:
        """Inspector mode: a `no_qr` event (a street figure)."""
        draft = EventDraft(kind="no_qr", verdict="fail", reason="no_qr", ts=int(now.timestamp() * 1000),
                           clock_synced=self.parts.clock.synced())  # fmt: skip
        spooled = self.parts.spool.record(draft)
        self._recorded("no_qr")
        self._signal_recorded("person without a QR", spooled.seq, self.parts.feedback.no_qr_recorded)

    def _venue_no_qr(self, now: datetime) -> None:
        """At a venue's lane: an anonymous entry (or exit), counted inside and told to the other lanes."""
        decision = self.parts.policy.no_qr(now=now, clock_synced=self.parts.clock.synced())
        spooled = self.parts.spool.record(draft_for(decision, 0.0))
        self.parts.policy.commit(decision)
        self._tell_lanes(decision, epoch=spooled.epoch, seq=spooled.seq)
        self._recorded(str(decision.reason))
        self._signal_recorded("person without a QR", spooled.seq, self.parts.feedback.no_qr_recorded)
        log_decision(decision, seq=spooled.seq, decode_ms=0.0, name=self.parts.log_name)

    def _press_not_recorded(self, error: Exception) -> None:
        """A no-QR press could not be recorded: staff are told at once (each press is a person)."""
        if isinstance(error, SpoolError):
            self._spool_failing = True
            self._set_fault("spool")
        self.counters.errors += 1
        log.error("a person without a QR could not be recorded: %s", error,
                  exc_info=not isinstance(error, KioskError))  # fmt: skip
        self.parts.feedback.failed(Reason.INTERNAL_ERROR)

    def _repeat_window(self) -> float:
        return float(self.parts.policy.rules.repeat_window_s)

    def _recorded(self, reason: str) -> None:
        self._spool_failing = False
        if self.parts.uplink is not None:
            self.parts.uplink.wake()
        self.counters.decisions += 1
        self.counters.by_reason[reason] += 1

    def _pump(self) -> None:
        if not self.parts.feedback.pump():
            log.info("the screen was closed: stopping")
            self.stop.set()
        self._no_qr_presses()

    # -- what is due now and then ------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._reload_requested.is_set():
            self._reload()
        self._merge_lanes()
        self._pet_watchdog(now)
        if self._is_due("idle", now, IDLE_INTERVAL_S):
            self._refresh_idle(now)
        if self._is_due("status", now, STATUS_INTERVAL_S):
            self.parts.notifier.status(self.summary())
        if self._is_due("stats", now, STATS_INTERVAL_S):
            log_counters(self.counters, self.state)
        if self.parts.run_status is not None and self._is_due("run_status", now, RUN_STATUS_INTERVAL_S):
            self.parts.run_status(self.state.fault)

    def _is_due(self, what: str, now: float, interval: float) -> bool:
        if now < self._due[what]:
            return False
        self._due[what] = now + interval
        return True

    def _pet_watchdog(self, now: float) -> None:
        """The loop is turning: the watchdog guards its liveness, not the camera's presence.

        A missing or stalled camera is a fault shown on the screen, LEDs and state topic
        while the loop retries it; a restart would only hide that from the technician. A
        loop stuck in a call that never returns stops petting, and systemd restarts it.
        """
        if self._is_due("watchdog", now, self._watchdog_s):
            self.parts.notifier.watchdog()

    def _refresh_idle(self, now: float) -> None:
        self.state.fps = self._camera.fps if self._camera is not None else 0.0
        self.state.clock_synced = self.parts.clock.synced()
        self.state.screen_problem = self.parts.feedback.screen_problem
        self.parts.policy.expire(self.parts.now())
        self.state.inside = self.parts.policy.occupancy
        try:
            if self.parts.idle is not None:
                self.parts.feedback.idle(self.parts.idle())
            fault = self._standing_fault(now)
        except SpoolError as e:
            log.error("cannot read the spool: %s", e)
            fault = "spool"
        if self.state.fault != "camera":
            # A lost display ranks last: nobody sees the screen, but the LEDs blink it.
            self._set_fault(fault or ("screen" if self.state.screen_problem else None))

    def _standing_fault(self, now: float) -> str | None:
        """A full spool outranks a long-lost broker; the camera fault is set by the reader."""
        if self._spool_failing or self.parts.spool.alarms():
            return "spool"
        uplink = self.parts.uplink
        if uplink is None or uplink.connected:
            self._offline_since = None
            return None
        self._offline_since = self._offline_since or now
        return "broker" if now - self._offline_since >= BROKER_FAULT_AFTER_S else None

    def _reload(self) -> None:
        self._reload_requested.clear()
        try:
            if self.parts.reload is not None:
                self.parts.reload()
            log.info("reloaded the configuration, the trust list and the status list")
        except Exception as e:  # a bad new file must never stop the kiosk: keep the old state
            self.counters.errors += 1
            log.error("reload failed, keeping the previous state: %s", e)

    def _set_fault(self, problem: str | None) -> None:
        if problem == self.state.fault:
            return
        self.state.fault = problem
        if problem is None:
            self.parts.feedback.clear_fault()
        else:
            self.parts.feedback.fault(problem)

    def summary(self) -> str:
        """One line for `systemctl status`: frame rate, decisions, backlog, fault."""
        fps = self._camera.fps if self._camera is not None else 0.0
        fault = f", fault: {self.state.fault}" if self.state.fault else ""
        try:
            backlog = str(self.parts.spool.unsent_count())
        except SpoolError:
            backlog = "unknown"
        return f"{fps:.0f} fps, {self.counters.decisions} decisions, backlog {backlog}{fault}"


def read_codes(decoder: Decoder, pixels: np.ndarray) -> DecodeResult:
    """The codes in view, a person's own last, so that theirs is the decision shown.

    The decoder may stop at the first code it reads; when that is an old poster or an
    unrecognised code (a poster on the wall behind the person), the rest of the frame is read.
    """
    result = decoder.decode(pixels)
    if result.symbols and all(passes_by(s.raw) for s in result.symbols):
        result = decoder.decode(pixels, every=True)
    return replace(result, symbols=tuple(sorted(result.symbols, key=lambda s: not passes_by(s.raw))))


# The reasons of codes nobody shows at the kiosk: posters on the wall, stray codes in view.
PASSING_REASONS = frozenset({Reason.OLD_VENUE_QR, Reason.UNRECOGNISED})


def passes_by(raw: bytes) -> bool:
    """Whether a code is one nobody shows: an old venue poster, or a code of no known shape."""
    if is_inspector_payload(raw) or raw.startswith(DCC_PREFIX.encode()):
        return False  # a person's; and a vaccine passport is not worth parsing twice
    item = parse_card(raw, trust=None, now=datetime.now(UTC))
    return isinstance(item, Rejection) and item.reason in PASSING_REASONS


def show_decision(feedback: Feedback, decision: Decision) -> None:
    """Green and the masked name for a pass; red and the reason's message for a fail."""
    if decision.passed:
        feedback.passed(decision.masked_name, decision.direction or "in", at=decision.at)
    else:
        feedback.failed(decision.reason, **decision.details)


def draft_for(decision: Decision, decode_ms: float) -> EventDraft:
    """The event draft that records a decision (the spool adds seq, sealed identities and signature)."""
    return EventDraft(
        verdict=decision.verdict,
        reason=str(decision.reason),
        format=decision.format,
        direction=decision.direction,
        card_identities=decision.identities or ((decision.identity,) if decision.identity else ()),
        ts=int(decision.at.timestamp() * 1000),
        clock_synced=decision.clock_synced,
        decode_ms=round(decode_ms, 3),
        # A person without a card is known only by an anonymous key (kiosk.presence).
        presence_key=decision.effects.presence_keys[0]
        if decision.identity is None and decision.effects.presence_keys
        else None,
    )


def log_counters(counters: LoopCounters, state: LoopState) -> None:
    """The loop's counters and frame rate, once a minute, for the journal."""
    c = counters
    log.info(
        "counters frames=%d decoded=%d decisions=%d repeats=%d hints=%d errors=%d camera_restarts=%d"
        " fps=%.1f",
        c.frames, c.decoded, c.decisions, c.repeats, c.hints, c.errors, c.camera_restarts, state.fps,
    )  # fmt: skip


def log_decision(decision: Decision, *, seq: int, decode_ms: float, name: bool = False) -> None:
    """One structured line per decision: no personal datum, unless asked for the masked name."""
    decisions_log.info(
        "decision verdict=%s reason=%s format=%s direction=%s seq=%d decode_ms=%.1f clock_synced=%s%s",
        decision.verdict,
        decision.reason,
        decision.format,
        decision.direction or "-",
        seq,
        decode_ms,
        decision.clock_synced,
        f" name={decision.masked_name!r}" if name else "",
    )
