"""Central's data layer: one schema over SQLite (embedded, WAL) or PostgreSQL (psycopg 3).

`open_store(url)` picks the backend: `postgresql://...` is PostgreSQL, anything
else (`sqlite:///path`, or a bare path) is a SQLite file. Both take the same SQL;
the only difference is the parameter marker (`?` versus `%s`). Writes happen in
an open transaction until `commit()`: the ingest batches many events per commit
and acknowledges them to devices only after it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from kiosk.central import partitions
from kiosk.central.partitions import DAY_MS, DayPartitions
from kiosk.errors import StoreError

HOUR_MS = 3_600_000
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"
# The days of the `daily` aggregate are local days of UTC+7 (Vietnam, no daylight saving): the
# reports' default zone. A report in another zone sums `hourly` instead (kiosk.central.aggregates).
DAY_OFFSET_MS = 7 * HOUR_MS

EVENT_COLUMNS = """
    device TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts BIGINT NOT NULL,
    clock_synced SMALLINT NOT NULL,
    direction TEXT,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    format TEXT NOT NULL,
    identity TEXT,
    sw TEXT NOT NULL,
    decode_ms DOUBLE PRECISION NOT NULL,
    received_ms BIGINT NOT NULL,
    token TEXT NOT NULL,
    identity_alt TEXT"""

SQLITE_EVENTS = f"""
CREATE TABLE IF NOT EXISTS events ({EVENT_COLUMNS},
    PRIMARY KEY (device, epoch, seq)
);"""

# PostgreSQL: one partition per UTC day of `ts` (kiosk.central.partitions), so retention drops whole
# partitions. The key must hold the partition column; a redelivered event has the same ts, so
# (device, epoch, seq, ts) still stores each event once.
POSTGRES_EVENTS = f"""
CREATE TABLE IF NOT EXISTS events ({EVENT_COLUMNS},
    PRIMARY KEY (device, epoch, seq, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
CREATE TEMP TABLE IF NOT EXISTS incoming ({EVENT_COLUMNS}) ON COMMIT DELETE ROWS;"""

SCHEMA = """
CREATE INDEX IF NOT EXISTS events_destination_ts ON events (destination, ts);
CREATE INDEX IF NOT EXISTS events_identity_ts ON events (identity, ts);
-- Maintained by the ingest in the transaction that stores the events, counting only new rows
-- (kiosk.central.aggregates reads them). Hours and days are UTC: ts / 3600000, ts / 86400000.
CREATE TABLE IF NOT EXISTS hourly (
    hour BIGINT NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    n BIGINT NOT NULL,
    n_in BIGINT NOT NULL,
    n_out BIGINT NOT NULL,
    PRIMARY KEY (hour, destination, kind, format, verdict, reason)
);
-- The dashboard's reads: one venue's hours (its page), and one kind over a month (inspections).
CREATE INDEX IF NOT EXISTS hourly_destination_hour ON hourly (destination, hour);
CREATE INDEX IF NOT EXISTS hourly_kind_hour ON hourly (kind, hour);
-- One row per destination and local day (DAY_OFFSET_MS): what reports read for every venue at once.
-- Visitor scans are `scan` events of any card but an inspector's.
CREATE TABLE IF NOT EXISTS daily (
    day BIGINT NOT NULL,
    destination TEXT NOT NULL,
    n BIGINT NOT NULL,
    scans BIGINT NOT NULL,
    scans_in BIGINT NOT NULL,
    scans_out BIGINT NOT NULL,
    scans_fail BIGINT NOT NULL,
    old_poster BIGINT NOT NULL,
    inspections BIGINT NOT NULL,
    no_qr BIGINT NOT NULL,
    last_scan BIGINT,
    last_inspection BIGINT,
    PRIMARY KEY (day, destination)
);
CREATE TABLE IF NOT EXISTS device_days (
    day BIGINT NOT NULL,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    PRIMARY KEY (day, device, kind, format)
);
-- The dashboard's check for handhelds: street records of a week, then each device's visitor scans.
CREATE INDEX IF NOT EXISTS device_days_kind_day ON device_days (kind, day);
CREATE INDEX IF NOT EXISTS device_days_device_day ON device_days (device, day);
CREATE TABLE IF NOT EXISTS venues (
    destination TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    district TEXT NOT NULL,
    ward TEXT NOT NULL,
    grp TEXT NOT NULL,
    opening_hours TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    software TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'kiosk'
);
CREATE INDEX IF NOT EXISTS devices_destination ON devices (destination);
CREATE TABLE IF NOT EXISTS rejects (
    received_ms BIGINT NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
-- Seqs refused for good: a device-signed event that cannot be stored settles its place, so the
-- acks count it as covered (a new table, so an older database gains it on its next open).
CREATE TABLE IF NOT EXISTS settled (
    device TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    reason TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (device, epoch, seq)
);
CREATE TABLE IF NOT EXISTS progress (
    device TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    contiguous BIGINT NOT NULL,
    PRIMARY KEY (device, epoch)
);
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    ts BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    detail TEXT NOT NULL,
    unsent BIGINT,
    spool_depth BIGINT,
    fps DOUBLE PRECISION,
    clock_synced SMALLINT,
    alarms TEXT NOT NULL DEFAULT '[]',
    version TEXT
);
CREATE TABLE IF NOT EXISTS state_log (
    device TEXT NOT NULL,
    ts BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS state_log_device_ts ON state_log (device, ts);
CREATE UNIQUE INDEX IF NOT EXISTS state_log_once ON state_log (device, ts, status);
"""

# Columns added after a release: (table, column, definition), applied in order to older databases.
# A new column needs a default, so the rows already there get a value.
MIGRATIONS: tuple[tuple[str, str, str], ...] = (
    ("devices", "mode", "TEXT NOT NULL DEFAULT 'kiosk'"),
    # Schema-v2 events carry a card's second identity (a national QR's id number), hashed by central;
    # older rows keep NULL: v1 events carried one identity.
    ("events", "identity_alt", "TEXT"),
    # The dashboard's figures, kept up to date as events and states arrive rather than worked out per
    # page: a venue's latest visitor scan and inspector visit of each local day (UTC ms), and a device's
    # health read from its latest state message (columns, so that the fleet is sorted and paged in SQL).
    ("daily", "last_scan", "BIGINT"),
    ("daily", "last_inspection", "BIGINT"),
    ("device_state", "unsent", "BIGINT"),
    ("device_state", "spool_depth", "BIGINT"),
    ("device_state", "fps", "DOUBLE PRECISION"),
    ("device_state", "clock_synced", "SMALLINT"),
    ("device_state", "alarms", "TEXT NOT NULL DEFAULT '[]'"),
    ("device_state", "version", "TEXT"),
)
# Indexes on migrated columns: made after the columns exist.
MIGRATED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_identity_alt_ts ON events (identity_alt, ts)"
    " WHERE identity_alt IS NOT NULL",
    # Every venue's 7 days (the dashboard's lists) read from the index alone, without the table's rows.
    "CREATE INDEX IF NOT EXISTS daily_week ON daily"
    " (day, destination, scans, scans_in, scans_out, scans_fail, old_poster, last_scan)",
    # The venues inspected in a month: only the days that had an inspector's visit.
    "CREATE INDEX IF NOT EXISTS daily_inspected ON daily (day, destination, last_inspection)"
    " WHERE last_inspection IS NOT NULL",
)
BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class DeviceRow:
    """A registered device: its destination, public key and whether it is still trusted."""

    device: str
    destination: str
    public_key: str
    fingerprint: str
    software: str
    created: str
    status: str = "active"
    mode: str = "kiosk"  # or "inspector": a street inspector's handheld, never a venue's kiosk


@dataclass(frozen=True)
class EventRow:
    """One verified scan event as stored, with the exact token it arrived in."""

    device: str
    epoch: int
    seq: int
    id: str
    destination: str
    kind: str
    ts: int
    clock_synced: bool
    direction: str | None
    verdict: str
    reason: str
    format: str
    identity: str | None  # central's keyed hash of the card's primary identity (v1: the event's hash)
    sw: str
    decode_ms: float
    received_ms: int
    token: str
    identity_alt: str | None = None  # the card's second identity (a national QR's id number), hashed


@dataclass(frozen=True)
class VenueRow:
    """A venue (destination) of the registry: its name and where it is."""

    destination: str
    name: str
    district: str
    ward: str
    grp: str  # peer group ("group" is an SQL keyword)
    opening_hours: str | None


@dataclass(frozen=True)
class RejectRow:
    """A message that was refused, and why; its payload is not kept."""

    received_ms: int
    topic: str
    device: str | None
    reason: str
    detail: str


@dataclass(frozen=True)
class SettledRow:
    """A seq refused for good: its event was signed by its device but cannot be stored."""

    device: str
    epoch: int
    seq: int
    reason: str
    received_ms: int


@dataclass(frozen=True)
class StateRow:
    """A device's latest retained state as central last saw it."""

    device: str
    destination: str
    status: str
    ts: int
    received_ms: int
    detail: str  # the whole state message as JSON (health figures, alarms)

    @property
    def health(self) -> dict[str, Any]:
        """The state message's fields."""
        return dict(json.loads(self.detail))


@dataclass(frozen=True)
class Health:
    """The health figures of a state message, as `device_state` keeps them beside the message.

    A figure of the wrong type is None (the message is not trusted to be well formed); a count
    beyond what BIGINT holds is kept at its maximum, and an fps that is not finite is None.
    """

    unsent: int | None = None
    spool_depth: int | None = None
    fps: float | None = None
    clock_synced: bool | None = None
    alarms: tuple[str, ...] = ()
    version: str | None = None  # None: the state does not say; the registry's software stands

    @classmethod
    def of(cls, detail: str) -> Health:
        """The figures of a state message's JSON text (all None when it is not a JSON object)."""
        try:
            found = json.loads(detail)
        except ValueError:
            return cls()
        if not isinstance(found, dict):
            return cls()
        alarms = found.get("alarms", [])
        return cls(
            unsent=_count(found.get("unsent")), spool_depth=_count(found.get("spool_depth")),
            fps=_finite(found.get("fps")), clock_synced=_flag(found.get("clock_synced")),
            alarms=tuple(str(a) for a in alarms) if isinstance(alarms, list) else (),
            version=str(found["version"]) if "version" in found else None,
        )  # fmt: skip

    def columns(self) -> tuple[Any, ...]:
        """The values of device_state's health columns, in HEALTH_COLUMNS order."""
        synced = None if self.clock_synced is None else int(self.clock_synced)
        return (self.unsent, self.spool_depth, self.fps, synced, json.dumps(list(self.alarms)), self.version)

    @classmethod
    def from_columns(cls, values: Sequence[Any]) -> Health:
        """Back from device_state's health columns."""
        unsent, depth, fps, synced, alarms, version = values
        return cls(
            unsent=_count(unsent), spool_depth=_count(depth), fps=None if fps is None else float(fps),
            clock_synced=None if synced is None else bool(synced),
            alarms=tuple(json.loads(alarms or "[]")), version=version,
        )  # fmt: skip


HEALTH_COLUMNS = "unsent, spool_depth, fps, clock_synced, alarms, version"


def _count(value: Any) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return max(-BIGINT_MAX - 1, min(value, BIGINT_MAX))


def _finite(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value) if abs(value) < 1e308 else float("inf")  # an int too big for a float
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


_NAMES: dict[type, tuple[str, ...]] = {}


def _values(row: Any) -> tuple[Any, ...]:
    # Shallow, unlike dataclasses.astuple (which deep-copies every field: slow at ingest rates).
    names = _NAMES.get(type(row)) or _NAMES.setdefault(type(row), tuple(f.name for f in fields(row)))
    values = row.__dict__
    return tuple(values[name] for name in names)


def _columns(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


def _marks(cls: type) -> str:
    return ", ".join("?" for _ in fields(cls))


class Store:
    """The database: a DB-API connection and the SQL both backends share."""

    def __init__(
        self, connection: Any, *, marker: str = "?", name: str = "sqlite", schema: bool = True
    ) -> None:
        self._conn = connection
        self._marker = marker
        self.name = name
        self._closed = False
        self._partitions = DayPartitions(self._rows) if name == "postgresql" else None
        if schema:
            self._create_schema()

    def _sql(self, sql: str) -> str:
        return sql if self._marker == "?" else sql.replace("?", self._marker)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        cur.execute(self._sql(sql), params)
        return cur

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._execute(sql, params).fetchall())

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._execute(sql, params)
        return list(cur.fetchall()) if cur.description is not None else []

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query written with `?` markers (kiosk.central.aggregates)."""
        return self._query(sql, params)

    def _create_schema(self) -> None:
        events = POSTGRES_EVENTS if self._partitions is not None else SQLITE_EVENTS
        self.ensure_schema(events + SCHEMA)

    def ensure_schema(self, sql: str) -> None:
        """Create the tables and indexes `sql` declares (all `IF NOT EXISTS`), migrate, and commit.

        A PostgreSQL user without the right to create (the dashboard's, which may only read
        central's tables) relies on the tables' owner, central's ingest, having made them.
        """
        try:
            had_daily = self._has_table("daily")
            for statement in sql.split(";"):
                if statement.strip():
                    self._execute(statement)
            self._migrate(had_daily)
            self.commit()
        except Exception as e:
            if getattr(e, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            self.rollback()

    def _migrate(self, had_daily: bool) -> None:
        """Bring a database made by an older version up to this schema; each step runs once."""
        added = set()
        for table, column, definition in MIGRATIONS:
            if column not in self._column_names(table):
                self._execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                added.add((table, column))
        if not had_daily and self._has_table("daily"):
            # A database from before `daily`: its days summed from `hourly` (which outlives the
            # events' retention), in the transaction that creates the table.
            self._execute(DAILY_FROM_HOURLY)
        elif ("daily", "last_scan") in added:
            self._execute(DAILY_LATEST_FROM_HOURLY)  # to the hour: what `hourly` knows
        if ("device_state", "unsent") in added:
            self._refresh_health()
        for index in MIGRATED_INDEXES:
            self._execute(index)

    def _refresh_health(self) -> None:
        """Fill device_state's health columns from each device's stored state message."""
        sets = ", ".join(f"{c} = ?" for c in HEALTH_COLUMNS.split(", "))
        for device, detail in self._query("SELECT device, detail FROM device_state"):
            self._execute(f"UPDATE device_state SET {sets} WHERE device = ?",
                          (*Health.of(detail).columns(), device))  # fmt: skip

    def _column_names(self, table: str) -> set[str]:
        if self._partitions is None:
            return {row[1] for row in self._query(f"PRAGMA table_info({table})")}
        sql = ("SELECT column_name FROM information_schema.columns"
               " WHERE table_name = ? AND table_schema = current_schema()")  # fmt: skip
        return {row[0] for row in self._query(sql, (table,))}

    def _has_table(self, name: str) -> bool:
        if self._partitions is not None:
            return self._query("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0] is True
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def commit(self) -> None:
        """Make everything written so far durable."""
        self._conn.commit()

    def rollback(self) -> None:
        """Forget everything written since the last commit."""
        self._conn.rollback()
        if self._partitions is not None:
            self._partitions.forget()  # any created in the rolled-back transaction are gone

    def is_transient(self, error: BaseException) -> bool:
        """Whether a failed transaction may succeed when simply run again (a deadlock, a lock timeout)."""
        if isinstance(error, sqlite3.OperationalError):
            return "locked" in str(error) or "busy" in str(error)
        # PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
        return getattr(error, "sqlstate", None) in ("40001", "40P01", "55P03")

    def close(self) -> None:
        """Roll back anything uncommitted and close; safe to call twice."""
        if not self._closed:
            self._closed = True
            try:
                self._conn.rollback()
            finally:  # a connection whose server went away is closed all the same
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Plain SQL for central's other writers (the dashboard's accounts, sessions and log).

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement written with `?` markers; how many rows it touched (not committed)."""
        return int(self._execute(sql, params).rowcount)

    # Devices.

    def put_device(self, row: DeviceRow) -> None:
        """Register a device, or replace its record (a re-provisioned device gets a new key)."""
        self._execute(_upsert("devices", DeviceRow, "device"), _values(row))

    def set_device_status(self, device: str, status: str) -> bool:
        """Set a device's status; False when no such device is registered."""
        cur = self._execute("UPDATE devices SET status = ? WHERE device = ?", (status, device))
        return bool(cur.rowcount)

    def devices(self) -> list[DeviceRow]:
        """Every registered device, ordered by id."""
        rows = self._query(f"SELECT {_columns(DeviceRow)} FROM devices ORDER BY device")
        return [DeviceRow(*row) for row in rows]

    # Events.

    def insert_events(self, rows: Sequence[EventRow]) -> int:
        """Store events, ignoring any already stored, and count the new ones into the aggregates.

        Returns how many were new. A duplicate (redelivered, or stored by another ingest) is
        neither stored nor counted, so `hourly` and `device_days` always equal a recount of
        `events`. Several writers should pass rows in key order, so that they never deadlock.
        """
        if not rows:
            return 0
        if self._partitions is not None:
            return self._insert_postgres(rows)
        return self._insert_sqlite(rows)

    def _insert_sqlite(self, rows: Sequence[EventRow]) -> int:
        sql = f"INSERT INTO events ({_columns(EventRow)}) VALUES ({_marks(EventRow)}) ON CONFLICT DO NOTHING"
        cur = self._conn.cursor()
        new = []
        for row in rows:  # one at a time: rowcount tells which rows were new
            cur.execute(sql, _event_params(row))
            if cur.rowcount == 1:
                new.append(row)
        cur.executemany(HOURLY_UPSERT, _hourly(new))
        cur.executemany(DAILY_UPSERT, _daily(new))
        cur.executemany(
            DEVICE_DAYS_INSERT, sorted({(e.ts // DAY_MS, e.device, e.kind, e.format) for e in new})
        )
        return len(new)

    def _insert_postgres(self, rows: Sequence[EventRow]) -> int:
        cur = self._conn.cursor()
        with cur.copy(f"COPY incoming ({_columns(EventRow)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(_event_params(row))
        cur.execute(POSTGRES_INSERT)
        new = int(cur.fetchone()[0])
        cur.execute("TRUNCATE incoming")
        return new

    def ensure_partitions(self, ts_values: Iterable[int], now_ms: int) -> list[int]:
        """PostgreSQL: create the day partitions these events and the next days need; SQLite: nothing.

        Call it at the start of a transaction (it takes a lock other writers wait for until commit).
        Returns the UTC day numbers created.
        """
        if self._partitions is None:
            return []
        return self._partitions.ensure(partitions.wanted_days(ts_values, now_ms))

    def drop_before(self, day: date) -> int:
        """Delete every event of a UTC day before `day`: PostgreSQL drops whole day partitions.

        The aggregates (counts without identities) are kept. Returns the partitions dropped
        (PostgreSQL; the caller commits) or the rows deleted (SQLite, in committed batches).
        """
        cutoff = partitions.day_number(day)
        if self._partitions is not None:
            return len(self._partitions.drop_before(cutoff))
        return self.delete_before("events", "ts", cutoff * DAY_MS)

    def delete_before(self, table: str, column: str, cutoff_ms: int, *, batch_rows: int = 5000) -> int:
        """Delete a table's rows with `column` < `cutoff_ms`, oldest first, committing each batch.

        Each batch is its own short transaction, so a writer (the ingest) waits at most one
        batch; its bound is found first by a read, which blocks no writer. Returns the rows.
        """
        deleted = 0
        while True:
            sql = f"SELECT {column} FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT 1 OFFSET ?"
            nth = self._query(sql, (cutoff_ms, batch_rows - 1))
            bound = cutoff_ms if not nth else min(cutoff_ms, int(nth[0][0]) + 1)
            deleted += int(self._execute(f"DELETE FROM {table} WHERE {column} < ?", (bound,)).rowcount)
            self.commit()
            if not nth:
                return deleted

    def partition_days(self) -> list[date]:
        """PostgreSQL: the UTC days that have an events partition, oldest first; SQLite: none."""
        if self._partitions is None:
            return []
        return [partitions.EPOCH + timedelta(days=d) for d in self._partitions.existing()]

    def events(self, start_ms: int, end_ms: int, *, destination: str | None = None) -> list[EventRow]:
        """Events with start_ms <= ts < end_ms, oldest first, optionally of one destination."""
        sql = f"SELECT {_columns(EventRow)} FROM events WHERE ts >= ? AND ts < ?"
        params: list[Any] = [start_ms, end_ms]
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        return [_event_row(row) for row in self._query(sql + " ORDER BY ts, device, seq", params)]

    def events_of(self, identities: Iterable[str], start_ms: int, end_ms: int) -> list[EventRow]:
        """Events with any of these identities (either column), start_ms <= ts < end_ms, oldest first."""
        wanted = list(identities)
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        sql = (
            f"SELECT {_columns(EventRow)} FROM events"
            f" WHERE (identity IN ({marks}) OR identity_alt IN ({marks})) AND ts >= ? AND ts < ?"
        )
        rows = self._query(sql + " ORDER BY ts", [*wanted, *wanted, start_ms, end_ms])
        return [_event_row(row) for row in rows]

    def count_events(self) -> int:
        """How many events are stored."""
        return int(self._query("SELECT COUNT(*) FROM events")[0][0])

    # Sequence progress, for acks.

    def seqs_after(self, device: str, epoch: int, after: int, limit: int) -> list[tuple[int, int]]:
        """(seq, received_ms) of a device's seqs in one epoch above `after` stored or settled, in order.

        A seq both stored and settled comes twice (the acks' walk skips the repeat).
        """
        rows = self._query(SEQS_AFTER, (device, epoch, after, limit) * 2 + (limit,))
        return [(int(seq), int(received)) for seq, received in rows]

    def settle(self, rows: Sequence[SettledRow]) -> None:
        """Record seqs refused for good (once each, in key order so concurrent ingests never deadlock)."""
        if rows:
            sql = f"INSERT INTO settled ({_columns(SettledRow)}) VALUES ({_marks(SettledRow)})"
            params = [_values(row) for row in sorted(rows, key=lambda r: (r.device, r.epoch, r.seq))]
            self._conn.cursor().executemany(self._sql(sql + " ON CONFLICT DO NOTHING"), params)

    def settled(self, device: str) -> list[SettledRow]:
        """A device's settled seqs, in order."""
        sql = f"SELECT {_columns(SettledRow)} FROM settled WHERE device = ? ORDER BY epoch, seq"
        return [SettledRow(*row) for row in self._query(sql, (device,))]

    def progress(self, device: str) -> dict[int, int]:
        """Per epoch, the highest seq with every seq at or below it stored."""
        rows = self._query("SELECT epoch, contiguous FROM progress WHERE device = ?", (device,))
        return {int(epoch): int(contiguous) for epoch, contiguous in rows}

    def advance_progress(self, device: str, epoch: int, contiguous: int) -> None:
        """Raise an epoch's contiguous mark (never lowers it: another instance may be ahead)."""
        sql = (
            "INSERT INTO progress (device, epoch, contiguous) VALUES (?, ?, ?)"
            " ON CONFLICT (device, epoch) DO UPDATE SET contiguous = CASE"
            " WHEN excluded.contiguous > progress.contiguous THEN excluded.contiguous"
            " ELSE progress.contiguous END"
        )
        self._execute(sql, (device, epoch, contiguous))

    # Venues (the registry imported from CSV: kiosk.central.venues).

    def put_venues(self, rows: Sequence[VenueRow]) -> None:
        """Add or replace venues, in id order (so concurrent imports do not deadlock)."""
        sql = _upsert("venues", VenueRow, "destination")
        self._conn.cursor().executemany(
            self._sql(sql), [_values(r) for r in sorted(rows, key=lambda r: r.destination)]
        )

    def venues(self) -> list[VenueRow]:
        """Every venue in the registry, ordered by id."""
        rows = self._query(f"SELECT {_columns(VenueRow)} FROM venues ORDER BY destination")
        return [VenueRow(*row) for row in rows]

    # Rejects.

    def add_rejects(self, rows: Sequence[RejectRow]) -> None:
        """Keep a record of refused messages."""
        if rows:
            sql = f"INSERT INTO rejects ({_columns(RejectRow)}) VALUES ({_marks(RejectRow)})"
            self._conn.cursor().executemany(self._sql(sql), [_values(row) for row in rows])

    def reject_counts(self) -> dict[str, int]:
        """How many messages were refused, by reason."""
        rows = self._query("SELECT reason, COUNT(*) FROM rejects GROUP BY reason")
        return {str(reason): int(n) for reason, n in rows}

    # Device state.

    def put_state(self, row: StateRow) -> None:
        """Save a device's latest state, logging it when its status changed.

        Every ingest instance receives every state, so this must be safe when several write
        the same one at once: an upsert that only a newer `ts` wins, and a log keyed by
        (device, ts, status) that takes each change once.
        """
        before = self._query("SELECT status, ts FROM device_state WHERE device = ?", (row.device,))
        if before and int(before[0][1]) > row.ts:
            return  # an older message delivered late must not overwrite a newer state
        self._execute(STATE_UPSERT, (*_values(row), *Health.of(row.detail).columns()))
        if not before or before[0][0] != row.status:
            self.log_state(row.device, row.ts, row.status)

    def log_state(self, device: str, ts: int, status: str) -> None:
        """Record that a device's status became `status` at ts (once, however many instances say so)."""
        sql = "INSERT INTO state_log (device, ts, status) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        self._execute(sql, (device, ts, status))

    def states(self) -> list[StateRow]:
        """Every device's latest state."""
        rows = self._query(f"SELECT {_columns(StateRow)} FROM device_state ORDER BY device")
        return [StateRow(*row) for row in rows]

    def state_log(self, device: str, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
        """(ts, status) changes in [start_ms, end_ms), preceded by the last change before start_ms."""
        sql = "SELECT ts, status FROM state_log WHERE device = ? AND ts < ? ORDER BY ts DESC LIMIT 1"
        earlier = self._query(sql, (device, start_ms))
        sql = "SELECT ts, status FROM state_log WHERE device = ? AND ts >= ? AND ts < ? ORDER BY ts"
        rows = earlier + self._query(sql, (device, start_ms, end_ms))
        return [(int(ts), str(status)) for ts, status in rows]


# Each side limited on its own, so that both read only the start of their index.
SEQS_AFTER = """
SELECT seq, received_ms FROM (
    SELECT seq, received_ms FROM (
        SELECT seq, received_ms FROM events WHERE device = ? AND epoch = ? AND seq > ? ORDER BY seq LIMIT ?
    ) AS stored
    UNION ALL
    SELECT seq, received_ms FROM (
        SELECT seq, received_ms FROM settled WHERE device = ? AND epoch = ? AND seq > ? ORDER BY seq LIMIT ?
    ) AS refused
) AS covered ORDER BY seq LIMIT ?"""

HOURLY_UPSERT = (
    "INSERT INTO hourly (hour, destination, kind, format, verdict, reason, n, n_in, n_out)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (hour, destination, kind, format, verdict, reason) DO UPDATE SET"
    " n = hourly.n + excluded.n, n_in = hourly.n_in + excluded.n_in, n_out = hourly.n_out + excluded.n_out"
)
DAILY_COLUMNS = (
    "day, destination, n, scans, scans_in, scans_out, scans_fail, old_poster, inspections, no_qr,"
    " last_scan, last_inspection"
)
_DAILY_COUNTS = DAILY_COLUMNS.split(", ")[2:-2]
_DAILY_SUMS = ", ".join(
    [f"{c} = daily.{c} + excluded.{c}" for c in _DAILY_COUNTS]
    # The later of the two times (either may be NULL: no such event yet); portable, unlike GREATEST.
    + [f"{c} = CASE WHEN daily.{c} IS NULL OR excluded.{c} > daily.{c} THEN excluded.{c} ELSE daily.{c} END"
       for c in ("last_scan", "last_inspection")]
)  # fmt: skip
DAILY_UPSERT = (
    f"INSERT INTO daily ({DAILY_COLUMNS}) VALUES ({', '.join('?' for _ in DAILY_COLUMNS.split(', '))})"
    f" ON CONFLICT (day, destination) DO UPDATE SET {_DAILY_SUMS}"
)
_VISITOR = "kind = 'scan' AND format <> 'inspector'"
_INSPECTOR_VISIT = "kind = 'inspection' AND format = 'inspector'"


def _daily_sums(count: str, inward: str, outward: str, when: str) -> str:
    """SQL summing rows of events (count = 1, when = ts) or of `hourly` (count = n, when = the hour's
    start) into the columns of `daily`."""
    return (
        f"SUM({count}), SUM(CASE WHEN {_VISITOR} THEN {count} ELSE 0 END),"
        f" SUM(CASE WHEN {_VISITOR} THEN {inward} ELSE 0 END),"
        f" SUM(CASE WHEN {_VISITOR} THEN {outward} ELSE 0 END),"
        f" SUM(CASE WHEN {_VISITOR} AND verdict = 'fail' THEN {count} ELSE 0 END),"
        f" SUM(CASE WHEN {_VISITOR} AND reason = 'old_venue_qr' THEN {count} ELSE 0 END),"
        f" SUM(CASE WHEN kind = 'inspection' THEN {count} ELSE 0 END),"
        f" SUM(CASE WHEN kind = 'no_qr' THEN {count} ELSE 0 END),"
        f" MAX(CASE WHEN {_VISITOR} THEN {when} END), MAX(CASE WHEN {_INSPECTOR_VISIT} THEN {when} END)"
    )


def daily_from_hourly(where: str = "") -> str:
    """SQL adding to `daily` the days summed from `hourly` (optionally only its rows matching `where`).

    `hourly` knows times to the hour: a day's last scan and inspection are the starts of their hours.
    """
    sums = _daily_sums("n", "n_in", "n_out", f"hour * {HOUR_MS}")
    return (
        f"INSERT INTO daily ({DAILY_COLUMNS}) SELECT (hour * {HOUR_MS} + {DAY_OFFSET_MS}) / {DAY_MS} AS d,"
        f" destination, {sums} FROM hourly {where} GROUP BY d, destination ON CONFLICT DO NOTHING"
    )


DAILY_FROM_HOURLY = daily_from_hourly()
_DAY_HOURS = (
    f"h.destination = daily.destination AND h.hour >= (daily.day * {DAY_MS} - {DAY_OFFSET_MS}) / {HOUR_MS}"
    f" AND h.hour < ((daily.day + 1) * {DAY_MS} - {DAY_OFFSET_MS}) / {HOUR_MS}"
)
# Older databases' days gain their last scan and inspection from `hourly`, to the hour.
DAILY_LATEST_FROM_HOURLY = (
    f"UPDATE daily SET last_scan = (SELECT MAX(h.hour) * {HOUR_MS} FROM hourly h WHERE {_DAY_HOURS}"
    f" AND h.{_VISITOR.replace(' AND ', ' AND h.')}),"
    f" last_inspection = (SELECT MAX(h.hour) * {HOUR_MS} FROM hourly h WHERE {_DAY_HOURS}"
    f" AND h.{_INSPECTOR_VISIT.replace(' AND ', ' AND h.')})"
)
_STATE_COLUMNS = f"{_columns(StateRow)}, {HEALTH_COLUMNS}"
# A state and its health figures; only a newer (or the same) ts wins: several ingests write each state.
STATE_UPSERT = (
    f"INSERT INTO device_state ({_STATE_COLUMNS})"
    f" VALUES ({', '.join('?' for _ in _STATE_COLUMNS.split(', '))})"
    f" ON CONFLICT (device) DO UPDATE SET"
    f" {', '.join(f'{c} = excluded.{c}' for c in _STATE_COLUMNS.split(', ')[1:])}"
    " WHERE excluded.ts >= device_state.ts"
)
DEVICE_DAYS_INSERT = (
    "INSERT INTO device_days (day, device, kind, format) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)

# One statement: the rows COPYed into `incoming` that are new go into `events`, and only those are
# counted into the aggregates (upserted in key order, so concurrent ingests wait rather than deadlock).
# A duplicate of a row another ingest has not committed yet waits for that commit, then is skipped.
POSTGRES_INSERT = f"""
WITH new AS (
    INSERT INTO events ({_columns(EventRow)})
    SELECT {_columns(EventRow)} FROM incoming ORDER BY device, epoch, seq
    ON CONFLICT DO NOTHING
    RETURNING device, destination, kind, ts, direction, verdict, reason, format
), counted AS (
    INSERT INTO hourly (hour, destination, kind, format, verdict, reason, n, n_in, n_out)
    SELECT ts / 3600000, destination, kind, format, verdict, reason, COUNT(*),
        COUNT(*) FILTER (WHERE direction = 'in'), COUNT(*) FILTER (WHERE direction = 'out')
    FROM new GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (hour, destination, kind, format, verdict, reason) DO UPDATE SET
        n = hourly.n + excluded.n, n_in = hourly.n_in + excluded.n_in, n_out = hourly.n_out + excluded.n_out
    RETURNING 1
), summed AS (
    INSERT INTO daily ({DAILY_COLUMNS})
    SELECT (ts + {DAY_OFFSET_MS}) / {DAY_MS}, destination, {
    _daily_sums(
        "1", "CASE WHEN direction = 'in' THEN 1 ELSE 0 END", "CASE WHEN direction = 'out' THEN 1 ELSE 0 END",
        "ts",
    )
}
    FROM new GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (day, destination) DO UPDATE SET {_DAILY_SUMS}
    RETURNING 1
), days AS (
    INSERT INTO device_days (day, device, kind, format)
    SELECT DISTINCT ts / 86400000, device, kind, format FROM new ORDER BY 1, 2, 3, 4
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT COUNT(*) FROM new
"""


def _hourly(rows: Iterable[EventRow]) -> list[tuple[Any, ...]]:
    """Upsert parameters of the hourly aggregates of these (new) events, in key order."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    for e in rows:
        key = (e.ts // HOUR_MS, e.destination, e.kind, e.format, e.verdict, e.reason)
        n = counts.setdefault(key, [0, 0, 0])
        n[0] += 1
        n[1] += e.direction == "in"
        n[2] += e.direction == "out"
    return [(*key, *n) for key, n in sorted(counts.items())]


def _daily(rows: Iterable[EventRow]) -> list[tuple[Any, ...]]:
    """Upsert parameters of the daily aggregates of these (new) events, in key order."""
    counts: dict[tuple[int, str], list[Any]] = {}
    for e in rows:
        n = counts.setdefault(((e.ts + DAY_OFFSET_MS) // DAY_MS, e.destination), [0] * 8 + [None, None])
        visitor = e.kind == "scan" and e.format != "inspector"
        n[0] += 1
        if visitor:
            n[1] += 1
            n[2] += e.direction == "in"
            n[3] += e.direction == "out"
            n[4] += e.verdict == "fail"
            n[5] += e.reason == "old_venue_qr"
            n[8] = e.ts if n[8] is None else max(n[8], e.ts)
        n[6] += e.kind == "inspection"
        n[7] += e.kind == "no_qr"
        if e.kind == "inspection" and e.format == "inspector":
            n[9] = e.ts if n[9] is None else max(n[9], e.ts)
    return [(*key, *n) for key, n in sorted(counts.items())]


def _upsert(table: str, cls: type, key: str) -> str:
    # INSERT ... ON CONFLICT DO UPDATE: one statement, so two writers of one key never collide
    # (a DELETE then INSERT lets both delete, and the second insert fail on the primary key).
    updates = ", ".join(f"{f.name} = excluded.{f.name}" for f in fields(cls) if f.name != key)
    return (
        f"INSERT INTO {table} ({_columns(cls)}) VALUES ({_marks(cls)})"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


def _event_params(row: EventRow) -> tuple[Any, ...]:
    values = list(_values(row))
    values[7] = int(row.clock_synced)  # SMALLINT on both backends
    return tuple(values)


def _event_row(values: Sequence[Any]) -> EventRow:
    row = EventRow(*values)
    return EventRow(**{**row.__dict__, "clock_synced": bool(row.clock_synced)})


def open_store(url: str, *, schema: bool = True) -> Store:
    """Open (and create if needed) the database named by a URL or a SQLite file path.

    `schema=False` skips creating the tables: for a reader that opens the database often
    (the dashboard, per request) after making sure of them once.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return _open_postgres(url, schema)
    return _open_sqlite(Path(url.removeprefix("sqlite://")), schema)


def _open_sqlite(path: Path, schema: bool = True) -> Store:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit survives a power cut, which an ack to a device promises.
        conn.execute("PRAGMA synchronous = FULL")
        return Store(conn, schema=schema)
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"cannot open SQLite database {path}: {e} (check the path and permissions)") from e


def _open_postgres(url: str, schema: bool = True) -> Store:
    import psycopg  # only central deployments with PostgreSQL need it

    try:
        return Store(psycopg.connect(url), marker="%s", name="postgresql", schema=schema)
    except psycopg.Error as e:
        raise StoreError(f"cannot open PostgreSQL database: {e} (is the server up, the URL right?)") from e
