"""Vaccine passports: decoding, offline verification against a trust list, every DCC reason code."""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta

import base45
import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import cardmaker as cm
from kiosk.cards import Card, DccCard, Rejection, parse_card
from kiosk.reasons import Reason
from kiosk.trustlist import TrustList

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
ISSUED = NOW - timedelta(days=2)
EXPIRES = NOW + timedelta(days=300)


def signer_for(alg: cm.Alg = "ES256", **kwargs: object) -> cm.DccSigner:
    validity = {"not_before": NOW - timedelta(days=365), "not_after": NOW + timedelta(days=365)}
    return cm.make_dcc_signer(alg, **{**validity, **kwargs})  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["ES256", "PS256", "EdDSA"])
def signer(request: pytest.FixtureRequest) -> cm.DccSigner:
    return signer_for(request.param)


@pytest.fixture(scope="module")
def es256() -> cm.DccSigner:
    return signer_for("ES256")


def read(payload: str | bytes, *signers: cm.DccSigner, now: datetime = NOW) -> Card | Rejection:
    data = payload.encode() if isinstance(payload, str) else payload
    return parse_card(data, trust=TrustList(s.certificate for s in signers), now=now)


def passport(signer: cm.DccSigner, cert: dict | None = None, **kwargs: object) -> str:
    times = {"issued_at": ISSUED, "expires_at": EXPIRES}
    return cm.dcc_payload(cert or cm.dcc_vaccination_complete(), signer=signer, **{**times, **kwargs})  # type: ignore[arg-type]


def reason_of(result: Card | Rejection) -> Reason:
    assert isinstance(result, Rejection), result
    assert result.format == "dcc"
    return result.reason


def test_each_algorithm_verifies_and_reads_a_vaccination(signer: cm.DccSigner) -> None:
    cert = cm.dcc_vaccination_complete(on=date(2021, 9, 1), uvci="URN:UVCI:01:VN:ABC123#Q")
    card = read(passport(signer, cert), signer)
    assert isinstance(card, DccCard)
    assert (card.format, card.kind, card.verified, card.kid) == ("dcc", "v", True, signer.kid)
    assert card.identity == "URN:UVCI:01:VN:ABC123#Q"
    assert card.vaccination is not None and card.test is None and card.recovery is None
    v = card.vaccination
    assert (v.dose_number, v.total_doses, v.date, v.complete) == (2, 2, date(2021, 9, 1), True)
    assert (card.issued_at, card.expires_at) == (
        ISSUED.replace(microsecond=0),
        EXPIRES.replace(microsecond=0),
    )
    assert card.masked_name == "Nguyễn V** An"
    assert "ABC123" not in str(card.masked_fields())


def test_test_and_recovery_entries_expose_what_the_policy_needs(es256: cm.DccSigner) -> None:
    sampled = NOW - timedelta(hours=20)
    test = read(passport(es256, cm.dcc_test_result(sampled_at=sampled, positive=True)), es256)
    assert isinstance(test, DccCard) and test.test is not None
    assert (test.kind, test.test.positive, test.test.sample_time, test.test.test_type) == (
        "t",
        True,
        sampled,
        "LP217198-3",
    )
    rec = cm.dcc_recovery(
        first_positive=date(2026, 9, 1), valid_from=date(2026, 9, 12), valid_until=date(2027, 3, 1)
    )
    card = read(passport(es256, rec), es256)
    assert isinstance(card, DccCard) and card.recovery is not None
    assert (card.recovery.valid_from, card.recovery.valid_until) == (date(2026, 9, 12), date(2027, 3, 1))
    assert cm.dcc_vaccination_incomplete()["v"][0]["dn"] == 1


@pytest.mark.parametrize(
    "options",
    [{"compress": False}, {"kid_in": "unprotected"}, {"tagged": False}, {"compress": False, "tagged": False}],
)
def test_accepted_envelope_variants(es256: cm.DccSigner, options: dict) -> None:
    card = read(passport(es256, **options), es256)
    assert isinstance(card, DccCard) and card.verified


def test_cwt_tag_61_around_the_sign1_is_accepted(es256: cm.DccSigner) -> None:
    cose = cm.sign1_message(cm.dcc_vaccination_complete(), signer=es256, issued_at=ISSUED, expires_at=EXPIRES)
    wrapped = cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(cose)))
    card = read(cm.encode_hc1(wrapped), es256)
    assert isinstance(card, DccCard) and card.verified


def test_without_a_trust_list_a_passport_is_read_but_unverified(es256: cm.DccSigner) -> None:
    card = parse_card(passport(es256).encode(), trust=None, now=NOW)
    assert isinstance(card, DccCard) and card.verified is False


