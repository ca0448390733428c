"""The durable event spool: one SQLite file (WAL) holding every signed event until central has it.

A decision is spooled before its feedback is given: `record()` allocates the
next seq, builds and signs the event and commits both in ONE transaction with
synchronous=FULL, so a person who was let in always has a record, and a seq is
never handed out twice, even across kill -9 and power loss.

Each row moves through three states: unsent -> sent (the broker's PUBACK) ->
acked (central's signed ack covers it). Only acked rows older than the
retention are deleted; when the disk budget fills, acked rows go early and
unacked ones are kept, with an alarm.

Threads: the main loop calls `record()`; the uplink's drain thread calls the
rest. Each thread gets its own connection; one lock orders write transactions
so a writer never waits in SQLite's sleeping busy handler. Bulk changes (acks,
pruning) run in chunks of `CHUNK_ROWS`, releasing the lock between chunks, so
`record()` waits at most one chunk; the drain thread checkpoints the WAL so the
main loop's commits rarely have to.

The spool answers every question asked of its file (what to send, today's
counts, the inspection screen's figures): no other module runs SQL on its
tables. Schema 2 keeps each event's reason code in a column, so counting
refusals never decodes tokens; opening a schema-1 file adds the column and
fills it for the refused scans from their tokens, once, in one transaction.

Only the current device id's events are drained: after the device id changes
(a new key from `kiosk provision --force`), the broker refuses the old id's
topic. Those events are kept, never dropped, and reported by `alarms()`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import jws, keys
from kiosk.config import Settings, SpoolConfig
from kiosk.errors import SignatureError, SpoolError
from kiosk.events import AnyEvent, EventDraft, ScanEvent, build_event, parse_event, sign_event
from kiosk.sealing import Sealer
from kiosk.state import sign_state

# The way a person went, of the events that count as an entry or exit: passes, and people staff
# recorded without a QR (they are let through); a refused card's direction is only what was asked.
MOVE = "CASE WHEN verdict = 'pass' OR reason = 'no_qr' THEN direction END"
SCHEMA_VERSION = 3  # 2: the reason column; 3: the presence tag column
UNSENT, SENT, ACKED = 0, 1, 2
CHUNK_ROWS = 500  # rows per write transaction in bulk changes: the longest a record() waits
CHECKPOINT_EVERY = 20  # chunks between WAL checkpoints in a bulk change
AUTOCHECKPOINT_PAGES = 4000  # a safety net; the drain thread checkpoints long before this
EventKey = tuple[str, int, int]  # (device, epoch, seq)
MinuteCount = tuple[int, str, str, str | None, int]  # (minute's start in ms, kind, verdict, direction, count)

# The partial indexes hold only the rows still to send or to be acked, per device; the
# queries name them (INDEXED BY) because the planner would otherwise walk the primary key
# through every acked row kept for the retention.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY, device TEXT NOT NULL, destination TEXT NOT NULL,
    key_thumbprint TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    device TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    destination TEXT NOT NULL, ts INTEGER NOT NULL, kind TEXT NOT NULL,
    verdict TEXT NOT NULL, direction TEXT, token BLOB NOT NULL,
    state INTEGER NOT NULL DEFAULT 0, sent_at INTEGER, reason TEXT, presence TEXT,
    PRIMARY KEY (device, epoch, seq)
) WITHOUT ROWID;
DROP INDEX IF EXISTS events_unsent;
DROP INDEX IF EXISTS events_unacked;
CREATE INDEX IF NOT EXISTS events_unsent_by_device ON events (device, epoch, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS events_unacked_by_device ON events (device, epoch, seq) WHERE state < 2;
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


@dataclass(frozen=True)
class SpooledEvent:
    """A signed event as stored: where it goes, its place in the sequence, and its token."""

    device: str
    destination: str
    epoch: int
    seq: int
    token: bytes

    @property
    def key(self) -> EventKey:
        """(device, epoch, seq), unique in the spool and on the wire."""
        return (self.device, self.epoch, self.seq)

    def event(self) -> AnyEvent:
        """The event inside the token (our own signature, so not verified again)."""
        return parse_event(jws.b64url_decode(self.token.split(b".")[1]))


@dataclass(frozen=True)
class SpoolLimits:
    """How long acked events are kept and how much disk the spool may use."""

    retention_days: int = 14
    disk_budget_bytes: int = 512 * 1024 * 1024
    alarm_fraction: float = 0.8

    @classmethod
    def from_settings(cls, spool: SpoolConfig) -> SpoolLimits:
        """The limits of the `[spool]` section."""
        return cls(spool.retention_days, spool.disk_budget_mb * 1024 * 1024, spool.alarm_fraction)


class Spool:
    """The event spool; open with `Spool.open(...)`, use as a context manager."""

    def __init__(
        self,
        path: Path,
        *,
        device_id: str,
        destination_id: str,
        signing_key: Ed25519PrivateKey,
        sealer: Sealer,
        limits: SpoolLimits,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self.device_id = device_id
        self.destination_id = destination_id
        self._signing_key = signing_key
        self._sealer = sealer
        self.limits = limits
        self._clock = clock
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []  # with their thread
        self._connections_lock = threading.Lock()
        self._closed = False
        self.epoch = self._set_up()

    def sign_state(self, state_json: bytes) -> bytes:
        """The device's retained state, signed by the key that signs this spool's events."""
        return sign_state(state_json, self._signing_key, device=self.device_id)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        device_id: str,
        destination_id: str,
        signing_key: Ed25519PrivateKey,
        sealer: Sealer,
        limits: SpoolLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Spool:
        """Open (or create) the spool at `path`; a new file or a new key starts a new epoch."""
        return cls(
            path,
            device_id=device_id,
            destination_id=destination_id,
            signing_key=signing_key,
            sealer=sealer,
            limits=limits or SpoolLimits(),
            clock=clock,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, signing_key: Ed25519PrivateKey, sealer: Sealer
    ) -> Spool:
        """Open the spool named by `paths.spool_file` for this device, destination and limits."""
        return cls.open(
            settings.paths.spool_file,
            device_id=settings.device.id,
            destination_id=settings.destination.id,
            signing_key=signing_key,
            sealer=sealer,
            limits=SpoolLimits.from_settings(settings.spool),
        )

    # -- connections -----------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            self._close_own()
            raise SpoolError(f"spool {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append((threading.current_thread(), conn))
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            # Each thread uses only its own connection; close() may run on another thread.
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed event survives power loss (the WAL is fsynced at each commit).
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA journal_size_limit={8 * 1024 * 1024}")
            # A commit that crosses this runs a checkpoint under the write lock; the drain
            # thread's passive checkpoints keep the log well below it.
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            return conn
        except sqlite3.OperationalError as e:
            raise SpoolError(
                f"cannot open the spool {self.path}: {e} (is the disk full or read-only?)"
            ) from e
        except sqlite3.DatabaseError as e:
            raise SpoolError(
                f"{self.path} is not a usable spool: {e} (move it aside to start a new one)"
            ) from e

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; `durable=False` skips the fsync (bookkeeping whose loss means a resend)."""
        conn = self._conn()
        with self._write_lock:
            try:
                self._set_sync(conn, durable)
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                _rollback(conn)
                raise SpoolError(f"cannot write the spool {self.path}: {e} (is the disk full?)") from e
            except BaseException:
                _rollback(conn)
                raise

    def _set_sync(self, conn: sqlite3.Connection, durable: bool) -> None:
        # In WAL mode NORMAL commits are not fsynced but stay consistent; the next FULL
        # commit (an event) fsyncs the log, and them with it.
        if getattr(self._local, "durable", True) != durable:
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._local.durable = durable

    def _set_up(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(
                os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            )  # presence tags: not world-readable
        try:
            with self._write_lock:
                conn = self._conn()
                found = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise SpoolError(
                f"{self.path} is not a usable spool: {e} (move it aside to start a new one)"
            ) from e
        with self._write() as conn:
            _migrate(conn, found)
            return self._current_epoch(conn)

    def _current_epoch(self, conn: sqlite3.Connection) -> int:
        """The epoch of this device, destination and key; a new one if any of them changed."""
        thumb = keys.thumbprint(self._signing_key.public_key())
        row = conn.execute(
            "SELECT epoch FROM epochs WHERE device=? AND destination=? AND key_thumbprint=?"
            " ORDER BY epoch DESC LIMIT 1",
            (self.device_id, self.destination_id, thumb),
        ).fetchone()
        newest = conn.execute("SELECT max(epoch) FROM epochs").fetchone()[0]
        if row is not None and row[0] == newest:
            return int(row[0])
        # Strictly after every earlier epoch, even if the clock went backwards.
        epoch = max(self._now_ms(), (newest or 0) + 1)
        conn.execute(
            "INSERT INTO epochs (epoch, device, destination, key_thumbprint) VALUES (?,?,?,?)",
            (epoch, self.device_id, self.destination_id, thumb),
        )
        return epoch

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- the main loop -----------------------------------------------------------------

    def record(self, draft: EventDraft) -> SpooledEvent:
        """Allocate the next seq, build and sign the event, and commit it durably; then return it."""
        with self._write() as conn:
            seq = conn.execute(
                "UPDATE epochs SET last_seq = last_seq + 1 WHERE epoch=? RETURNING last_seq", (self.epoch,)
            ).fetchone()[0]
            event = self._build(draft, seq)
            token = sign_event(event, self._signing_key)
            row = (event.device, event.epoch, seq, event.destination, event.ts, event.kind, event.verdict)
            conn.execute(
                "INSERT INTO events (device, epoch, seq, destination, ts, kind, verdict, direction, reason,"
                " token, presence) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (*row, event.direction, event.reason, token, self._presence_tag(draft)),
            )
        return SpooledEvent(event.device, event.destination, event.epoch, seq, token)

    def _presence_tag(self, draft: EventDraft) -> str | None:
        # The event's sealed identities cannot be compared, even by this kiosk; who is inside
        # is rebuilt after a restart from this destination-keyed tag of the primary identity.
        identities = draft.all_identities()
        return self._sealer.tag(identities[0]) if identities else draft.presence_key

    def _build(self, draft: EventDraft, seq: int) -> ScanEvent:
        return build_event(
            draft,
            device=self.device_id,
            destination=self.destination_id,
            epoch=self.epoch,
            seq=seq,
            sealer=self._sealer,
        )

    def recent_passes(self, since_ms: int) -> list[tuple[int, str, str]]:
        """(ts, direction, presence tag) of this destination's passes since `since_ms`, oldest first.

        For rebuilding who is inside after a restart; the tags are the destination key's
        (kiosk.sealing.tag), as the policy's presence table knows people. People recorded
        without a QR count too, under their anonymous keys.
        """
        rows = self._conn().execute(
            "SELECT ts, direction, presence FROM events WHERE destination = ? AND kind = 'scan'"
            " AND (verdict = 'pass' OR reason = 'no_qr') AND direction IN ('in', 'out') AND ts >= ?"
            " AND presence IS NOT NULL"
            " ORDER BY ts, epoch, seq",
            (self.destination_id, since_ms),
        )
        return [(int(ts), str(direction), str(presence)) for ts, direction, presence in rows]

    def counts_today(self, now: float | None = None) -> dict[str, int]:
        """Today's (local time) entries, exits (MOVE), passes and fails, from the spool."""
        now = self._clock() if now is None else now
        midnight = datetime.fromtimestamp(now).astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = self._conn().execute(
            f"SELECT {MOVE}, verdict, count(*) FROM events WHERE ts >= ? AND kind = 'scan'"
            " GROUP BY 1, 2",
            (int(midnight.timestamp() * 1000),),
        )
        counts = {"in": 0, "out": 0, "pass": 0, "fail": 0}
        for direction, verdict, n in rows:
            counts[verdict] += n
            if direction in ("in", "out"):
                counts[direction] += n
        return counts

    # -- the inspection screen ---------------------------------------------------------

    def counts_by_minute(self, start_ms: int, end_ms: int) -> list[MinuteCount]:
        """Events with `start_ms <= ts < end_ms` counted by UTC minute, kind, verdict and move (MOVE).

        Minutes, so that the caller can put each group in its local hour: every time
        zone's hours start on a whole minute.
        """
        rows = self._read(
            f"SELECT ts / 60000, kind, verdict, {MOVE}, count(*) FROM events"
            " WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3, 4",
            (start_ms, end_ms),
        )
        return [(minute * 60000, kind, verdict, direction, n) for minute, kind, verdict, direction, n in rows]

    def refusals(self, reason: str, start_ms: int, end_ms: int) -> int:
        """Scans refused for `reason` with `start_ms <= ts < end_ms`."""
        rows = self._read(
            "SELECT count(*) FROM events WHERE kind = 'scan' AND verdict = 'fail' AND reason = ?"
            " AND ts >= ? AND ts < ?",
            (reason, start_ms, end_ms),
        )
        return int(rows[0][0])

    def backlog(self) -> tuple[int, int]:
        """(unsent, unacked): events of every device id the broker, and central, have not taken yet."""
        rows = self._read("SELECT total(state = 0), total(state < 2) FROM events", ())
        return int(rows[0][0]), int(rows[0][1])

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise SpoolError(f"cannot read the spool {self.path}: {e} (is it a kiosk spool?)") from e

    # -- the drain thread --------------------------------------------------------------

    def unsent(self, limit: int = 256) -> list[SpooledEvent]:
        """Up to `limit` of this device id's events not yet accepted by the broker, oldest first."""
        rows = self._conn().execute(
            "SELECT device, destination, epoch, seq, token FROM events INDEXED BY events_unsent_by_device"
            " WHERE device = ? AND state = 0"
            " ORDER BY epoch, seq LIMIT ?",
            (self.device_id, limit),
        )
        return [SpooledEvent(d, dest, e, s, bytes(t)) for d, dest, e, s, t in rows]

    def mark_sent(self, event_keys: Iterable[EventKey]) -> int:
        """Mark events the broker acknowledged (PUBACK); returns how many changed."""
        now = self._now_ms()
        with self._write(durable=False) as conn:
            cur = conn.executemany(
                "UPDATE events SET state = 1, sent_at = ? WHERE device=? AND epoch=? AND seq=? AND state = 0",
                ((now, d, e, s) for d, e, s in event_keys),
            )
            return cur.rowcount

    def apply_ack(self, device: str, epochs: dict[int, int]) -> int:
        """Mark acked every event of `device` with seq <= the acked seq of its epoch (in chunks)."""
        return sum(self._ack_epoch(device, epoch, last) for epoch, last in epochs.items())

    def _ack_epoch(self, device: str, epoch: int, last: int) -> int:
        # Walk the unacked seqs up to `last` a chunk at a time; each chunk is its own
        # transaction, so the capture loop's record() gets the lock in between.
        changed, after, chunks = 0, -1, 0
        while after < last:
            row = (
                self._conn()
                .execute(
                    "SELECT seq FROM events INDEXED BY events_unacked_by_device"
                    " WHERE device=? AND epoch=? AND seq > ? AND seq <= ? AND state < 2"
                    " ORDER BY seq LIMIT 1 OFFSET ?",
                    (device, epoch, after, last, CHUNK_ROWS - 1),
                )
                .fetchone()
            )
            upto = last if row is None else int(row[0])
            with self._write(durable=False) as conn:
                changed += conn.execute(
                    "UPDATE events INDEXED BY events_unacked_by_device SET state = 2"
                    " WHERE device=? AND epoch=? AND seq > ? AND seq <= ? AND state < 2",
                    (device, epoch, after, upto),
                ).rowcount
            after, chunks = upto, self._checkpoint_every(chunks + 1)
        return changed

    def requeue(self, device: str, ranges: Iterable[tuple[int, int, int]]) -> int:
        """Send again the events in [(epoch, first_seq, last_seq), ...]; returns how many."""
        with self._write(durable=False) as conn:
            changed = 0
            for epoch, first, last in ranges:
                changed += conn.execute(
                    "UPDATE events SET state = 0 WHERE device=? AND epoch=? AND seq BETWEEN ? AND ?"
                    " AND state > 0",
                    (device, epoch, first, last),
                ).rowcount
            return changed

    def requeue_stale(self, device: str, sent_before_ms: int) -> int:
        """Send again events the broker accepted before `sent_before_ms` but central has not acked.

        The broker may lose messages it acknowledged (it saves to disk lazily);
        a fresh ack from central that still does not cover them means they were lost.
        """
        with self._write(durable=False) as conn:
            return conn.execute(
                "UPDATE events SET state = 0 WHERE state = 1 AND device=? AND sent_at < ?",
                (device, sent_before_ms),
            ).rowcount

    def prune(self, now: float | None = None) -> int:
        """Delete acked events older than the retention (all acked ones when over budget), in chunks."""
        now = self._clock() if now is None else now
        cutoff = int((now - self.limits.retention_days * 86400) * 1000)
        if self.size_bytes() >= self.limits.disk_budget_bytes:
            cutoff = 2**62  # over budget: free the room of everything central already has
        deleted, since, chunks = 0, -(2**62), 0
        while True:
            # Oldest first from where the last chunk ended: unacked rows passed over are not read again.
            rows = (
                self._conn()
                .execute(
                    "SELECT device, epoch, seq, ts FROM events WHERE ts >= ? AND ts < ? AND state = 2"
                    " ORDER BY ts LIMIT ?",
                    (since, cutoff, CHUNK_ROWS),
                )
                .fetchall()
            )
            if not rows:
                return deleted
            with self._write(durable=False) as conn:
                deleted += conn.executemany(
                    "DELETE FROM events WHERE device=? AND epoch=? AND seq=? AND state = 2",
                    (row[:3] for row in rows),
                ).rowcount
            since, chunks = rows[-1][3], self._checkpoint_every(chunks + 1)

    def _checkpoint_every(self, chunks: int) -> int:
        if chunks >= CHECKPOINT_EVERY:
            self.checkpoint()
            return 0
        return chunks

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database without waiting for anyone (drain thread)."""
        try:
            self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as e:
            raise SpoolError(f"cannot checkpoint the spool {self.path}: {e} (is the disk full?)") from e

    # -- health ------------------------------------------------------------------------

    def depth(self) -> int:
        """Events not yet covered by central's ack."""
        return int(self._conn().execute("SELECT count(*) FROM events WHERE state < 2").fetchone()[0])

    def last_seq(self) -> int:
        """The last seq allocated in the current epoch (0 before the first event)."""
        row = self._conn().execute("SELECT last_seq FROM epochs WHERE epoch=?", (self.epoch,)).fetchone()
        return int(row[0])

    def last_acked(self) -> tuple[int, int] | None:
        """(seq, scan time in ms) of this device's newest event central has acknowledged, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT seq, ts FROM events WHERE device = ? AND epoch = ? AND state = 2"
                " ORDER BY seq DESC LIMIT 1",
                (self.device_id, self.epoch),
            )
            .fetchone()
        )
        return None if row is None else (int(row[0]), int(row[1]))

    def unsent_count(self) -> int:
        """This device id's events not yet accepted by the broker (the uplink's backlog)."""
        row = self._conn().execute(
            "SELECT count(*) FROM events INDEXED BY events_unsent_by_device WHERE device = ? AND state = 0",
            (self.device_id,),
        )
        return int(row.fetchone()[0])

    def stranded(self) -> dict[str, int]:
        """Unsent events of earlier device ids, per id: kept, but the uplink cannot send them."""
        rows = self._conn().execute(
            "SELECT device, count(*) FROM events WHERE device != ? AND state = 0"
            " GROUP BY device ORDER BY device",
            (self.device_id,),
        )
        return {device: int(n) for device, n in rows}

    def size_bytes(self) -> int:
        """Bytes the events take: the database's used pages (free pages are reused, not counted)."""
        conn = self._conn()
        used = (
            conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]
        )
        return int(used * conn.execute("PRAGMA page_size").fetchone()[0])

    def alarms(self) -> list[str]:
        """Problems the screen and the state topic should show (empty when all is well)."""
        alarms = [
            f"{n} events of a previous device id {device!r} are not sent (this device is now"
            f" {self.device_id!r}, the broker takes only its own topic): they are kept in {self.path}"
            for device, n in self.stranded().items()
        ]
        size, budget = self.size_bytes(), self.limits.disk_budget_bytes
        if size >= self.limits.alarm_fraction * budget:
            alarms.append(
                f"spool at {100 * size // budget}% of its {budget / 2**20:.1f} MB budget with"
                f" {self.depth()} events central has not acknowledged: check the uplink and central"
            )
        return alarms

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close this thread's connection and those of ended threads; safe to call twice.

        A thread still running closes its own at its next use, which then raises
        SpoolError: closing a connection another thread may be using can crash sqlite3.
        """
        self._closed = True
        me = threading.current_thread()
        with self._connections_lock:
            done = [(t, c) for t, c in self._connections if t is me or not t.is_alive()]
            self._connections = [(t, c) for t, c in self._connections if (t, c) not in done]
        for _, conn in done:
            conn.close()

    def _close_own(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._connections_lock:
            self._connections = [(t, c) for t, c in self._connections if c is not conn]
        conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection, found: int) -> None:
    """Bring a spool of schema `found` (0: a new file) to SCHEMA_VERSION, inside the caller's transaction."""
    if 0 < found < 2:
        # Only the refused scans are counted by reason. Filling every row would rewrite the
        # whole table (and as much again in the WAL) on a disk that may be nearly full, for
        # longer than systemd waits for a start; old passes keep NULL until they are pruned.
        conn.execute("ALTER TABLE events ADD COLUMN reason TEXT")
        conn.create_function("token_reason", 1, _reason_of, deterministic=True)
        conn.execute(
            "UPDATE events SET reason = token_reason(token) WHERE kind = 'scan' AND verdict = 'fail'"
        )
    if 0 < found < 3:
        # A v1 event's hashed identity is not the destination's tag: who was inside before the
        # upgrade is not rebuilt (at most one presence timeout of people counted in by hand).
        conn.execute("ALTER TABLE events ADD COLUMN presence TEXT")
    if found < SCHEMA_VERSION:  # a newer kiosk's file keeps its number: its additions are kept
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _reason_of(token: bytes) -> str | None:
    reason = _payload(token).get("reason")
    return reason if isinstance(reason, str) else None


def _payload(token: bytes) -> dict[str, Any]:
    """The JSON payload of one of our own spooled tokens (written and signed by us: no check needed)."""
    try:
        payload = json.loads(jws.b64url_decode(bytes(token).split(b".")[1]))
    except (IndexError, ValueError, SignatureError):
        return {}
    return payload if isinstance(payload, dict) else {}
