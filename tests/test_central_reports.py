"""The daily report against figures computed by hand on a generated day of scans."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.central.render import as_csv, as_html, as_json, as_table
from kiosk.central.reports import (
    DestinationReport,
    Report,
    ReportSettings,
    build_report,
    load_report_settings,
)
from kiosk.central.store import DeviceRow, EventRow, Store, open_store
from kiosk.errors import ConfigError
from tests.support import central as central_support
from tests.support import postgres as postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 11, 20)
EPOCH = 1


def at(hour: int, minute: int = 0, day: date = DAY) -> int:
    """UTC ms of a local time."""
    return (
        int(datetime(day.year, day.month, day.day, tzinfo=ZONE).timestamp() * 1000)
        + (hour * 60 + minute) * 60_000
    )


class Day:
    """Builds the scenario's events with per-device seqs."""

    def __init__(self) -> None:
        self.rows: list[EventRow] = []
        self.seqs: dict[str, int] = {}

    def scan(self, device: str, dest: str, ts: int, identity: str | None, **kw: str | None) -> None:
        seq = self.seqs[device] = self.seqs.get(device, 0) + 1 + (1 if kw.pop("skip", None) else 0)
        values = {"direction": "in", "verdict": "pass", "reason": "ok", "format": "national", **kw}
        self.rows.append(
            EventRow(
                device=device, epoch=EPOCH, seq=seq, id=f"{device}-{seq}", destination=dest, kind="scan",
                ts=ts, clock_synced=True, identity=identity, sw="0.1.0", decode_ms=3.0, received_ms=ts,
                token="-", **values,  # type: ignore[arg-type]
            )
        )  # fmt: skip


def _scenario(store: Store) -> None:
    for dev, dest, status in [
        ("ka1", "shop-a", "active"), ("ka2", "shop-a", "active"), ("kb1", "shop-b", "active"),
        ("kd1", "shop-b", "revoked"), ("kc1", "shop-c", "active"),
    ]:  # fmt: skip
        store.put_device(DeviceRow(dev, dest, "PEM", "fp", "0.1.0", "2026-11-01T00:00:00Z", status))
    day = Day()
    _shop_a(day)
    for i in range(200):  # shop-b: every 4 min from 07:00 (last 20:16), 50 people
        day.scan("kb1", "shop-b", at(7, 4 * i), f"plain:b{i % 50}")
    for i in range(20):  # shop-c: every 30 min from 07:00 (last 16:30)
        day.scan("kc1", "shop-c", at(7, 30 * i), f"plain:c{i}")
    store.insert_events(day.rows)
    store.advance_progress("ka2", EPOCH, 6)  # what the ingest recorded: 1-6 stored, 7 missing
    _states(store)
    store.commit()


def _shop_a(day: Day) -> None:
    for i in range(24):  # ka1: 08:00-11:50 every 10 min, p0..p23 enter
        day.scan("ka1", "shop-a", at(8, 10 * i), f"plain:p{i}")
    for i in range(10):  # ...and p0..p9 leave at 12:00-12:09
        day.scan("ka1", "shop-a", at(12, i), f"plain:p{i}", direction="out")
    for i in range(12):  # ka2: 14:00-15:50; two blocked, one old poster; seq 7 never arrives
        ts = at(14, 10 * i)
        if i in (0, 1):
            day.scan(
                "ka2",
                "shop-a",
                ts,
                f"plain:p{100 + i}",
                verdict="fail",
                reason="status_blocked",
                direction=None,
            )
        elif i == 2:
            day.scan(
                "ka2",
                "shop-a",
                ts,
                None,
                verdict="fail",
                reason="old_venue_qr",
                format="poster",
                direction=None,
            )
        else:
            day.scan("ka2", "shop-a", ts, f"plain:p{200 + i - 3}", skip="yes" if i == 6 else None)
    for back, count in ((1, 160), (2, 200), (3, 180)):  # shop-a's usual level: median 180
        for i in range(count):
            day.scan("ka1", "shop-a", at(10, 0, DAY - timedelta(days=back)) + i, f"plain:h{i}")


def _states(store: Store) -> None:
    yesterday = DAY - timedelta(days=1)
    for dev, ts, status in [
        ("ka1", at(10, 0, yesterday), "online"), ("ka1", at(13), "offline"), ("ka1", at(13, 30), "online"),
        ("ka2", at(6), "online"), ("kb1", at(6), "online"), ("kb1", at(21, 30), "stopped"),
        ("kc1", at(5), "online"),
    ]:  # fmt: skip
        store.log_state(dev, ts, status)


