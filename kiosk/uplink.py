"""The MQTT uplink: drains the spool to the broker, listens for central's acks and the status list.

The kiosk's MQTT client: the connection itself is `kiosk.broker`'s, the in-flight
window's bookkeeping `kiosk.inflight`'s, the state message `kiosk.health`'s; this
module is the supervisor that runs them in two named threads:

- `uplink-mqtt` owns the paho client's network loop and the reconnects: full-jitter
  exponential backoff (thousands of kiosks must not reconnect in step after a
  broker restart); a refused connection (credentials, TLS) is logged as an error
  naming what to check, and counted.
- `uplink-drain` publishes unsent events in (epoch, seq) order through the
  in-flight window, marks them sent on PUBACK, applies central's signed acks,
  re-sends what central asks for or never got, hands status lists to the daemon
  and keeps the retained state topic fresh.

The capture loop only calls `spool.record()` and the non-blocking `wake()`.
Messages from the broker that are malformed, forged or oversized are dropped,
logged and counted in `stats().rejected`; nothing the broker sends can crash us.
"""

from __future__ import annotations

import collections
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk import broker, keys
from kiosk.backoff import FullJitterBackoff
from kiosk.config import Settings, UplinkConfig
from kiosk.errors import KioskError, SignatureError
from kiosk.events import verify_ack
from kiosk.health import Health, Status, state_message
from kiosk.inflight import InFlightWindow, Refusal
from kiosk.spool import Spool
from kiosk.topics import DeviceTopics, statuslist_topic

log = logging.getLogger(__name__)

MAX_ACK_BYTES = 256 * 1024
MAX_INBOX = 64  # acks and status lists waiting for the drain thread; more is a flood
CLOSE_SLACK_S = 1.0  # close() returns within its grace plus this: the stopped state and the joins
STOPPED_RESERVE_S = 0.3  # of the close deadline, kept for the disconnect after the stopped state
TICK_S = 0.2
PRUNE_INTERVAL_S = 3600.0
CHECKPOINT_INTERVAL_S = 10.0
AuthorityKeys = Mapping[str, Ed25519PublicKey] | Callable[[str], Ed25519PublicKey | None]


@dataclass(frozen=True)
class UplinkStats:
    """A snapshot of the uplink's counters."""

    connected: bool
    published: int
    broker_acked: int
    broker_refused: int
    acks_applied: int
    resent: int
    connect_attempts: int
    connect_failures: int
    rejected: Mapping[str, int]
    last_error: str | None
    last_ack: datetime | None = None  # when central's last valid ack was applied


@dataclass
class _Counters:
    published: int = 0
    broker_acked: int = 0
    broker_refused: int = 0
    acks_applied: int = 0
    resent: int = 0
    connect_attempts: int = 0
    connect_failures: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    last_error: str | None = None
    last_ack: datetime | None = None


