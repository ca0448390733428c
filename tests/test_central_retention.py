"""Retention: central deletes what is older than the retention, in batches, and keeps the rest."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kiosk.central import retention
from kiosk.central.cli import main
from kiosk.central.ingest import _row
from kiosk.central.store import RejectRow, Store, open_store
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import TestDevice

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

DAY = retention.DAY_MS
NOW = 1_780_000_000_000
K1 = TestDevice("kiosk-1", "shop-1")
AGES_DAYS = [45, 40, 32, 31.5, 29, 10, 1, 0]  # one event of each age, seq 1, 2, ...


def fill(store: Store) -> None:
    """Events, refused messages and state changes of each age in AGES_DAYS."""
    stamps = [NOW - int(age * DAY) for age in AGES_DAYS]
    store.ensure_partitions(stamps, NOW)
    rows = [_row(K1.event(seq, ts), (), K1.token(seq, ts), ts) for seq, ts in enumerate(stamps, 1)]
    store.insert_events(rows)
    store.add_rejects([RejectRow(ts, "t", None, "bad_event", "x") for ts in stamps])
    for n, ts in enumerate(stamps):
        store.log_state(K1.device, ts, "online" if n % 2 else "offline")
    store.advance_progress(K1.device, K1.epoch, len(stamps))
    store.commit()


def test_what_is_older_than_the_retention_goes_the_rest_stays(store_url: str) -> None:
    with open_store(store_url) as store:
        fill(store)
        deleted = retention.expire(store, 30, now_ms=NOW)
        # Four of each kind are over 30 days old; PostgreSQL counts the day partitions it dropped.
        assert deleted == (3 * 4 if store.name == "sqlite" else 4 + 2 * 4)
        kept = [row.seq for row in store.events(0, NOW + 1)]
        assert kept == [5, 6, 7, 8]
        assert sum(store.reject_counts().values()) == 4
        assert [ts for ts, _ in store.state_log(K1.device, 0, NOW + 1)] == [
            NOW - int(age * DAY) for age in AGES_DAYS[4:]
        ]
        assert store.progress(K1.device) == {K1.epoch: 8}, "the ack cursors are never expired"
        assert retention.expire(store, 30, now_ms=NOW) == 0


@pytest.mark.parametrize("batch_rows", [1, 3, 5000])
def test_deletes_go_in_batches_oldest_first(tmp_path: Path, batch_rows: int) -> None:
    with open_store(f"sqlite://{tmp_path / 'c.sqlite3'}") as store:
        store.add_rejects([RejectRow(ts, "t", None, "bad_event", "x") for ts in (5, 5, 6, 7, 8, 9)])
        store.commit()
        assert store.delete_before("rejects", "received_ms", 9, batch_rows=batch_rows) == 5
        assert store.delete_before("rejects", "received_ms", 9, batch_rows=batch_rows) == 0
        assert sum(store.reject_counts().values()) == 1


def test_the_default_retention_is_the_documented_one() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "central.md").read_text()
    assert f"{retention.DEFAULT_DAYS} days" in docs and "kiosk-central expire" in docs


def test_expire_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite://{tmp_path / 'c.sqlite3'}"
    with open_store(db) as store:
        fill(store)
    assert main(["--db", db, "expire", "--days", "3650"]) == 0
    assert "kept 3650 days: deleted 0" in capsys.readouterr().out
    assert main(["--db", db, "expire"]) == 0  # the default: everything here is older than 30 days from now
    assert "kept 30 days: deleted 24" in capsys.readouterr().out


@pytest.mark.parametrize("days", ["0", "-1", "many", "3651"])
def test_a_bad_retention_is_refused_with_a_message(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", "unused.sqlite3", "expire", "--days", days])
    assert exit_info.value.code == 2
    assert "number of days from 1 to 3650" in capsys.readouterr().err


def test_the_loop_expires_until_stopped(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'c.sqlite3'}"
    with open_store(db) as store:
        fill(store)
    stop, rounds = threading.Event(), []

    def clock() -> int:
        rounds.append(1)
        if len(rounds) == 2:
            stop.set()
        return NOW

    retention.run(lambda: open_store(db), 30, every_s=0.01, stop=stop, clock=clock)
    assert len(rounds) == 2
    with open_store(db) as store:
        assert [row.seq for row in store.events(0, NOW + 1)] == [5, 6, 7, 8]
