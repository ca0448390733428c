"""Inspector cards: made and signed by the authority, verified by the kiosk, refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import jws
from kiosk.cards import Rejection, parse_card
from kiosk.cards.inspector import (
    CLOCK_SKEW,
    PREFIX,
    TYP,
    InspectorCard,
    is_inspector_payload,
    make_inspector_payload,
    parse_inspector_card,
)
from kiosk.config import DecoderConfig
from kiosk.decoder import open_decoder
from kiosk.errors import InspectorCardError
from kiosk.events import verify_event
from kiosk.keys import load_public_keys, public_pem, thumbprint
from kiosk.reasons import Reason
from kiosk.scenes import Scene, render
from kiosk.spool import Spool
from kiosk.venue_check import inspector_draft
from tests.support.central import SEALER

AUTHORITY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEYS = {thumbprint(AUTHORITY.public_key()): AUTHORITY.public_key()}
FROM = datetime(2021, 9, 1, 8, 0, tzinfo=UTC)
UNTIL = datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2021, 9, 15, 10, 0, tzinfo=UTC)


def _card(key: Ed25519PrivateKey = AUTHORITY, **changes: object) -> str:
    fields: dict[str, object] = {
        "inspector": "INS-0042",
        "name": "Trần Thị Bích Ngọc",
        "valid_from": FROM,
        "valid_until": UNTIL,
    }
    return make_inspector_payload(key, **(fields | changes))  # type: ignore[arg-type]


def _signed(claims: dict[str, object], *, key: Ed25519PrivateKey = AUTHORITY, typ: str = TYP) -> bytes:
    """A card whose JSON the test writes itself, signed properly (for payloads make would refuse)."""
    kid = thumbprint(key.public_key())
    return PREFIX.encode() + jws.sign(json.dumps(claims).encode(), key, kid=kid, typ=typ)


def _reason(data: bytes | str, **options: object) -> Reason:
    raw = data.encode() if isinstance(data, str) else data
    result = parse_inspector_card(raw, **({"keys": KEYS, "now": NOW} | options))  # type: ignore[arg-type]
    assert isinstance(result, Rejection), result
    return result.reason


def test_a_card_made_by_the_authority_is_verified_with_its_fields() -> None:
    card = parse_inspector_card(_card().encode(), keys=KEYS, now=NOW)
    assert isinstance(card, InspectorCard)
    assert (card.inspector, card.name, card.identity, card.format) == (
        "INS-0042",
        "Trần Thị Bích Ngọc",
        "INS-0042",
        "inspector",
    )
    assert (card.valid_from, card.valid_until) == (FROM, UNTIL)
    assert card.kid == thumbprint(AUTHORITY.public_key())
    assert card.display_name == "Trần Thị Bích Ngọc (INS-0042)"
    assert card.masked_name == "Trần T** B** Ngọc"


def test_the_card_is_short_enough_for_a_phone_and_a_kiosk_camera() -> None:
    payload = _card(name=("Nguyễn Thị " * 6)[:64].strip())
    assert payload.startswith(PREFIX) and payload.isascii()
    # A longest name (64 characters of Vietnamese) still fits a version-16 code (81 modules) at level M.
    version = segno.make(payload, error="m", micro=False).version
    assert len(payload) <= 450 and isinstance(version, int) and version <= 16


def test_the_name_is_optional_and_its_spaces_are_tidied() -> None:
    bare = parse_inspector_card(_card(name=None).encode(), keys=KEYS, now=NOW)
    assert isinstance(bare, InspectorCard) and bare.name is None and bare.display_name == "INS-0042"
    tidy = parse_inspector_card(_card(name="  Lê   Văn Tám ").encode(), keys=KEYS, now=NOW)
    assert isinstance(tidy, InspectorCard) and tidy.name == "Lê Văn Tám"


def test_keys_may_be_a_mapping_one_key_a_lookup_or_the_pem_file(tmp_path: Path) -> None:
    pem = tmp_path / "authority.pem"
    pem.write_text(public_pem(OTHER.public_key()) + public_pem(AUTHORITY.public_key()))
    for keys in (KEYS, AUTHORITY.public_key(), KEYS.get, load_public_keys(pem)):
        assert isinstance(parse_inspector_card(_card().encode(), keys=keys, now=NOW), InspectorCard)


def test_a_card_signed_by_another_key_is_an_unknown_key() -> None:
    assert _reason(_card(OTHER)) is Reason.INSPECTOR_CARD_UNKNOWN_KEY
    assert _reason(_card(OTHER), keys=AUTHORITY.public_key()) is Reason.INSPECTOR_CARD_UNKNOWN_KEY
    assert _reason(_card(), keys={}) is Reason.INSPECTOR_CARD_UNKNOWN_KEY


def test_a_forgery_naming_the_authority_key_is_invalid() -> None:
    claims = {"v": 1, "inspector": "FAKE", "nbf": 0, "exp": 2_000_000_000}
    payload = json.dumps(claims).encode()
    token = jws.sign(payload, OTHER, kid=thumbprint(AUTHORITY.public_key()), typ=TYP)
    assert _reason(PREFIX.encode() + token) is Reason.INSPECTOR_CARD_INVALID


def test_a_tampered_payload_or_signature_is_invalid() -> None:
    header, payload, signature = _card().removeprefix(PREFIX).split(".")
    claims = json.loads(jws.b64url_decode(payload))
    longer = jws.b64url(json.dumps(claims | {"exp": claims["exp"] + 86400 * 365}).encode())
    assert _reason(f"{PREFIX}{header}.{longer}.{signature}") is Reason.INSPECTOR_CARD_INVALID
    flipped = ("B" if signature[5] == "A" else "A").join((signature[:5], signature[6:]))
    assert _reason(f"{PREFIX}{header}.{payload}.{flipped}") is Reason.INSPECTOR_CARD_INVALID
    assert _reason(f"{PREFIX}{header}.{payload}.") is Reason.INSPECTOR_CARD_INVALID


def test_outside_its_validity_the_card_is_expired() -> None:
    card = _card()
    assert _reason(card, now=UNTIL) is Reason.INSPECTOR_CARD_EXPIRED
    assert isinstance(
        parse_inspector_card(card.encode(), keys=KEYS, now=UNTIL - timedelta(seconds=1)), InspectorCard
    )
    assert _reason(card, now=datetime(2022, 1, 1, tzinfo=UTC)) is Reason.INSPECTOR_CARD_EXPIRED


def test_before_its_validity_the_card_is_refused_unless_the_clock_is_not_synced() -> None:
    card = _card().encode()
    early = FROM - CLOCK_SKEW - timedelta(seconds=1)
    assert _reason(card, now=early) is Reason.INSPECTOR_CARD_EXPIRED
    assert isinstance(parse_inspector_card(card, keys=KEYS, now=FROM - CLOCK_SKEW), InspectorCard)
    # A Pi without a real-time clock boots in the past: that must not lock the inspector out.
    lenient = parse_inspector_card(card, keys=KEYS, now=datetime(2021, 1, 1, tzinfo=UTC), clock_synced=False)
    assert isinstance(lenient, InspectorCard)
    assert _reason(card, now=UNTIL, clock_synced=False) is Reason.INSPECTOR_CARD_EXPIRED


def test_a_naive_now_is_read_as_utc() -> None:
    assert isinstance(
        parse_inspector_card(_card().encode(), keys=KEYS, now=NOW.replace(tzinfo=None)), InspectorCard
    )


@pytest.mark.parametrize(
    "data",
    [
        PREFIX,
        PREFIX + "hello",
        PREFIX + "a.b.c",
        PREFIX + "..",
        PREFIX + "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
        "NOT-AN-INSPECTOR:" + _card().removeprefix(PREFIX),
        _card().lower(),
        "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422",
        PREFIX + "x" * 2000,
    ],
)
def test_garbage_is_invalid(data: str) -> None:
    assert _reason(data) is Reason.INSPECTOR_CARD_INVALID


def test_non_utf8_bytes_after_the_prefix_are_invalid() -> None:
    assert _reason(PREFIX.encode() + b"\xff\xfe\x00.\x80.\x81") is Reason.INSPECTOR_CARD_INVALID


@pytest.mark.parametrize(
    "claims",
    [
        {"v": 2, "inspector": "I1", "nbf": 0, "exp": 2_000_000_000},
        {"v": 1, "inspector": "I 1", "nbf": 0, "exp": 2_000_000_000},
        {"v": 1, "inspector": "I1", "nbf": "0", "exp": 2_000_000_000},
        {"v": 1, "inspector": "I1", "nbf": 0, "exp": 2_000_000_000, "scope": "all"},
        {"v": 1, "inspector": "I1", "nbf": 2_000_000_000, "exp": 0},
        {"v": 1, "inspector": "I1", "name": "", "nbf": 0, "exp": 2_000_000_000},
        {"v": 1, "inspector": "I1", "name": "A\nB", "nbf": 0, "exp": 2_000_000_000},
        {"v": 1, "inspector": "I1", "exp": 2_000_000_000},
        {"v": 1, "inspector": "I1", "nbf": True, "exp": 2_000_000_000},
    ],
)
def test_a_signed_payload_that_breaks_the_format_is_invalid(claims: dict[str, object]) -> None:
    assert _reason(_signed(claims)) is Reason.INSPECTOR_CARD_INVALID


def test_a_token_of_another_type_is_invalid() -> None:
    claims = {"v": 1, "inspector": "I1", "nbf": 0, "exp": 2_000_000_000}
    assert _reason(_signed(claims, typ="kiosk-statuslist")) is Reason.INSPECTOR_CARD_INVALID
    assert isinstance(parse_inspector_card(_signed(claims), keys=KEYS, now=NOW), InspectorCard)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_after_the_prefix_give_a_rejection_never_an_exception(tail: bytes) -> None:
    result = parse_inspector_card(PREFIX.encode() + tail, keys=KEYS, now=NOW)
    assert isinstance(result, Rejection)
    assert result.reason in {Reason.INSPECTOR_CARD_INVALID, Reason.INSPECTOR_CARD_UNKNOWN_KEY}


_B64URL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120)


@settings(max_examples=200, deadline=None)
@given(st.lists(_B64URL | st.text(max_size=40), min_size=1, max_size=4))
def test_any_dotted_text_after_the_prefix_gives_a_rejection(parts: list[str]) -> None:
    result = parse_inspector_card(
        (PREFIX + ".".join(parts)).encode("utf-8", "surrogatepass"), keys=KEYS, now=NOW
    )
    assert isinstance(result, Rejection) and result.reason is not Reason.INTERNAL_ERROR


def test_the_prefix_tells_an_inspector_card_from_other_codes() -> None:
    card = _card().encode()
    assert is_inspector_payload(card)
    assert is_inspector_payload(b"\xef\xbb\xbf" + card + b"\r\n")
    assert isinstance(parse_inspector_card(b"\xef\xbb\xbf" + card + b"\n", keys=KEYS, now=NOW), InspectorCard)
    assert not is_inspector_payload(b"001093029317|NGUYEN VAN A|1987-01-18|0|1|")
    assert not is_inspector_payload(b"HC1:NCFOXN%TS3DH")
    # A kiosk that does not know inspector cards refuses one like any unknown code.
    assert isinstance(parse_card(card, trust=None, now=NOW), Rejection)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"inspector": "has space"}, "inspector"),
        ({"inspector": ""}, "inspector"),
        ({"name": "x" * 65}, "name"),
        ({"valid_until": FROM}, "before it starts"),
        ({"valid_from": datetime(2021, 9, 1, 8, 0)}, "time zone"),
    ],
)
def test_make_refuses_what_a_kiosk_could_not_read(changes: dict[str, object], words: str) -> None:
    with pytest.raises(InspectorCardError, match=words):
        _card(**changes)  # type: ignore[arg-type]


def test_the_draft_of_a_valid_card_is_a_signed_inspection_pass(tmp_path: Path) -> None:
    card = parse_inspector_card(_card().encode(), keys=KEYS, now=NOW)
    draft = inspector_draft(card, at=NOW, clock_synced=True, decode_ms=4.25)
    device_key = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
    with Spool.open(
        tmp_path / "spool.db",
        device_id="kiosk-1",
        destination_id="venue-1",
        signing_key=device_key,
        sealer=SEALER,
    ) as spool:
        event = verify_event(spool.record(draft).token, device_key.public_key())
    assert (event.kind, event.verdict, event.reason, event.format) == (
        "inspection",
        "pass",
        "inspector_card_ok",
        "inspector",
    )
    assert event.direction is None and event.identity is not None and event.identity.startswith("hpke:")
    assert event.ts == int(NOW.timestamp() * 1000) and event.decode_ms == 4.25


def test_the_draft_of_a_refused_card_is_a_plain_failed_scan() -> None:
    refused = parse_inspector_card(_card(OTHER).encode(), keys=KEYS, now=NOW)
    draft = inspector_draft(refused, at=NOW, clock_synced=False)
    assert (draft.kind, draft.verdict, draft.reason, draft.format) == (
        "scan",
        "fail",
        "inspector_card_unknown_key",
        "inspector",
    )
    assert draft.card_identity is None and draft.clock_synced is False


@pytest.mark.parametrize(
    "scene",
    [
        Scene(module_px=4.0, phone=True, tilt=0.15, blur_sigma=0.8, noise_sigma=4.0),
        Scene(module_px=3.5, rotation_deg=12.0, contrast=0.6, noise_sigma=3.0),
    ],
)
def test_a_card_held_up_to_the_camera_is_read(scene: Scene) -> None:
    payload = _card(name="Nguyễn Hoàng Phương Thảo")
    symbols = open_decoder(DecoderConfig()).decode(render(payload, scene)).symbols
    assert [s.raw for s in symbols] == [payload.encode()]


def test_the_example_in_the_docs_verifies_with_the_test_key() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "cards.md").read_text(encoding="utf-8")
    example = next(line.split()[-1] for line in text.splitlines() if line.startswith("QR text "))
    card = parse_inspector_card(example.encode(), keys=AUTHORITY.public_key(), now=NOW)
    assert isinstance(card, InspectorCard)
    assert (card.inspector, card.name, card.kid) == (
        "INS-0042",
        "Lê Văn Tám",
        thumbprint(AUTHORITY.public_key()),
    )
    # Ed25519 signatures are deterministic: making the card again gives the very same text.
    vn = timezone(timedelta(hours=7))
    again = _card(
        name="Lê Văn Tám",
        valid_from=datetime(2021, 9, 1, 8, tzinfo=vn),
        valid_until=datetime(2021, 10, 1, 8, tzinfo=vn),
    )
    assert again == example
