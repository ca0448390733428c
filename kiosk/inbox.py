"""What the broker sends the kiosk: central's acks and the authority's signed retained lists.

Each subscribed topic is a `Route`: its size limit and the handler of its
payload. Paho's thread only checks and queues (`Inbox.offer`); the drain thread
handles (`Inbox.handle_waiting`), so a slow store never stalls the network loop.
A handler refuses a message by raising `BrokerMessageError`; the inbox logs it
and counts it under its reason. Nothing the broker sends can stop the uplink.

An authority-signed retained list (the status list today, the DCC trust list
next) is one line: `signed_list("trustlist", trustlist_topic(prefix), limit, take)`.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kiosk import jws
from kiosk.counters import UplinkCounters
from kiosk.errors import BrokerMessageError, SignatureError
from kiosk.events import verify_ack
from kiosk.spool import Spool

log = logging.getLogger(__name__)

MAX_ACK_BYTES = 256 * 1024
MAX_INBOX = 64  # messages waiting for the drain thread; more is a flood


@dataclass(frozen=True)
class Route:
    """One subscribed topic: the largest payload taken, and its handler (may raise BrokerMessageError)."""

    topic: str
    max_bytes: int
    handle: Callable[[bytes], None]


@dataclass(frozen=True)
class PatternRoute:
    """Topics matching a filter with `+` levels (e.g. the lanes' presence): the handler gets the topic too."""

    topic: str
    max_bytes: int
    handle: Callable[[str, bytes], None]

    def matches(self, topic: str) -> bool:
        """Whether `topic` matches the filter (`+` stands for exactly one level)."""
        want, got = self.topic.split("/"), topic.split("/")
        return len(want) == len(got) and all(w in ("+", g) for w, g in zip(want, got, strict=True))


def signed_list(name: str, topic: str, max_bytes: int, take: Callable[[bytes], None] | None) -> Route:
    """The route of an authority-signed retained list: `take` verifies and keeps it, or raises why not."""

    def handle(payload: bytes) -> None:
        if take is None:  # nobody here enforces this list (a bare uplink)
            return
        try:
            take(payload)
        except Exception as e:  # a bad list must never stop the uplink; the store explains why
            raise BrokerMessageError(f"{name}_refused", f"{name} not taken: {e}") from e

    return Route(topic, max_bytes, handle)


class Inbox:
    """The broker's messages: checked and queued on paho's thread, handled in order on the drain thread."""

    def __init__(
        self,
        routes: Sequence[Route | PatternRoute],
        counters: UplinkCounters,
        *,
        max_waiting: int = MAX_INBOX,
    ) -> None:
        self._routes = {route.topic: route for route in routes if isinstance(route, Route)}
        self._patterns = [route for route in routes if isinstance(route, PatternRoute)]
        self._counters = counters
        self._max_waiting = max_waiting
        self._waiting: collections.deque[tuple[Callable[[bytes], None], bytes]] = collections.deque()

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics (and filters) to subscribe to, in the order of the routes."""
        return (*self._routes, *(route.topic for route in self._patterns))

    def _route(self, topic: str) -> tuple[int, Callable[[bytes], None]] | None:
        route = self._routes.get(topic)
        if route is not None:
            return route.max_bytes, route.handle
        for pattern in self._patterns:
            if pattern.matches(topic):
                return pattern.max_bytes, functools.partial(pattern.handle, topic)
        return None

    def offer(self, topic: str, payload: bytes | bytearray) -> bool:
        """Queue a message unless it is unexpected, too large or one too many; whether it was queued."""
        route = self._route(topic)
        if route is None:
            self.reject("unexpected_topic", f"a message on {topic!r}, which we never subscribed to")
        elif len(payload) > route[0]:
            self.reject("oversized", f"{len(payload)} bytes on {topic}")
        elif len(self._waiting) >= self._max_waiting:
            self.reject("flood", f"more than {self._max_waiting} messages waiting; dropped one on {topic}")
        else:
            self._waiting.append((route[1], bytes(payload)))
            return True
        return False

    def handle_waiting(self) -> None:
        """Hand every queued message to its route's handler; refusals are logged and counted."""
        while self._waiting:
            handle, payload = self._waiting.popleft()
            try:
                handle(payload)
            except BrokerMessageError as e:
                self.reject(e.reason, str(e))

    def subscribed(self, refusals: Iterable[str | None]) -> None:
        """Report the subscriptions the broker refused: one reason (None: granted) per topic, in order."""
        for topic, refusal in zip(self.topics, refusals, strict=False):
            if refusal is not None:
                log.error(
                    "uplink: the broker refused our subscription to %s (%s): check its ACL", topic, refusal
                )
                self._counters.reject("subscription_refused")

    def reject(self, reason: str, detail: str) -> None:
        """Drop a message: count it under `reason` and say why."""
        self._counters.reject(reason)
        log.warning("uplink: ignored a message from the broker (%s): %s", reason, detail)


class CentralAcks:
    """Central's signed acks for one device: drop what they cover, re-queue what central asks for or lacks."""

    def __init__(
        self,
        spool: Spool,
        authority: jws.KeyLookup | None,
        *,
        topic: str,
        resend_unacked_s: float,
        counters: UplinkCounters,
        on_requeue: Callable[[], None],
        on_ack: Callable[[float], None] = lambda _now: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.authority = authority
        self.topic = topic
        self._resend_unacked_s = resend_unacked_s
        self._counters = counters
        self._on_requeue = on_requeue
        self._on_ack = on_ack  # told the time of each applied ack: the resend timer starts over
        self._clock = clock

    def route(self) -> Route:
        """The route of our ack topic."""
        return Route(self.topic, MAX_ACK_BYTES, self.handle)

    def handle(self, payload: bytes) -> None:
        """Verify one ack and apply it to the spool; raises BrokerMessageError for a bad one."""
        if self.authority is None:
            raise BrokerMessageError(
                "ack_unverifiable", "no authority keys are configured (policy.authority_keys)"
            )
        try:
            ack = verify_ack(payload, self.authority)
        except SignatureError as e:
            raise BrokerMessageError("ack_invalid", f"ack on {self.topic}: {e}") from e
        if ack.device != self.spool.device_id:
            raise BrokerMessageError("ack_wrong_device", f"ack for {ack.device!r} on our topic")
        self._apply(ack.acked(), ack.resend)

    def _apply(self, epochs: dict[int, int], resend: list[tuple[int, int, int]]) -> None:
        device = self.spool.device_id
        acked = self.spool.apply_ack(device, epochs)
        asked = self.spool.requeue(device, resend)
        # A fresh ack that still does not cover what the broker accepted long ago: lost, send again.
        cutoff = int((self._clock() - self._resend_unacked_s) * 1000)
        stale = self.spool.requeue_stale(device, cutoff)
        if asked or stale:
            self._on_requeue()
        self._on_ack(self._clock())
        self._counters.ack_applied(datetime.fromtimestamp(self._clock(), UTC), asked + stale)
        log.debug("uplink: ack covers %d new events; resending %d asked, %d unconfirmed", acked, asked, stale)
