"""The application: open every part in a visible order, run the loop, close in reverse.

Start-up: keys → spool → trust list → status list → policy → feedback (GPIO and
screen) → uplink → camera (opened by the loop, which tells systemd READY after its
first try, so a kiosk without a camera stays up and shows the fault). Shutdown,
after the loop stops: camera → uplink (sends what it can within the grace period,
publishes `stopped`) → feedback → spool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiosk.camera import open_camera
from kiosk.clock import ClockWatch
from kiosk.config import FeedbackConfig, Settings, load_config
from kiosk.daemon import Kiosk, LoopState, Parts
from kiosk.decoder import open_decoder
from kiosk.errors import StatusListError, TrustListError
from kiosk.feedback import Feedback
from kiosk.health import Health
from kiosk.imaging import sharpness
from kiosk.keys import load_private_key, load_public_keys
from kiosk.notify import Notifier
from kiosk.policy import Policy
from kiosk.presence import PresenceBoard, load_peers
from kiosk.runstatus import RunStatusFile, run_status_path
from kiosk.screen.states import IdleState
from kiosk.sealing import load_destination_key, open_sealer, tag
from kiosk.spool import Spool, SpoolLimits
from kiosk.statuslist import StatusListStore
from kiosk.trustlist import TOKEN_FILE, TrustList, TrustListStore
from kiosk.venue_check import DeviceReadings

if TYPE_CHECKING:
    from kiosk.text import Lang

log = logging.getLogger("kiosk.app")

SHUTDOWN_GRACE_S = 2.0


@contextlib.contextmanager
def assemble(
    settings: Settings,
    *,
    frames: Sequence[np.ndarray] | None = None,
    feedback: Feedback | None = None,
    stop: threading.Event | None = None,
    end_on_replay_end: bool = True,
    config_path: Path | None = None,
) -> Iterator[Kiosk]:
    """Open every part of the kiosk and yield the loop; close everything on the way out.

    `config_path` is the file SIGHUP re-reads (None: only the lists are reloaded).
    """
    notifier = Notifier()
    with contextlib.ExitStack() as stack:
        stack.callback(notifier.close)
        spool = stack.enter_context(open_spool(settings))
        trust = open_trust_list(settings)
        trust_store = open_trust_store(settings, trust)
        statuslist = StatusListStore.from_config(
            settings.policy.authority_keys, settings.paths.statuslist_file
        )
        policy = Policy(
            settings.policy,
            settings.destination,
            statuslist=statuslist,
            presence_keys=presence_keys(settings),
        )
        restore_presence(policy, spool, settings)
        feedback = feedback or open_feedback(settings.feedback, lang=settings.destination.language)
        stack.callback(feedback.close)
        state = LoopState()
        live = LiveSettings(settings, config_path)
        board = open_presence(settings)
        uplink = open_uplink(
            settings,
            spool=spool,
            statuslist=statuslist,
            trust_store=trust_store,
            state=state,
            stack=stack,
            presence=board,
        )
        parts = Parts(
            open_camera=partial(open_camera, settings.camera, frames=frames),
            decoder=open_decoder(settings.decoder),
            policy=policy,
            spool=spool,
            feedback=feedback,
            uplink=uplink,
            trust=trust,
            notifier=notifier,
            clock=ClockWatch(),
            reload=partial(
                reload_all, live, trust=trust, trust_store=trust_store, statuslist=statuslist, policy=policy
            ),
            idle=partial(idle_state, live, spool=spool, uplink=uplink, policy=policy),
            mode=settings.device.mode,
            log_name=settings.log.decision_name == "masked",
            authority_keys=load_public_keys(settings.policy.authority_keys)
            if settings.policy.authority_keys
            else {},
            statuslist=statuslist,
            readings=partial(device_readings, settings, state=state, uplink=uplink),
            presence=board if uplink is not None else None,
            run_status=partial(
                record_run_status, RunStatusFile(run_status_path(settings.paths.state_dir)), uplink=uplink
            ),
        )
        try:
            yield Kiosk(parts, stop=stop, state=state, end_on_replay_end=end_on_replay_end)
        finally:
            notifier.stopping()  # before the closing starts, so systemd knows a clean stop is under way


def open_feedback(
    config: FeedbackConfig, *, lang: Lang = "vi", kind: type[Feedback] = Feedback, **parts: Any
) -> Any:
    """The feedback the config names (a `kind` of Feedback): LEDs, buzzer, screen and speaker.

    pygame is imported here, at start-up, and never by the loop: a kiosk set to
    `screen = "none"` without sound runs without it. A display that fails to open
    is retried now and then (kiosk.screen.keeper) while the kiosk runs headless.
    Like Feedback, it owns the parts it is given: when one fails to open, all are closed.
    """
    with contextlib.ExitStack() as undo:
        for part in parts.values():
            if callable(getattr(part, "close", None)):
                undo.callback(part.close)
        if "screen" not in parts and config.screen != "none":
            from kiosk.screen.display import Screen
            from kiosk.screen.keeper import KeptScreen

            now = parts.get("now", datetime.now)
            # A display that fails to open leaves the kiosk headless, not stopped: it is retried.
            parts["screen"] = undo.enter_context(KeptScreen(partial(Screen, config, lang=lang, now=now)))
        if "sound" not in parts:
            from kiosk.sound import Sound

            parts["sound"] = undo.enter_context(Sound(config.sound))
        feedback = kind(config, lang=lang, **parts)
        undo.pop_all()
    return feedback


def presence_keys(settings: Settings) -> Callable[[str], tuple[str, ...]]:
    """How the policy knows a person in its presence table: the destination key's tag, as in the spool."""
    key = load_destination_key(settings.paths.destination_key_file)
    # One tag whatever the card's format: a person who came in with one card may leave with
    # another carrying the same number.
    return lambda identity: (tag(key, identity),)


