"""Whether the system clock is synchronised: a Pi has no RTC and boots with a stale time."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from pathlib import Path

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
STA_UNSYNC = 0x0040  # kernel NTP status bit: "clock not synchronised"


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `status` is read, the rest is padding space.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("_pad", ctypes.c_long * 4),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_long * 32),
    ]


def kernel_says_synced() -> bool | None:
    """Ask the kernel (adjtimex) whether an NTP daemon has disciplined the clock; None if unknown."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (timex.status & STA_UNSYNC) and state != 5  # 5 = TIME_ERROR


class ClockWatch:
    """Remembers whether the clock is synchronised, re-checking at most every `interval_s`."""

    def __init__(self, *, flag_file: Path = TIMESYNCD_FLAG, interval_s: float = 30.0) -> None:
        self._flag_file = flag_file
        self._interval_s = interval_s
        self._checked_at = -interval_s
        self._synced = False

    def synced(self) -> bool:
        """Whether the clock is synchronised (timesyncd's flag file, else the kernel's NTP state)."""
        now = time.monotonic()
        if now - self._checked_at >= self._interval_s:
            self._checked_at = now
            self._synced = self._check()
        return self._synced

    def _check(self) -> bool:
        if self._flag_file.exists():
            return True
        return bool(kernel_says_synced())
