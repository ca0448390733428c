"""The MQTT uplink: drains the spool to the broker, listens for central's acks and the status list.

The kiosk's MQTT client, a thin supervisor over its parts: the connection's
address and TLS are `kiosk.broker`'s, connecting and reconnecting with backoff
`kiosk.connection`'s, the in-flight window's bookkeeping `kiosk.inflight`'s,
the broker's messages (acks, signed retained lists) `kiosk.inbox`'s, the
counters `kiosk.counters`'s and the state message `kiosk.health`'s. It runs
them in two named threads:

- `uplink-mqtt` owns the paho client's network loop and the reconnects
  (`Connection.run`); paho's callbacks only record and wake the drain thread.
- `uplink-drain` publishes unsent events in (epoch, seq) order through the
  in-flight window, marks them sent on PUBACK, hands the broker's messages to
  their handlers (central's acks re-queue what central asks for or never got;
  status lists go to the daemon), sends again on its own timer what central's
  acks leave uncovered (`kiosk.inflight.UnackedResend`) and keeps the retained
  state topic fresh.

The capture loop only calls `spool.record()` and the non-blocking `wake()`.
Messages from the broker that are malformed, forged or oversized are dropped,
logged and counted in `stats().rejected`; nothing the broker sends can crash us.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk import broker, jws, keys
from kiosk.backoff import FullJitterBackoff
from kiosk.config import Settings, UplinkConfig
from kiosk.connection import TICK_S, Connection
from kiosk.counters import UplinkCounters, UplinkStats
from kiosk.errors import KioskError
from kiosk.health import Health, Status, state_message
from kiosk.inbox import CentralAcks, Inbox, PatternRoute, Route, signed_list
from kiosk.inflight import InFlightWindow, Refusal, UnackedResend
from kiosk.presence import MAX_MESSAGE_BYTES, PresenceBoard
from kiosk.spool import Spool
from kiosk.topics import DeviceTopics, statuslist_topic, trustlist_topic

__all__ = ["AuthorityKeys", "Uplink", "UplinkStats"]

log = logging.getLogger(__name__)

CLOSE_SLACK_S = 1.0  # close() returns within its grace plus this: the stopped state and the joins
STOPPED_RESERVE_S = 0.3  # of the close deadline, kept for the disconnect after the stopped state
PRUNE_INTERVAL_S = 3600.0
CHECKPOINT_INTERVAL_S = 10.0
SNAPSHOT_INTERVAL_S = 5.0  # a changed presence snapshot is re-published at most this often
AuthorityKeys = Mapping[str, Ed25519PublicKey] | Callable[[str], Ed25519PublicKey | None]


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
        on_trustlist: Callable[[bytes], None] | None = None,
        presence: PresenceBoard | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.presence = presence
        self.topics = DeviceTopics(settings.topic_prefix, spool.destination_id, spool.device_id)
        self._health = health
        self._window = InFlightWindow(
            settings.inflight,
            # paho re-sends what is unacknowledged after a reconnect; one still waiting this long
            # while connected is lost to us, so it is published again from the spool.
            stuck_after_s=max(30.0, 2.0 * settings.keepalive_s),
            refusal_backoff=FullJitterBackoff(settings.backoff_min_s, settings.backoff_max_s, rng=rng),
        )
        self.broker = broker.BrokerSettings.for_device(settings, spool.device_id)
        self.address = self.broker.address
        self._counters = UplinkCounters()
        self._resend = UnackedResend(settings.resend_unacked_s, max_interval_s=settings.resend_unacked_max_s)
        self._acks = CentralAcks(
            spool,
            _lookup(authority_keys),
            topic=self.topics.ack,
            resend_unacked_s=settings.resend_unacked_s,
            counters=self._counters,
            on_requeue=self._window.reread,
            on_ack=self._resend.acked,
        )
        self._inbox = Inbox(self._routes(on_statuslist, on_trustlist), self._counters)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._state_due = threading.Event()
        self._snapshot_due = threading.Event()
        self._next_snapshot = 0.0
        self._pubacks: collections.deque[tuple[int, ReasonCode]] = collections.deque()
        self._next_state = self._next_prune = self._next_checkpoint = 0.0
        self._close_deadline = float("inf")
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._client = self._build_client()
        self._connection = Connection(
            self._client,
            self.broker,
            keepalive_s=settings.keepalive_s,
            max_packet_bytes=_statuslist_limit(settings) + 4096,
            backoff=FullJitterBackoff(settings.backoff_min_s, settings.backoff_max_s, rng=rng),
            counters=self._counters,
            stop=self._stop,
            quiet=self._closing,
            on_up=self._on_up,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        spool: Spool,
        health: Callable[[], Health] | None = None,
        on_statuslist: Callable[[bytes], None] | None = None,
        on_trustlist: Callable[[bytes], None] | None = None,
        presence: PresenceBoard | None = None,
    ) -> Uplink:
        """An uplink for the whole configuration: loads `policy.authority_keys` for the acks."""
        path = settings.policy.authority_keys
        authority = keys.load_public_keys(path) if path is not None else {}
        if not authority:
            log.warning("no policy.authority_keys: central's acks cannot be verified, events are kept")
        return cls(
            settings.uplink,
            spool=spool,
            authority_keys=authority,
            health=health,
            on_statuslist=on_statuslist,
            on_trustlist=on_trustlist,
            presence=presence,
        )

    def _routes(
        self, on_statuslist: Callable[[bytes], None] | None, on_trustlist: Callable[[bytes], None] | None
    ) -> list[Route | PatternRoute]:
        # Every authority-signed retained list is one more line here (and its callback).
        prefix, limit = self.settings.topic_prefix, _statuslist_limit(self.settings)
        routes: list[Route | PatternRoute] = [
            self._acks.route(),
            signed_list("statuslist", statuslist_topic(prefix), limit, on_statuslist),
            signed_list("trustlist", trustlist_topic(prefix), limit, on_trustlist),
        ]
        if self.presence is not None:
            routes.append(PatternRoute(self.topics.lanes, MAX_MESSAGE_BYTES, self._lane_message))
        return routes

    def _lane_message(self, topic: str, payload: bytes) -> None:
        """A presence message of one of the destination's lanes (the topic names its device)."""
        if self.presence is not None:
            self.presence.receive(topic.split("/")[-2], payload)

    def _build_client(self) -> mqtt.Client:
        client = broker.new_client(self.broker, self.spool.device_id, stop=self._stop)
        client.max_inflight_messages_set(self.settings.inflight)
        client.max_queued_messages_set(0)
        # Fixed (and signed) now, so without a time: central stamps the will with its arrival.
        will = self.spool.sign_state(state_message("offline", self.topics))
        client.will_set(self.topics.state, will, qos=1, retain=True)
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
        for name, target in (("uplink-mqtt", self._connection.run), ("uplink-drain", self._drain_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Tell the drain thread a new event is in the spool (never blocks)."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is up."""
        return self._connection.connected

    def stats(self) -> UplinkStats:
        """A snapshot of the counters (published, acked, refused, rejected messages, ...)."""
        return self._counters.snapshot(connected=self.connected)

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

    # -- paho callbacks, on uplink-mqtt: they only record and wake the drain thread ----

    def _on_up(self, client: mqtt.Client) -> None:
        options = SubscribeOptions(qos=1)
        client.subscribe([(topic, options) for topic in self._inbox.topics])
        self._state_due.set()
        self._snapshot_due.set()  # the lanes may have missed our moves while we were away
        self._wake.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._pubacks.append((mid, reason))
        self._wake.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        self._inbox.subscribed(str(reason) if reason.is_failure else None for reason in reasons)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._inbox.offer(message.topic, message.payload):
            self._wake.set()

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
            self._state_due.set()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_S
            self.spool.prune()
        if now >= self._next_checkpoint:  # here, so the capture loop's commits rarely checkpoint
            self._next_checkpoint = now + CHECKPOINT_INTERVAL_S
            self.spool.checkpoint()

    def _drain_once(self) -> None:
        self._settle_pubacks()
        self._inbox.handle_waiting()
        if not self.connected:
            return
        if self._state_due.is_set():
            self._state_due.clear()
            self._publish_state("online")
        self._share_presence(time.monotonic())
        self._window.forget_stuck(time.monotonic(), connected_at=self._connection.connected_at)
        self._resend_unacked(time.time())
        self._publish_more()

    def _resend_unacked(self, now: float) -> None:
        # Not only when an ack arrives: a central that lost nothing it knows of sends none.
        cutoff = self._resend.due(now)
        if cutoff is None:
            return
        resent = self.spool.requeue_stale(self.spool.device_id, cutoff)
        self._resend.resent(resent, now)
        if resent:
            self._window.reread()
            self._counters.add("resent", resent)
            log.info(
                "uplink: sending again %d events central has not acknowledged (next check in %.0f s)",
                resent,
                self._resend.interval_s,
            )

    def _share_presence(self, now: float) -> None:
        """Our entries and exits to the lanes, then the retained snapshot when due (QoS 1 both)."""
        if self.presence is None:
            return
        for token in self.presence.outgoing():
            self._client.publish(self.topics.presence, token, qos=1)
        force = self._snapshot_due.is_set()
        if force or now >= self._next_snapshot:
            self._snapshot_due.clear()
            self._next_snapshot = now + SNAPSHOT_INTERVAL_S
            snapshot = self.presence.snapshot(force=force)
            if snapshot is not None:
                self._client.publish(self.topics.presence, snapshot, qos=1, retain=True)

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
        self._counters.add("published", published)

    def _settle_pubacks(self) -> None:
        pubacks = []
        while self._pubacks:
            mid, reason = self._pubacks.popleft()
            pubacks.append((mid, str(reason) if reason.is_failure else None))
        settled = self._window.settle(pubacks, time.monotonic())
        for refusal in settled.refused:
            self._broker_refused(refusal)
        if settled.acked:
            self._counters.add("broker_acked", settled.acked)
        self._mark_sent(force=False)

    def _mark_sent(self, *, force: bool) -> None:
        # A mark lost in a crash only means the event is sent again.
        keys = self._window.marks_due(time.monotonic(), force=force)
        if keys:
            self.spool.mark_sent(keys)
            self._window.marked(keys, time.monotonic())

    def _broker_refused(self, refusal: Refusal) -> None:
        self._counters.add("broker_refused")
        log.error(
            "uplink: the broker refused event %s (%s); check that its ACL lets user %r write %s;"
            " retrying in %.1fs",
            refusal.key,
            refusal.reason,
            self.broker.username,
            self.topics.event,
            refusal.pause_s,
        )

    # -- the retained state ------------------------------------------------------------

    def _publish_state(self, status: Status) -> mqtt.MQTTMessageInfo:
        return self._client.publish(self.topics.state, self._state(status), qos=1, retain=True)

    def _state(self, status: Status) -> bytes:
        health = self._current_health() if status == "online" else None
        state = state_message(status, self.topics, ts_ms=int(time.time() * 1000), health=health)
        return self.spool.sign_state(state)

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


def _statuslist_limit(settings: UplinkConfig) -> int:
    return int(settings.max_statuslist_mb * 1024 * 1024)


@lru_cache(maxsize=64)
def _event_topic(prefix: str, destination: str, device: str) -> str:
    return DeviceTopics(prefix, destination, device).event


def _lookup(authority_keys: AuthorityKeys | None) -> jws.KeyLookup | None:
    if authority_keys is None:
        return None
    if isinstance(authority_keys, Mapping):
        if not authority_keys:
            return None
        return authority_keys.get
    return authority_keys
