"""The uplink's in-flight window: what to publish next, what waits for a PUBACK, what to mark sent.

Pure bookkeeping, without paho and without threads: the uplink's drain thread owns
one window and tells it what happened (published, PUBACKs, a resend request, time
passing); every call that depends on time takes `now` (monotonic seconds). The
window reads the spool only through the `read_unsent` function it is given, and
hands back the keys to mark sent instead of writing them.

The rules:
- at most `size` events wait for a PUBACK; the spool is read ahead in batches (one
  query per several windows, not per PUBACK);
- an event is never offered twice while it is in flight or acked-but-not-marked;
- a refused event goes back to the spool's order after a full-jitter pause;
- an event still unacknowledged `stuck_after_s` after the last (re)connection is
  forgotten, so it is published again from the spool;
- anything that puts an older event back (refusal, stuck, resend request) makes the
  window read the spool again, so events keep going out in (epoch, seq) order.

`UnackedResend` is the same kind of bookkeeping one step further: events the
broker accepted that central's acks never covered are sent again on a timer.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kiosk.backoff import FullJitterBackoff
from kiosk.spool import EventKey, SpooledEvent

MARK_INTERVAL_S = 0.05
MARK_BATCH = 512
READ_AHEAD_WINDOWS = 4

ReadUnsent = Callable[[int], Sequence[SpooledEvent]]  # limit -> the oldest unsent events


@dataclass(frozen=True)
class Refusal:
    """An event the broker refused, and how long the window now pauses."""

    key: EventKey
    reason: str
    pause_s: float


@dataclass(frozen=True)
class Settled:
    """What a batch of PUBACKs did: how many were accepted, which were refused."""

    acked: int
    refused: tuple[Refusal, ...]


@dataclass(frozen=True)
class _InFlight:
    key: EventKey
    since: float


class InFlightWindow:
    """The events between the spool and the broker's PUBACK (see the module's rules)."""

    def __init__(
        self,
        size: int,
        *,
        stuck_after_s: float,
        refusal_backoff: FullJitterBackoff,
        mark_interval_s: float = MARK_INTERVAL_S,
        mark_batch: int = MARK_BATCH,
    ) -> None:
        self.size = size
        self.stuck_after_s = stuck_after_s
        self._backoff = refusal_backoff
        self._mark_interval_s, self._mark_batch = mark_interval_s, mark_batch
        self._queue: collections.deque[SpooledEvent] = collections.deque()
        self._inflight: dict[int, _InFlight] = {}
        self._keys: set[EventKey] = set()  # in flight, or acked and not yet marked
        self._to_mark: list[EventKey] = []
        self._marked_at = float("-inf")
        self._paused_until = float("-inf")

    @property
    def in_flight(self) -> int:
        """Events published and waiting for their PUBACK."""
        return len(self._inflight)

    @property
    def unmarked(self) -> int:
        """Events the broker accepted that are not yet marked sent in the spool."""
        return len(self._to_mark)

    def next(self, now: float, read_unsent: ReadUnsent) -> SpooledEvent | None:
        """The next event to publish; None while the window is full, paused, or nothing is unsent."""
        if len(self._inflight) >= self.size or now < self._paused_until:
            return None
        while self._read_ahead(read_unsent):
            spooled = self._queue.popleft()
            if spooled.key not in self._keys:
                return spooled
        return None

    def _read_ahead(self, read_unsent: ReadUnsent) -> bool:
        if not self._queue:
            batch = read_unsent(len(self._keys) + READ_AHEAD_WINDOWS * self.size)
            self._queue.extend(e for e in batch if e.key not in self._keys)
        return bool(self._queue)

    def published(self, mid: int, key: EventKey, now: float) -> None:
        """`key` went out as message `mid` (paho keeps it and re-sends it after a reconnect)."""
        self._inflight[mid] = _InFlight(key, now)
        self._keys.add(key)

    def settle(self, pubacks: Iterable[tuple[int, str | None]], now: float) -> Settled:
        """Apply PUBACKs as (mid, refusal reason or None); other mids (a state message) are ignored."""
        acked, refused = 0, []
        for mid, refusal in pubacks:
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue
            if refusal is not None:
                refused.append(self._refused(entry.key, refusal, now))
            else:
                self._to_mark.append(entry.key)  # stays among the keys until marked
                acked += 1
        if acked:
            self._backoff.reset()
        return Settled(acked, tuple(refused))

    def _refused(self, key: EventKey, reason: str, now: float) -> Refusal:
        self._keys.discard(key)
        self._queue.clear()
        pause = self._backoff.next_delay()
        self._paused_until = now + pause
        return Refusal(key, reason, pause)

    def marks_due(self, now: float, *, force: bool = False) -> list[EventKey]:
        """The keys to mark sent now: a batch, not one spool write per PUBACK (the loop shares the lock)."""
        due = now >= self._marked_at + self._mark_interval_s or len(self._to_mark) >= self._mark_batch
        return list(self._to_mark) if self._to_mark and (force or due) else []

    def marked(self, keys: Sequence[EventKey], now: float) -> None:
        """The spool has marked `keys` (from `marks_due`) sent."""
        self._keys.difference_update(keys)
        self._to_mark = self._to_mark[len(keys) :]
        self._marked_at = now

    def forget_stuck(self, now: float, *, connected_at: float) -> int:
        """Forget events unacknowledged too long while connected; how many (they are published again)."""
        limit = now - self.stuck_after_s
        if connected_at > limit:
            return 0  # paho is still re-sending what was in flight when the connection dropped
        stuck = [mid for mid, entry in self._inflight.items() if entry.since < limit]
        if stuck:
            self._queue.clear()
        for mid in stuck:
            self._keys.discard(self._inflight.pop(mid).key)
        return len(stuck)

    def reread(self) -> None:
        """The spool's order changed (a resend request, requeued events): read it again."""
        self._queue.clear()


