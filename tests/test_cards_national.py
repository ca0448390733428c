"""The national personal QR parser (Decision 1405/QĐ-BTTTT)."""

from datetime import UTC, datetime, timedelta

import pytest

from kiosk.cardmaker import national_payload
from kiosk.cards import NationalCard, Rejection, parse_card
from kiosk.reasons import Reason
from kiosk.statuslist import VIETNAM

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
EXAMPLE = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"


def parse(text: str) -> NationalCard | Rejection:
    return parse_card(text.encode(), trust=None, now=NOW)


def test_the_decision_example_parses_every_field() -> None:
    card = parse(EXAMPLE)
    assert isinstance(card, NationalCard)
    assert card.format == "national"
    assert card.id_number == "001093029317"
    assert card.name == "NGUYEN VAN A"
    assert (card.birth_date, card.birth_year) == ("1987-01-18", 1987)
    assert card.declared_by_proxy is False
    assert card.qid == "162979388586171100"
    assert (card.proxy_qid, card.gender, card.insurance_number) == ("", 1, "00")
    assert (card.phone, card.signature) == ("0123232422", "")
    assert card.identity == "162979388586171100"
    assert card.masked_name == "NGUYEN V** A"


def test_masked_fields_hide_ids_and_phone() -> None:
    card = parse(EXAMPLE)
    assert isinstance(card, NationalCard)
    fields = card.masked_fields()
    assert fields["id_number"] == "*********317"
    assert fields["qid"].endswith("100") and "162979" not in fields["qid"]
    assert "0123232422" not in str(fields)
    assert fields["name"] == "NGUYEN V** A"


@pytest.mark.parametrize(
    ("text", "identity"),
    [
        ("*********317|TRAN THI B|1990-**-**|1|162979388586171100|", "162979388586171100"),
        ("001093029317|TRAN THI B|1990-05-**|0||", "001093029317"),
        ("******029317|TRAN THI B|1990-05-02|0||", None),
        ("|LE C|2015-02-03|1||123456789012<2<<<c2lnbmF0dXJl", None),
    ],
)
def test_masked_and_empty_fields_are_accepted(text: str, identity: str | None) -> None:
    card = parse(text)
    assert isinstance(card, NationalCard), card
    assert card.identity == identity


def test_passport_number_and_full_ext() -> None:
    card = parse(
        "B1234567|NGUYEN THI HOA|1975-12-31|1|123456789|9876543210<2<DN4010123456789<+84912345678<AbC+/="
    )
    assert isinstance(card, NationalCard), card
    assert card.declared_by_proxy is True
    assert (card.proxy_qid, card.gender) == ("9876543210", 2)
    assert (card.insurance_number, card.phone, card.signature) == (
        "DN4010123456789",
        "+84912345678",
        "AbC+/=",
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100", "5 fields"),
        ("001093029317|Nguyen Van A|1987-01-18|0|162979388586171100|", "lower case name"),
        ("001093029317|NGUYỄN VAN A|1987-01-18|0|162979388586171100|", "diacritics"),
        ("001093029317||1987-01-18|0|162979388586171100|", "empty name"),
        ("001093029317|NGUYEN  VAN|1987-01-18|0|162979388586171100|", "double space"),
        ("001093029317|NGUYEN VAN A|1987-02-30|0|162979388586171100|", "impossible date"),
        ("001093029317|NGUYEN VAN A|1987-**-18|0|162979388586171100|", "day without month"),
        ("001093029317|NGUYEN VAN A|2027-01-01|0|162979388586171100|", "born in the future"),
        ("001093029317|NGUYEN VAN A|1887-01-01|0|162979388586171100|", "born too early"),
        ("001093029317|NGUYEN VAN A|18-01-1987|0|162979388586171100|", "wrong date order"),
        ("001093029317|NGUYEN VAN A|1987-01-18|2|162979388586171100|", "LoaiDinhDanh"),
        ("001093029317|NGUYEN VAN A|1987-01-18|0|16297938858617110A|", "QID letters"),
        ("0010930*9317|NGUYEN VAN A|1987-01-18|0|162979388586171100|", "mask not leading"),
        ("00109|NGUYEN VAN A|1987-01-18|0|162979388586171100|", "id too short"),
        ("001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<3<<", "gender 3"),
        ("001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<<012<", "short phone"),
        ("001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<<<<x", "six EXT sub-fields"),
    ],
)
def test_bad_fields_are_rejected(text: str, why: str) -> None:
    result = parse(text)
    assert isinstance(result, Rejection), why
    assert result.reason is Reason.NATIONAL_INVALID
    assert result.format == "national"
    assert "NGUYEN" not in result.detail and "0010930" not in result.detail


@pytest.mark.parametrize(
    ("text", "identities"),
    [
        (EXAMPLE, ("162979388586171100", "001093029317")),
        ("*********317|TRAN THI B|1990-**-**|1|162979388586171100|", ("162979388586171100",)),
        ("001093029317|TRAN THI B|1990-05-**|0||", ("001093029317",)),
        ("******029317|TRAN THI B|1990-05-02|0||", ()),
        ("B1234567|NGUYEN THI HOA|1975-12-31|1|123456789|", ("123456789", "B1234567")),
    ],
)
def test_identities_are_the_qid_and_the_unmasked_id_number(text: str, identities: tuple[str, ...]) -> None:
    card = parse(text)
    assert isinstance(card, NationalCard), card
    assert card.identities == identities
    assert card.identity == (identities[0] if identities else None)


def test_a_birth_date_of_today_counts_in_vietnam_time() -> None:
    # The kiosk clock is in UTC, where it is still 29 November.
    one_am = datetime(2026, 11, 30, 1, 0, tzinfo=VIETNAM).astimezone(UTC)
    newborn = national_payload(birth_date="2026-11-30", by_proxy=True).encode()
    assert isinstance(parse_card(newborn, trust=None, now=one_am), NationalCard)
    refused = parse_card(newborn, trust=None, now=one_am - timedelta(hours=2))
    assert isinstance(refused, Rejection) and refused.reason is Reason.NATIONAL_INVALID
