"""The SQLite spool: durable seq, epochs, the sent/acked life cycle, retention, budget, threads."""

from __future__ import annotations

import ast
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.errors import SpoolError
from kiosk.events import EventDraft, verify_event
from kiosk.spool import Spool, SpoolLimits
from tests.support.central import OPENER, SEALER

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
IDENTITY_KEY = bytes(32)
NOON = 1_700_000_000.0  # a fixed "now" for the clock


def _draft(ts_ms: int = int(NOON * 1000), **changes: object) -> EventDraft:
    fields: dict[str, object] = {
        "verdict": "pass",
        "reason": "ok",
        "format": "cccd",
        "direction": "in",
        "card_identity": "001093029317",
        "ts": ts_ms,
    }
    return EventDraft(**(fields | changes))  # type: ignore[arg-type]


def _open(path: Path, key: Ed25519PrivateKey = KEY, **options: object) -> Spool:
    return Spool.open(
        path,
        device_id="kiosk-1",
        destination_id="venue-1",
        signing_key=key,
        sealer=SEALER,
        **options,  # type: ignore[arg-type]
    )


def test_record_allocates_seq_and_signs(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        spooled = [spool.record(_draft()) for _ in range(3)]
    assert [s.seq for s in spooled] == [1, 2, 3]
    event = verify_event(spooled[2].token, KEY.public_key())
    assert (event.device, event.destination, event.epoch, event.seq) == (
        "kiosk-1",
        "venue-1",
        spooled[0].epoch,
        3,
    )
    assert spooled[2].event() == event


def test_wal_mode_and_private_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with _open(path) as spool:
        spool.record(_draft())
        assert spool._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert path.stat().st_mode & 0o777 == 0o600


def test_seq_and_epoch_survive_reopening(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        first = spool.record(_draft())
    with _open(tmp_path / "s.db") as spool:
        second = spool.record(_draft())
    assert (second.epoch, second.seq) == (first.epoch, 2)


def test_a_new_key_starts_a_new_epoch_and_keeps_old_events(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        old = [spool.record(_draft()) for _ in range(2)]
    other = Ed25519PrivateKey.generate()
    with _open(tmp_path / "s.db", key=other) as spool:
        new = spool.record(_draft())
        assert new.epoch > old[0].epoch and new.seq == 1
        assert [s.key for s in spool.unsent(10)] == [old[0].key, old[1].key, new.key]
    with _open(tmp_path / "s.db", key=KEY) as spool:
        assert spool.epoch > new.epoch  # going back to an old key is a new epoch too: never repeat a seq


def test_a_new_spool_file_is_a_new_epoch(tmp_path: Path) -> None:
    clock = iter([NOON, NOON]).__next__
    with _open(tmp_path / "a.db", clock=clock) as a:
        epoch_a = a.epoch
    assert epoch_a == int(NOON * 1000)
    with _open(tmp_path / "b.db", clock=lambda: NOON + 0.001) as b:
        assert b.epoch != epoch_a


def test_device_epoch_seq_is_unique(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        spooled = spool.record(_draft())
    conn = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO events (device, epoch, seq, destination, ts, kind, verdict, token)"
            " VALUES (?,?,?,'v',0,'scan','pass',x'00')",
            spooled.key,
        )
    conn.close()


def test_sent_acked_requeued_life_cycle(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        spooled = [spool.record(_draft()) for _ in range(5)]
        epoch = spooled[0].epoch
        assert spool.mark_sent([s.key for s in spooled[:3]]) == 3
        assert [s.seq for s in spool.unsent(10)] == [4, 5]
        assert (spool.depth(), spool.unsent_count()) == (5, 2)
        assert spool.apply_ack("kiosk-1", {epoch: 2}) == 2
        assert spool.apply_ack("other", {epoch: 5}) == 0
        assert spool.depth() == 3
        assert spool.requeue("kiosk-1", [(epoch, 3, 3)]) == 1
        assert [s.seq for s in spool.unsent(10)] == [3, 4, 5]
        assert [s.seq for s in spool.unsent(2)] == [3, 4]


def test_requeue_stale_resends_what_central_never_got(tmp_path: Path) -> None:
    now = [NOON]
    with _open(tmp_path / "s.db", clock=lambda: now[0]) as spool:
        a, b = spool.record(_draft()), spool.record(_draft())
        spool.mark_sent([a.key])
        now[0] += 60
        spool.mark_sent([b.key])
        assert spool.requeue_stale("kiosk-1", sent_before_ms=int((NOON + 30) * 1000)) == 1
        assert [s.seq for s in spool.unsent(10)] == [1]


def test_prune_deletes_only_acked_events_past_retention(tmp_path: Path) -> None:
    day = 86400 * 1000
    old_ts = int(NOON * 1000) - 20 * day
    with _open(tmp_path / "s.db", limits=SpoolLimits(retention_days=14), clock=lambda: NOON) as spool:
        acked_old, unacked_old = spool.record(_draft(old_ts)), spool.record(_draft(old_ts))
        acked_new = spool.record(_draft())
        spool.mark_sent([acked_old.key, unacked_old.key, acked_new.key])
        spool.apply_ack("kiosk-1", {spool.epoch: 1})
        assert spool.prune() == 1
        assert spool.depth() == 2  # the unacked old one and the new one stay


def test_over_budget_keeps_unacked_events_and_raises_an_alarm(tmp_path: Path) -> None:
    limits = SpoolLimits(disk_budget_bytes=128 * 1024, alarm_fraction=0.5)
    with _open(tmp_path / "s.db", limits=limits, clock=lambda: NOON) as spool:
        assert spool.alarms() == []
        spooled = [spool.record(_draft()) for _ in range(300)]
        assert spool.size_bytes() >= limits.disk_budget_bytes
        spool.mark_sent([s.key for s in spooled])
        spool.apply_ack("kiosk-1", {spool.epoch: 100})
        assert spool.prune() == 100  # acked ones go early; nothing unacked is dropped
        assert spool.depth() == 200
        more = spool.record(_draft())  # recording never stops
        assert more.seq == 301
        alarm = spool.alarms()
        assert alarm and "201 events" in alarm[0] and "check the uplink" in alarm[0]


def test_counts_today(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db", clock=lambda: NOON) as spool:
        spool.record(_draft())
        spool.record(_draft(direction="out"))
        spool.record(_draft(verdict="fail", reason="status_blocked", direction=None))
        spool.record(_draft(ts_ms=int(NOON * 1000) - 2 * 86400 * 1000))  # another day
        assert spool.counts_today() == {"in": 1, "out": 1, "pass": 2, "fail": 1}


def test_the_inspection_queries(tmp_path: Path) -> None:
    minute = int(NOON // 60 * 60 * 1000)
    with _open(tmp_path / "s.db") as spool:
        spool.record(_draft(minute))
        spool.record(_draft(minute + 59_999, direction="out"))
        spool.record(_draft(minute + 60_000, verdict="fail", reason="old_venue_qr", direction=None))
        spool.record(_draft(minute + 60_001, verdict="fail", reason="unrecognised", direction=None))
        first = spool.record(_draft(minute + 120_000, verdict="fail", reason="old_venue_qr", direction=None))
        spool.mark_sent([first.key])
        assert sorted(spool.counts_by_minute(minute, minute + 120_000), key=str) == [
            (minute, "scan", "pass", "in", 1),
            (minute, "scan", "pass", "out", 1),
            (minute + 60_000, "scan", "fail", None, 2),
        ]
        assert spool.refusals("old_venue_qr", minute, minute + 120_000) == 1
        assert spool.refusals("old_venue_qr", minute, minute + 120_001) == 2
        assert spool.backlog() == (4, 5)


def _as_schema_1(path: Path) -> None:
    """Turn a spool file back into schema 1, which had no reason column (nor schema 3's presence)."""
    _as_schema_2(path)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN reason")
        conn.execute("PRAGMA user_version=1")
    conn.close()


def _as_schema_2(path: Path) -> None:
    """Turn a spool file back into schema 2, which had no presence column (the last one added)."""
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN presence")
        conn.execute("PRAGMA user_version=2")
    conn.close()


def test_a_schema_2_spool_gains_presence_tags_for_new_passes_only(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with _open(path) as spool:
        spool.record(_draft(card_identity="001093029317"))
    _as_schema_2(path)
    with _open(path) as spool:
        assert spool.recent_passes(0) == []  # a schema-2 pass has no tag: it is not rebuilt
        spool.record(_draft(card_identity="001093029317"))
        assert [tag for _, _, tag in spool.recent_passes(0)] == [SEALER.tag("001093029317")]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()


def test_a_schema_1_spool_gets_its_reasons_from_the_tokens(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with _open(path) as spool:
        spool.record(_draft(verdict="fail", reason="old_venue_qr", direction=None))
        spool.record(_draft())
    _as_schema_1(path)
    with sqlite3.connect(path) as conn:  # a damaged token must not stop the migration
        conn.execute(
            "INSERT INTO events (device, epoch, seq, destination, ts, kind, verdict, direction, token)"
            " VALUES ('kiosk-1', 1, 1, 'venue-1', ?, 'scan', 'fail', NULL, X'00FF2E2E')",
            (int(NOON * 1000),),
        )
    conn.close()
    with _open(path) as spool:
        assert spool.refusals("old_venue_qr", 0, 2**62) == 1
        assert spool.record(_draft(verdict="fail", reason="old_venue_qr", direction=None)).seq == 3
        assert spool.refusals("old_venue_qr", 0, 2**62) == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        reasons = conn.execute("SELECT seq, reason FROM events ORDER BY epoch, seq").fetchall()
    conn.close()
    assert reasons == [(1, None), (1, "old_venue_qr"), (2, None), (3, "old_venue_qr")]  # old passes: none


def test_a_spool_that_cannot_be_read_is_a_spool_error(tmp_path: Path) -> None:
    spool = _open(tmp_path / "s.db")
    with sqlite3.connect(spool.path) as conn:  # someone else's file in its place
        conn.execute("DROP TABLE events")
    conn.close()
    with pytest.raises(SpoolError, match="cannot read the spool"):
        spool.backlog()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.counts_by_minute(0, 1)


def test_closed_spool_refuses_and_close_is_idempotent(tmp_path: Path) -> None:
    spool = _open(tmp_path / "s.db")
    spool.close()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.record(_draft())


def test_a_file_that_is_not_a_spool(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SpoolError, match="not a usable spool"):
        _open(path)


def test_recording_and_draining_threads_together(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        done = threading.Event()
        sent: list[int] = []

        def drain() -> None:
            while not done.is_set() or spool.unsent_count():
                batch = spool.unsent(50)
                spool.mark_sent([s.key for s in batch])
                sent.extend(s.seq for s in batch)

        thread = threading.Thread(target=drain, name="test-drain")
        thread.start()
        try:
            seqs = [spool.record(_draft()).seq for _ in range(300)]
        finally:
            done.set()
            thread.join(10)
        assert seqs == list(range(1, 301))
        assert sorted(sent) == seqs and spool.unsent_count() == 0


RECORDER = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kiosk.events import EventDraft
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from kiosk.sealing import Sealer
from kiosk.spool import Spool

SEALER = Sealer(X25519PrivateKey.generate().public_key(), destination_key=bytes(32))
spool = Spool.open(Path(sys.argv[1]), device_id="kiosk-1", destination_id="venue-1",
                   signing_key=Ed25519PrivateKey.from_private_bytes(bytes(range(32))), sealer=SEALER)
while True:
    s = spool.record(EventDraft(verdict="pass", reason="ok", ts=1))
    print(s.seq, flush=True)
"""


def test_seq_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        reported = [int(proc.stdout.readline()) for _ in range(50)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    with _open(path) as spool:
        stored = [s.seq for s in spool.unsent(100_000)]
        assert stored == list(range(1, len(stored) + 1))  # no hole, no repeat
        assert set(reported) <= set(stored)  # everything reported as recorded was committed
        assert spool.record(_draft()).seq == len(stored) + 1
    time.sleep(0)


def test_last_seq(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        assert spool.last_seq() == 0
        spool.record(_draft())
        assert spool.last_seq() == 1


def test_from_settings(tmp_path: Path) -> None:
    from kiosk.config import parse_config

    settings = parse_config(
        {
            "paths": {"state_dir": str(tmp_path)},
            "device": {"id": "kiosk-9"},
            "spool": {"disk_budget_mb": 2, "retention_days": 3},
        }
    )
    with Spool.from_settings(settings, signing_key=KEY, sealer=SEALER) as spool:
        assert spool.path == tmp_path / "spool.sqlite3"
        assert spool.limits == SpoolLimits(3, 2 * 1024 * 1024, 0.8)
        [sealed] = spool.record(_draft()).event().identities
        assert OPENER.stored(spool.record(_draft()).event()) == (OPENER.hash("001093029317"),)
        assert sealed.startswith("hpke:")
        assert spool.record(_draft()).event().device == "kiosk-9"


def test_only_the_current_device_ids_events_are_drained(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with _open(path) as old:  # provisioned again later: a new key, so a new device id
        old_keys = [old.record(_draft()).key for _ in range(3)]
    other = Ed25519PrivateKey.generate()
    with Spool.open(
        path, device_id="kiosk-1b", destination_id="venue-1", signing_key=other, sealer=SEALER
    ) as spool:
        assert spool.unsent(10) == [] and spool.unsent_count() == 0
        assert spool.stranded() == {"kiosk-1": 3}
        new = spool.record(_draft())
        assert [s.key for s in spool.unsent(10)] == [new.key]  # not behind the old id's events
        assert spool.unsent_count() == 1 and spool.depth() == 4  # the old ones are kept
        assert spool.alarms() == [
            f"3 events of a previous device id 'kiosk-1' are not sent (this device is now 'kiosk-1b',"
            f" the broker takes only its own topic): they are kept in {path}"
        ]
    with _open(path) as back:  # the old id's events go out again under that id
        assert [s.key for s in back.unsent(10)] == old_keys and back.stranded() == {"kiosk-1b": 1}


def _bulk(spool: Spool, n: int, ts_ms: int = int(NOON * 1000)) -> None:
    """Add `n` unsent events to the current epoch fast (copies of one token; no fsync per event)."""
    token = spool.record(_draft(ts_ms)).token
    conn = sqlite3.connect(spool.path)
    with conn:
        conn.executemany(
            "INSERT INTO events (device, epoch, seq, destination, ts, kind, verdict, direction, token)"
            " VALUES (?,?,?,?,?,'scan','pass','in',?)",
            (
                (spool.device_id, spool.epoch, seq, spool.destination_id, ts_ms, token)
                for seq in range(2, n + 1)
            ),
        )
        conn.execute("UPDATE epochs SET last_seq = ? WHERE epoch = ?", (n, spool.epoch))
    conn.close()


def test_acks_and_pruning_work_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.spool.CHUNK_ROWS", 7)
    monkeypatch.setattr("kiosk.spool.CHECKPOINT_EVERY", 3)
    old_ts = int(NOON * 1000) - 30 * 86400 * 1000
    with _open(tmp_path / "s.db", clock=lambda: NOON) as spool:
        _bulk(spool, 100, ts_ms=old_ts)
        epoch = spool.epoch
        assert spool.apply_ack("kiosk-1", {epoch: 10}) == 10
        assert spool.requeue("kiosk-1", [(epoch, 3, 4)]) == 2  # holes in what is acked
        assert spool.apply_ack("kiosk-1", {epoch: 95}) == 87
        assert spool.depth() == 5 and [s.seq for s in spool.unsent(10)] == [96, 97, 98, 99, 100]
        assert spool.prune() == 95  # all of them, though every row has the same ts
        assert spool.depth() == 5 and spool.prune() == 0


def test_record_is_not_held_up_by_a_big_ack(tmp_path: Path) -> None:
    with _open(tmp_path / "s.db") as spool:
        _bulk(spool, 50_000)
        acked: list[int] = []
        ack = threading.Thread(target=lambda: acked.append(spool.apply_ack("kiosk-1", {spool.epoch: 50_000})))
        waits: list[float] = []
        ack_started = time.monotonic()
        ack.start()
        while ack.is_alive() or not waits:
            started = time.monotonic()
            spool.record(_draft())
            waits.append(time.monotonic() - started)
        ack.join()
        ack_took = time.monotonic() - ack_started
        assert acked == [50_000]
        # Relative to the ack's own time, so a busy machine slows both sides alike: the
        # ack is applied in chunks and records slip in between, never behind the whole of it.
        assert len(waits) >= 2, "no record was made while the ack was applied"
        assert max(waits) < ack_took / 2, f"record() waited {max(waits):.3f}s of the ack's {ack_took:.3f}s"


# -- the spool's tables belong to the spool module ---------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "kiosk"
# The project writes SQL keywords in capitals: prose such as "goes into events" is not a query.
SPOOL_TABLE_SQL = re.compile(r"\b(FROM|INTO|UPDATE|JOIN|TABLE|INDEXED\s+BY)\s+(events|epochs)\b")


def spool_sql(source: str) -> list[str]:
    """The string literals of `source` (f-string parts included) that run SQL on the spool's tables."""
    strings = (n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant))
    return [text for text in strings if isinstance(text, str) and SPOOL_TABLE_SQL.search(text)]


def test_the_sql_finder_finds_queries_on_the_spools_tables() -> None:
    source = 'q = ("SELECT ts, kind FROM events"\n " WHERE ts >= ?")\nu = f"UPDATE epochs SET x = {1}"\n'
    assert spool_sql(source) == ["SELECT ts, kind FROM events WHERE ts >= ?", "UPDATE epochs SET x = "]
    assert spool_sql('"the events from the spool"; "it goes into events"') == []
    assert len(spool_sql((PACKAGE / "spool.py").read_text(encoding="utf-8"))) > 10


def test_no_sql_on_the_spools_tables_outside_the_spool_module() -> None:
    # Central's store keeps its own `events` table in its own database; it never opens a spool.
    sources = [p for p in PACKAGE.rglob("*.py") if p.name != "spool.py" and "central" not in p.parts]
    assert len(sources) > 30
    found = {str(p.relative_to(PACKAGE)): spool_sql(p.read_text(encoding="utf-8")) for p in sources}
    assert {path: sql for path, sql in found.items() if sql} == {}


def test_closing_leaves_a_running_threads_connection_to_that_thread(tmp_path: Path) -> None:
    # Closing a sqlite3 connection while another thread runs a query on it can crash the
    # process, so close() never touches a live thread's connection: that thread closes it.
    spool = _open(tmp_path / "s.db")
    used, closed, results = threading.Event(), threading.Event(), []

    def drain() -> None:
        results.append(spool.depth())
        used.set()
        closed.wait(10)
        try:
            spool.depth()
        except SpoolError as e:
            results.append(str(e))

    worker = threading.Thread(target=drain)
    worker.start()
    assert used.wait(10)
    spool.close()
    assert len(spool._connections) == 1, "the live thread's connection is left to it"
    closed.set()
    worker.join(10)
    assert results[0] == 0 and "is closed" in results[1]
    assert spool._connections == [], "the thread closed its own at its next use"
    spool.close()  # twice is fine