def open_presence(settings: Settings) -> PresenceBoard | None:
    """The sharing of who is inside with the destination's other lanes, when it is configured."""
    destination = settings.destination
    if not (destination.share_presence and settings.uplink.enabled):
        return None
    peers = load_peers(settings.paths.peers_file, destination.id)
    log.info("sharing presence with %d other lanes: %s", len(peers), ", ".join(sorted(peers)) or "none yet")
    return PresenceBoard(
        device=settings.device.id,
        destination=destination.id,
        signing_key=load_private_key(settings.paths.key_file),
        peers=peers,
        timeout=timedelta(seconds=destination.presence_timeout_s),
    )


def counts_presence(settings: Settings) -> bool:
    """Whether this kiosk knows who is inside: auto mode sees both ways, shared lanes together do."""
    return settings.destination.direction == "auto" or settings.destination.share_presence


def restore_presence(policy: Policy, spool: Spool, settings: Settings) -> None:
    """After a restart, who is inside is rebuilt from the spool's entries and exits (the lanes add theirs)."""
    if not counts_presence(settings):
        return
    since = datetime.now(UTC) - timedelta(seconds=settings.destination.presence_timeout_s)
    passes = spool.recent_passes(int(since.timestamp() * 1000))
    policy.restore_presence(
        (datetime.fromtimestamp(ts / 1000, UTC), "in" if direction == "in" else "out", identity)
        for ts, direction, identity in passes
    )
    log.info("presence rebuilt from the spool: %d people inside", policy.occupancy)


def open_spool(settings: Settings) -> Spool:
    """The event spool, with the device's signing key and the sealer of card identities."""
    limits = SpoolLimits(
        retention_days=settings.spool.retention_days,
        disk_budget_bytes=settings.spool.disk_budget_mb * 1024 * 1024,
        alarm_fraction=settings.spool.alarm_fraction,
    )
    return Spool.open(
        settings.paths.spool_file,
        device_id=settings.device.id,
        destination_id=settings.destination.id,
        signing_key=load_private_key(settings.paths.key_file),
        sealer=open_sealer(settings),
        limits=limits,
    )


def open_trust_list(settings: Settings) -> TrustList | None:
    """The configured trust list; with only the authority's keys, an empty one the signed lists fill."""
    if settings.policy.trust_list:
        return TrustList.load(settings.policy.trust_list)
    if settings.policy.authority_keys:
        # Nothing to be older than: the first list the authority signed (from the broker, or
        # saved in the state folder) is taken; until then every vaccine passport is unverifiable.
        return TrustList()
    return None


def open_trust_store(settings: Settings, trust: TrustList | None) -> TrustListStore | None:
    """The newest signed trust list (saved in the state folder) over the configured one; None without one."""
    if trust is None or settings.policy.authority_keys is None:
        return None  # nothing to verify with, or no trust list to keep up to date
    keys = load_public_keys(settings.policy.authority_keys)
    return TrustListStore(trust, keys, path=settings.paths.state_dir / TOKEN_FILE)


