"""Ingest: verify scan events from the broker, store them once, and ack them to their devices.

Two layers. `Processor` knows nothing of MQTT: it takes (topic, payload) pairs,
verifies each event against the registry, keeps the good ones in a batch and the
refused ones (with the reason) in the `rejects` table, and on `flush()` commits the
batch and returns the signed acks to publish. `Ingest` is the MQTT side (paho 2,
MQTT 5): a shared subscription so several instances split the events, a plain
subscription to the retained state topics, and a loop that batches messages,
commits, then acknowledges them to the broker (manual PUBACK, after the commit)
and publishes the acks.
"""

from __future__ import annotations

import enum
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.central import acks, mqtt
from kiosk.central.identities import IdentityOpener, IdentityRefusedError, without_opener
from kiosk.central.mqtt import BrokerSettings
from kiosk.central.registry import REVOKED, Registry
from kiosk.central.store import EventRow, RejectRow, SettledRow, StateRow, Store
from kiosk.errors import EventError, SignatureError, StateError, UplinkError
from kiosk.events import MAX_RESEND_RANGES, Ack, AnyEvent, sign_ack, verify_event
from kiosk.state import SignedState, verify_state
from kiosk.topics import DEFAULT_PREFIX, DeviceTopics, parse_topic, subscription

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSACTION_ATTEMPTS = 3  # a deadlock or serialization failure between instances is retried


def now_ms() -> int:
    """The current UTC time in ms since 1970."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Topics:
    """Central's subscriptions under one prefix; names and parsing come from `kiosk.topics`."""

    prefix: str = DEFAULT_PREFIX
    share_group: str = "central"

    @property
    def events(self) -> str:
        """The shared subscription to every device's events."""
        return f"$share/{self.share_group}/{subscription(self.prefix, 'event')}"

    @property
    def states(self) -> str:
        """Every device's retained state (not shared: retained messages skip shared subscriptions)."""
        return subscription(self.prefix, "state")

    def parse(self, topic: str) -> tuple[str, str, str] | None:
        """(destination, device, leaf) of a device event or state topic, or None when it is not one."""
        parsed = parse_topic(topic, self.prefix)
        if parsed is None or parsed[1] not in ("event", "state"):
            return None
        device, leaf = parsed
        return device.destination, device.device, leaf

    def ack(self, destination: str, device: str) -> str:
        """Where a device's ack is published."""
        return DeviceTopics(self.prefix, destination, device).ack


@dataclass(frozen=True)
class IngestOptions:
    """Tuning of the ingest."""

    resend_after_s: float = 10.0  # a gap this old is asked for again; younger ones may be in flight
    ack_all_every_s: float = 120.0  # every active device is acked this often, events or not
    gap_scan_limit: int = 100_000  # seqs read per epoch per flush when walking over a gap


