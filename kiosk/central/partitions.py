"""PostgreSQL's `events` in one partition per UTC day: created ahead by the ingest, dropped for retention.

A partition covers `ts` in [day × 86,400,000, (day + 1) × 86,400,000). Events of a day
that has no partition (a kiosk clock far off, a day outside the window the ingest
creates) land in `events_default`; creating that day's partition later moves them in.
Creating and dropping take a transaction-level advisory lock, so several ingests
never race on the same partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY_MS = 86_400_000
AHEAD_DAYS = 2  # today and the next days exist before their first event arrives
PAST_DAYS = 400  # older days of a backlog still get their own partition; anything older goes to default
LOCK_KEY = 0x6B696F736B  # pg_advisory_xact_lock key of partition DDL ("kiosk")
EPOCH = date(1970, 1, 1)

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def day_number(day: date) -> int:
    """Days since 1970-01-01 (the UTC day a partition covers)."""
    return (day - EPOCH).days


def name(day: int) -> str:
    """The partition's table name, e.g. events_20261101."""
    return f"events_{EPOCH + timedelta(days=day):%Y%m%d}"


def wanted_days(ts_values: Iterable[int], now_ms: int) -> set[int]:
    """The UTC days that should have a partition: those of these events in the window, and the days ahead."""
    today = now_ms // DAY_MS
    days = {ts // DAY_MS for ts in ts_values}
    ahead = set(range(today, today + AHEAD_DAYS + 1))
    return {d for d in days if today - PAST_DAYS <= d <= today + AHEAD_DAYS} | ahead


class DayPartitions:
    """Create and drop day partitions through a store's query function (the caller commits)."""

    def __init__(self, query: Query) -> None:
        self._query = query
        self._known: set[int] = set()

    def existing(self) -> list[int]:
        """Days that have a partition, oldest first."""
        rows = self._query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = 'events' AND c.relname <> 'events_default'",
            (),
        )
        days = sorted(day_number(datetime.strptime(r[0], "events_%Y%m%d").date()) for r in rows)
        self._known = set(days)
        return days

    def forget(self) -> None:
        """Read the partitions again before the next `ensure` (a rollback undid any it created)."""
        self._known = set()

    def ensure(self, days: Iterable[int]) -> list[int]:
        """Create the partitions of these days that do not exist yet; return the days created."""
        missing = sorted(set(days) - self._known)
        if not missing:
            return []
        self._query("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        present = set(self.existing())
        created = [day for day in missing if day not in present]
        for day in created:
            self._create(day)
        self._known |= set(created)
        return created

    def _create(self, day: int) -> None:
        table, lo, hi = name(day), day * DAY_MS, (day + 1) * DAY_MS
        waiting = self._query("SELECT 1 FROM events_default WHERE ts >= %s AND ts < %s LIMIT 1", (lo, hi))
        if not waiting:
            self._query(f"CREATE TABLE {table} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})", ())
            return
        # Rows of this day already sit in the default partition: a new partition cannot be created over
        # them, so build it beside, move them in, then attach it.
        self._query(f"CREATE TABLE {table} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", ())
        self._query(
            f"WITH moved AS (DELETE FROM events_default WHERE ts >= %s AND ts < %s RETURNING *)"
            f" INSERT INTO {table} SELECT * FROM moved",
            (lo, hi),
        )
        self._query(f"ALTER TABLE events ATTACH PARTITION {table} FOR VALUES FROM ({lo}) TO ({hi})", ())

    def drop_before(self, day: int) -> list[int]:
        """Drop every partition of a day before `day`, and older rows of the default partition."""
        self._query("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        old = [d for d in self.existing() if d < day]
        for d in old:
            # A partition is dropped whole: no row-by-row delete, no vacuum, a lock held for moments.
            self._query(f"DROP TABLE {name(d)}", ())
        self._query("DELETE FROM events_default WHERE ts < %s", (day * DAY_MS,))
        self._known -= set(old)
        return old


def utc_day(ms: int) -> date:
    """The UTC date of a time in ms."""
    return datetime.fromtimestamp(ms / 1000, UTC).date()
