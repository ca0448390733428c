"""Dispatch of parse_card: posters, over-long and unknown payloads, surprises; reason messages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.cards import MAX_ALPHANUMERIC, MAX_BYTES, Card, Rejection, parse_card
from kiosk.cards.masking import mask_id, mask_name
from kiosk.reasons import Reason, message

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)


def rejection(data: bytes) -> Rejection:
    result = parse_card(data, trust=None, now=NOW)
    assert isinstance(result, Rejection), result
    return result


@pytest.mark.parametrize(
    "text",
    [
        "https://kbyt.khambenh.gov.vn/#/venue/123",
        "http://tokhaiyte.vn/?page=Checkin&code=HN0012",
        "HTTPS://QR.GOV.VN/DD/ABCD",
        "www.example.vn/check-in",
        "QRDD-HN0123456",
        "kbyt:venue_42_main",
    ],
)
def test_old_venue_posters_are_refused_with_their_own_reason(text: str) -> None:
    result = rejection(text.encode())
    assert (result.reason, result.format) == (Reason.OLD_VENUE_QR, "poster")
    assert result.message("vi") == "Mã QR địa điểm không còn dùng. Vui lòng xuất trình mã QR cá nhân"
    assert result.message("en").endswith("Please show your personal QR code")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"\xff\xfe\x00",
        b"WIFI:S:Cafe;T:WPA;P:secret;;",
        b"a|b|c",
        "xin chào".encode(),
        b"QRDD-x",
    ],
)
def test_anything_else_is_unrecognised(data: bytes) -> None:
    assert rejection(data).reason is Reason.UNRECOGNISED


def test_payloads_longer_than_a_qr_code_holds_are_too_long() -> None:
    assert rejection(b"x" * (MAX_BYTES + 1)).reason is Reason.TOO_LONG
    assert rejection(b"A" * (MAX_ALPHANUMERIC + 1)).reason is Reason.TOO_LONG
    # Alphanumeric-mode text may be longer than the byte-mode limit.
    assert rejection(b"HC1:" + b"A" * (MAX_BYTES + 10)).reason is not Reason.TOO_LONG
    assert rejection(b"x" * MAX_BYTES).reason is Reason.UNRECOGNISED


def test_a_surprise_becomes_an_internal_error_rejection(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="kiosk.cards"):
        result = parse_card("not bytes", trust=None, now=NOW)  # type: ignore[arg-type]
    assert isinstance(result, Rejection) and result.reason is Reason.INTERNAL_ERROR
    assert result.detail == "TypeError"
    assert "card parser failed" in caplog.text


def test_a_naive_now_is_taken_as_utc() -> None:
    result = parse_card(
        b"001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|", trust=None, now=datetime(2026, 1, 1)
    )
    assert isinstance(result, Card)


def test_a_bom_and_a_line_end_from_a_decoder_are_tolerated() -> None:
    data = "\ufeff001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|\r\n".encode()
    assert isinstance(parse_card(data, trust=None, now=NOW), Card)


def test_every_reason_has_short_messages_in_both_languages() -> None:
    for reason in Reason:
        vi, en = message(reason, "vi"), message(reason, "en")
        assert vi and en and vi != en
        assert len(vi) <= 80 and len(en) <= 80, reason
        assert "{" not in vi + en and "[" not in vi + en


def test_message_details_fill_optional_parts_only_when_given() -> None:
    assert message(Reason.STATUS_BLOCKED) == "Không được vào. Vui lòng gặp nhân viên"
    assert message(Reason.STATUS_BLOCKED, status="F1") == "Không được vào (F1). Vui lòng gặp nhân viên"
    assert message("capacity_full", "en", occupancy=50, limit=50) == "Venue full (50/50). Please wait"
    assert message(Reason.CAPACITY_FULL, "en", occupancy=50) == "Venue full. Please wait"
    assert message(Reason.OK, "vi", name="NGUYEN V** A") == "Mời vào NGUYEN V** A"
    assert message(Reason.OK, "en", unused="x") == "Welcome"


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("NGUYEN VAN A", "NGUYEN V** A"),
        ("Nguyễn Thị Minh Khai", "Nguyễn T** M** Khai"),
        ("LE HOA", "L** HOA"),
        ("A", "A**"),
        ("  TRAN   VAN   B ", "TRAN V** B"),
        ("", ""),
    ],
)
def test_name_masking_rule(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(categories=["L"]), min_size=1, max_size=8), min_size=1, max_size=5))
def test_a_masked_name_always_hides_a_word(words: list[str]) -> None:
    masked = mask_name(" ".join(words)).split()
    assert len(masked) == len(words)
    assert any(m.endswith("**") for m in masked)
    assert all(m in (w, w[0] + "**") for m, w in zip(masked, words, strict=True))


def test_id_masking_keeps_only_the_tail() -> None:
    assert mask_id("001093029317") == "*********317"
    assert mask_id("12") == "**" and mask_id("") == ""
