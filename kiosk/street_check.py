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
from kiosk.cards.masking import mask_identity
from kiosk.config import DEFAULT_BLOCKED
from kiosk.dates import date_en, date_vi, moment_words
from kiosk.eventkinds import CARD_FORMATS
from kiosk.events import CardFormat, EventDraft
from kiosk.reasons import Reason, message
from kiosk.statuslist import VIETNAM, Status
from kiosk.text import Lang, Text

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
    texts: tuple[Text, ...]  # the screen's lines, each in both languages
    identity: str | None = field(default=None, repr=False)

    def lines(self, lang: Lang = "vi") -> tuple[str, ...]:
        """The screen's lines in `lang`."""
        return tuple(text.of(lang) for text in self.texts)

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


# A refused inspector card on the street is no inspector's check (kiosk.eventkinds): an unknown card.
_EVENT_FORMATS = CARD_FORMATS
# Names of the card formats, and meanings of the usual status-list codes.
FORMAT_NAMES: dict[str, Text] = {
    "national": Text("Mã QR cá nhân", "national personal QR"),
    "cccd": Text("Căn cước công dân (CCCD)", "citizen ID card (CCCD)"),
    "dcc": Text("Hộ chiếu vắc xin", "vaccine passport"),
    "poster": Text("Mã QR địa điểm cũ", "old venue QR poster"),
    "unknown": Text("Không rõ", "unknown"),
}
STATUS_MEANINGS: dict[str, Text] = {
    "F0": Text("F0: đang mắc COVID-19", "F0: confirmed COVID-19 case"),
    "F1": Text("F1: tiếp xúc gần với F0", "F1: close contact of a case"),
    "F2": Text("F2: tiếp xúc với F1", "F2: contact of a close contact"),
    "quarantine": Text("Đang cách ly", "under quarantine"),
}
_TEST_TYPES = {"LP6464-4": Text("PCR", "PCR"), "LP217198-3": Text("nhanh kháng nguyên", "rapid antigen")}
_VIOLATION = Text("VI PHẠM: không được ra nơi công cộng", "VIOLATION: must not be out in public")
_NO_LIST = Text("Trạng thái: thiết bị chưa có danh sách", "Status: no status list on this device")
_NOT_LISTED = Text("Trạng thái: không có trong danh sách", "Status: not listed")
_NOT_VERIFIED = Text("Chữ ký chưa được xác minh", "Signature not verified")


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
    dcc = _dcc_lines(item, now) if isinstance(item, DccCard) else ()
    return StreetFinding(
        at=now,
        format=item.format,
        verdict="fail" if alert else "pass",
        reason=Reason.STATUS_BLOCKED if alert else Reason.OK,
        masked_name=item.masked_name,
        masked_identity=_masked_identity(item),
        status=in_force,
        texts=(
            *_card_lines(item),
            _status_line(status, now, statuslist_loaded),
            *dcc,
            *((_VIOLATION,) if alert else ()),
        ),
        identity=item.identity,
    )


def _refused_finding(item: Rejection, now: datetime) -> StreetFinding:
    name = FORMAT_NAMES.get(item.format, FORMAT_NAMES["unknown"])
    return StreetFinding(
        at=now,
        format=item.format,
        verdict="fail",
        reason=item.reason,
        masked_name="",
        masked_identity="",
        status=None,
        texts=(
            Text(f"Loại mã: {name.vi}", f"Card: {name.en}"),
            Text(message(item.reason, "vi"), message(item.reason, "en")),
        ),
    )


def _masked_identity(card: Card) -> str:
    if card.identity is None:
        return ""
    return mask_identity(card.identity, card.format)


def _card_lines(card: Card) -> tuple[Text, ...]:
    name = FORMAT_NAMES[card.format]
    masked = _masked_identity(card)
    lines = [
        Text(f"Loại mã: {name.vi}", f"Card: {name.en}"),
        Text(f"Họ tên: {card.masked_name}", f"Name: {card.masked_name}"),
    ]
    if masked:
        lines.append(Text(f"Số định danh: {masked}", f"Identity: {masked}"))
    return tuple(lines)


def _meaning(code: str) -> Text:
    return STATUS_MEANINGS.get(code, Text(f"trạng thái {code}", f"status {code}"))


def _status_line(status: Status | None, now: datetime, loaded: bool) -> Text:
    if status is None:
        return _NOT_LISTED if loaded else _NO_LIST
    meaning = _meaning(status.code)
    if status.until is None:
        return Text(f"Trạng thái: {meaning.vi}", f"Status: {meaning.en}")
    ended = not status.applies(now)
    until = _until(status.until, ended=ended)
    if ended:
        return Text(
            f"Trạng thái: {meaning.vi}, đã kết thúc {until.vi}", f"Status: {meaning.en}, ended {until.en}"
        )
    return Text(f"Trạng thái: {meaning.vi} đến {until.vi}", f"Status: {meaning.en} until {until.en}")


def _until(moment: datetime, *, ended: bool) -> Text:
    """An end instant in words: a local midnight is the end of the day before."""
    local = moment.astimezone(VIETNAM)
    if local.time() != time():
        return Text(moment_words(moment, "vi"), moment_words(moment, "en"))
    last = local.date() - timedelta(days=1)
    if ended:
        return Text(f"ngày {date_vi(last)}", date_en(last))
    return Text(f"hết ngày {date_vi(last)}", f"the end of {date_en(last)}")


def _dcc_lines(card: DccCard, now: datetime) -> tuple[Text, ...]:
    entry = card.certificate.entry
    if isinstance(entry, Vaccination):
        line = _vaccination_line(entry)
    elif isinstance(entry, DiagnosticTest):
        line = _test_line(entry, now)
    else:
        line = _recovery_line(entry, now)
    return (line, _NOT_VERIFIED) if not card.verified else (line,)


def _vaccination_line(v: Vaccination) -> Text:
    dose = f"{v.dose_number}/{v.total_doses}"
    return Text(
        f"Đã tiêm mũi {dose} ngày {date_vi(v.date)} ({'đủ liều' if v.complete else 'chưa đủ liều'})",
        f"Vaccinated: dose {dose} on {date_en(v.date)} ({'complete' if v.complete else 'not complete'})",
    )


def _test_line(t: DiagnosticTest, now: datetime) -> Text:
    kind = _TEST_TYPES.get(t.test_type, Text(t.test_type, t.test_type))
    hours = max(0, int((now - t.sample_time).total_seconds() // 3600))
    sampled_vi, sampled_en = moment_words(t.sample_time, "vi"), moment_words(t.sample_time, "en")
    result_vi, result_en = ("DƯƠNG TÍNH", "POSITIVE") if t.positive else ("âm tính", "negative")
    return Text(
        f"Xét nghiệm {kind.vi}: {result_vi}, lấy mẫu {sampled_vi} ({hours} giờ trước)",
        f"Tested ({kind.en}): {result_en}, sampled {sampled_en} ({hours} hours ago)",
    )


def _recovery_line(r: Recovery, now: datetime) -> Text:
    expired = now.astimezone(VIETNAM).date() > r.valid_until
    return Text(
        f"Đã khỏi bệnh: hiệu lực {date_vi(r.valid_from)} - {date_vi(r.valid_until)}"
        + (" (đã hết hạn)" if expired else ""),
        f"Recovered: valid {date_en(r.valid_from)} - {date_en(r.valid_until)}"
        + (" (expired)" if expired else ""),
    )
