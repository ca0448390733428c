"""The repeat filter: the same code seen again within its window is the same scan, not a new one.

One rule for every kind of scan (entrance decisions, inspector cards, street
checks): each sighting that is committed extends the window (it slides), a
clock that jumped back makes an entry count as unseen rather than a repeat for
long, and stale entries are forgotten. Looking up never changes the table:
the caller remembers a scan only once it has been recorded, so a scan whose
record failed is decided afresh when shown again.

No table keeps what a card says: card identities are known by the destination's
tags (kiosk.sealing.tag), and whole payloads by `PayloadKeys`, a keyed hash under
a key that lives only in this process's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentScans(Generic[T]):
    """Scans seen lately, by key, each with what was decided about it and until when it repeats."""

    def __init__(self) -> None:
        # In order of last touch: the stalest entries are at the front.
        self._seen: OrderedDict[Hashable, tuple[datetime, timedelta, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def find(self, key: Hashable, now: datetime) -> T | None:
        """What was remembered under `key`, if it was seen within its window before `now`."""
        entry = self._seen.get(key)
        if entry is None or not entry[0] <= now < entry[0] + entry[1]:
            return None
        return entry[2]

    def touch(self, key: Hashable, now: datetime) -> None:
        """Slide the window of a scan seen again at `now` (a repeat), keeping its length and value."""
        entry = self._seen.get(key)
        if entry is not None:
            self.remember((key,), entry[2], now, entry[1])

    def remember(self, keys: Iterable[Hashable], value: T, now: datetime, window: timedelta) -> None:
        """Remember `value` under each key as seen at `now`, repeating for `window` from now."""
        self.expire(now)
        if window <= timedelta(0):
            return
        for key in keys:
            self._seen[key] = (now, window, value)
            self._seen.move_to_end(key)

    def expire(self, now: datetime) -> None:
        """Forget the entries whose window ended at or before `now` (from the front: the oldest)."""
        while self._seen:
            seen, window, _ = next(iter(self._seen.values()))
            if seen + window > now:
                return
            self._seen.popitem(last=False)


class PayloadKeys:
    """Payloads as the repeat tables know them: HMAC-SHA256 under a key of this process, never the bytes."""

    def __init__(self) -> None:
        # Never written anywhere: a payload seen lately can be recognised, not read back or guessed offline.
        self._key = secrets.token_bytes(32)

    def __call__(self, payload: bytes) -> bytes:
        """The key of `payload` in a repeat table."""
        return hmac.new(self._key, payload, hashlib.sha256).digest()