def _resign(signer: cm.DccSigner, message: list) -> str:
    return cm.encode_hc1(cbor2.dumps(cbor2.CBORTag(18, message)))


def _parts(signer: cm.DccSigner) -> list:
    cose = cm.sign1_message(
        cm.dcc_vaccination_complete(), signer=signer, issued_at=ISSUED, expires_at=EXPIRES
    )
    return list(cbor2.loads(cose).value)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_a_flipped_signature_byte_is_a_bad_signature(signer: cm.DccSigner) -> None:
    parts = _parts(signer)
    parts[3] = _flip(parts[3], 5)
    assert reason_of(read(_resign(signer, parts), signer)) is Reason.DCC_BAD_SIGNATURE


@pytest.mark.parametrize("index", [0, 10, -3])
def test_a_flipped_payload_byte_is_a_bad_signature(signer: cm.DccSigner, index: int) -> None:
    parts = _parts(signer)
    parts[2] = _flip(parts[2], index % len(parts[2]))
    assert reason_of(read(_resign(signer, parts), signer)) is Reason.DCC_BAD_SIGNATURE


def test_a_changed_protected_header_is_a_bad_signature(es256: cm.DccSigner) -> None:
    parts = _parts(es256)
    parts[0] = cbor2.dumps({1: -7, 4: es256.kid, 99: "x"})
    assert reason_of(read(_resign(es256, parts), es256)) is Reason.DCC_BAD_SIGNATURE


def test_a_signer_not_on_the_trust_list_is_an_unknown_kid(es256: cm.DccSigner) -> None:
    other = signer_for("ES256")
    assert reason_of(read(passport(es256), other)) is Reason.DCC_UNKNOWN_KID


def test_a_missing_kid_is_an_unknown_kid(es256: cm.DccSigner) -> None:
    parts = _parts(es256)
    parts[0] = cbor2.dumps({1: -7})
    assert reason_of(read(_resign(es256, parts), es256)) is Reason.DCC_UNKNOWN_KID


def test_a_key_of_the_wrong_type_for_the_algorithm_is_a_bad_signature() -> None:
    ed = signer_for("EdDSA")
    liar = cm.DccSigner("ES256", ed.private_key, ed.certificate)  # claims ES256, signs with Ed25519
    assert reason_of(read(passport(liar), ed)) is Reason.DCC_BAD_SIGNATURE


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (NOW - timedelta(days=400), NOW - timedelta(days=1)),
        (NOW + timedelta(days=1), NOW + timedelta(days=400)),
    ],
)
def test_a_signer_certificate_outside_its_validity_is_refused(
    not_before: datetime, not_after: datetime
) -> None:
    old = signer_for("ES256", not_before=not_before, not_after=not_after)
    assert reason_of(read(passport(old), old)) is Reason.DCC_SIGNER_NOT_VALID


def test_an_expired_cwt_is_refused(es256: cm.DccSigner) -> None:
    payload = passport(es256, issued_at=NOW - timedelta(days=400), expires_at=NOW - timedelta(seconds=1))
    assert reason_of(read(payload, es256)) is Reason.DCC_EXPIRED
    assert reason_of(parse_card(payload.encode(), trust=None, now=NOW)) is Reason.DCC_EXPIRED


def test_a_cwt_issued_in_the_future_is_not_yet_valid(es256: cm.DccSigner) -> None:
    payload = passport(es256, issued_at=NOW + timedelta(hours=1), expires_at=NOW + timedelta(days=300))
    assert reason_of(read(payload, es256)) is Reason.DCC_NOT_YET_VALID
    # A kiosk clock a minute behind the issuer's is tolerated.
    assert isinstance(read(payload, es256, now=NOW + timedelta(minutes=59)), DccCard)


@pytest.mark.parametrize(
    ("usage", "cert"),
    [
        (["v"], cm.dcc_test_negative(sampled_at=NOW - timedelta(hours=1))),
        (["t", "r"], cm.dcc_vaccination_complete()),
        (
            ["v", "t"],
            cm.dcc_recovery(
                first_positive=date(2026, 9, 1), valid_from=date(2026, 9, 12), valid_until=date(2027, 3, 1)
            ),
        ),
    ],
)
def test_a_signer_limited_to_other_types_is_a_key_usage_mismatch(usage: list, cert: dict) -> None:
    limited = signer_for("ES256", key_usage=usage)
    assert reason_of(read(passport(limited, cert), limited)) is Reason.DCC_KEY_USAGE_MISMATCH


def _signer_with_usage(oids: list[str]) -> cm.DccSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "usage test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cm.DccSigner("ES256", key, certificate)


