"""Vaccine passports read as their issuers meant: the official schema, rescued values, lenient signers.

The official schema (release 1.3.3, tests/data/dcc) drives a generator: every value it allows in a
field is accepted. Its regular expressions are ECMA-262 ones, where `\\d` is an ASCII digit, so they
are compiled with re.ASCII; a pattern is matched whole (the values sets' intent).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import cardmaker as cm
from kiosk.cards import DccCard, Rejection, parse_card
from kiosk.reasons import Reason
from kiosk.trustlist import TrustList

SCHEMA = json.loads((Path(__file__).parent / "data" / "dcc" / "DCC.combined-schema.json").read_text())
NOW = datetime(2021, 10, 1, 3, 0, tzinfo=UTC)
# Free text the kiosk shows or logs: no control, format, surrogate, private-use or separator characters.
PLAIN = st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp"])
RESULTS = ["260415000", "260373001"]


@pytest.fixture(scope="module")
def signer() -> cm.DccSigner:
    return cm.make_dcc_signer(not_before=NOW - timedelta(days=300), not_after=NOW + timedelta(days=300))


def _read(cert: dict[str, Any], signer: cm.DccSigner, **claims: datetime) -> DccCard | Rejection:
    issued, expires = (
        claims.get("issued_at", NOW - timedelta(days=1)),
        claims.get("expires_at", NOW + timedelta(days=9)),
    )
    payload = cm.dcc_payload(cert, signer=signer, issued_at=issued, expires_at=expires)
    return parse_card(payload.encode(), trust=TrustList([signer.certificate]), now=NOW)  # type: ignore[return-value]


# ---------------------------------------------------------------- the schema as a generator


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = {
            **SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def _string(node: dict[str, Any], required: bool) -> st.SearchStrategy[str]:
    least = 1 if required else 0
    if "pattern" in node:
        pattern = re.compile(node["pattern"].removeprefix("^").removesuffix("$"), re.ASCII)
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= node.get("maxLength", 80))
    if node.get("format") == "date":
        return st.dates(date(2020, 1, 1), date(2021, 9, 30)).map(date.isoformat)
    if node.get("format") == "date-time":
        zones = st.sampled_from([UTC, *(timezone_of(h) for h in (-5, 1, 2, 7))])
        return st.datetimes(datetime(2021, 1, 1), datetime(2021, 9, 30), timezones=zones).map(
            datetime.isoformat
        )
    if node.get("valueset-uri", "").endswith("test-result.json"):
        return st.sampled_from(RESULTS)
    return st.text(PLAIN, min_size=least, max_size=node.get("maxLength", 80))


def timezone_of(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def _value(node: dict[str, Any], required: bool = True) -> st.SearchStrategy[Any]:
    node = _resolve(node)
    if node.get("type") == "integer":
        return st.integers(node.get("minimum", 0), 10**6)
    if node.get("type") == "array":
        return st.lists(_value(node["items"]), min_size=node["minItems"], max_size=node["maxItems"])
    if node.get("type") == "object":
        return _object(node)
    return _string(node, required)


def _object(node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    required = set(node.get("required", []))
    optional = [k for k in node["properties"] if k not in required]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        present = (
            required | set(draw(st.lists(st.sampled_from(optional), unique=True))) if optional else required
        )
        if "anyOf" in node:  # person_name: the key fnt or gnt
            present |= set(draw(st.sampled_from([alt["required"] for alt in node["anyOf"]])))
        return {
            k: draw(_value(node["properties"][k], k in required)) for k in node["properties"] if k in present
        }

    return build()


@st.composite
def certificates(draw: st.DrawFn) -> dict[str, Any]:
    """A certificate the official schema allows (a tiny `dob` and `ver` from its own examples)."""
    kind = draw(st.sampled_from("vtr"))
    properties = SCHEMA["properties"]
    return {
        "ver": draw(st.sampled_from(properties["ver"]["examples"])),
        "nam": draw(_value(properties["nam"])),
        "dob": draw(_value(properties["dob"])),
        kind: draw(_value(properties[kind])),
    }


@settings(max_examples=150, deadline=None)
@given(certificates())
def test_every_certificate_the_official_schema_allows_is_read(
    signer: cm.DccSigner, cert: dict[str, Any]
) -> None:
    card = _read(cert, signer)
    assert isinstance(card, DccCard), card
    entry = card.certificate.entry
    source = cert[card.kind][0]
    assert entry.uvci == source["ci"] and card.certificate.birth_date == cert["dob"]


# ---------------------------------------------------------------- rescued values


def _vaccination(**entry: Any) -> dict[str, Any]:
    cert = cm.dcc_vaccination_complete(uvci="URN:UVCI:01:VN:RESCUE")
    cert["v"][0].update(entry)
    return cert


def _test(**entry: Any) -> dict[str, Any]:
    cert = cm.dcc_test_negative(sampled_at=NOW - timedelta(hours=3), uvci="URN:UVCI:01:VN:RESCUE")
    cert["t"][0].update(entry)
    for key in [k for k, v in entry.items() if v is None]:
        del cert["t"][0][key]
    return cert


@pytest.mark.parametrize(
    ("written", "meant"),
    [("2021-09-01T00:00:00Z", date(2021, 9, 1)), ("2021-09-01T10:30:00+07:00", date(2021, 9, 1)),
     ("2021-09-01 10:30:00", date(2021, 9, 1)), ("2021-09-01T10:30:00.123456789z", date(2021, 9, 1))],
)  # fmt: skip
def test_a_date_time_in_a_date_field_gives_its_date(signer: cm.DccSigner, written: str, meant: date) -> None:
    card = _read(_vaccination(dt=written), signer)
    assert isinstance(card, DccCard) and card.vaccination is not None and card.vaccination.date == meant
    recovery = cm.dcc_recovery(
        first_positive=date(2021, 8, 1), valid_from=date(2021, 8, 12), valid_until=date(2022, 1, 1)
    )
    recovery["r"][0].update(fr="2021-08-01T00:00:00Z", df="2021-08-12T00:00:00.000Z", du=written)
    card = _read(recovery, signer)
    assert isinstance(card, DccCard) and card.recovery is not None and card.recovery.valid_until == meant


def test_recovery_dates_in_any_order_are_read_for_the_rules_to_judge(signer: cm.DccSigner) -> None:
    cert = cm.dcc_recovery(
        first_positive=date(2021, 9, 20), valid_from=date(2021, 9, 1), valid_until=date(2022, 3, 1)
    )
    card = _read(cert, signer)
    assert isinstance(card, DccCard) and card.recovery is not None
    assert card.recovery.first_positive > card.recovery.valid_from


@pytest.mark.parametrize(
    ("written", "meant"),
    [("2021-09-30T10:00:00Z", datetime(2021, 9, 30, 10, tzinfo=UTC)),
     ("2021-09-30T17:00:00.000+0700", datetime(2021, 9, 30, 10, tzinfo=UTC)),
     ("2021-09-30T17:00:00.1234+07", datetime(2021, 9, 30, 10, 0, 0, 123400, tzinfo=UTC)),
     ("2021-09-30 10:00:00z", datetime(2021, 9, 30, 10, tzinfo=UTC)),
     ("2021-09-30t10:00Z", datetime(2021, 9, 30, 10, tzinfo=UTC)),
     ("2021-09-30T10:00:00", datetime(2021, 9, 30, 10, tzinfo=UTC)),
     ("2021-09-30", datetime(2021, 9, 30, tzinfo=UTC))],
)  # fmt: skip
def test_sample_times_in_other_shapes_are_read(signer: cm.DccSigner, written: str, meant: datetime) -> None:
    card = _read(_test(sc=written), signer)
    assert isinstance(card, DccCard) and card.test is not None and card.test.sample_time == meant


def test_whole_floats_empty_optionals_and_missing_nm_ma_are_rescued(signer: cm.DccSigner) -> None:
    card = _read(_vaccination(dn=2.0, sd=2.0), signer)
    assert isinstance(card, DccCard) and card.vaccination is not None
    assert (card.vaccination.dose_number, card.vaccination.total_doses) == (2, 2)
    card = _read(_test(nm="", ma=None, tc=""), signer)
    assert isinstance(card, DccCard) and card.test is not None
    assert (card.test.test_name, card.test.manufacturer, card.test.centre) == (None, None, None)
    name = {"fn": "", "fnt": "", "gn": "An", "gnt": "AN"}
    card = _read({**_vaccination(), "nam": name, "dob": "1987-01-18T00:00:00"}, signer)
    assert isinstance(card, DccCard) and card.certificate.birth_date == "1987-01-18"
    assert card.masked_name == "A**"


@pytest.mark.parametrize(
    ("cert", "field"),
    [(_vaccination(dn=2.5), "v[0].dn"), (_vaccination(dn="2"), "v[0].dn"),
     (_vaccination(dt="abcde"), "v[0].dt"),
     (_vaccination(dt="2021-09-01Tnoon"), "v[0].dt"), (_test(sc="yesterday"), "t[0].sc"),
     (_test(tr="positive"), "t[0].tr"), ({**_vaccination(), "nam": {"fn": "An"}}, "nam"),
     ({**_vaccination(), "dob": "18/01/1987"}, "dob")],
)  # fmt: skip
def test_a_value_whose_meaning_is_not_clear_is_refused_by_field(
    signer: cm.DccSigner, cert: dict[str, Any], field: str
) -> None:
    refused = _read(cert, signer)
    assert isinstance(refused, Rejection) and refused.reason is Reason.DCC_SCHEMA_VIOLATION
    assert refused.detail.startswith(f"{field}: "), refused.detail


# ---------------------------------------------------------------- signers, headers and clocks


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_a_signer_certificate_with_ca_false_written_out_still_grants_its_usage(alg: cm.Alg) -> None:
    strict = cm.make_dcc_signer(
        alg, not_before=NOW - timedelta(days=9), not_after=NOW + timedelta(days=9), key_usage=["v"]
    )
    lax = cm.with_explicit_ca_false(strict)
    with pytest.raises(ValueError):  # what `cryptography` does with it
        _ = lax.certificate.extensions
    card = _read(cm.dcc_vaccination_complete(), lax)
    assert isinstance(card, DccCard) and card.verified
    refused = _read(cm.dcc_test_negative(sampled_at=NOW - timedelta(hours=2)), lax)
    assert isinstance(refused, Rejection) and refused.reason is Reason.DCC_KEY_USAGE_MISMATCH


def test_an_empty_extended_key_usage_allows_every_type() -> None:
    signer = cm.make_dcc_signer(
        not_before=NOW - timedelta(days=9), not_after=NOW + timedelta(days=9), key_usage=[]
    )
    for cert in (cm.dcc_vaccination_complete(), cm.dcc_test_negative(sampled_at=NOW - timedelta(hours=2))):
        card = _read(cert, signer)
        assert isinstance(card, DccCard) and card.verified


def test_a_kid_only_in_the_unprotected_header_is_used(signer: cm.DccSigner) -> None:
    payload = cm.dcc_payload(
        cm.dcc_vaccination_complete(), signer=signer, issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=1), kid_in="unprotected",
    )  # fmt: skip
    card = parse_card(payload.encode(), trust=TrustList([signer.certificate]), now=NOW)
    assert isinstance(card, DccCard) and card.verified and card.kid == signer.kid


def test_expiry_second_is_still_valid_and_a_lagging_clock_is_forgiven(signer: cm.DccSigner) -> None:
    cert = cm.dcc_vaccination_complete()
    assert isinstance(_read(cert, signer, expires_at=NOW), DccCard)
    expired = _read(cert, signer, expires_at=NOW - timedelta(seconds=1))
    assert (
        isinstance(expired, Rejection)
        and expired.reason is Reason.DCC_EXPIRED
        and expired.detail.startswith("exp:")
    )
    assert isinstance(_read(cert, signer, issued_at=NOW + timedelta(minutes=5)), DccCard)
    early = _read(cert, signer, issued_at=NOW + timedelta(minutes=6))
    assert (
        isinstance(early, Rejection)
        and early.reason is Reason.DCC_NOT_YET_VALID
        and early.detail.startswith("iat:")
    )
