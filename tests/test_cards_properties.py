"""Property tests: the parsers are total, and the maker's payloads read back with the same fields."""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta

import base45
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import cardmaker as cm
from kiosk.cards import Card, CccdCard, DccCard, NationalCard, Rejection, parse_card
from kiosk.cards.cccd import PROVINCE_CODES
from kiosk.reasons import Reason
from kiosk.trustlist import TrustList

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
SIGNER = cm.make_dcc_signer("ES256", not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=365))
TRUST = TrustList([SIGNER.certificate])
FAST = settings(max_examples=200, deadline=None)


def total(data: bytes, trust: TrustList | None = TRUST) -> Card | Rejection:
    result = parse_card(data, trust=trust, now=NOW)
    assert isinstance(result, Card | Rejection)
    if isinstance(result, Rejection):
        # A reason from a parser, not the safety net: the parsers themselves are total.
        assert result.reason is not Reason.INTERNAL_ERROR, result
    return result


def _cose() -> bytes:
    return cm.sign1_message(
        cm.dcc_vaccination_complete(), signer=SIGNER, issued_at=NOW, expires_at=NOW + timedelta(days=9)
    )


VALID = [
    cm.national_payload().encode(),
    cm.cccd_payload().encode(),
    cm.cccd_payload(with_old_id_field=False).encode(),
    cm.encode_hc1(_cose()).encode(),
    cm.encode_hc1(_cose(), compress=False).encode(),
]


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    total(data)
    total(data, trust=None)


@FAST
@given(st.lists(st.text(max_size=20), min_size=1, max_size=9).map("|".join))
def test_random_pipe_separated_text_never_raises(text: str) -> None:
    total(text.encode("utf-8", "surrogatepass"))


