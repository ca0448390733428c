"""The citizen identity card (CCCD) QR parser, with its id/birth-date/gender consistency rules."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta

import pytest

from kiosk.cardmaker import cccd_payload
from kiosk.cards import CccdCard, Rejection, parse_card
from kiosk.reasons import Reason
from kiosk.statuslist import VIETNAM

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
EXAMPLE = "001093012345|012345678|Nguyễn Văn An|18011993|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|10042021"


def parse(text: str) -> CccdCard | Rejection:
    result = parse_card(text.encode("utf-8"), trust=None, now=NOW)
    assert isinstance(result, CccdCard | Rejection)
    return result


def test_a_card_with_an_old_id_parses_every_field() -> None:
    card = parse(EXAMPLE)
    assert isinstance(card, CccdCard)
    assert (card.format, card.identity, card.old_id_number) == ("cccd", "001093012345", "012345678")
    assert (card.name, card.birth_date, card.gender) == ("Nguyễn Văn An", date(1993, 1, 18), "Nam")
    assert (card.address, card.issue_date) == ("Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội", date(2021, 4, 10))
    assert card.masked_name == "Nguyễn V** An"


def test_masked_fields_hide_ids_and_address() -> None:
    card = parse(EXAMPLE)
    assert isinstance(card, CccdCard)
    fields = card.masked_fields()
    assert fields["id_number"] == "*********345" and fields["old_id_number"] == "******678"
    assert "Tràng Tiền" not in str(fields) and "001093012345" not in str(fields)


def test_the_variant_without_old_id_field_and_an_empty_old_id() -> None:
    six = parse("001093012345|Nguyễn Văn An|18011993|Nam|Hà Nội|10042021")
    empty = parse("001093012345||Nguyễn Văn An|18011993|Nam|Hà Nội|10042021")
    assert isinstance(six, CccdCard) and isinstance(empty, CccdCard)
    assert six == empty


def test_decomposed_unicode_is_normalised() -> None:
    card = parse(
        unicodedata.normalize("NFD", "079301000123||Trần Thị Nữ|02032001|Nữ|Quận 1, TP Hồ Chí Minh|05062022")
    )
    assert isinstance(card, CccdCard)
    assert card.name == unicodedata.normalize("NFC", "Trần Thị Nữ") and card.gender == "Nữ"


@pytest.mark.parametrize(
    ("birth", "gender", "digits"),
    [
        (date(1950, 5, 6), "Nam", "0"),
        (date(1950, 5, 6), "Nữ", "1"),
        (date(2005, 5, 6), "Nam", "2"),
        (date(2005, 5, 6), "Nữ", "3"),
        (date(1899, 5, 6), "Nam", "8"),
        (date(1899, 5, 6), "Nữ", "9"),
    ],
)
def test_century_and_gender_digit(birth: date, gender: str, digits: str) -> None:
    card = parse(cccd_payload(birth_date=birth, gender=gender, issue_date=date(2022, 1, 1)))  # type: ignore[arg-type]
    assert isinstance(card, CccdCard), card
    assert card.id_number[3] == digits and card.id_number[4:6] == f"{birth.year % 100:02d}"


@pytest.mark.parametrize(
    ("id_number", "why"),
    [
        ("001193012345", "female digit, Nam on the card"),
        ("001293012345", "2000s digit, born 1993"),
        ("001893012345", "1800s digit, born 1993"),
        ("001092012345", "birth year digits 92, born 1993"),
        ("001039012345", "birth year digits 39, born 1993"),
    ],
)
def test_an_id_that_disagrees_with_the_card_is_inconsistent(id_number: str, why: str) -> None:
    result = parse(cccd_payload(id_number=id_number))
    assert isinstance(result, Rejection), why
    assert (result.reason, result.format) == (Reason.CCCD_INCONSISTENT, "cccd")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("001093012345|012345678|Nguyễn Văn An|18011993|Nam|Hà Nội", "5 fields"),
        ("001093012345|012345678|Nguyễn Văn An|18011993|Nam|Hà Nội|10042021|x", "8 fields"),
        ("00109301234|012345678|Nguyễn Văn An|18011993|Nam|Hà Nội|10042021", "11-digit id"),
        ("003093012345|012345678|Nguyễn Văn An|18011993|Nam|Hà Nội|10042021", "province 003 does not exist"),
        ("001093012345|12345678|Nguyễn Văn An|18011993|Nam|Hà Nội|10042021", "8-digit old id"),
        ("001093012345||Nguyễn Văn An|31021993|Nam|Hà Nội|10042021", "31 February"),
        ("001093012345||Nguyễn Văn An|1993-01-18|Nam|Hà Nội|10042021", "ISO birth date"),
        ("001093012345||Nguyễn Văn An|18011993|Male|Hà Nội|10042021", "English gender"),
        ("001093012345||Nguyễn Văn An|18011993|nam|Hà Nội|10042021", "lower-case gender"),
        ("001093012345||Nguyễn Văn 4n|18011993|Nam|Hà Nội|10042021", "digit in name"),
        ("001093012345|||18011993|Nam|Hà Nội|10042021", "empty name"),
        ("001093012345||Nguyễn Văn An|18011993|Nam||10042021", "empty address"),
        ("001093012345||Nguyễn Văn An|18011993|Nam|Hà\nNội|10042021", "control character"),
        ("001093012345||Nguyễn Văn An|18011993|Nam|Hà Nội|10041990", "issued before birth"),
        ("001093012345||Nguyễn Văn An|18011993|Nam|Hà Nội|10042027", "issued in the future"),
    ],
)
def test_bad_fields_are_invalid(text: str, why: str) -> None:
    result = parse(text)
    assert isinstance(result, Rejection), why
    assert (result.reason, result.format) == (Reason.CCCD_INVALID, "cccd"), why
    assert "Nguyễn" not in result.detail and "Hà Nội" not in result.detail


def test_hyphenated_and_apostrophe_names_of_minority_peoples() -> None:
    card = parse(cccd_payload(name="H'Hen Niê", gender="Nữ", birth_date=date(1992, 5, 15), province="066"))
    assert isinstance(card, CccdCard) and card.masked_name == "H** Niê"


def test_identities_are_the_new_and_the_old_id_number() -> None:
    with_old = parse(EXAMPLE)
    without = parse("001093012345||Nguyễn Văn An|18011993|Nam|Hà Nội|10042021")
    assert isinstance(with_old, CccdCard) and isinstance(without, CccdCard)
    assert with_old.identities == ("001093012345", "012345678")
    assert without.identities == ("001093012345",)


def test_a_card_issued_today_is_valid_from_midnight_in_vietnam() -> None:
    # The kiosk clock is in UTC, where it is still 29 November.
    one_am = datetime(2026, 11, 30, 1, 0, tzinfo=VIETNAM).astimezone(UTC)
    today = cccd_payload(issue_date=date(2026, 11, 30))
    assert isinstance(parse_card(today.encode(), trust=None, now=one_am), CccdCard)
    before = one_am - timedelta(hours=2)  # 23:00 on the 29th in Vietnam
    refused = parse_card(today.encode(), trust=None, now=before)
    assert isinstance(refused, Rejection) and refused.reason is Reason.CCCD_INVALID