SETTINGS_TOML = """
low_fraction = 0.3
[[destinations]]
id = "shop-a"
name = "Shop A"
group = "shop"
[[destinations]]
id = "shop-b"
group = "shop"
[[destinations]]
id = "shop-c"
group = "shop"
[[destinations]]
id = "market-x"
group = "market"
opening_hours = "05:00-12:00"
"""


@pytest.fixture
def settings(tmp_path: Path) -> ReportSettings:
    path = tmp_path / "destinations.toml"
    path.write_text(SETTINGS_TOML)
    return load_report_settings(path)


@pytest.fixture
def report(store_url: str, settings: ReportSettings) -> Iterator[Report]:
    with open_store(store_url) as store:
        _scenario(store)
        yield build_report(store, day=DAY, settings=settings, now_ms=at(23))


def _dest(report: Report, name: str) -> DestinationReport:
    [found] = [d for d in report.destinations if d.destination == name]
    return found


def test_destination_figures(report: Report) -> None:
    assert [d.destination for d in report.destinations] == ["market-x", "shop-a", "shop-b", "shop-c"]
    a = _dest(report, "shop-a")
    assert (a.scans, a.people, a.old_poster) == (46, 35, 1)
    assert a.directions == {"in": 33, "out": 10, "none": 3}
    assert a.verdicts == {"pass": {"ok": 43}, "fail": {"old_venue_qr": 1, "status_blocked": 2}}
    assert a.hourly == [0] * 8 + [6, 6, 6, 6, 10, 0, 6, 6] + [0] * 8
    assert (a.usual, a.peers) == (180, 110)  # peers: median of shop-b 200 and shop-c 20
    assert a.silences == [(at(15, 50), at(21))]
    b = _dest(report, "shop-b")
    assert (b.scans, b.people, b.hourly[7], b.hourly[20], b.silences) == (200, 50, 15, 5, [])


def test_devices_uptime_and_gaps(report: Report) -> None:
    ka1, ka2 = _dest(report, "shop-a").devices
    assert (ka1.events, ka1.offline_minutes, ka1.uptime) == (34, 30, pytest.approx(13.5 / 14))
    assert (ka2.events, ka2.uptime, ka2.missing_seqs, ka2.last_event_ms) == (12, 1.0, 1, at(15, 50))
    kb1, kd1 = _dest(report, "shop-b").devices
    assert (kb1.uptime, kd1.status, kd1.uptime) == (1.0, "revoked", 0.0)


def test_compliance_flags(report: Report) -> None:
    flags = {d.destination: [f.code for f in d.flags] for d in report.destinations}
    assert flags == {
        "shop-a": ["device_offline", "below_usual", "silent"],
        "shop-b": [],  # kd1 is revoked: its silence is not the venue's fault
        "shop-c": ["below_peers", "silent"],
        "market-x": ["no_device"],
    }
    assert _dest(report, "market-x").opening_hours == "05:00-12:00"


def test_one_destination_only(store_url: str, settings: ReportSettings) -> None:
    with open_store(store_url) as store:
        _scenario(store)
        report = build_report(store, day=DAY, settings=settings, now_ms=at(23), destination="shop-c")
    assert [d.destination for d in report.destinations] == ["shop-c"]


def test_renderings(report: Report) -> None:
    rows = list(csv.reader(io.StringIO(as_csv(report))))
    assert rows[0] == ["day", "destination", "section", "key", "value"]
    assert ["2026-11-20", "shop-a", "summary", "scans", "46"] in rows
    assert ["2026-11-20", "shop-a", "fail", "status_blocked", "2"] in rows
    assert ["2026-11-20", "shop-a", "silence", "15:50", "21:00"] in rows
    assert json.loads(as_json(report))["destinations"][1]["people"] == 35
    table = as_table(report)
    assert "FLAG no_device" in table and "shop-a (Shop A, group shop)" in table
    html = as_html(report)
    assert html.count("<svg") >= 4 + 5  # a chart per destination, an uptime bar per device
    assert "src=" not in html and "href=" not in html and "<script" not in html  # nothing from outside


def test_bad_destinations_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text('timezone = "Mars/Base"\nopening_hours = "21:00-07:00"\n[[destinations]]\nid = "A B"\n')
    with pytest.raises(ConfigError) as caught:
        load_report_settings(path)
    assert len(caught.value.problems) == 3