@dataclass
class Stats:
    """What an ingest has done so far."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    acks: int = 0
    states: int = 0


class MessageRefusedError(Exception):
    """A message refused for `reason` (internal to the processor)."""

    def __init__(self, reason: str, detail: str, *, signed: tuple[str, int, int] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.signed = signed  # (device, epoch, seq) when the device's signature verified


class Processor:
    """Verify, batch and store events and states; compute the acks after each commit."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        authority_key: Ed25519PrivateKey,
        topics: Topics | None = None,
        options: IngestOptions | None = None,
        identities: IdentityOpener | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._identities = identities
        self._registry = registry
        self._key = authority_key
        self.topics = topics or Topics()
        self.options = options or IngestOptions()
        self._clock = clock
        self._batch: dict[tuple[str, int, int], EventRow] = {}
        self._rejects: list[RejectRow] = []
        self._settled: dict[tuple[str, int, int], SettledRow] = {}
        self._states: list[StateRow] = []
        self._open_gaps: set[tuple[str, int]] = set()
        self._recent: set[tuple[str, int]] = set()
        self._swept_ms = clock()
        self._acked_all_ms = clock()
        self.stats = Stats()

    def handle(self, topic: str, payload: bytes) -> None:
        """Take one message from the broker into the current batch (or the rejects)."""
        parsed = self.topics.parse(topic)
        try:
            if parsed is None:
                raise MessageRefusedError("bad_topic", "not a device event or state topic")
            if parsed[2] == "event":
                self._take_event(parsed[0], parsed[1], payload)
            else:
                self._take_state(parsed[0], parsed[1], payload)
        except MessageRefusedError as e:
            self._reject(topic, parsed[1] if parsed else None, e)
            if parsed is not None and e.signed is not None and e.signed[0] == parsed[1]:
                self._settle(e.signed, e.reason)
        except Exception as e:  # no message may stop the ingest; this one is a bug to fix
            log.exception("message on %s could not be handled", _clean(topic, 256))
            refused = MessageRefusedError("unhandled", f"{type(e).__name__}: {e}")
            self._reject(topic, parsed[1] if parsed else None, refused)

    def _reject(self, topic: str, device: str | None, e: MessageRefusedError) -> None:
        self.stats.rejected[e.reason] += 1
        self._rejects.append(
            RejectRow(self._clock(), _clean(topic, 256), device, e.reason, _clean(str(e), 300))
        )
        log.debug("rejected %s: %s (%s)", _clean(topic, 256), e.reason, _clean(str(e), 300))

    def _settle(self, key: tuple[str, int, int], reason: str) -> None:
        # The device's own signature vouches for (device, epoch, seq): re-sending that seq would be
        # refused again forever, so the acks count it as covered. A forgery settles nothing.
        self._settled.setdefault(key, SettledRow(*key, reason, self._clock()))

    def _take_event(self, destination: str, device: str, payload: bytes) -> None:
        self.stats.received += 1
        event = self._verify(payload)
        if event.device != device or event.destination != destination:
            raise MessageRefusedError(
                "topic_mismatch",
                f"event of {event.destination}/{event.device} arrived on {destination}/{device}",
                signed=event.key,
            )
        registered = self._registry.get(device)
        if registered is not None and registered.destination != event.destination:
            raise MessageRefusedError(
                "destination_mismatch",
                f"{device} is registered for {registered.destination}",
                signed=event.key,
            )
        try:
            stored = self._identities.stored(event) if self._identities else without_opener(event)
        except IdentityRefusedError as e:
            raise MessageRefusedError(e.reason, str(e)) from e
        if event.key in self._batch:
            self.stats.duplicates += 1
        self._batch[event.key] = _row(event, stored, payload, self._clock())

    def _verify(self, payload: bytes) -> AnyEvent:
        signers: list[str] = []
        try:
            return verify_event(payload, self._lookup(signers))
        except EventError as e:
            raise MessageRefusedError("bad_event", str(e), signed=e.signed) from e
        except SignatureError as e:
            raise MessageRefusedError(self._signature_reason(signers), str(e)) from e

    def _lookup(self, signers: list[str]) -> Callable[[str], Ed25519PublicKey | None]:
        """The registry's active keys by device id, noting each kid asked for (to name a refusal)."""

        def lookup(kid: str) -> Ed25519PublicKey | None:
            signers.append(kid)
            return self._registry.key(kid)

        return lookup

    def _signature_reason(self, signers: list[str]) -> str:
        known = self._registry.get(signers[0]) if signers else None
        if signers and known is None:
            return "unknown_device"
        if known is not None and known.status == REVOKED:
            return "revoked_device"
        return "bad_signature"

    def _take_state(self, destination: str, device: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message
        state = self._verify_state(device, payload)
        if state.device != device or state.destination != destination:
            raise MessageRefusedError(
                "topic_mismatch", "state names another device or destination than its topic"
            )
        registered = self._registry.get(device)
        if registered is not None and registered.destination != destination:
            detail = f"{device} is registered for {registered.destination}"
            raise MessageRefusedError("destination_mismatch", detail)
        received = self._clock()
        ts = received if state.ts is None else state.ts  # the will (offline) was signed without a time
        self._states.append(StateRow(device, destination, state.status, ts, received, state.text))
        self.stats.states += 1

    def _verify_state(self, device: str, payload: bytes) -> SignedState:
        # Signed by the key registered for the device it names; unsigned states are not taken at all.
        signers: list[str] = []
        try:
            return verify_state(payload, self._lookup(signers))
        except StateError as e:
            raise MessageRefusedError("bad_state", str(e)) from e
        except SignatureError as e:
            raise MessageRefusedError(self._signature_reason(signers), f"state of {device}: {e}") from e

    @property
    def pending(self) -> int:
        """Messages taken since the last flush."""
        return len(self._batch) + len(self._rejects) + len(self._settled) + len(self._states)

    def flush(self) -> list[tuple[str, bytes]]:
        """Commit the batch, then return (topic, token) of every ack that is now due.

        When the database fails in a way a retry does not fix, the batch is kept (the
        error is raised) so that a flush after `use_store` writes it again. When it
        refuses the data instead (see `unstorable`), the messages to blame are found,
        refused as `unstorable` and the rest is written: one message cannot stall the ingest.
        """
        sweep = self._due_sweep()
        everyone = self._due_everyone()
        new, resend = self._commit(sweep)
        batch = list(self._batch.values())
        self._recent |= self._touched()
        self._batch, self._rejects, self._settled, self._states = {}, [], {}, []
        self.stats.stored += new
        self.stats.duplicates += len(batch) - new
        return self._acks({device for device, _ in resend} | everyone, resend)

    def _touched(self) -> set[tuple[str, int]]:
        """(device, epoch) of every event stored or seq settled in this batch."""
        stored = {(row.device, row.epoch) for row in self._batch.values()}
        return stored | {(row.device, row.epoch) for row in self._settled.values()}

    def _commit(
        self, sweep: set[tuple[str, int]]
    ) -> tuple[int, dict[tuple[str, int], tuple[tuple[int, int], ...]]]:
        while True:  # each turn refuses at least one message, or raises
            batch = sorted(self._batch.values(), key=_event_key)
            pairs = sorted(self._touched() | sweep)
            try:
                return self._write_retrying(batch, self._rejects, self._states, pairs)
            except Exception as e:
                if not unstorable(e) or not self._refuse_unstorable([*batch, *self._states]):
                    raise  # the database's fault, not a message's: the batch waits for it

    def _refuse_unstorable(self, items: list[EventRow | StateRow]) -> bool:
        """Refuse the messages the database will not take; False when no single one is to blame."""
        culprits = _culprits(items, self._probe)
        for item, error in culprits:
            leaf = "event" if isinstance(item, EventRow) else "state"
            if isinstance(item, EventRow):
                del self._batch[_event_key(item)]
            else:
                self._states.remove(item)
                self.stats.states -= 1
            topic = f"{self.topics.prefix}/{item.destination}/{item.device}/{leaf}"
            detail = f"the database refused it: {type(error).__name__}: {error}"
            # A bug or an attack either way: worth the operator's attention, unlike a bad signature.
            log.error("message on %s cannot be stored; refused: %s", topic, _clean(detail, 300))
            self._reject(topic, item.device, MessageRefusedError("unstorable", detail))
            if isinstance(item, EventRow):  # verified: signed by the device its topic names
                self._settle(_event_key(item), "unstorable")
        return bool(culprits)

    def _probe(self, items: list[EventRow | StateRow]) -> BaseException | None:
        """The data error writing only `items` raises (rolled back either way), or None."""
        try:
            self._store.insert_events([item for item in items if isinstance(item, EventRow)])
            for state in sorted((i for i in items if isinstance(i, StateRow)), key=_state_key):
                self._store.put_state(state)
        except Exception as e:
            if not unstorable(e):
                raise
            return e
        finally:
            _rollback(self._store)
        return None

    def _write_retrying(
        self,
        batch: list[EventRow],
        rejects: list[RejectRow],
        states: list[StateRow],
        pairs: list[tuple[str, int]],
    ) -> tuple[int, dict[tuple[str, int], tuple[tuple[int, int], ...]]]:
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                return self._write(batch, rejects, states, pairs)
            except Exception as e:
                _rollback(self._store)
                if attempt == TRANSACTION_ATTEMPTS or not self._store.is_transient(e):
                    raise
                log.warning("batch of %d rolled back (%s); trying again", len(batch), e)
        raise AssertionError("unreachable")

    def _write(
        self,
        batch: list[EventRow],
        rejects: list[RejectRow],
        states: list[StateRow],
        pairs: list[tuple[str, int]],
    ) -> tuple[int, dict[tuple[str, int], tuple[tuple[int, int], ...]]]:
        # Every instance writes rows in one order (events, states by device, progress by device
        # and epoch), so overlapping transactions wait for each other instead of deadlocking.
        # Day partitions first (PostgreSQL), before this transaction holds any row lock.
        self._store.ensure_partitions((row.ts for row in batch), now_ms())
        new = self._store.insert_events(batch)
        self._store.add_rejects(rejects)
        self._store.settle(list(self._settled.values()))
        for state in sorted(states, key=_state_key):
            self._store.put_state(state)
        resend = {pair: self._advance(*pair) for pair in pairs}
        self._store.commit()
        return new, resend

    def reload_registry(self) -> None:
        """Re-read the registry: `kiosk-central devices` may have changed it."""
        self._registry.reload()

    @property
    def store(self) -> Store:
        """The database in use."""
        return self._store

    def use_store(self, store: Store) -> None:
        """Go on with a reopened database (the old connection failed); the registry is read again."""
        self._store = store
        self._registry = Registry(store)

    @property
    def sweep_due(self) -> bool:
        """Whether gaps, recent acks or the periodic ack of every device are due (a flush does them)."""
        if self._clock() - self._acked_all_ms >= self._ack_all_ms:
            return True
        return (
            bool(self._open_gaps or self._recent) and self._clock() - self._swept_ms >= self._resend_after_ms
        )

    @property
    def _ack_all_ms(self) -> int:
        return int(self.options.ack_all_every_s * 1000)

    def _due_everyone(self) -> set[str]:
        # A kiosk re-sends what stays unacknowledged when an ack arrives. After a broker lost
        # events that it had accepted, while central was down, nothing else would ever arrive:
        # so every active device hears from central periodically, even with nothing new.
        if self._clock() - self._acked_all_ms < self._ack_all_ms:
            return set()
        self._acked_all_ms = self._clock()
        return {row.device for row in self._registry.devices() if row.status != REVOKED}

    @property
    def _resend_after_ms(self) -> int:
        return int(self.options.resend_after_s * 1000)

    def _due_sweep(self) -> set[tuple[str, int]]:
        # A gap too young to ask for at its own flush is walked again on a later one. Recently
        # acked devices are acked once more: with several instances, an older ack published
        # late may have overwritten the retained newest one.
        if self._clock() - self._swept_ms < self._resend_after_ms:
            return set()
        self._swept_ms = self._clock()
        due, self._recent = self._open_gaps | self._recent, set()
        return due

    def _advance(self, device: str, epoch: int) -> tuple[tuple[int, int], ...]:
        mark = self._store.progress(device).get(epoch, 0)
        stored = self._store.seqs_after(device, epoch, mark, self.options.gap_scan_limit)
        result = acks.walk(mark, stored, older_than_ms=self._clock() - self._resend_after_ms)
        if result.contiguous > mark:
            self._store.advance_progress(device, epoch, result.contiguous)
        if result.missing:
            self._open_gaps.add((device, epoch))
        else:
            self._open_gaps.discard((device, epoch))
        return result.gaps

    def _acks(
        self, devices: set[str], resend: dict[tuple[str, int], tuple[tuple[int, int], ...]]
    ) -> list[tuple[str, bytes]]:
        out = []
        for device in sorted(devices):
            registered = self._registry.get(device)
            if registered is None:
                continue
            ranges = _ranges(device, resend)
            epochs = {str(epoch): seq for epoch, seq in sorted(self._store.progress(device).items())}
            # The kiosk refuses an ack with more ranges; the rest are asked for on a later sweep.
            asked = list(ranges[:MAX_RESEND_RANGES])
            ack = Ack(device=device, epochs=epochs, resend=asked, ts=self._clock())
            out.append((self.topics.ack(registered.destination, device), sign_ack(ack, self._key)))
        self.stats.acks += len(out)
        return out


def _ranges(
    device: str, resend: dict[tuple[str, int], tuple[tuple[int, int], ...]]
) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        (epoch, first, last)
        for (dev, epoch), gaps in sorted(resend.items())
        if dev == device
        for first, last in gaps
    )


