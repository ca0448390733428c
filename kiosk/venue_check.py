"""The venue check: what an inspector's card opens on a kiosk, for `INSPECTION_SCREEN_S`.

At a venue an inspector shows an inspector card (kiosk.cards.inspector) and the
kiosk records an `inspection` event and shows whether it is used as required:
`inspection_figures()` asks the spool for today's and the week's scans by
hour, the pass/fail split and the old venue posters shown today, and adds
what only the running daemon knows (`DeviceReadings`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from kiosk import __version__
from kiosk.cards import Rejection
from kiosk.cards.inspector import InspectorCard
from kiosk.dates import moment_words
from kiosk.events import EventDraft
from kiosk.imaging import MIN_SHARPNESS  # the camera check's limit: softer edges do not read
from kiosk.reasons import Reason
from kiosk.text import Lang

if TYPE_CHECKING:  # the screen imports the figures; only the loop, which holds the spool, counts them
    from kiosk.spool import Spool

INSPECTION_SCREEN_S = 60.0
WEEK_DAYS = 7
HOURS = 24


# ---------------------------------------------------------------- the venue check


@dataclass(frozen=True)
class DayCounts:
    """One local day's card scans: by hour of the day, passes and fails, entries and exits."""

    day: date
    by_hour: tuple[int, ...]
    passed: int = 0
    failed: int = 0
    entries: int = 0
    exits: int = 0

    @property
    def total(self) -> int:
        """Scans that day."""
        return self.passed + self.failed


@dataclass(frozen=True, kw_only=True)
class DeviceReadings:
    """What only the running daemon knows, handed in when the inspection screen opens."""

    device_id: str
    destination_id: str
    version: str = __version__
    fps: float
    sharpness: float | None = None  # variance of the Laplacian of a recent frame
    clock_synced: bool
    last_ack: datetime | None = None  # when central's last ack arrived


@dataclass(frozen=True, kw_only=True)
class InspectionFigures:
    """The inspection screen's data: the device, its week of scans, its uplink and camera."""

    device: DeviceReadings
    at: datetime
    week: tuple[DayCounts, ...]  # WEEK_DAYS local days, oldest first, today last
    old_posters_today: int
    inspections_today: int
    unsent: int  # events the broker has not accepted yet (the backlog)
    unacked: int  # events central has not acknowledged yet

    @property
    def today(self) -> DayCounts:
        """Today's counts."""
        return self.week[-1]

    @property
    def week_by_hour(self) -> tuple[int, ...]:
        """Scans of the week by hour of the day."""
        return tuple(sum(hours) for hours in zip(*(d.by_hour for d in self.week), strict=True))

    @property
    def week_total(self) -> int:
        """Scans in the week."""
        return sum(d.total for d in self.week)

    @property
    def week_passed(self) -> int:
        """Passes in the week."""
        return sum(d.passed for d in self.week)

    @property
    def week_failed(self) -> int:
        """Fails in the week."""
        return sum(d.failed for d in self.week)

    def lines(self, lang: Lang = "vi") -> tuple[str, ...]:
        """The figures as short text lines for the screen (the hour bars are drawn from `week`)."""
        return _figure_lines(self, lang)


