"""The data layer, on both backends: devices, idempotent events, progress, states."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kiosk.central.store import DeviceRow, EventRow, StateRow, open_store
from kiosk.errors import StoreError
from tests.support import central as central_support
from tests.support import postgres as postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url


def _event(seq: int, ts: int = 1_000, device: str = "k-1", destination: str = "shop-1") -> EventRow:
    return EventRow(
        device=device, epoch=7, seq=seq, id=f"id-{seq}", destination=destination, kind="scan", ts=ts,
        clock_synced=True, direction="in", verdict="pass", reason="ok", format="national",
        identity=f"plain:{seq}", sw="0.1.0", decode_ms=1.5, received_ms=ts + 5, token="t",
    )  # fmt: skip


def test_devices_put_list_and_revoke(store_url: str) -> None:
    with open_store(store_url) as store:
        row = DeviceRow("k-1", "shop-1", "PEM", "fp", "0.1.0", "2026-11-01T00:00:00Z")
        store.put_device(row)
        store.put_device(replace(row, fingerprint="fp2"))  # re-provisioned: replaced, not doubled
        store.commit()
        assert store.devices() == [replace(row, fingerprint="fp2")]
        assert store.set_device_status("k-1", "revoked")
        assert not store.set_device_status("nobody", "revoked")
        assert store.devices()[0].status == "revoked"


OLD_DEVICES = """CREATE TABLE devices (device TEXT PRIMARY KEY, destination TEXT NOT NULL,
    public_key TEXT NOT NULL, fingerprint TEXT NOT NULL, software TEXT NOT NULL, created TEXT NOT NULL,
    status TEXT NOT NULL)"""


def _old_database(url: str) -> None:
    """A database as the release before the registry kept each device's mode left it."""
    if url.startswith("sqlite://"):
        import sqlite3

        conn: Any = sqlite3.connect(url.removeprefix("sqlite://"))
        mark = "?"
    else:
        import psycopg

        conn, mark = psycopg.connect(url), "%s"
    conn.execute(OLD_DEVICES)
    conn.execute(f"INSERT INTO devices VALUES ({', '.join([mark] * 7)})",
                 ("k-old", "shop-1", "PEM", "fp", "0.0.9", "2026-01-01T00:00:00Z", "active"))  # fmt: skip
    conn.commit()
    conn.close()


def test_an_older_database_gains_the_mode_column_once(store_url: str) -> None:
    _old_database(store_url)
    with open_store(store_url) as store:
        assert [(d.device, d.mode) for d in store.devices()] == [("k-old", "kiosk")]
        store.put_device(DeviceRow("h-1", "team-1", "PEM", "fp", "0.1.0", "2026-11-01T00:00:00Z",
                                   mode="inspector"))  # fmt: skip
        store.commit()
    with open_store(store_url) as store:  # the second opening finds the column and adds nothing
        assert [(d.device, d.mode) for d in store.devices()] == [("h-1", "inspector"), ("k-old", "kiosk")]


def test_events_are_stored_once_per_device_epoch_seq(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.insert_events([_event(1), _event(2)]) == 2
        assert store.insert_events([_event(2), _event(3), _event(3)]) == 1
        store.commit()
        assert store.count_events() == 3
        assert [e.seq for e in store.events(0, 10_000)] == [1, 2, 3]
        assert store.events(0, 10_000)[0] == _event(1)


def test_uncommitted_events_vanish_on_rollback(store_url: str) -> None:
    with open_store(store_url) as store:
        store.insert_events([_event(1)])
        store.rollback()
        assert store.count_events() == 0


def test_events_by_time_destination_and_identity(store_url: str) -> None:
    with open_store(store_url) as store:
        store.insert_events([_event(1, ts=100), _event(2, ts=200, destination="shop-2"), _event(3, ts=300)])
        assert [e.seq for e in store.events(100, 300)] == [1, 2]
        assert [e.seq for e in store.events(0, 1000, destination="shop-1")] == [1, 3]
        assert [e.seq for e in store.events_of(["plain:2", "plain:3"], 0, 250)] == [2]
        assert store.events_of([], 0, 1000) == []


def test_progress_only_rises(store_url: str) -> None:
    with open_store(store_url) as store:
        store.advance_progress("k-1", 7, 10)
        store.advance_progress("k-1", 7, 4)
        store.advance_progress("k-1", 8, 1)
        assert store.progress("k-1") == {7: 10, 8: 1}
        store.insert_events([_event(s) for s in (11, 12, 14)])
        assert store.seqs_after("k-1", 7, 11, 10) == [(12, 1005), (14, 1005)]


def test_state_changes_are_logged_and_late_states_ignored(store_url: str) -> None:
    with open_store(store_url) as store:
        store.put_state(StateRow("k-1", "shop-1", "online", 100, 101, '{"status":"online"}'))
        store.put_state(StateRow("k-1", "shop-1", "online", 200, 201, '{"status":"online","fps":9}'))
        store.put_state(StateRow("k-1", "shop-1", "offline", 300, 301, '{"status":"offline"}'))
        store.put_state(StateRow("k-1", "shop-1", "online", 250, 302, '{"status":"online"}'))  # late
        assert store.states()[0].status == "offline"
        assert store.state_log("k-1", 0, 1000) == [(100, "online"), (300, "offline")]
        assert store.state_log("k-1", 150, 1000) == [(100, "online"), (300, "offline")]
        assert store.state_log("k-1", 150, 250) == [(100, "online")]


def test_close_is_idempotent_and_rolls_back(tmp_path: Path) -> None:
    store = open_store(f"{tmp_path}/c.sqlite3")
    store.insert_events([_event(1)])
    store.close()
    store.close()
    with open_store(f"{tmp_path}/c.sqlite3") as again:
        assert again.count_events() == 0


def test_unreachable_postgres_is_a_clear_error() -> None:
    from tests.support.broker import free_port

    with pytest.raises(StoreError, match="is the server up"):
        open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2")


def test_unwritable_sqlite_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open SQLite"):
        open_store(f"{blocker}/sub/c.sqlite3")
