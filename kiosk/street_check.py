"""The street check: what a street inspector's handheld (`mode = "inspector"`) finds about one card.

Each card read, with its status-list entry, becomes a `StreetFinding`: the
card's format, the masked identity, the status in force with its meaning, and a
vaccine passport's vaccination, test or recovery, in Vietnamese and in English.
Each check is recorded as an `inspection` event of the handheld.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal, cast

from kiosk.cards import Card, DccCard, Rejection
from kiosk.cards.dcc_schema import DiagnosticTest, Recovery, Vaccination
from kiosk.cards.masking import mask_id
from kiosk.config import DEFAULT_BLOCKED
from kiosk.dates import date_en, date_vi, moment_words
from kiosk.events import CardFormat, EventDraft
from kiosk.reasons import Lang, Reason, message
from kiosk.statuslist import VIETNAM, Status

Verdict = Literal["pass", "fail"]


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
        return moment_words(moment, "vi"), moment_words(moment, "en")
    last = local.date() - timedelta(days=1)
    if ended:
        return f"ngày {date_vi(last)}", date_en(last)
    return f"hết ngày {date_vi(last)}", f"the end of {date_en(last)}"


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
        f"Đã tiêm mũi {dose} ngày {date_vi(v.date)} ({'đủ liều' if v.complete else 'chưa đủ liều'})",
        f"Vaccinated: dose {dose} on {date_en(v.date)} ({'complete' if v.complete else 'not complete'})",
    )


def _test_lines(t: DiagnosticTest, now: datetime) -> tuple[str, str]:
    kind_vi, kind_en = _TEST_TYPES.get(t.test_type, (t.test_type, t.test_type))
    hours = max(0, int((now - t.sample_time).total_seconds() // 3600))
    sampled_vi, sampled_en = moment_words(t.sample_time, "vi"), moment_words(t.sample_time, "en")
    result_vi, result_en = ("DƯƠNG TÍNH", "POSITIVE") if t.positive else ("âm tính", "negative")
    return (
        f"Xét nghiệm {kind_vi}: {result_vi}, lấy mẫu {sampled_vi} ({hours} giờ trước)",
        f"Tested ({kind_en}): {result_en}, sampled {sampled_en} ({hours} hours ago)",
    )


def _recovery_lines(r: Recovery, now: datetime) -> tuple[str, str]:
    expired = now.astimezone(VIETNAM).date() > r.valid_until
    return (
        f"Đã khỏi bệnh: hiệu lực {date_vi(r.valid_from)} - {date_vi(r.valid_until)}"
        + (" (đã hết hạn)" if expired else ""),
        f"Recovered: valid {date_en(r.valid_from)} - {date_en(r.valid_until)}"
        + (" (expired)" if expired else ""),
    )
