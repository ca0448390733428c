"""The inspection screen's figures from a real spool, and the street inspector's finding about a card."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import cardmaker as cm
from kiosk import policy
from kiosk.cards import Card, DccCard, Rejection, parse_card
from kiosk.config import PolicyConfig
from kiosk.errors import SpoolError
from kiosk.events import Direction, EventDraft, Kind, Verdict, verify_event
from kiosk.inspection import (
    DEFAULT_BLOCKED,
    HOURS,
    DeviceReadings,
    InspectionFigures,
    inspection_figures,
    street_finding,
)
from kiosk.reasons import Reason
from kiosk.spool import Spool
from kiosk.statuslist import VIETNAM, Entry, Status, build_payload, parse_until, sign_payload, verify_token
from kiosk.trustlist import TrustList

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
        identity_key=bytes(32),
    ) as opened:
        recorded = [opened.record(_draft(event)) for event in EVENTS]
        opened.mark_sent(s.key for s in recorded[:5])
        opened.apply_ack("kiosk-7", {opened.epoch: 3})
        yield opened


def _figures(spool: Spool, tz: tzinfo = VIETNAM) -> InspectionFigures:
    return inspection_figures(spool.path, READINGS, now=NOW, tz=tz)


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


def test_the_figures_are_read_the_same_after_the_kiosk_closed_its_spool(spool: Spool) -> None:
    before = _figures(spool)
    spool.close()
    assert _figures(spool) == before


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


def test_a_damaged_row_does_not_hide_the_others(spool: Spool) -> None:
    with sqlite3.connect(spool.path) as conn:
        conn.execute(
            "INSERT INTO events (device, epoch, seq, destination, ts, kind, verdict, direction, token)"
            " VALUES ('kiosk-7', 1, 1, 'cho-ben-thanh', ?, 'scan', 'fail', NULL, X'00FF2E2E')",
            (int(NOW.timestamp() * 1000) - 1,),
        )
    figures = _figures(spool)
    assert figures.old_posters_today == 2 and figures.today.failed == 5


def test_a_missing_or_foreign_file_is_a_spool_error(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="cannot read the spool"):
        inspection_figures(tmp_path / "nothing.db", READINGS, now=NOW)
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(SpoolError, match="cannot read the spool"):
        inspection_figures(foreign, READINGS, now=NOW)
    assert not (tmp_path / "nothing.db").exists()  # read-only: nothing was created


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
    figures = inspection_figures(spool.path, readings, now=NOW, tz=VIETNAM)
    assert "Camera: 3.0 khung/giây, độ nét 12 (MỜ)" in figures.lines("vi")
    assert "Clock: NOT synchronised" in figures.lines("en")
    assert any("none yet" in line for line in figures.lines("en"))


# ---------------------------------------------------------------- the street check

QID = "162979388586171100"


def _national() -> Card:
    card = parse_card(cm.national_payload().encode(), trust=None, now=NOW)
    assert isinstance(card, Card)
    return card


@pytest.fixture(scope="module")
def signer() -> cm.DccSigner:
    return cm.make_dcc_signer(
        "ES256", not_before=NOW - timedelta(days=365), not_after=NOW + timedelta(days=365)
    )


def _passport(signer: cm.DccSigner, cert: dict, *, trusted: bool = True) -> DccCard:
    payload = cm.dcc_payload(
        cert, signer=signer, issued_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=300)
    )
    card = parse_card(payload.encode(), trust=TrustList([signer.certificate]) if trusted else None, now=NOW)
    assert isinstance(card, DccCard), card
    return card


def test_a_quarantined_person_out_in_public_is_a_violation_with_the_end_date() -> None:
    status = Status("quarantine", parse_until("2021-09-20"))
    finding = street_finding(_national(), status=status, now=NOW)
    assert (finding.verdict, finding.reason, finding.format) == ("fail", Reason.STATUS_BLOCKED, "national")
    assert finding.status == status
    assert finding.lines("vi") == (
        "Loại mã: Mã QR cá nhân",
        "Họ tên: NGUYEN V** A",
        "Số định danh: ***************100",
        "Trạng thái: Đang cách ly đến hết ngày 20/09/2021",
        "VI PHẠM: không được ra nơi công cộng",
    )
    assert finding.lines("en") == (
        "Card: national personal QR",
        "Name: NGUYEN V** A",
        "Identity: ***************100",
        "Status: under quarantine until the end of 20 Sep 2021",
        "VIOLATION: must not be out in public",
    )


def test_no_line_shows_the_whole_identity_or_name() -> None:
    finding = street_finding(_national(), status=Status("F1"), now=NOW)
    text = "\n".join(finding.lines("vi") + finding.lines("en"))
    assert QID not in text and "NGUYEN VAN A" not in text and "001093029317" not in text
    assert "F1: tiếp xúc gần với F0" in text and "Status: F1: close contact of a case" in text


def test_an_end_at_a_time_of_day_names_the_time() -> None:
    status = Status("F0", datetime(2021, 9, 18, 7, 30, tzinfo=UTC))
    finding = street_finding(_national(), status=status, now=NOW)
    assert "Trạng thái: F0: đang mắc COVID-19 đến 14:30 ngày 18/09/2021" in finding.lines("vi")
    assert "Status: F0: confirmed COVID-19 case until 14:30 on 18 Sep 2021" in finding.lines("en")


def test_an_ended_status_or_one_that_does_not_keep_people_home_is_no_violation() -> None:
    ended = street_finding(_national(), status=Status("quarantine", parse_until("2021-09-10")), now=NOW)
    assert (ended.verdict, ended.reason, ended.status) == ("pass", Reason.OK, None)
    assert "Status: under quarantine, ended 10 Sep 2021" in ended.lines("en")
    assert "Trạng thái: Đang cách ly, đã kết thúc ngày 10/09/2021" in ended.lines("vi")
    flagged = street_finding(_national(), status=Status("F2"), now=NOW)
    assert flagged.verdict == "pass" and "Status: F2: contact of a close contact" in flagged.lines("en")
    other = street_finding(_national(), status=Status("watch"), now=NOW, blocked={"watch"})
    assert other.verdict == "fail" and "Status: status watch" in other.lines("en")


def test_unlisted_and_no_list_read_differently() -> None:
    assert "Status: not listed" in street_finding(_national(), status=None, now=NOW).lines("en")
    nolist = street_finding(_national(), status=None, now=NOW, statuslist_loaded=False)
    assert "Trạng thái: thiết bị chưa có danh sách" in nolist.lines("vi")


def test_the_default_blocked_statuses_are_the_config_defaults() -> None:
    assert frozenset(PolicyConfig().blocked_statuses) == DEFAULT_BLOCKED == policy.DEFAULT_BLOCKED


def test_a_citizen_number_listed_alone_is_found_on_the_street_from_the_national_qr() -> None:
    key = Ed25519PrivateKey.generate()
    rows = [Entry("001093029317", Status("F0"))]
    listed = verify_token(sign_payload(build_payload(rows, version=1, issued=NOW), key), key.public_key())
    card = _national()
    finding = street_finding(card, status=policy.listed_status(listed, card, NOW), now=NOW)
    assert (finding.verdict, finding.reason, finding.status) == ("fail", Reason.STATUS_BLOCKED, Status("F0"))


def test_a_vaccinated_passport_says_dose_date_and_completeness(signer: cm.DccSigner) -> None:
    card = _passport(signer, cm.dcc_vaccination_complete(on=date(2021, 9, 1), uvci="URN:UVCI:01:VN:ABC1234"))
    finding = street_finding(card, status=None, now=NOW)
    assert finding.verdict == "pass" and finding.masked_identity == "*" * 18 + "1234"
    assert "Đã tiêm mũi 2/2 ngày 01/09/2021 (đủ liều)" in finding.lines("vi")
    assert "Vaccinated: dose 2/2 on 1 Sep 2021 (complete)" in finding.lines("en")
    half = street_finding(_passport(signer, cm.dcc_vaccination_incomplete()), status=None, now=NOW)
    assert "Vaccinated: dose 1/2 on 1 Sep 2021 (not complete)" in half.lines("en")


def test_a_tested_passport_says_result_sample_time_and_age(signer: cm.DccSigner) -> None:
    sampled = datetime(2021, 9, 14, 8, 0, tzinfo=VIETNAM)
    card = _passport(signer, cm.dcc_test_negative(sampled_at=sampled))
    finding = street_finding(card, status=None, now=NOW)
    assert (
        "Xét nghiệm nhanh kháng nguyên: âm tính, lấy mẫu 08:00 ngày 14/09/2021 (30 giờ trước)"
        in finding.lines("vi")
    )
    assert "Tested (rapid antigen): negative, sampled 08:00 on 14 Sep 2021 (30 hours ago)" in finding.lines(
        "en"
    )
    positive = street_finding(
        _passport(signer, cm.dcc_test_result(sampled_at=sampled, positive=True)), status=None, now=NOW
    )
    assert any("POSITIVE" in line for line in positive.lines("en"))


def test_a_recovery_passport_says_its_validity(signer: cm.DccSigner) -> None:
    cert = cm.dcc_recovery(
        first_positive=date(2021, 8, 1), valid_from=date(2021, 8, 12), valid_until=date(2022, 2, 1)
    )
    finding = street_finding(_passport(signer, cert), status=None, now=NOW)
    assert "Đã khỏi bệnh: hiệu lực 12/08/2021 - 01/02/2022" in finding.lines("vi")
    assert "Recovered: valid 12 Aug 2021 - 1 Feb 2022" in finding.lines("en")
    late = street_finding(_passport(signer, cert), status=None, now=datetime(2022, 2, 2, 9, tzinfo=VIETNAM))
    assert late.lines("en")[-1].endswith("(expired)")


def test_an_unverified_passport_says_so(signer: cm.DccSigner) -> None:
    card = _passport(signer, cm.dcc_vaccination_complete(), trusted=False)
    assert "Signature not verified" in street_finding(card, status=None, now=NOW).lines("en")


def test_a_refused_code_is_a_fail_with_its_message() -> None:
    poster = parse_card(b"https://example.vn/checkin/123", trust=None, now=NOW)
    assert isinstance(poster, Rejection)
    finding = street_finding(poster, status=None, now=NOW)
    assert (finding.verdict, finding.reason, finding.format, finding.identity) == (
        "fail",
        Reason.OLD_VENUE_QR,
        "poster",
        None,
    )
    assert finding.lines("en") == (
        "Card: old venue QR poster",
        "Venue QR codes are no longer used. Please show your personal QR code",
    )


def test_each_street_check_is_a_signed_inspection_event_of_the_handheld(tmp_path: Path) -> None:
    finding = street_finding(_national(), status=Status("quarantine"), now=NOW)
    with Spool.open(
        tmp_path / "handheld.db",
        device_id="handheld-3",
        destination_id="street-q1",
        signing_key=DEVICE_KEY,
        identity_key=bytes(32),
    ) as spool:
        event = verify_event(
            spool.record(finding.draft(clock_synced=True, decode_ms=7.5)).token, DEVICE_KEY.public_key()
        )
    assert (event.kind, event.device, event.verdict, event.reason, event.format) == (
        "inspection",
        "handheld-3",
        "fail",
        "status_blocked",
        "national",
    )
    assert event.direction is None and event.identity is not None
    assert event.ts == int(NOW.timestamp() * 1000)
