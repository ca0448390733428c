"""The dashboard's figures from the kept columns (`daily`'s last scan and inspection, device_state's
health) and the aggregates equal what the raw events and state messages say, edge cases included."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kiosk.central.reports import DestinationInfo, ReportSettings, is_visitor_scan
from kiosk.central.store import BIGINT_MAX, DeviceRow, EventRow, Health, StateRow, Store, open_store
from kiosk.central.web import sample
from kiosk.central.web.queries import HOUR_MS, Counts, Dashboard
from tests.support import central as central_support
from tests.support import postgres as postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW_MS = int(datetime(2026, 3, 10, 15, 0, tzinfo=ZONE).timestamp() * 1000)
TODAY_MS = int(datetime(2026, 3, 10, tzinfo=ZONE).timestamp() * 1000)
WEEK_MS = TODAY_MS - 6 * 86_400_000
SETTINGS = ReportSettings(destinations=[
    DestinationInfo(id="shop-a", name="A", district="Quận 1", ward="Bến Nghé"),
    DestinationInfo(id="shop-b", name="B (no device)", district="Quận 1", ward="Bến Nghé"),
    DestinationInfo(id="shop-c", name="C (state never sent)", district="Quận 3", ward="Phường 9"),
    DestinationInfo(id="shop-d", name="D", district="Quận 3", ward="Phường 9", opening_hours="08:00-12:00"),
])  # fmt: skip
HOSTILE = {"status": "offline", "unsent": 10**30, "spool_depth": True, "fps": float("nan"),
           "clock_synced": "yes", "alarms": "camera", "version": 7}  # fmt: skip
GOOD = {"status": "online", "unsent": 0, "spool_depth": 3, "fps": 15, "clock_synced": True, "alarms": [],
        "version": "0.2.0"}  # fmt: skip


def _local(day: int, hour: int, minute: int = 0, ms: int = 0) -> int:
    """UTC ms of a local time `day` days before today."""
    when = datetime(2026, 3, 10, hour, minute, tzinfo=ZONE) - timedelta(days=day)
    return int(when.timestamp() * 1000) + ms


def _event(device: str, destination: str, seq: int, ts: int, **kw: object) -> EventRow:
    row = sample._row(device, destination, seq, ts, kind="scan", verdict="pass", reason="ok", direction="in",
                      identity=f"hmac:{seq}", card_format="national")  # fmt: skip
    return replace(row, **kw)  # type: ignore[arg-type]


def _device(device: str, destination: str, **kw: str) -> DeviceRow:
    return DeviceRow(device, destination, "-", "fp", "0.1.0", "2026-01-01T00:00:00Z", **kw)


def _state(device: str, destination: str, detail: object) -> StateRow:
    status = detail.get("status", "online") if isinstance(detail, dict) else "online"
    return StateRow(device, destination, status, NOW_MS - 60_000, NOW_MS - 60_000, json.dumps(detail))


def _province(store: Store) -> list[EventRow]:
    """Four listed venues and one unlisted, a street team, hostile states; the events written."""
    devices = [_device("k-a1", "shop-a"), _device("k-a2", "shop-a", status="revoked"),
               _device("k-c1", "shop-c"), _device("k-d1", "shop-d"), _device("k-e1", "shop-e"),
               _device("hh-1", "team-1", mode="inspector")]  # fmt: skip
    for d in devices:
        store.put_device(d)
    store.put_state(_state("k-a1", "shop-a", GOOD))
    store.put_state(_state("k-d1", "shop-d", HOSTILE))
    store.put_state(_state("k-e1", "shop-e", [1, 2]))  # not an object: no figures, its status stands
    events = [
        _event("k-a1", "shop-a", 1, _local(0, 14, 20)),
        _event("k-a1", "shop-a", 2, _local(0, 9), verdict="fail", reason="old_venue_qr", direction="out",
               format="unknown"),
        _event("k-a1", "shop-a", 3, _local(0, 0, ms=-1)),  # the last ms of yesterday (local)
        _event("k-a1", "shop-a", 4, WEEK_MS),  # the first ms of the 7 days
        _event("k-a1", "shop-a", 5, WEEK_MS - 1),  # before them
        _event("k-a1", "shop-a", 6, _local(0, 10, 30, 123), kind="inspection", format="inspector",
               reason="inspector_card_ok", direction=None),
        _event("k-a1", "shop-a", 7, _local(0, 11), format="inspector"),  # an inspector's card: no visitor
        _event("k-a1", "shop-a", 8, _local(3, 10, 5, 7), kind="inspection", format="inspector",
               reason="inspector_card_ok", direction=None),
        _event("k-d1", "shop-d", 1, _local(1, 9)),
        _event("hh-1", "team-1", 1, _local(0, 9), kind="inspection", direction=None),
        _event("hh-1", "team-1", 2, _local(0, 9, 5), kind="no_qr", verdict="fail", reason="no_qr",
               direction=None, format="unknown"),
    ]  # fmt: skip
    store.ensure_partitions((e.ts for e in events), NOW_MS)
    store.insert_events(sorted(events, key=lambda e: (e.device, e.epoch, e.seq)))
    store.commit()
    return events


def test_venue_lines_from_the_aggregates_match_the_events(store_url: str) -> None:
    with open_store(store_url) as store:
        _province(store)
        board = Dashboard(store, SETTINGS, now_ms=NOW_MS)
        venues = {v.destination: v for v in board.venues()}
        singly = {dest: board.venue(dest) for dest in venues}
        inspected = board.last_inspections()
        visit = {c.venue.destination: c for c in board.visit_page(1, 10).rows}
    assert sorted(venues) == ["shop-a", "shop-b", "shop-c", "shop-d", "shop-e"]  # team-1 is no venue
    a = venues["shop-a"]
    assert a.today == Counts(2, 1, 1, 1, 1) and a.week == Counts(4, 3, 1, 3, 1) and a.old_posters == 1
    assert a.last_scan_ms == NOW_MS and a.kiosks == 1  # its 14:xx hour ends at 15:00, now; k-a2 is revoked
    assert a.flags == ("old_posters",)
    assert venues["shop-b"].flags == ("no_device",) and venues["shop-b"].week == Counts()
    assert venues["shop-c"].flags == ("silent", "device_offline")  # it never sent a state
    assert venues["shop-d"].flags == ("silent", "device_offline") and venues["shop-d"].today == Counts()
    assert venues["shop-d"].last_scan_ms == _local(1, 10)  # yesterday's 09:xx hour
    assert venues["shop-e"].flags == ("silent",)  # unlisted, online, its state's figures unreadable
    assert singly == venues  # a venue's own reads give its line in the list
    assert inspected == {"shop-a": _local(0, 10, 30, 123)}  # the latest, to the ms
    assert visit["shop-a"].last_inspected_ms == _local(0, 10, 30, 123)
    assert visit["shop-b"].last_inspected_ms is None


def test_device_health_from_its_columns_matches_the_state_messages(store_url: str) -> None:
    with open_store(store_url) as store:
        _province(store)
        board = Dashboard(store, SETTINGS, now_ms=NOW_MS)
        fleet = board.device_page(1, 100).rows
        pages = [board.device_page(n, 4) for n in (1, 2, 9)]
        shop_a = board.devices("shop-a")
        states = {s.device: s for s in store.states()}
    assert [d.device for d in fleet] == ["k-d1", "hh-1", "k-c1", "k-a1", "k-a2", "k-e1"]
    assert [d.problems for d in fleet[:3]] == [("offline", "backlogged"), ("offline",), ("offline",)]
    hostile = fleet[0]
    assert (hostile.unsent, hostile.spool_depth, hostile.fps, hostile.clock_synced, hostile.alarms) == (
        BIGINT_MAX, None, None, None, ())
    assert hostile.software == "7" and hostile.state == "offline"
    never = fleet[2]
    assert (never.state, never.last_seen_ms, never.unsent, never.software) == ("unknown", None, None, "0.1.0")
    good = fleet[3]
    h = states["k-a1"].health
    assert (good.unsent, good.spool_depth, good.fps, good.clock_synced, list(good.alarms), good.software) == (
        h["unsent"], h["spool_depth"], float(h["fps"]), h["clock_synced"], h["alarms"], h["version"])
    assert fleet[5].software == "0.1.0" and fleet[5].fps is None  # a state that is not an object
    assert [p.number for p in pages] == [1, 2, 2] and pages[0].pages == 2 and pages[0].total == 6
    assert [d.device for p in pages[:2] for d in p.rows] == [d.device for d in fleet]
    assert [d.device for d in shop_a] == ["k-a1", "k-a2"]


@pytest.mark.parametrize("detail", [
    "", "null", "[]", '"x"', "{", '{"unsent": -5, "fps": 1e400, "alarms": [1, null, "a"]}',
    '{"unsent": 99999999999999999999999, "spool_depth": -99999999999999999999999, "fps": -Infinity}',
    '{"version": null, "clock_synced": false, "alarms": ["\\u0000"]}',
])  # fmt: skip
def test_health_of_any_state_text_is_kept_and_read_back(store_url: str, detail: str) -> None:
    kept = Health.of(detail)
    with open_store(store_url) as store:
        store.put_device(_device("k-1", "shop-a"))
        store.put_state(StateRow("k-1", "shop-a", "online", 1, 1, detail))
        store.commit()
        (row,) = Dashboard(store, SETTINGS, now_ms=NOW_MS).devices("shop-a")
    assert (row.unsent, row.spool_depth, row.fps, row.clock_synced, row.alarms) == (
        kept.unsent, kept.spool_depth, kept.fps, kept.clock_synced, kept.alarms)
    assert row.software == (kept.version if kept.version is not None else "0.1.0")
    assert all(-BIGINT_MAX - 1 <= n <= BIGINT_MAX for n in (row.unsent or 0, row.spool_depth or 0))


@pytest.mark.parametrize("timezone", ["Asia/Ho_Chi_Minh", "Asia/Tokyo", "UTC"])
def test_counts_match_the_events_in_the_days_of_any_zone(store_url: str, timezone: str) -> None:
    # UTC+7 reads `daily`; another zone sums `hourly`: the same answers as the events.
    with open_store(store_url) as store:
        province = sample.build(store, now_ms=NOW_MS, venues=12, days=9, scans_per_day=15)
        settings = province.settings.model_copy(update={"timezone": timezone})
        board = Dashboard(store, settings, now_ms=NOW_MS)
        venues = board.venues()
        week = [e for e in store.events(board.clock.week_start, board.clock.end) if is_visitor_scan(e)]
    assert len(venues) == 12
    for venue in venues:
        mine = [e for e in week if e.destination == venue.destination]
        today = [e for e in mine if e.ts >= board.clock.today_start]
        assert venue.week == _counts(mine) and venue.today == _counts(today)
        assert venue.old_posters == sum(e.reason == "old_venue_qr" for e in mine)
        last = max((e.ts for e in mine), default=None)
        assert venue.last_scan_ms == (None if last is None else min((last // HOUR_MS + 1) * HOUR_MS, NOW_MS))


def _counts(events: list[EventRow]) -> Counts:
    def count(test: Callable[[EventRow], bool]) -> int:
        return sum(1 for e in events if test(e))

    return Counts(len(events), count(lambda e: e.direction == "in"), count(lambda e: e.direction == "out"),
                  count(lambda e: e.verdict == "pass"), count(lambda e: e.verdict == "fail"))  # fmt: skip


def test_an_older_database_gains_the_columns_from_what_it_kept(store_url: str) -> None:
    with open_store(store_url) as store:
        events = _province(store)
        before = Dashboard(store, SETTINGS, now_ms=NOW_MS)
        lines, fleet = before.venues(), before.device_page(1, 100).rows
        store.write("DROP INDEX daily_inspected")
        store.write("DROP INDEX daily_week")
        dropped = (("daily", "last_scan"), ("daily", "last_inspection"), ("device_state", "unsent"),
                   ("device_state", "fps"), ("device_state", "alarms"))  # fmt: skip
        for table, column in dropped:
            store.write(f"ALTER TABLE {table} DROP COLUMN {column}")  # as the schema was before them
        store.commit()
    with open_store(store_url) as store:
        board = Dashboard(store, SETTINGS, now_ms=NOW_MS)
        assert board.venues() == lines and board.device_page(1, 100).rows == fleet
        # `hourly` knows the hour: the day's last inspection is the start of its hour, made exact on the page.
        inspection = max(e.ts for e in events if e.kind == "inspection" and e.format == "inspector")
        assert board.last_inspections()["shop-a"] == inspection // HOUR_MS * HOUR_MS
        visit = {c.venue.destination: c for c in board.visit_page(1, 10).rows}
        assert visit["shop-a"].last_inspected_ms == inspection  # the events still hold it
