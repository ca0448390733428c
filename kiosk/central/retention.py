"""Retention: central deletes what contact tracing no longer needs, without long locks.

Central keeps events, refused messages (and the seqs they settled) and state
changes for `DEFAULT_DAYS` unless configured otherwise: the national QR check-in
rules kept check-in data for 21 to 30 days, and a trace reaches back two incubation periods of up to 14
days (the case's exposure, then their contacts'), plus the days a case takes to
be reported. The acks' cursors (`progress`), each device's latest state and the
hourly aggregates (counts, no identity) are kept whatever their age.

Events go through `Store.drop_before`: PostgreSQL drops whole day partitions,
SQLite deletes in committed batches. Refused messages and state changes are
deleted in batches on both (`Store.delete_before`). `kiosk-central expire` runs
it once, or every `--every` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kiosk.central.partitions import DAY_MS, utc_day
from kiosk.central.store import Store

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
# Deleted by age like the events. A settled seq deleted while a gap below it still holds the ack
# back is refused, and settled, again when the kiosk re-sends it (a kiosk keeps what is not acked).
LOGS = (("rejects", "received_ms"), ("settled", "received_ms"), ("state_log", "ts"))


def expire(store: Store, days: int, *, now_ms: int) -> int:
    """Delete what is older than `days` whole UTC days before `now_ms`; rows (or partitions) deleted."""
    oldest_day = utc_day(now_ms - days * DAY_MS)  # everything before this day's start goes
    dropped = store.drop_before(oldest_day)
    store.commit()
    cutoff_ms = (now_ms - days * DAY_MS) // DAY_MS * DAY_MS
    logs = sum(store.delete_before(table, column, cutoff_ms) for table, column in LOGS)
    log.info(
        "retention: kept %d days from %s; deleted %d (events) and %d (logs)", days, oldest_day, dropped, logs
    )
    return dropped + logs


def run(
    open_store: Callable[[], Store],
    days: int,
    *,
    every_s: float,
    stop: threading.Event,
    clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> None:
    """Expire every `every_s` until `stop`; a database that fails is tried again next time."""
    while not stop.is_set():
        try:
            with open_store() as store:
                expire(store, days, now_ms=clock())
        except Exception as e:  # the database may be away: the next round tries again
            log.error("retention: %s; trying again in %.0f s", e, every_s)
        stop.wait(every_s)