def open_uplink(
    settings: Settings,
    *,
    spool: Spool,
    statuslist: StatusListStore,
    trust_store: TrustListStore | None = None,
    state: LoopState,
    stack: contextlib.ExitStack,
    presence: PresenceBoard | None = None,
) -> Any:
    """Start the MQTT uplink (its own threads), or None when publishing is disabled."""
    if not settings.uplink.enabled:
        return None
    from kiosk.uplink import Uplink

    uplink = Uplink.from_settings(
        settings,
        spool=spool,
        health=partial(health, spool=spool, state=state, inside=counts_presence(settings)),
        on_statuslist=partial(offer_statuslist, statuslist),
        on_trustlist=partial(offer_trustlist, trust_store) if trust_store is not None else None,
        presence=presence,
    )
    uplink.start()
    stack.callback(uplink.close, SHUTDOWN_GRACE_S)
    return uplink


def offer_statuslist(store: StatusListStore, token: bytes) -> None:
    """Hand a status list from the broker to the store, which verifies it; refusals are logged."""
    try:
        store.offer(token)
    except StatusListError as e:
        log.warning("status list refused: %s", e)


def offer_trustlist(store: TrustListStore, token: bytes) -> None:
    """Hand a trust list from the broker to the store, which verifies it; refusals reach the inbox's count."""
    store.offer(token)


@dataclass
class LiveSettings:
    """The settings in force and the file they came from; SIGHUP swaps in what the file says now."""

    settings: Settings
    path: Path | None


# Sections a SIGHUP can change without a restart; the others (device, camera, uplink, paths...) need one.
RELOADABLE = ("destination", "policy")


def reload_all(
    live: LiveSettings,
    *,
    trust: TrustList | None,
    statuslist: StatusListStore,
    policy: Policy,
    trust_store: TrustListStore | None = None,
) -> None:
    """SIGHUP: re-read the config's reloadable sections, the trust list and the saved status list.

    Raises (and changes nothing) when the new config is invalid.
    """
    new = load_config(live.path) if live.path is not None else None
    if trust is not None and trust.path is not None:
        trust.reload()  # read everything that can fail before anything changes
    if trust_store is not None:
        try:
            trust_store.reload()
        except (TrustListError, OSError) as e:  # the newest list in force stays
            log.warning("saved trust list not applied: %s", e)
    if new is not None:
        policy.reconfigure(new.policy, new.destination)
        _warn_fixed_sections(live.settings, new)
        live.settings = live.settings.model_copy(update={name: getattr(new, name) for name in RELOADABLE})
    saved = live.settings.paths.statuslist_file
    if saved.exists():
        with contextlib.suppress(StatusListError):
            statuslist.offer(saved.read_bytes())


# Keys of reloadable sections that name files opened at start-up: a new value needs a restart.
OPENED_AT_START = ("trust_list", "authority_keys")


def _warn_fixed_sections(old: Settings, new: Settings) -> None:
    changed = [
        name
        for name in Settings.model_fields
        if name not in RELOADABLE and getattr(old, name) != getattr(new, name)
    ]
    changed += [
        f"policy.{key}" for key in OPENED_AT_START if getattr(old.policy, key) != getattr(new.policy, key)
    ]
    if changed:
        log.warning("restart the kiosk to apply the changes to [%s]", "], [".join(changed))


def health(*, spool: Spool, state: LoopState, inside: bool = False) -> Health:
    """The health in the retained state message (called from the uplink's thread)."""
    return Health.of_spool(
        spool,
        fps=round(state.fps, 1),
        clock_synced=state.clock_synced,
        alarms=[
            f"fault: {name}" for name in (state.fault, "screen" if state.screen_problem else None) if name
        ],
        inside=state.inside if inside else None,
    )


def record_run_status(file: RunStatusFile, fault: str | None, *, uplink: Any) -> bool:
    """Offer the loop's fault and the time of central's last ack to the run-status file."""
    return file.offer(fault, uplink.stats().last_ack if uplink is not None else None)


def device_readings(
    settings: Settings, pixels: np.ndarray | None, *, state: LoopState, uplink: Any
) -> DeviceReadings:
    """What the inspection screen needs that only the running daemon knows."""
    return DeviceReadings(
        device_id=settings.device.id,
        destination_id=settings.destination.id,
        fps=state.fps,
        sharpness=sharpness(pixels) if pixels is not None else None,
        clock_synced=state.clock_synced,
        last_ack=uplink.stats().last_ack if uplink is not None else None,
    )


def idle_state(live: LiveSettings, *, spool: Spool, uplink: Any, policy: Policy | None = None) -> IdleState:
    """What the idle screen shows: venue, who is inside (all lanes), today's counts, connection, backlog."""
    counts = spool.counts_today()
    inside = policy.occupancy if policy is not None and counts_presence(live.settings) else None
    return IdleState(
        venue=live.settings.destination.venue_name,
        count_in=counts.get("in", 0),
        count_out=counts.get("out", 0),
        online=bool(uplink and uplink.connected),
        backlog=spool.unsent_count(),
        inside=inside,
    )
