"""Aggregates kept by the insert equal a recount of the events; PostgreSQL's day partitions come and go."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.central import aggregates
from kiosk.central.partitions import DAY_MS
from kiosk.central.store import DAILY_COLUMNS, DAY_OFFSET_MS, EventRow, Store, open_store
from tests.support import central as central_support
from tests.support import postgres as postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

BASE = 20_400 * DAY_MS  # 2025-11-08 00:00 UTC
RECOUNT = (
    "SELECT ts / 3600000, destination, kind, format, verdict, reason, COUNT(*),"
    " SUM(CASE WHEN direction = 'in' THEN 1 ELSE 0 END), SUM(CASE WHEN direction = 'out' THEN 1 ELSE 0 END)"
    " FROM events GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
)
DAILY_RECOUNT = (
    "SELECT (ts + 25200000) / 86400000 AS d, destination, COUNT(*), SUM(CASE WHEN {v} THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN {v} AND direction = 'in' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN {v} AND direction = 'out' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN {v} AND verdict = 'fail' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN {v} AND reason = 'old_venue_qr' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN kind = 'inspection' THEN 1 ELSE 0 END), SUM(CASE WHEN kind = 'no_qr' THEN 1 ELSE 0 END),"
    " MAX(CASE WHEN {v} THEN ts END), MAX(CASE WHEN kind = 'inspection' AND format = 'inspector' THEN ts END)"
    " FROM events GROUP BY d, destination ORDER BY d, destination"
).format(v="kind = 'scan' AND format <> 'inspector'")
DAILY_KEPT = f"SELECT {DAILY_COLUMNS} FROM daily ORDER BY day, destination"
KEPT = (
    "SELECT hour, destination, kind, format, verdict, reason, n, n_in, n_out FROM hourly"
    " ORDER BY 1, 2, 3, 4, 5, 6"
)


def _event(
    seq: int, ts: int = BASE, device: str = "k-1", destination: str = "shop-1", **kw: object
) -> EventRow:
    row = EventRow(
        device=device, epoch=7, seq=seq, id=f"id-{seq}", destination=destination, kind="scan", ts=ts,
        clock_synced=True, direction="in", verdict="pass", reason="ok", format="national",
        identity=f"plain:{seq}", sw="0.1.0", decode_ms=1.5, received_ms=ts + 5, token="t",
    )  # fmt: skip
    return replace(row, **kw)  # type: ignore[arg-type]


def _insert(store: Store, rows: list[EventRow]) -> int:
    rows = sorted(rows, key=lambda r: (r.device, r.epoch, r.seq))
    store.ensure_partitions((r.ts for r in rows), BASE)
    new = store.insert_events(rows)
    store.commit()
    return new


def _int_rows(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [
        tuple(int(str(v)) if isinstance(v, int) or type(v).__name__ == "Decimal" else v for v in r)
        for r in rows
    ]


def _assert_recount(store: Store) -> None:
    assert _int_rows(store.query(KEPT)) == _int_rows(store.query(RECOUNT))
    assert _int_rows(store.query(DAILY_KEPT)) == _int_rows(store.query(DAILY_RECOUNT))
    days = "SELECT DISTINCT ts / 86400000, device, kind, format FROM events ORDER BY 1, 2, 3, 4"
    assert store.query(
        "SELECT day, device, kind, format FROM device_days ORDER BY 1, 2, 3, 4"
    ) == store.query(days)


events = st.builds(
    _event,
    seq=st.integers(1, 40),
    device=st.sampled_from(["k-1", "k-2", "k-3"]),
    destination=st.sampled_from(["shop-1", "shop-2"]),
    kind=st.sampled_from(["scan", "inspection", "no_qr"]),
    format=st.sampled_from(["national", "cccd", "inspector"]),
    verdict=st.sampled_from(["pass", "fail"]),
    reason=st.sampled_from(["ok", "old_venue_qr", "status_blocked"]),
    direction=st.sampled_from(["in", "out", None]),
).map(lambda e: replace(e, ts=_ts_of(e.device, e.seq)))


def _ts_of(device: str, seq: int) -> int:
    # One event per (device, epoch, seq), as a device signs it: a redelivery repeats its time too.
    # Spread over four UTC days, so that batches cross partitions.
    return BASE - DAY_MS + seq * 7_000_000 + int(device[-1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(events, max_size=12), min_size=1, max_size=5), data=st.data())
def test_aggregates_equal_a_recount_after_duplicates(
    store_url: str, batches: list[list[EventRow]], data: st.DataObject
) -> None:
    with open_store(store_url) as store:
        store.query("SELECT 1")
        for table in ("events", "hourly", "daily", "device_days"):
            store._execute(f"DELETE FROM {table}")
        store.commit()
        stored: set[tuple[str, int, int, int]] = set()
        for batch in batches:
            # Redelivery: the same events again, in the same batch or a later one.
            again = data.draw(st.lists(st.sampled_from(batch), max_size=4)) if batch else []
            unique = {(r.device, r.epoch, r.seq, r.ts): r for r in batch + again}
            new = _insert(store, batch + again)
            fresh = set(unique) - stored
            assert new == len(fresh)
            stored |= fresh
        _assert_recount(store)
        _assert_daily_answers_as_hourly(store)


def _assert_daily_answers_as_hourly(store: Store) -> None:
    """Whole local days read from `daily` give what summing `hourly` gives."""
    for day in range(BASE // DAY_MS - 2, BASE // DAY_MS + 4):
        start, end = day * DAY_MS - DAY_OFFSET_MS, (day + 1) * DAY_MS - DAY_OFFSET_MS
        for history, least in ((1, 1), (3, 1), (3, 2), (4, 3)):
            fast = aggregates.day_levels(
                store, start, end, history_days=history, min_days=least, offset_ms=DAY_OFFSET_MS
            )
            slow = aggregates._levels_from_hourly(store, start, end, history, least, DAY_OFFSET_MS)
            assert fast == {d: level for d, level in slow.items() if level != aggregates.DayLevel()}
        week = (start - 3 * DAY_MS, end)
        assert aggregates.area_totals(store, *week) == aggregates.area_totals(store, week[0] + 1, week[1])


def test_two_writers_at_once_count_each_event_once(postgres_url: str) -> None:
    rows = [_event(seq, ts=BASE + seq * 1000, device=f"k-{seq % 3}") for seq in range(1, 400)]
    with open_store(postgres_url) as first, open_store(postgres_url) as second:
        workers = [
            threading.Thread(target=_insert, args=(store, rows[start:] + rows[:start]))
            for store, start in ((first, 0), (second, 150))
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        first.rollback()
        assert first.count_events() == len(rows)
        _assert_recount(first)


def test_daily_scans_in_local_days(store_url: str) -> None:
    day = DAY_MS
    with open_store(store_url) as store:
        _insert(store, [_event(1, ts=day - 1), _event(2, ts=day + 1), _event(3, ts=2 * day - 3_600_000)])
        _insert(store, [_event(4, ts=day + 5, kind="inspection"), _event(5, ts=day + 9, format="inspector")])
        assert aggregates.daily_scans(store, 0, 3 * day, offset_ms=0) == {"shop-1": {0: 1, 1: 2}}
        # Two hours ahead, the last one falls on the next local day.
        assert aggregates.daily_scans(store, 0, 3 * day, offset_ms=7_200_000) == {"shop-1": {1: 2, 2: 1}}


def test_a_database_from_before_daily_gets_it_from_hourly(tmp_path: pytest.TempPathFactory) -> None:
    url = f"sqlite://{tmp_path}/c.sqlite3"
    with open_store(url) as store:
        _insert(store, [_event(1), _event(2, ts=BASE - DAY_MS, direction="out"), _event(3, kind="no_qr")])
        store._execute("DROP TABLE daily")  # as the schema was before it
        store.commit()
    with open_store(url) as store:
        _assert_recount(store)
        assert _insert(store, [_event(4), _event(1)]) == 1  # and the ingest counts on from there
        _assert_recount(store)
    with open_store(url) as store:  # opening again migrates nothing twice
        _assert_recount(store)


def test_a_postgres_database_from_before_daily_gets_it_from_hourly(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        _insert(store, [_event(1), _event(2, ts=BASE - DAY_MS, reason="old_venue_qr", verdict="fail")])
        store._execute("DROP TABLE daily")
        store.commit()
    with open_store(postgres_url) as store, open_store(postgres_url) as again:
        _assert_recount(store)
        _assert_recount(again)


def test_venue_figures_from_the_aggregates(store_url: str) -> None:
    with open_store(store_url) as store:
        _insert(store, [
            _event(1), _event(2, direction="out"),
            _event(3, reason="old_venue_qr", verdict="fail", direction=None),
            _event(4, kind="inspection", format="inspector"), _event(5, ts=BASE + 3_600_000),
        ])  # fmt: skip
        figures = aggregates.venue_figures(
            store, BASE, BASE + DAY_MS, ["shop-1", "shop-9"], offset_ms=7 * 3_600_000
        )
        shop = figures["shop-1"]
        assert (shop.scans, shop.old_poster, shop.kinds) == (4, 1, {"inspection": 1, "scan": 4})
        assert shop.directions == {"in": 2, "out": 1, "none": 1}
        assert shop.verdicts == {"pass": {"ok": 3}, "fail": {"old_venue_qr": 1}}
        assert (shop.hourly[7], shop.hourly[8], sum(shop.hourly)) == (3, 1, 4)
        assert figures["shop-9"] == aggregates.VenueFigures("shop-9")


def test_partitions_are_made_ahead_and_dropped_whole(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        today = BASE // DAY_MS
        assert store.ensure_partitions([], BASE) == [today, today + 1, today + 2]
        assert store.ensure_partitions([BASE + 5], BASE) == []  # known: nothing to do
        store.commit()
        # A day far ahead has no partition yet: its event waits in the default partition ...
        far = BASE + 10 * DAY_MS
        assert _insert(store, [_event(1, ts=far), _event(2, ts=BASE - 3 * DAY_MS)]) == 2
        assert store.query("SELECT COUNT(*) FROM events_default") == [(1,)]
        # ... and moves into the day's partition when it is made (a past day in the window is made at once).
        assert store.ensure_partitions([], far) == [today + 10, today + 11, today + 12]
        store.commit()
        assert store.query("SELECT COUNT(*) FROM events_default") == [(0,)]
        assert store.count_events() == 2
        assert store.partition_days()[0] == date(2025, 11, 5)
        assert store.drop_before(date(2025, 11, 9)) == 2  # the 5th and the 8th
        store.commit()
        assert store.partition_days()[0] == date(2025, 11, 9)
        assert [e.seq for e in store.events(0, far + DAY_MS)] == [1]
        assert int(store.query("SELECT SUM(n) FROM hourly")[0][0]) == 2  # counts stay: they hold no identity


def test_sqlite_retention_deletes_older_events(tmp_path: pytest.TempPathFactory) -> None:
    with open_store(f"sqlite://{tmp_path}/c.sqlite3") as store:
        _insert(store, [_event(1, ts=BASE - 1), _event(2, ts=BASE)])
        assert store.partition_days() == []
        assert store.drop_before(date(2025, 11, 8)) == 1
        assert [e.seq for e in store.events(0, BASE + DAY_MS)] == [2]
