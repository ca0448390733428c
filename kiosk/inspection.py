"""What inspectors see: the venue check's figures, and the street check's finding about one card.

At a venue an inspector shows an inspector card (kiosk.inspector) and the
kiosk shows, for `INSPECTION_SCREEN_S`, whether it is used as required:
`inspection_figures()` reads the spool file (read-only) for today's and the
week's scans by hour, the pass/fail split and the old venue posters shown
today, and adds what only the running daemon knows (`DeviceReadings`).

On the street, a handheld in `mode = "inspector"` turns each card it reads,
with its status-list entry, into a `StreetFinding`: the card's format, the
masked identity, the status in force with its meaning, and a vaccine
passport's vaccination, test or recovery, in Vietnamese and in English.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Literal, cast

from kiosk import __version__, jws
from kiosk.cards import Card, DccCard, Rejection
from kiosk.cards.dcc_schema import DiagnosticTest, Recovery, Vaccination
from kiosk.cards.masking import mask_id
from kiosk.errors import SpoolError
from kiosk.events import CardFormat, EventDraft
from kiosk.imaging import MIN_SHARPNESS  # the camera check's limit: softer edges do not read
from kiosk.reasons import Lang, Reason, message
from kiosk.statuslist import VIETNAM, Status

INSPECTION_SCREEN_S = 60.0
WEEK_DAYS = 7
HOURS = 24
MMAP_BYTES = 128 * 1024 * 1024  # read-only mapping of the spool: small next to its disk budget
DEFAULT_BLOCKED = frozenset({"F0", "F1", "quarantine"})  # policy.blocked_statuses' default

Verdict = Literal["pass", "fail"]


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
    spool_path: Path, device: DeviceReadings, *, now: datetime, tz: tzinfo | None = None
) -> InspectionFigures:
    """Count the spool's events for the inspection screen; raises SpoolError if it cannot be read.

    Days and hours are local (`tz`, by default the system's, as the idle screen counts).
    """
    tz = tz or datetime.now().astimezone().tzinfo
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=back) for back in range(WEEK_DAYS - 1, -1, -1)]
    bounds = [_ms(datetime.combine(d, time(hour), tz)) for d in days for hour in range(HOURS)]
    bounds.append(_ms(datetime.combine(today + timedelta(days=1), time(), tz)))
    with _read_only(spool_path) as conn:
        groups = _groups(conn, bounds)
        posters = _old_posters(conn, bounds[-1 - HOURS], bounds[-1])
        unsent, unacked = conn.execute("SELECT total(state = 0), total(state < 2) FROM events").fetchone()
    first_today = (WEEK_DAYS - 1) * HOURS
    return InspectionFigures(
        device=device,
        at=now,
        week=_count_week(groups, days),
        old_posters_today=posters,
        inspections_today=sum(g[-1] for g in groups if g[1] == "inspection" and g[0] >= first_today),
        unsent=int(unsent),
        unacked=int(unacked),
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the spool file (the daemon keeps writing through its own)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        # Mapped reads halve the time of a busy week's scan (the rows hold whole tokens).
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    except sqlite3.Error as e:
        raise SpoolError(f"cannot read the spool {path}: {e} (is the kiosk provisioned?)") from e
    try:
        yield conn
    except sqlite3.Error as e:
        raise SpoolError(f"cannot read the spool {path}: {e} (is it a kiosk spool?)") from e
    finally:
        conn.close()


Group = tuple[int, str, str, str | None, int]  # (hour slot of the week, kind, verdict, direction, count)


def _groups(conn: sqlite3.Connection, bounds: list[int]) -> list[Group]:
    """The week's events counted by hour slot, kind, verdict and direction."""
    # Grouped by UTC minute: every zone's hours start on a whole minute, so a group lies in one hour.
    rows = conn.execute(
        "SELECT ts / 60000, kind, verdict, direction, count(*) FROM events"
        " WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3, 4",
        (bounds[0], bounds[-1]),
    )
    return [(bisect_right(bounds, minute * 60000) - 1, *rest) for minute, *rest in rows]


def _count_week(groups: list[Group], days: list[date]) -> tuple[DayCounts, ...]:
    hours = [0] * (len(days) * HOURS)
    tallies: list[Counter[str]] = [Counter() for _ in days]
    for slot, kind, verdict, direction, n in groups:
        if kind != "scan":
            continue
        hours[slot] += n
        tallies[slot // HOURS][verdict] += n
        if verdict == "pass" and direction in ("in", "out"):
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


def _old_posters(conn: sqlite3.Connection, start: int, end: int) -> int:
    """Failed scans of old venue posters: the reason is only inside the token (our own, not re-verified)."""
    rows = conn.execute(
        "SELECT token FROM events WHERE kind = 'scan' AND verdict = 'fail' AND ts >= ? AND ts < ?",
        (start, end),
    )
    return sum(_reason_of(bytes(token)) == Reason.OLD_VENUE_QR.value for (token,) in rows)


def _reason_of(token: bytes) -> str | None:
    try:
        payload = json.loads(jws.b64url_decode(token.split(b".")[1]))
    except (IndexError, ValueError):  # a damaged row must not hide the others
        return None
    return payload.get("reason") if isinstance(payload, dict) else None


def _figure_lines(f: InspectionFigures, lang: Lang) -> tuple[str, ...]:
    d, vi = f.device, lang == "vi"
    ack = _moment(d.last_ack, lang) if d.last_ack else ("chưa có" if vi else "none yet")
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


# ---------------------------------------------------------------- the street check


@dataclass(frozen=True, kw_only=True)
class StreetFinding:
    """What a street inspector's handheld shows about one card, and what its event records."""

    at: datetime
    format: str  # national, cccd, dcc; for a refused code the parser's guess (poster, unknown, ...)
    verdict: Verdict  # fail: not a valid card, or a status in force that keeps the person at home
    reason: Reason
    masked_name: str
    masked_identity: str
    status: Status | None  # the status in force, if any
    lines_vi: tuple[str, ...]
    lines_en: tuple[str, ...]
    identity: str | None = field(default=None, repr=False)

    def lines(self, lang: Lang = "vi") -> tuple[str, ...]:
        """The screen's lines in `lang`."""
        return self.lines_en if lang == "en" else self.lines_vi

    def draft(self, *, clock_synced: bool, decode_ms: float = 0.0) -> EventDraft:
        """The `inspection` event of this check (the spool adds the device, seq and signature)."""
        return EventDraft(
            kind="inspection",
            verdict=self.verdict,
            reason=self.reason.value,
            format=cast(CardFormat, self.format if self.format in _EVENT_FORMATS else "unknown"),
            card_identity=self.identity,
            ts=int(self.at.timestamp() * 1000),
            clock_synced=clock_synced,
            decode_ms=round(decode_ms, 3),
        )


_EVENT_FORMATS = frozenset({"national", "cccd", "dcc", "poster", "inspector", "unknown"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# (Vietnamese, English) names of the card formats, and meanings of the usual status-list codes.
FORMAT_NAMES: dict[str, tuple[str, str]] = {
    "national": ("Mã QR cá nhân", "national personal QR"),
    "cccd": ("Căn cước công dân (CCCD)", "citizen ID card (CCCD)"),
    "dcc": ("Hộ chiếu vắc xin", "vaccine passport"),
    "poster": ("Mã QR địa điểm cũ", "old venue QR poster"),
    "unknown": ("Không rõ", "unknown"),
}
STATUS_MEANINGS: dict[str, tuple[str, str]] = {
    "F0": ("F0: đang mắc COVID-19", "F0: confirmed COVID-19 case"),
    "F1": ("F1: tiếp xúc gần với F0", "F1: close contact of a case"),
    "F2": ("F2: tiếp xúc với F1", "F2: contact of a close contact"),
    "quarantine": ("Đang cách ly", "under quarantine"),
}
_TEST_TYPES = {"LP6464-4": ("PCR", "PCR"), "LP217198-3": ("nhanh kháng nguyên", "rapid antigen")}


def street_finding(
    item: Card | Rejection,
    *,
    status: Status | None,
    now: datetime,
    blocked: Collection[str] = DEFAULT_BLOCKED,
    statuslist_loaded: bool = True,
) -> StreetFinding:
    """The finding for one card and its status-list entry (`status`: the lookup result, or None).

    `blocked` are the statuses that keep a person out of public places
    (policy.blocked_statuses); one in force makes the verdict `fail`.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if isinstance(item, Rejection):
        return _refused_finding(item, now)
    in_force = status if status is not None and status.applies(now) else None
    alert = in_force is not None and in_force.code in blocked
    vi, en = _card_lines(item)
    svi, sen = _status_lines(status, now, statuslist_loaded)
    dvi, den = _dcc_lines(item, now) if isinstance(item, DccCard) else ((), ())
    avi, aen = (("VI PHẠM: không được ra nơi công cộng",), ("VIOLATION: must not be out in public",))
    return StreetFinding(
        at=now,
        format=item.format,
        verdict="fail" if alert else "pass",
        reason=Reason.STATUS_BLOCKED if alert else Reason.OK,
        masked_name=item.masked_name,
        masked_identity=_masked_identity(item),
        status=in_force,
        lines_vi=(*vi, *svi, *dvi, *(avi if alert else ())),
        lines_en=(*en, *sen, *den, *(aen if alert else ())),
        identity=item.identity,
    )


def _refused_finding(item: Rejection, now: datetime) -> StreetFinding:
    vi_name, en_name = FORMAT_NAMES.get(item.format, FORMAT_NAMES["unknown"])
    return StreetFinding(
        at=now,
        format=item.format,
        verdict="fail",
        reason=item.reason,
        masked_name="",
        masked_identity="",
        status=None,
        lines_vi=(f"Loại mã: {vi_name}", message(item.reason, "vi")),
        lines_en=(f"Card: {en_name}", message(item.reason, "en")),
    )


def _masked_identity(card: Card) -> str:
    if card.identity is None:
        return ""
    return mask_id(card.identity, keep=4 if isinstance(card, DccCard) else 3)


def _card_lines(card: Card) -> tuple[tuple[str, ...], tuple[str, ...]]:
    vi_name, en_name = FORMAT_NAMES[card.format]
    masked = _masked_identity(card)
    vi = [f"Loại mã: {vi_name}", f"Họ tên: {card.masked_name}"]
    en = [f"Card: {en_name}", f"Name: {card.masked_name}"]
    if masked:
        vi.append(f"Số định danh: {masked}")
        en.append(f"Identity: {masked}")
    return tuple(vi), tuple(en)


def _meaning(code: str) -> tuple[str, str]:
    return STATUS_MEANINGS.get(code, (f"trạng thái {code}", f"status {code}"))


def _status_lines(
    status: Status | None, now: datetime, loaded: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if status is None:
        if not loaded:
            return ("Trạng thái: thiết bị chưa có danh sách",), ("Status: no status list on this device",)
        return ("Trạng thái: không có trong danh sách",), ("Status: not listed",)
    vi, en = _meaning(status.code)
    if status.until is None:
        return (f"Trạng thái: {vi}",), (f"Status: {en}",)
    ended = not status.applies(now)
    until_vi, until_en = _until(status.until, ended=ended)
    if ended:
        return (f"Trạng thái: {vi}, đã kết thúc {until_vi}",), (f"Status: {en}, ended {until_en}",)
    return (f"Trạng thái: {vi} đến {until_vi}",), (f"Status: {en} until {until_en}",)


def _until(moment: datetime, *, ended: bool) -> tuple[str, str]:
    """An end instant in words: a local midnight is the end of the day before."""
    local = moment.astimezone(VIETNAM)
    if local.time() != time():
        return _moment(moment, "vi"), _moment(moment, "en")
    last = local.date() - timedelta(days=1)
    if ended:
        return f"ngày {_date_vi(last)}", _date_en(last)
    return f"hết ngày {_date_vi(last)}", f"the end of {_date_en(last)}"


def _date_vi(day: date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def _date_en(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _moment(moment: datetime, lang: Lang) -> str:
    """A time of day and its date in Vietnam."""
    local = moment.astimezone(VIETNAM)
    if lang == "vi":
        return f"{local:%H:%M} ngày {_date_vi(local.date())}"
    return f"{local:%H:%M} on {_date_en(local.date())}"


def _dcc_lines(card: DccCard, now: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
    entry = card.certificate.entry
    if isinstance(entry, Vaccination):
        vi, en = _vaccination_lines(entry)
    elif isinstance(entry, DiagnosticTest):
        vi, en = _test_lines(entry, now)
    else:
        vi, en = _recovery_lines(entry, now)
    if not card.verified:
        return (vi, "Chữ ký chưa được xác minh"), (en, "Signature not verified")
    return (vi,), (en,)


def _vaccination_lines(v: Vaccination) -> tuple[str, str]:
    dose = f"{v.dose_number}/{v.total_doses}"
    return (
        f"Đã tiêm mũi {dose} ngày {_date_vi(v.date)} ({'đủ liều' if v.complete else 'chưa đủ liều'})",
        f"Vaccinated: dose {dose} on {_date_en(v.date)} ({'complete' if v.complete else 'not complete'})",
    )


def _test_lines(t: DiagnosticTest, now: datetime) -> tuple[str, str]:
    kind_vi, kind_en = _TEST_TYPES.get(t.test_type, (t.test_type, t.test_type))
    hours = max(0, int((now - t.sample_time).total_seconds() // 3600))
    sampled_vi, sampled_en = _moment(t.sample_time, "vi"), _moment(t.sample_time, "en")
    result_vi, result_en = ("DƯƠNG TÍNH", "POSITIVE") if t.positive else ("âm tính", "negative")
    return (
        f"Xét nghiệm {kind_vi}: {result_vi}, lấy mẫu {sampled_vi} ({hours} giờ trước)",
        f"Tested ({kind_en}): {result_en}, sampled {sampled_en} ({hours} hours ago)",
    )


def _recovery_lines(r: Recovery, now: datetime) -> tuple[str, str]:
    expired = now.astimezone(VIETNAM).date() > r.valid_until
    return (
        f"Đã khỏi bệnh: hiệu lực {_date_vi(r.valid_from)} - {_date_vi(r.valid_until)}"
        + (" (đã hết hạn)" if expired else ""),
        f"Recovered: valid {_date_en(r.valid_from)} - {_date_en(r.valid_until)}"
        + (" (expired)" if expired else ""),
    )