def unstorable(error: BaseException) -> bool:
    """Whether a failed write is the data's fault (a message may be to blame), not the database's.

    DB-API drivers name their data and constraint errors DataError and IntegrityError
    (sqlite3; psycopg, whose subclasses are SQLSTATE classes 22 and 23: a value out of
    range, text invalid for its column); a value the driver cannot send raises
    ValueError (a NUL in PostgreSQL text, a string that is not UTF-8), TypeError or
    OverflowError. Anything else (a lost connection, a locked, full or failing
    database, a missing table) is the database's fault: the batch waits for it.
    """
    if isinstance(error, ValueError | TypeError | OverflowError):
        return True
    return any(cls.__name__ in ("DataError", "IntegrityError") for cls in type(error).__mro__)


Item = TypeVar("Item")


def _culprits(
    items: list[Item], probe: Callable[[list[Item]], BaseException | None]
) -> list[tuple[Item, BaseException]]:
    """The items that fail on their own, each with its error: halving finds k of n in O(k log n) probes."""
    error = probe(items) if items else None
    if error is None:
        return []
    if len(items) == 1:
        return [(items[0], error)]
    half = len(items) // 2
    return _culprits(items[:half], probe) + _culprits(items[half:], probe)


def _rollback(store: Store) -> None:
    try:
        store.rollback()
    except Exception as e:  # a connection that is gone has nothing to roll back
        log.debug("rollback failed: %s", e)