class UnackedResend:
    """When to send again what the broker accepted but central's acks never covered; pure, time given.

    A broker may lose messages it acknowledged (it saves to disk lazily), and a
    central that then receives nothing sends no ack that could reveal the loss.
    So, ack or not, every `interval` the uplink sends again what the broker
    accepted more than `after_s` ago and central has not acked. The interval
    starts at `after_s` and doubles after each round that sent something again
    and no ack follows, up to `max_interval_s`: while central is away the rounds
    thin out instead of re-queuing the whole backlog at the broker every few
    minutes. A round that found nothing to send, or any ack, starts it over: the
    next lost event is then found within `after_s` of becoming stale, not after
    a wait grown during hours of quiet. The caller tells each round's outcome to
    `resent`. `now` is wall-clock seconds (the spool's `sent_at` is UTC ms).
    """

    def __init__(self, after_s: float, *, max_interval_s: float) -> None:
        self.after_s = after_s
        self.max_interval_s = max(after_s, max_interval_s)
        self._interval = after_s
        self._next: float | None = None

    @property
    def interval_s(self) -> float:
        """The wait after the last round (or ack) before the next round."""
        return self._interval

    def due(self, now: float) -> int | None:
        """If a round is due at `now`: the cutoff (UTC ms) to send again what was sent before; else None."""
        if self._next is None:
            self._next = now + self.after_s  # nothing sent before we started is older than this
            return None
        if now < self._next:
            return None
        self._next = now + self._interval  # held until `resent` says what the round found
        return int((now - self.after_s) * 1000)

    def resent(self, count: int, now: float) -> None:
        """The round due at `now` sent `count` events again: the wait doubles, or starts over at 0."""
        if count:
            self._interval = min(2 * self._interval, self.max_interval_s)
        else:
            self._interval = self.after_s
        self._next = now + self._interval

    def acked(self, now: float) -> None:
        """Central's ack arrived (it re-queued what it left uncovered): `after_s` to the next round."""
        self._interval = self.after_s
        self._next = now + self.after_s
