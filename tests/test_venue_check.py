"""The venue check: the inspection screen's figures from a real spool."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.errors import SpoolError
from kiosk.events import Direction, EventDraft, Kind, Verdict
from kiosk.spool import Spool
from kiosk.statuslist import VIETNAM
from kiosk.venue_check import HOURS, DeviceReadings, InspectionFigures, inspection_figures
from tests.support.central import SEALER

DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NOW = datetime(2021, 9, 15, 14, 30, tzinfo=VIETNAM)
READINGS = DeviceReadings(
    device_id="kiosk-7",
    destination_id="cho-ben-thanh",
    version="1.2.3",
    fps=14.84,
    sharpness=212.0,
    clock_synced=True,
    last_ack=datetime(2021, 9, 15, 14, 29, 12, tzinfo=VIETNAM),
)


@dataclass(frozen=True)
class Ev:
    """One event the test puts into the spool, at a local Vietnam time."""

    at: datetime
    verdict: Verdict = "pass"
    direction: Direction | None = "in"
    reason: str = "ok"
    kind: Kind = "scan"


def _vn(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2021, 9, day, hour, minute, second, tzinfo=VIETNAM)


EVENTS = (
    Ev(_vn(15, 0)),  # the first instant of today
    Ev(_vn(15, 8, 5)),
    Ev(_vn(15, 8, 40)),
    Ev(_vn(15, 8, 59, 59), "fail", None, "old_venue_qr"),
    Ev(_vn(15, 9), "fail", None, "old_venue_qr"),
    Ev(_vn(15, 9, 10), direction="out"),
    Ev(_vn(15, 12, 30), "fail", None, "unrecognised"),
    Ev(_vn(15, 13), "pass", None, "inspector_card_ok", "inspection"),
    Ev(_vn(15, 14, 29), "fail", "in", "status_blocked"),
    Ev(_vn(14, 23, 59, 59)),  # the last instant of yesterday
    Ev(_vn(14, 10), "fail", None, "old_venue_qr"),  # a poster, but not today
    Ev(_vn(9, 7)),  # the first day of the week
    Ev(_vn(8, 7)),  # a day too old for the week
    Ev(_vn(16, 0, 0, 1)),  # after today (a clock that ran ahead): not counted
)


def _draft(event: Ev) -> EventDraft:
    return EventDraft(
        kind=event.kind,
        verdict=event.verdict,
        reason=event.reason,
        format="inspector" if event.kind == "inspection" else "national",
        direction=event.direction,
        card_identity="162979388586171100",
        ts=int(event.at.timestamp() * 1000),
    )


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(
        tmp_path / "spool.db",
        device_id="kiosk-7",
        destination_id="cho-ben-thanh",
        signing_key=DEVICE_KEY,
        sealer=SEALER,
    ) as opened:
        recorded = [opened.record(_draft(event)) for event in EVENTS]
        opened.mark_sent(s.key for s in recorded[:5])
        opened.apply_ack("kiosk-7", {opened.epoch: 3})
        yield opened


def _figures(spool: Spool, tz: tzinfo = VIETNAM) -> InspectionFigures:
    return inspection_figures(spool, READINGS, now=NOW, tz=tz)


def _hours(**counts: int) -> tuple[int, ...]:
    return tuple(counts.get(f"h{h}", 0) for h in range(HOURS))


def test_today_is_counted_by_local_hour_with_its_pass_fail_split(spool: Spool) -> None:
    today = _figures(spool).today
    assert today.day == date(2021, 9, 15)
    assert today.by_hour == _hours(h0=1, h8=3, h9=2, h12=1, h14=1)
    assert (today.total, today.passed, today.failed) == (8, 4, 4)
    assert (today.entries, today.exits) == (3, 1)


def test_the_week_is_the_seven_local_days_ending_today(spool: Spool) -> None:
    figures = _figures(spool)
    assert [d.day for d in figures.week] == [date(2021, 9, d) for d in range(9, 16)]
    assert figures.week[0].by_hour == _hours(h7=1)
    assert figures.week[-2].by_hour == _hours(h10=1, h23=1)
    assert (figures.week[-2].passed, figures.week[-2].failed) == (1, 1)
    assert [d.total for d in figures.week] == [1, 0, 0, 0, 0, 2, 8]
    assert figures.week_by_hour == _hours(h0=1, h7=1, h8=3, h9=2, h10=1, h12=1, h14=1, h23=1)
    assert (figures.week_total, figures.week_passed, figures.week_failed) == (11, 6, 5)


def test_old_posters_inspections_and_the_backlog(spool: Spool) -> None:
    figures = _figures(spool)
    assert figures.old_posters_today == 2
    assert figures.inspections_today == 1
    assert (figures.unsent, figures.unacked) == (len(EVENTS) - 5, len(EVENTS) - 3)
    assert figures.device == READINGS and figures.at == NOW


def test_the_figures_are_read_the_same_from_the_reopened_spool(spool: Spool) -> None:
    before = _figures(spool)
    spool.close()
    with Spool.open(
        spool.path,
        device_id="kiosk-7",
        destination_id="cho-ben-thanh",
        signing_key=DEVICE_KEY,
        sealer=SEALER,
    ) as reopened:
        assert _figures(reopened) == before


def _by_brute_force(tz: tzinfo) -> list[int]:
    today = NOW.astimezone(tz).date()
    hours = [0] * HOURS
    for event in EVENTS:
        local = event.at.astimezone(tz)
        if event.kind == "scan" and local.date() == today:
            hours[local.hour] += 1
    return hours


@pytest.mark.parametrize(
    "tz",
    [UTC, VIETNAM, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3, minutes=-30))],
)
def test_hours_follow_the_time_zone_even_a_half_hour_one(spool: Spool, tz: tzinfo) -> None:
    assert list(_figures(spool, tz).today.by_hour) == _by_brute_force(tz)


def test_a_spool_that_cannot_be_read_is_a_spool_error(spool: Spool) -> None:
    with sqlite3.connect(spool.path) as conn:  # a foreign file in its place
        conn.execute("DROP TABLE events")
    conn.close()
    with pytest.raises(SpoolError, match="cannot read the spool"):
        _figures(spool)
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        _figures(spool)


def test_the_screen_lines_carry_the_figures_in_both_languages(spool: Spool) -> None:
    vi, en = _figures(spool).lines("vi"), _figures(spool).lines("en")
    assert vi[0] == "Thiết bị kiosk-7 · điểm cho-ben-thanh · phiên bản 1.2.3"
    assert "Hôm nay: 8 lượt quét (4 đạt, 4 không đạt)" in vi
    assert "Today: 8 scans (4 pass, 4 fail)" in en
    assert "7 days: 11 scans (6 pass, 5 fail)" in en
    assert "Old venue QR codes today: 2" in en and "Mã QR địa điểm cũ hôm nay: 2" in vi
    assert "Central's last ack: 14:29 on 15 Sep 2021 · 9 unsent, 11 unacknowledged" in en
    assert "Camera: 14.8 fps, sharpness 212" in en and "Clock: synchronised" in en


def test_a_blurry_camera_and_an_unsynced_clock_stand_out(spool: Spool) -> None:
    readings = DeviceReadings(
        device_id="kiosk-7", destination_id="v", fps=3.0, sharpness=12.0, clock_synced=False
    )
    figures = inspection_figures(spool, readings, now=NOW, tz=VIETNAM)
    assert "Camera: 3.0 khung/giây, độ nét 12 (MỜ)" in figures.lines("vi")
    assert "Clock: NOT synchronised" in figures.lines("en")
    assert any("none yet" in line for line in figures.lines("en"))
