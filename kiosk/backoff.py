"""Full-jitter exponential backoff: thousands of kiosks must not retry in step after a broker restart."""

from __future__ import annotations

import random


class FullJitterBackoff:
    """Reconnect delays: uniform in [0, min(cap, base * 2**attempt)] ("full jitter")."""

    def __init__(self, base_s: float, cap_s: float, *, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the ceiling up to the cap."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        """Start again from the shortest ceiling (after a success)."""
        self.attempt = 0