@pytest.mark.parametrize(
    ("oids", "ok"),
    [
        (["1.3.6.1.4.1.0.1847.2021.1.2"], True),  # the variant OID for vaccination
        (["1.3.6.1.5.5.7.3.2"], True),  # no DCC usage at all: may sign every type
        (["1.3.6.1.4.1.0.1847.2021.1.1", "1.3.6.1.5.5.7.3.2"], False),
    ],
)
def test_key_usage_variants(oids: list[str], ok: bool) -> None:
    signer = _signer_with_usage(oids)
    result = read(passport(signer), signer)
    assert isinstance(result, DccCard) if ok else reason_of(result) is Reason.DCC_KEY_USAGE_MISMATCH


@pytest.mark.parametrize("text", ["HC2:NCFOXN", "hc1:NCFOXN", "HC10:NCF"])
def test_a_wrong_prefix_is_a_bad_prefix(text: str) -> None:
    assert reason_of(parse_card(text.encode(), trust=None, now=NOW)) is Reason.DCC_BAD_PREFIX


@pytest.mark.parametrize("text", ["HC1:abc", "HC1:A", "HC1:::::", "HC1:NCF OXN@"])
def test_bad_base45(text: str) -> None:
    assert reason_of(parse_card(text.encode(), trust=None, now=NOW)) is Reason.DCC_BAD_BASE45


def _hc1(data: bytes) -> bytes:
    return b"HC1:" + base45.b45encode(data)


def test_bad_compression(es256: cm.DccSigner) -> None:
    compressed = zlib.compress(
        cm.sign1_message(cm.dcc_vaccination_complete(), signer=es256, issued_at=ISSUED, expires_at=EXPIRES)
    )
    for data in (b"\x78\x9c" + b"\xff" * 40, compressed[:-10]):
        assert reason_of(read(_hc1(data), es256)) is Reason.DCC_BAD_COMPRESSION


def test_a_zlib_bomb_is_bad_compression() -> None:
    bomb = _hc1(zlib.compress(b"\x00" * 1_000_000, 9))
    assert len(bomb) <= 4296  # it fits in a QR code
    assert reason_of(parse_card(bomb, trust=None, now=NOW)) is Reason.DCC_BAD_COMPRESSION


@pytest.mark.parametrize(
    "cose",
    [
        b"\xff\xfe",  # not CBOR
        cbor2.dumps([b"", {}, b""]),  # three elements
        cbor2.dumps(cbor2.CBORTag(18, ["x", {}, b"", b""])),  # protected header not a byte string
        cbor2.dumps([cbor2.dumps([1]), {}, b"", b""]),  # protected header not a map
        cbor2.dumps([cbor2.dumps({1: -999}), {}, b"", b""]),  # unknown algorithm
        cbor2.dumps([cbor2.dumps({4: b"12345678"}), {}, b"", b""]),  # no algorithm
        cbor2.dumps({"not": "an array"}),
    ],
)
def test_bad_cose_structure(cose: bytes) -> None:
    assert reason_of(parse_card(_hc1(zlib.compress(cose)), trust=None, now=NOW)) is Reason.DCC_BAD_COSE


def _signed(signer: cm.DccSigner, payload: bytes) -> bytes:
    protected = cbor2.dumps({1: -7, 4: signer.kid})
    signature = signer.sign(cbor2.dumps(["Signature1", protected, b"", payload]))
    return _hc1(zlib.compress(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))))


def test_a_signed_payload_that_is_not_a_cwt_is_bad_cose(es256: cm.DccSigner) -> None:
    for payload in (b"\xff\x00", cbor2.dumps([1, 2])):
        assert reason_of(read(_signed(es256, payload), es256)) is Reason.DCC_BAD_COSE


def _claims(cert: object, overrides: dict | None = None) -> bytes:
    claims: dict = {1: "VN", 6: int(ISSUED.timestamp()), 4: int(EXPIRES.timestamp()), -260: {1: cert}}
    return cbor2.dumps({**claims, **(overrides or {})})


def _vaccination(**entry: object) -> dict:
    cert = cm.dcc_vaccination_complete()
    cert["v"][0].update(entry)
    return cert