def _event_key(row: EventRow) -> tuple[str, int, int]:
    return (row.device, row.epoch, row.seq)


def _state_key(row: StateRow) -> tuple[str, int]:
    return (row.device, row.ts)


def _row(event: AnyEvent, identities: tuple[str, ...], token: bytes, received_ms: int) -> EventRow:
    values: dict[str, Any] = event.model_dump(exclude={"v", "identity", "identities"})
    # Only central's keyed hashes reach the columns (the token keeps the sealed form, as signed).
    first, second = (*identities, None, None)[:2]
    return EventRow(
        **values, identity=first, identity_alt=second, received_ms=received_ms, token=token.decode("ascii")
    )


def _clean(text: str, limit: int) -> str:
    # What is stored of a refused message: no NUL (PostgreSQL text refuses it), valid UTF-8.
    return text[:limit].replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


class MessageQueue:
    """Messages handed from paho's network thread to the ingest loop."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, bytes, int, int]] = queue.SimpleQueue()

    def put(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """Called from paho's thread for each message."""
        self._queue.put((topic, payload, mid, qos))

    def take(self, limit: int, wait_s: float) -> list[tuple[str, bytes, int, int]]:
        """Up to `limit` messages: waits `wait_s` for the first, then takes what is there."""
        try:
            items = [self._queue.get(timeout=wait_s)]
        except queue.Empty:
            return []
        while len(items) < limit:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items


