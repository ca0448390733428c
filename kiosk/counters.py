"""The uplink's counters, shared by its two threads, and their snapshot `UplinkStats`."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

COUNTS = (
    "published",
    "broker_acked",
    "broker_refused",
    "acks_applied",
    "resent",
    "connect_attempts",
    "connect_failures",
)


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


class UplinkCounters:
    """The uplink's counters; every change and `snapshot()` hold one lock, so a snapshot is consistent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTS, 0)
        self._rejected: collections.Counter[str] = collections.Counter()
        self._last_error: str | None = None
        self._last_ack: datetime | None = None

    def add(self, name: str, n: int = 1) -> None:
        """Add `n` to the counter `name` (one of `COUNTS`)."""
        if name not in self._counts:  # a typo must fail loudly, not count into the void
            raise KeyError(f"no uplink counter {name!r}")
        with self._lock:
            self._counts[name] += n

    def reject(self, reason: str) -> None:
        """Count one message from the broker that was dropped for `reason`."""
        with self._lock:
            self._rejected[reason] += 1

    def connect_failed(self, message: str) -> bool:
        """Count a failed connection with its explanation; whether it repeats the last one."""
        with self._lock:
            self._counts["connect_failures"] += 1
            repeated = self._last_error == message
            self._last_error = message
        return repeated

    def connected(self) -> None:
        """The broker accepted us: the last connection error is history."""
        with self._lock:
            self._last_error = None

    def ack_applied(self, when: datetime, resent: int) -> None:
        """Count a valid ack from central, applied at `when`, that re-queued `resent` events."""
        with self._lock:
            self._counts["acks_applied"] += 1
            self._counts["resent"] += resent
            self._last_ack = when

    def snapshot(self, *, connected: bool) -> UplinkStats:
        """All counters at one instant."""
        with self._lock:
            return UplinkStats(
                connected=connected,
                rejected=dict(self._rejected),
                last_error=self._last_error,
                last_ack=self._last_ack,
                **self._counts,
            )