@FAST
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=300))
def test_random_hc1_text_never_raises(text: str) -> None:
    total(b"HC1:" + text.encode())


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 replace, 1 insert, 2 delete."""
    out = bytearray(data)
    for kind, position, value in edits:
        at = position % (len(out) + 1)
        if kind == 1 or not out:
            out.insert(at, value)
        elif kind == 0:
            out[at % len(out)] = value
        else:
            del out[at % len(out)]
    return bytes(out)


EDITS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6
)


@FAST
@given(st.sampled_from(VALID), EDITS)
def test_mutated_valid_payloads_never_raise(payload: bytes, edits: list[tuple[int, int, int]]) -> None:
    total(mutate(payload, edits))


@FAST
@given(EDITS, st.booleans())
def test_mutated_cose_inside_a_well_formed_hc1_never_raises(
    edits: list[tuple[int, int, int]], compress: bool
) -> None:
    cose = mutate(_cose(), edits)
    data = zlib.compress(cose) if compress else cose
    result = total(b"HC1:" + base45.b45encode(data))
    if isinstance(result, DccCard):
        assert result.verified  # a mutation that still reads must still carry a valid signature


@st.composite
def national_fields(draw: st.DrawFn) -> dict:
    born = draw(st.dates(date(1900, 1, 1), NOW.date()))
    masked = draw(st.sampled_from(["none", "day", "both"]))
    birth = {"none": born.isoformat(), "day": f"{born:%Y-%m}-**", "both": f"{born:%Y}-**-**"}[masked]
    return {
        "id_number": draw(st.from_regex(r"\*{0,4}[A-Z0-9]{6,12}", fullmatch=True)),
        "name": draw(st.from_regex(r"[A-Z]{1,8}( [A-Z]{1,8}){0,4}", fullmatch=True)),
        "birth_date": birth,
        "by_proxy": draw(st.booleans()),
        "qid": draw(st.from_regex(r"([0-9]{6,20})?", fullmatch=True)),
        "proxy_qid": draw(st.from_regex(r"([0-9]{6,20})?", fullmatch=True)),
        "gender": draw(st.sampled_from([None, 0, 1, 2])),
        "insurance_number": draw(st.from_regex(r"[A-Z0-9]{0,15}", fullmatch=True)),
        "phone": draw(st.from_regex(r"(\+?[0-9]{8,15})?", fullmatch=True)),
        "signature": draw(st.from_regex(r"[A-Za-z0-9+/=_.-]{0,40}", fullmatch=True)),
    }


@FAST
@given(national_fields())
def test_national_round_trip(fields: dict) -> None:
    card = total(cm.national_payload(**fields).encode())
    assert isinstance(card, NationalCard), card
    by_proxy = fields.pop("by_proxy")
    assert card.declared_by_proxy is by_proxy
    assert {k: getattr(card, k) for k in fields} == fields


NAME_WORDS = ["Nguyễn", "Trần", "Lê", "Phạm", "Văn", "Thị", "Ngọc", "Ánh", "Đức", "Hùng", "Ê", "H'Hen", "Niê"]
ADDRESS = r"[A-Za-z0-9ÀÁÂÃĐÊÔƠƯàáâãđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ,./-]{1,40}"


@st.composite
def cccd_fields(draw: st.DrawFn) -> dict:
    born = draw(st.dates(date(1800, 1, 1), NOW.date()))
    return {
        "name": " ".join(draw(st.lists(st.sampled_from(NAME_WORDS), min_size=1, max_size=5))),
        "birth_date": born,
        "gender": draw(st.sampled_from(["Nam", "Nữ"])),
        "province": draw(st.sampled_from(sorted(PROVINCE_CODES))),
        "serial": draw(st.from_regex(r"[0-9]{6}", fullmatch=True)),
        "old_id": draw(st.from_regex(r"([0-9]{9})?", fullmatch=True)),
        "address": " ".join(draw(st.lists(st.from_regex(ADDRESS, fullmatch=True), min_size=1, max_size=4))),
        "issue_date": draw(st.dates(born, NOW.date())),
    }


@FAST
@given(cccd_fields(), st.booleans())
def test_cccd_round_trip(fields: dict, with_old_id_field: bool) -> None:
    if not with_old_id_field:
        fields["old_id"] = ""
    card = total(cm.cccd_payload(**fields, with_old_id_field=with_old_id_field).encode())
    assert isinstance(card, CccdCard), card
    assert card.id_number[:3] == fields.pop("province") and card.id_number[6:] == fields.pop("serial")
    assert card.old_id_number == fields.pop("old_id")
    assert {k: getattr(card, k) for k in fields} == fields


DCC_DATES = st.dates(date(2020, 12, 1), NOW.date())


@st.composite
def dcc_certificates(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from("vtr"))
    if kind == "v":
        of = draw(st.integers(1, 9))
        return cm.dcc_vaccination(dose=draw(st.integers(1, 9)), of=of, on=draw(DCC_DATES))
    if kind == "t":
        sampled = draw(st.datetimes(datetime(2021, 1, 1), datetime(2026, 11, 29), timezones=st.just(UTC)))
        return cm.dcc_test_result(sampled_at=sampled, positive=draw(st.booleans()))
    first = draw(DCC_DATES)
    until = first + timedelta(days=draw(st.integers(11, 180)))
    return cm.dcc_recovery(first_positive=first, valid_from=first + timedelta(days=11), valid_until=until)


PARSE = {
    "dt": date.fromisoformat,
    "fr": date.fromisoformat,
    "df": date.fromisoformat,
    "du": date.fromisoformat,
}
PARSE["sc"] = datetime.fromisoformat


@settings(max_examples=100, deadline=None)
@given(dcc_certificates(), st.booleans(), st.sampled_from(["protected", "unprotected"]), st.booleans())
def test_dcc_round_trip(cert: dict, compress: bool, kid_in: str, tagged: bool) -> None:
    times = {"issued_at": NOW - timedelta(days=1), "expires_at": NOW + timedelta(days=30)}
    payload = cm.dcc_payload(cert, signer=SIGNER, compress=compress, kid_in=kid_in, tagged=tagged, **times)  # type: ignore[arg-type]
    card = total(payload.encode())
    assert isinstance(card, DccCard) and card.verified, card
    entry = cert[card.kind][0]
    assert card.identity == entry["ci"] and card.certificate.name.display() == "Nguyễn Văn An"
    expected = {k: PARSE.get(k, str)(v) if isinstance(v, str) else v for k, v in entry.items()}
    assert card.certificate.entry.model_dump(by_alias=True, exclude_none=True) == expected