def run_loop(
    processor: Processor,
    messages: MessageQueue,
    *,
    settle: Callable[[list[tuple[str, bytes, int, int]], list[tuple[str, bytes]]], None],
    stop: threading.Event,
    batch_size: int = 2000,
    wait_s: float = 0.05,
    refresh_s: float = 5.0,
    tick: Callable[[], None] = lambda: None,
    reopen: Callable[[Exception], bool] | None = None,
) -> None:
    """Batch messages into the processor and flush until `stop` is set; `settle` PUBACKs and publishes.

    `tick` is called on every turn (at least every `wait_s`): the systemd watchdog.
    `reopen` is called when the database fails (a retry did not fix it); it returns once
    the database is back (True) or `stop` is set (False). Meanwhile nothing is PUBACKed,
    so the broker keeps every message of the batch.
    """
    refreshed = time.monotonic()
    while not stop.is_set():
        tick()
        items = messages.take(batch_size, wait_s)
        if time.monotonic() - refreshed > refresh_s:
            if _with_store(processor.reload_registry, reopen) is STOPPED:
                return
            refreshed = time.monotonic()
        for topic, payload, _mid, _qos in items:
            processor.handle(topic, payload)
        if items or processor.sweep_due:
            due = _with_store(processor.flush, reopen)
            if due is STOPPED:
                return
            settle(items, due)


class _Stopped(enum.Enum):
    STOPPED = "stopped"


STOPPED = _Stopped.STOPPED  # stopped while the database was away


def _with_store(action: Callable[[], T], reopen: Callable[[Exception], bool] | None) -> T | _Stopped:
    """Run a database action until it succeeds, reopening the database after each failure."""
    while True:
        try:
            return action()
        except Exception as e:
            if reopen is None:
                raise
            if not reopen(e):
                return STOPPED