def inspection_figures(
    spool: Spool, device: DeviceReadings, *, now: datetime, tz: tzinfo | None = None
) -> InspectionFigures:
    """The spool's counts for the inspection screen; raises SpoolError if it cannot be read.

    Days and hours are local (`tz`, by default the system's, as the idle screen counts).
    """
    tz = tz or datetime.now().astimezone().tzinfo
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=back) for back in range(WEEK_DAYS - 1, -1, -1)]
    bounds = [_ms(datetime.combine(d, time(hour), tz)) for d in days for hour in range(HOURS)]
    bounds.append(_ms(datetime.combine(today + timedelta(days=1), time(), tz)))
    groups = _groups(spool, bounds)
    posters = spool.refusals(Reason.OLD_VENUE_QR.value, bounds[-1 - HOURS], bounds[-1])
    unsent, unacked = spool.backlog()
    first_today = (WEEK_DAYS - 1) * HOURS
    return InspectionFigures(
        device=device,
        at=now,
        week=_count_week(groups, days),
        old_posters_today=posters,
        inspections_today=sum(g[-1] for g in groups if g[1] == "inspection" and g[0] >= first_today),
        unsent=unsent,
        unacked=unacked,
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


Group = tuple[int, str, str, str | None, int]  # (hour slot of the week, kind, verdict, direction, count)


def _groups(spool: Spool, bounds: list[int]) -> list[Group]:
    """The week's events counted by local hour slot, kind, verdict and direction."""
    rows = spool.counts_by_minute(bounds[0], bounds[-1])
    return [
        (bisect_right(bounds, minute) - 1, kind, verdict, direction, n)
        for minute, kind, verdict, direction, n in rows
    ]


def _count_week(groups: list[Group], days: list[date]) -> tuple[DayCounts, ...]:
    hours = [0] * (len(days) * HOURS)
    tallies: list[Counter[str]] = [Counter() for _ in days]
    for slot, kind, verdict, direction, n in groups:
        if kind != "scan":
            continue
        hours[slot] += n
        tallies[slot // HOURS][verdict] += n
        if direction in ("in", "out"):  # a move: a pass, or a person recorded without a QR
            tallies[slot // HOURS][direction] += n
    return tuple(_day(d, hours[i * HOURS : (i + 1) * HOURS], tallies[i]) for i, d in enumerate(days))


def _day(day: date, hours: list[int], tally: Counter[str]) -> DayCounts:
    return DayCounts(
        day=day,
        by_hour=tuple(hours),
        passed=tally["pass"],
        failed=tally["fail"],
        entries=tally["in"],
        exits=tally["out"],
    )


def _figure_lines(f: InspectionFigures, lang: Lang) -> tuple[str, ...]:
    d, vi = f.device, lang == "vi"
    ack = moment_words(d.last_ack, lang) if d.last_ack else ("chưa có" if vi else "none yet")
    sharp = "?" if d.sharpness is None else f"{d.sharpness:.0f}"
    blurry = d.sharpness is not None and d.sharpness < MIN_SHARPNESS
    if vi:
        return (
            f"Thiết bị {d.device_id} · điểm {d.destination_id} · phiên bản {d.version}",
            f"Hôm nay: {f.today.total} lượt quét ({f.today.passed} đạt, {f.today.failed} không đạt)",
            f"7 ngày: {f.week_total} lượt quét ({f.week_passed} đạt, {f.week_failed} không đạt)",
            f"Mã QR địa điểm cũ hôm nay: {f.old_posters_today}",
            f"Trung tâm xác nhận lần cuối: {ack} · chưa gửi {f.unsent}, chưa xác nhận {f.unacked}",
            f"Camera: {d.fps:.1f} khung/giây, độ nét {sharp}{' (MỜ)' if blurry else ''}",
            "Đồng hồ: đã đồng bộ" if d.clock_synced else "Đồng hồ: CHƯA đồng bộ",
        )
    return (
        f"Device {d.device_id} · venue {d.destination_id} · version {d.version}",
        f"Today: {f.today.total} scans ({f.today.passed} pass, {f.today.failed} fail)",
        f"7 days: {f.week_total} scans ({f.week_passed} pass, {f.week_failed} fail)",
        f"Old venue QR codes today: {f.old_posters_today}",
        f"Central's last ack: {ack} · {f.unsent} unsent, {f.unacked} unacknowledged",
        f"Camera: {d.fps:.1f} fps, sharpness {sharp}{' (BLURRY)' if blurry else ''}",
        "Clock: synchronised" if d.clock_synced else "Clock: NOT synchronised",
    )


# ---------------------------------------------------------------- the event it makes


def inspector_draft(
    result: InspectorCard | Rejection, *, at: datetime, clock_synced: bool, decode_ms: float = 0.0
) -> EventDraft:
    """The event for an inspector card shown to a kiosk: an `inspection` pass, or a plain failed scan."""
    common: dict[str, Any] = {
        "format": "inspector",
        "ts": int(at.timestamp() * 1000),
        "clock_synced": clock_synced,
        "decode_ms": round(decode_ms, 3),
    }
    if isinstance(result, InspectorCard):
        return EventDraft(
            kind="inspection",
            verdict="pass",
            reason=Reason.INSPECTOR_CARD_OK.value,
            card_identity=result.inspector,
            **common,
        )
    return EventDraft(kind="scan", verdict="fail", reason=result.reason.value, **common)
