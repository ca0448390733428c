"""The street check: a street inspector's finding about a card, and the event it records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import cardmaker as cm
from kiosk import policy, street_check
from kiosk.cards import Card, DccCard, Rejection, parse_card
from kiosk.config import DEFAULT_BLOCKED, PolicyConfig
from kiosk.events import verify_event
from kiosk.reasons import Reason
from kiosk.spool import Spool
from kiosk.statuslist import VIETNAM, Entry, Status, build_payload, parse_until, sign_payload, verify_token
from kiosk.street_check import street_finding
from kiosk.text import Text
from kiosk.trustlist import TrustList
from tests.support.central import SEALER

DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NOW = datetime(2021, 9, 15, 14, 30, tzinfo=VIETNAM)


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


def test_each_line_is_one_bilingual_text() -> None:
    finding = street_finding(_national(), status=Status("F1"), now=NOW)
    assert finding.texts and all(isinstance(text, Text) for text in finding.texts)
    assert finding.lines("vi") == tuple(text.vi for text in finding.texts)
    assert finding.lines("en") == tuple(text.en for text in finding.texts)
    assert (
        finding.lines("vi")[0] == "Loại mã: Mã QR cá nhân"
        and finding.lines("en")[0] == "Card: national personal QR"
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
    assert frozenset(PolicyConfig().blocked_statuses) == DEFAULT_BLOCKED
    assert street_check.DEFAULT_BLOCKED is DEFAULT_BLOCKED is policy.DEFAULT_BLOCKED, "one definition"


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
        sealer=SEALER,
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