class StoreReopener:
    """After a database failure: close it, and open it again with backoff until it answers or `stop`."""

    def __init__(
        self,
        processor: Processor,
        open_store: Callable[[], Store],
        *,
        stop: threading.Event,
        tick: Callable[[], None] = lambda: None,
        backoff: Callable[[], Backoff] | None = None,
    ) -> None:
        self._processor = processor
        self._open = open_store
        self._stop = stop
        self._tick = tick
        self._backoff = backoff or Backoff
        self.outages = 0

    def __call__(self, error: Exception) -> bool:
        """Reopen the database after `error`; True once it is back, False when stopped meanwhile."""
        self.outages += 1
        log.error("database failed (%s: %s); nothing is acknowledged to the broker until it is back;"
                  " reconnecting", type(error).__name__, error)  # fmt: skip
        _close_quietly(self._processor.store)
        backoff = self._backoff()
        while not self._stop.is_set():
            wait(self._stop, backoff.next_delay(), self._tick)
            try:
                store = self._open()
            except Exception as e:
                log.warning("database still unavailable (%s); trying again", e)
                continue
            self._processor.use_store(store)
            log.info("database is back; writing the batch that waited")
            return True
        return False


def _close_quietly(store: Store) -> None:
    try:
        store.close()
    except Exception as e:  # the connection is already gone
        log.debug("closing the failed database: %s", e)


class Signal(Protocol):
    """Anything with `set()`: a threading or multiprocessing Event."""

    def set(self) -> None:
        """Signal it."""


class Ingest:
    """The MQTT side: subscribe, feed the processor in batches, PUBACK and publish acks after each commit."""

    def __init__(
        self,
        *,
        processor: Processor,
        broker: BrokerSettings,
        batch_size: int = 2000,
        wait_s: float = 0.05,
        backoff: Backoff | None = None,
        tick: Callable[[], None] = lambda: None,
        reopen_store: Callable[[], Store] | None = None,
    ) -> None:
        self._processor = processor
        self._reopen_store = reopen_store  # without it, a database failure ends run()
        self._broker = broker
        self._batch_size = batch_size
        self._wait_s = wait_s
        self._backoff = backoff or Backoff()
        self._tick = tick

    def run(self, stop: threading.Event, *, ready: Signal | None = None) -> None:
        """Ingest until `stop` is set (`ready` is set once subscribed); UplinkError when refused.

        An unreachable broker is waited for, with backoff; a refused login is an error.
        """
        messages = MessageQueue()
        client = self._connect(messages, stop)
        if client is None:
            return  # stopped while waiting for the broker
        topics = self._processor.topics
        log.info("ingesting %s and %s from %s", topics.events, topics.states, self._broker.url)
        if ready is not None:
            ready.set()
        reopen = None
        if self._reopen_store is not None:
            reopen = StoreReopener(self._processor, self._reopen_store, stop=stop, tick=self._tick)
        try:
            run_loop(
                self._processor,
                messages,
                settle=lambda items, due: _settle(client, items, due),
                stop=stop,
                batch_size=self._batch_size,
                wait_s=self._wait_s,
                tick=self._tick,
                reopen=reopen,
            )
        finally:
            mqtt.close(client)

    def _connect(self, messages: MessageQueue, stop: threading.Event) -> paho.Client | None:
        topics = self._processor.topics
        while not stop.is_set():
            try:
                return mqtt.connect(
                    self._broker, on_message=messages.put, subscriptions=(topics.events, topics.states)
                )
            except UplinkError as e:
                if not isinstance(e.__cause__, OSError):
                    raise  # refused (credentials, ACL): waiting would not help
                delay = self._backoff.next_delay()
                log.warning("%s; trying again in %.1f s", e, delay)
            wait(stop, delay, self._tick)
        return None


def wait(stop: threading.Event, delay_s: float, tick: Callable[[], None]) -> None:
    """Wait `delay_s` or until `stop`, calling `tick` every second (the watchdog: waiting is no hang)."""
    deadline = time.monotonic() + delay_s
    while not stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
        tick()
        if time.monotonic() >= deadline:
            return


class Backoff:
    """Delays between connection attempts: uniform in [0, min(cap, base * 2**attempt)] (full jitter)."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 30.0, *, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        """The next delay; the ceiling doubles on each call up to the cap."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return self._rng.uniform(0, ceiling)


def _settle(
    client: paho.Client, items: list[tuple[str, bytes, int, int]], due: list[tuple[str, bytes]]
) -> None:
    # Only now, with the batch committed, may the broker forget these messages.
    for _topic, _payload, mid, qos in items:
        if qos:
            client.ack(mid, qos)
    for topic, token in due:
        client.publish(topic, token, qos=1, retain=True)