class Uplink:
    """The MQTT client of one kiosk for the process lifetime; a context manager."""

    def __init__(
        self,
        settings: UplinkConfig,
        *,
        spool: Spool,
        authority_keys: AuthorityKeys | None = None,
        health: Callable[[], Health] | None = None,
        on_statuslist: Callable[[bytes], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.topics = DeviceTopics(settings.topic_prefix, spool.destination_id, spool.device_id)
        self._statuslist_topic = statuslist_topic(settings.topic_prefix)
        self._authority = _lookup(authority_keys)
        self._health = health
        self._on_statuslist = on_statuslist
        self._backoff = FullJitterBackoff(settings.backoff_min_s, settings.backoff_max_s, rng=rng)
        self._window = InFlightWindow(
            settings.inflight,
            # paho re-sends what is unacknowledged after a reconnect; one still waiting this long
            # while connected is lost to us, so it is published again from the spool.
            stuck_after_s=max(30.0, 2.0 * settings.keepalive_s),
            refusal_backoff=FullJitterBackoff(settings.backoff_min_s, settings.backoff_max_s, rng=rng),
        )
        self.broker = broker.BrokerSettings.for_device(settings, spool.device_id)
        self.address = self.broker.address
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._connected = threading.Event()
        self._state_due = False
        self._pubacks: collections.deque[tuple[int, ReasonCode]] = collections.deque()
        self._inbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._next_state = self._next_prune = self._connected_at = 0.0
        self._next_checkpoint = 0.0
        self._close_deadline = float("inf")
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._client = self._build_client()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        spool: Spool,
        health: Callable[[], Health] | None = None,
        on_statuslist: Callable[[bytes], None] | None = None,
    ) -> Uplink:
        """An uplink for the whole configuration: loads `policy.authority_keys` for the acks."""
        path = settings.policy.authority_keys
        authority = keys.load_public_keys(path) if path is not None else {}
        if not authority:
            log.warning("no policy.authority_keys: central's acks cannot be verified, events are kept")
        return cls(
            settings.uplink, spool=spool, authority_keys=authority, health=health, on_statuslist=on_statuslist
        )

    # -- the client --------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        client = broker.new_client(self.broker, self.spool.device_id, stop=self._stop)
        client.max_inflight_messages_set(self.settings.inflight)
        client.max_queued_messages_set(0)
        client.will_set(self.topics.state, state_message("offline", self.topics), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        # With a write-register callback, publish() from the drain thread only queues the
        # packet and wakes our network loop, so one thread alone writes the socket.
        client.on_socket_register_write = lambda *_: None
        return client

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the network and drain threads; returns at once (the broker may be down)."""
        if self._threads or not self.settings.enabled:
            if not self.settings.enabled:
                log.info("uplink disabled: events are spooled, not published")
            return
        for name, target in (("uplink-mqtt", self._supervise), ("uplink-drain", self._drain_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Tell the drain thread a new event is in the spool (never blocks)."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is up."""
        return self._connected.is_set()

    def stats(self) -> UplinkStats:
        """A snapshot of the counters (published, acked, refused, rejected messages, ...)."""
        with self._lock:
            c = self._counters
            return UplinkStats(
                connected=self.connected,
                published=c.published,
                broker_acked=c.broker_acked,
                broker_refused=c.broker_refused,
                acks_applied=c.acks_applied,
                resent=c.resent,
                connect_attempts=c.connect_attempts,
                connect_failures=c.connect_failures,
                rejected=dict(c.rejected),
                last_error=c.last_error,
                last_ack=c.last_ack,
            )

    def close(self, grace_s: float = 2.0) -> None:
        """Flush, publish the `stopped` state, disconnect; returns within `grace_s` + 1 s. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # One deadline for everything: the daemon must stop soon after SIGTERM, broker or not.
        start = time.monotonic()
        self._close_deadline = start + grace_s + CLOSE_SLACK_S
        if self._threads:
            self._flush(start + grace_s)
            self._closing.set()
            self._wake.set()
            self._join(self._threads[1])
        self._stop.set()  # also ends a TLS handshake in progress
        self._client.disconnect()
        for thread in self._threads:
            self._join(thread)

    def _join(self, thread: threading.Thread) -> None:
        thread.join(max(0.0, self._close_deadline - time.monotonic()))
        if thread.is_alive():  # e.g. a TCP connect to an unreachable broker; a daemon thread
            log.warning("uplink: thread %s still busy at close; not waiting for it", thread.name)

    def _flush(self, deadline: float) -> None:
        try:
            while self.connected and time.monotonic() < deadline:
                if not self._window.in_flight and self.spool.unsent_count() <= self._window.unmarked:
                    return
                self._wake.set()
                time.sleep(0.02)
        except KioskError as e:  # shutting down anyway: what is unsent stays spooled for next time
            log.error("uplink: cannot flush before stopping: %s", e)

    def __enter__(self) -> Uplink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- thread uplink-mqtt: connection and network loop ---------------------------

    def _supervise(self) -> None:
        while not self._stop.is_set():
            if self._connect_once():
                self._run_network()
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            log.debug("reconnecting to %s in %.2fs", self.address, delay)
            self._stop.wait(delay)

    def _connect_once(self) -> bool:
        self._count("connect_attempts")
        properties = Properties(PacketTypes.CONNECT)
        properties.MaximumPacketSize = int(self.settings.max_statuslist_mb * 1024 * 1024) + 4096
        try:
            self._client.connect(
                self.address.host, self.address.port, self.settings.keepalive_s, properties=properties
            )
            return True
        except (OSError, ValueError) as e:
            if not self._stop.is_set():  # an attempt cut short by close() is no failure to report
                transient = not isinstance(e, ssl.SSLError)
                self._connect_failed(
                    broker.explain(e, self.broker) + (" (retrying)" if transient else ""), transient=transient
                )
            return False

    def _run_network(self) -> None:
        try:
            while not self._stop.is_set():
                if self._client.loop(timeout=TICK_S) != mqtt.MQTT_ERR_SUCCESS:
                    break
        except Exception:  # whatever the network does, this thread lives on and reconnects
            log.exception("uplink: the network loop failed; reconnecting")
        self._connected.clear()

    def _connect_failed(self, message: str, *, transient: bool) -> None:
        with self._lock:
            self._counters.connect_failures += 1
            repeated = self._counters.last_error == message
            self._counters.last_error = message
        if not transient:
            log.error("uplink: %s", message)
        elif not repeated:
            log.warning("uplink: %s", message)

    # paho callbacks run on uplink-mqtt; they only record and wake the drain thread.

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self._connect_failed(broker.refusal(reason, self.broker), transient=False)
            return
        log.info("uplink: connected to %s", self.address)
        self._backoff.reset()
        self._connected_at = time.monotonic()
        options = SubscribeOptions(qos=1)
        client.subscribe([(self.topics.ack, options), (self._statuslist_topic, options)])
        with self._lock:
            self._counters.last_error = None
            self._state_due = True
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was_connected = self.connected
        self._connected.clear()
        if was_connected and not self._closing.is_set():
            log.warning("uplink: disconnected from %s (%s); will reconnect", self.address, reason)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._pubacks.append((mid, reason))
        self._wake.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        for topic, reason in zip((self.topics.ack, self._statuslist_topic), reasons, strict=False):
            if reason.is_failure:
                log.error(
                    "uplink: the broker refused our subscription to %s (%s): check its ACL", topic, reason
                )
                self._reject("subscription_refused")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        limit = {self.topics.ack: MAX_ACK_BYTES, self._statuslist_topic: self._statuslist_limit()}
        if message.topic not in limit:
            self._reject("unexpected_topic", f"a message on {message.topic!r}, which we never subscribed to")
        elif len(message.payload) > limit[message.topic]:
            self._reject("oversized", f"{len(message.payload)} bytes on {message.topic}")
        elif len(self._inbox) >= MAX_INBOX:
            self._reject("flood", f"more than {MAX_INBOX} messages waiting; dropped one on {message.topic}")
        else:
            self._inbox.append((message.topic, bytes(message.payload)))
            self._wake.set()

    def _statuslist_limit(self) -> int:
        return int(self.settings.max_statuslist_mb * 1024 * 1024)

    # -- thread uplink-drain -----------------------------------------------------------

    def _drain_loop(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            try:
                self._periodic(time.monotonic())
                self._drain_once()
            except KioskError as e:  # e.g. the disk is full: say so, keep trying
                log.error("uplink: %s", e)
                self._closing.wait(1.0)
            except Exception:  # a bug must not silently end the draining
                log.exception("uplink: the drain failed; retrying")
                self._closing.wait(1.0)
        self._final_marks()
        self._say_stopped()

    def _final_marks(self) -> None:
        self._settle_pubacks()
        try:
            self._mark_sent(force=True)
        except KioskError as e:
            log.error("uplink: %s (those events will be sent again)", e)

    def _periodic(self, now: float) -> None:
        if now >= self._next_state:
            self._next_state = now + self.settings.state_interval_s
            with self._lock:
                self._state_due = True
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_S
            self.spool.prune()
        if now >= self._next_checkpoint:  # here, so the capture loop's commits rarely checkpoint
            self._next_checkpoint = now + CHECKPOINT_INTERVAL_S
            self.spool.checkpoint()

    def _drain_once(self) -> None:
        self._settle_pubacks()
        self._handle_inbox()
        if not self.connected:
            return
        with self._lock:
            state_due, self._state_due = self._state_due, False
        if state_due:
            self._publish_state("online")
        self._window.forget_stuck(time.monotonic(), connected_at=self._connected_at)
        self._publish_more()

    def _publish_more(self) -> None:
        published = 0
        while (spooled := self._window.next(time.monotonic(), self.spool.unsent)) is not None:
            topic = _event_topic(self.topics.prefix, spooled.destination, spooled.device)
            info = self._client.publish(topic, spooled.token, qos=1)
            # paho keeps a QoS 1 message it could not send and sends it after the reconnect.
            self._window.published(info.mid, spooled.key, time.monotonic())
            published += 1
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                break
        self._count("published", published)

    def _settle_pubacks(self) -> None:
        pubacks = []
        while self._pubacks:
            mid, reason = self._pubacks.popleft()
            pubacks.append((mid, str(reason) if reason.is_failure else None))
        settled = self._window.settle(pubacks, time.monotonic())
        for refusal in settled.refused:
            self._broker_refused(refusal)
        if settled.acked:
            self._count("broker_acked", settled.acked)
        self._mark_sent(force=False)

    def _mark_sent(self, *, force: bool) -> None:
        # A mark lost in a crash only means the event is sent again.
        keys = self._window.marks_due(time.monotonic(), force=force)
        if keys:
            self.spool.mark_sent(keys)
            self._window.marked(keys, time.monotonic())

    def _broker_refused(self, refusal: Refusal) -> None:
        self._count("broker_refused")
        log.error(
            "uplink: the broker refused event %s (%s); check that its ACL lets user %r write %s;"
            " retrying in %.1fs",
            refusal.key,
            refusal.reason,
            self.broker.username,
            self.topics.event,
            refusal.pause_s,
        )

    def _handle_inbox(self) -> None:
        while self._inbox:
            topic, payload = self._inbox.popleft()
            if topic == self.topics.ack:
                self._handle_ack(payload)
            else:
                self._handle_statuslist(payload)

    def _handle_ack(self, payload: bytes) -> None:
        if self._authority is None:
            self._reject("ack_unverifiable", "no authority keys are configured (policy.authority_keys)")
            return
        try:
            ack = verify_ack(payload, self._authority)
        except SignatureError as e:
            self._reject("ack_invalid", f"ack on {self.topics.ack}: {e}")
            return
        if ack.device != self.spool.device_id:
            self._reject("ack_wrong_device", f"ack for {ack.device!r} on our topic")
            return
        self._apply_ack(ack.acked(), ack.resend)

    def _apply_ack(self, epochs: dict[int, int], resend: list[tuple[int, int, int]]) -> None:
        device = self.spool.device_id
        acked = self.spool.apply_ack(device, epochs)
        asked = self.spool.requeue(device, resend)
        # A fresh ack that still does not cover what the broker accepted long ago: lost, send again.
        cutoff = int((time.time() - self.settings.resend_unacked_s) * 1000)
        stale = self.spool.requeue_stale(device, cutoff)
        if asked or stale:
            self._window.reread()
        self._count("acks_applied")
        self._count("resent", asked + stale)
        with self._lock:
            self._counters.last_ack = datetime.now(UTC)
        log.debug("uplink: ack covers %d new events; resending %d asked, %d unconfirmed", acked, asked, stale)

    def _handle_statuslist(self, payload: bytes) -> None:
        if self._on_statuslist is None:
            return
        try:
            self._on_statuslist(payload)
        except Exception as e:  # a bad list must never stop the uplink; the store explains why
            self._reject("statuslist_refused", f"status list not taken: {e}")

    def _publish_state(self, status: Status) -> mqtt.MQTTMessageInfo:
        return self._client.publish(self.topics.state, self._state(status), qos=1, retain=True)

    def _state(self, status: Status) -> bytes:
        health = self._current_health() if status == "online" else None
        return state_message(status, self.topics, ts_ms=int(time.time() * 1000), health=health)

    def _current_health(self) -> Health:
        if self._health is not None:
            try:
                return self._health()
            except Exception:  # the health report is best effort; the state must still go out
                log.exception("uplink: the health callback failed; the state carries the spool's figures")
        return Health.of_spool(self.spool)

    def _say_stopped(self) -> None:
        if not self.connected:
            return
        info = self._publish_state("stopped")
        deadline = min(time.monotonic() + 2.0, self._close_deadline - STOPPED_RESERVE_S)
        while not info.is_published() and self.connected and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- counters ----------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._counters, name, getattr(self._counters, name) + n)

    def _reject(self, reason: str, detail: str = "") -> None:
        with self._lock:
            self._counters.rejected[reason] += 1
        log.warning("uplink: ignored a message from the broker (%s): %s", reason, detail)


@lru_cache(maxsize=64)
def _event_topic(prefix: str, destination: str, device: str) -> str:
    return DeviceTopics(prefix, destination, device).event


def _lookup(authority_keys: AuthorityKeys | None) -> Callable[[str], Ed25519PublicKey | None] | None:
    if authority_keys is None:
        return None
    if isinstance(authority_keys, Mapping):
        if not authority_keys:
            return None
        return authority_keys.get
    return authority_keys