SCHEMA_VIOLATIONS = [
    ("dose as text", _vaccination(dn="2")),
    ("dose zero", _vaccination(dn=0)),
    ("bool dose", _vaccination(dn=True)),
    ("date not ISO", _vaccination(dt="01/09/2021")),
    ("missing uvci", {**cm.dcc_vaccination_complete(), "v": [{"tg": "840539006"}]}),
    ("two kinds", {**cm.dcc_vaccination_complete(), "t": cm.dcc_test_negative(sampled_at=NOW)["t"]}),
    ("no kind", {"ver": "1.3.0", "nam": {"fnt": "NGUYEN"}, "dob": "1987"}),
    ("two entries", {**cm.dcc_vaccination_complete(), "v": cm.dcc_vaccination_complete()["v"] * 2}),
    ("version 2", {**cm.dcc_vaccination_complete(), "ver": "2.0.0"}),
    ("lower-case fnt", {**cm.dcc_vaccination_complete(), "nam": {"fnt": "nguyen"}}),
    ("not a map", [1, 2, 3]),
    ("newline in uvci", _vaccination(ci="URN:UVCI:01:VN:ABC\nDEF")),
    ("nul in uvci", _vaccination(ci="URN:UVCI:01:VN:ABC\x00")),
    ("line separator in uvci", _vaccination(ci="URN:UVCI:01:VN:ABC\u2028")),
    ("zero-width space in uvci", _vaccination(ci="URN:UVCI:01:VN:\u200bABC")),
    ("uvci too long", _vaccination(ci="URN:UVCI:01:VN:" + "A" * 80)),
    ("escape in issuer", _vaccination(**{"is": "Bo Y te\x1b[2J"})),
    ("tab in a code", _vaccination(tg="840539006\t")),
    ("delete in family name", {**cm.dcc_vaccination_complete(), "nam": {"fn": "Nguy\x7fn", "fnt": "NGUYEN"}}),
]


@pytest.mark.parametrize(("why", "cert"), SCHEMA_VIOLATIONS, ids=[w for w, _ in SCHEMA_VIOLATIONS])
def test_schema_violations(es256: cm.DccSigner, why: str, cert: object) -> None:
    assert reason_of(read(_signed(es256, _claims(cert)), es256)) is Reason.DCC_SCHEMA_VIOLATION


def test_test_without_time_zone_is_read_as_utc_and_without_device_is_read(es256: cm.DccSigner) -> None:
    cert = cm.dcc_test_negative(sampled_at=NOW)
    naive = {**cert, "t": [{**cert["t"][0], "sc": "2026-11-29T08:00:00"}]}
    nameless = {**cert, "t": [{k: v for k, v in cert["t"][0].items() if k != "ma"}]}
    card = read(_signed(es256, _claims(naive)), es256)
    assert isinstance(card, DccCard) and card.test is not None
    assert card.test.sample_time == datetime(2026, 11, 29, 8, tzinfo=UTC)
    card = read(_signed(es256, _claims(nameless)), es256)
    assert isinstance(card, DccCard) and card.test is not None and card.test.manufacturer is None


@pytest.mark.parametrize(
    "claims",
    [
        {-260: None},
        {-260: {2: {}}},
        {4: "soon"},
        {6: None},
        {4: 10**30},
        {4: True},
        {4: float("nan")},
    ],
)
def test_bad_claims_are_schema_violations(es256: cm.DccSigner, claims: dict) -> None:
    payload = _claims(cm.dcc_vaccination_complete(), claims)
    assert reason_of(read(_signed(es256, payload), es256)) is Reason.DCC_SCHEMA_VIOLATION


def test_schema_violation_detail_names_fields_not_values(es256: cm.DccSigner) -> None:
    result = read(_signed(es256, _claims(_vaccination(dn="SECRET"))), es256)
    assert isinstance(result, Rejection) and "v[0].dn: should be a valid integer" in result.detail
    assert "SECRET" not in result.detail


@pytest.mark.parametrize("issuer", ["VN\n", "V\x00N", "X" * 81])
def test_a_cwt_issuer_with_control_characters_or_too_long_is_a_schema_violation(
    es256: cm.DccSigner, issuer: str
) -> None:
    payload = _claims(cm.dcc_vaccination_complete(), {1: issuer})
    assert reason_of(read(_signed(es256, payload), es256)) is Reason.DCC_SCHEMA_VIOLATION


UNSAFE = st.characters(categories=["Cc", "Cf", "Zl", "Zp"])
HYPOTHESIS_SIGNER = signer_for("ES256")  # @given tests cannot take the fixtures


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20), UNSAFE, st.text(max_size=20), st.sampled_from(["ci", "is", "ma"]))
def test_any_control_character_in_the_text_fields_is_a_schema_violation(
    before: str, unsafe: str, after: str, key: str
) -> None:
    cert = _vaccination(**{key: f"URN:{before}{unsafe}{after}"})
    result = read(passport(HYPOTHESIS_SIGNER, cert), HYPOTHESIS_SIGNER)
    assert reason_of(result) is Reason.DCC_SCHEMA_VIOLATION
