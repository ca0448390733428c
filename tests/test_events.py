"""Scan events: schema, identity hashing, signing and verifying (signature before parsing)."""

from __future__ import annotations

import hashlib
import hmac
import json
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kiosk import jws, keys
from kiosk.errors import EventError, SignatureError
from kiosk.events import (
    MAX_INT,
    EventDraft,
    ScanEvent,
    build_event,
    hash_identity,
    parse_event,
    sign_event,
    verify_event,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
IDENTITY_KEY = bytes(range(100, 132))


def _draft(**changes: object) -> EventDraft:
    fields: dict[str, object] = {
        "verdict": "pass",
        "reason": "ok",
        "format": "national",
        "direction": "in",
        "card_identity": "162979388586171100",
        "ts": 1_700_000_000_000,
        "decode_ms": 4.25,
    }
    return EventDraft(**(fields | changes))  # type: ignore[arg-type]


def _event(seq: int = 1, **changes: object) -> ScanEvent:
    return build_event(
        _draft(**changes),
        device="kiosk-1",
        destination="venue-1",
        epoch=42,
        seq=seq,
        identity_key=IDENTITY_KEY,
    )


def test_round_trip() -> None:
    event = _event()
    assert verify_event(sign_event(event, KEY), KEY.public_key()) == event
    assert verify_event(sign_event(event, KEY).decode(), lambda kid: KEY.public_key()) == event


def test_payload_is_compact_json_in_schema_order() -> None:
    payload = _event().to_json()
    assert payload.startswith(b'{"v":1,"id":"')
    assert b" " not in payload
    assert list(json.loads(payload)) == list(ScanEvent.model_fields)


def test_identity_is_keyed_hash_of_format_and_id() -> None:
    expected = hmac.new(IDENTITY_KEY, b"national:162979388586171100", hashlib.sha256).hexdigest()
    assert _event().identity == "hmac:" + expected
    assert hash_identity(IDENTITY_KEY, "cccd", "162979388586171100") != _event().identity
    assert "162979388586171100" not in _event().to_json().decode()


def test_plain_identity_when_configured() -> None:
    event = build_event(
        _draft(), device="k", destination="v", epoch=1, seq=1, identity_key=IDENTITY_KEY, plain_identity=True
    )
    assert event.identity == "plain:162979388586171100"


def test_no_identity_for_no_qr() -> None:
    assert (
        _event(kind="no_qr", verdict="fail", card_identity=None, format="unknown", direction=None).identity
        is None
    )


def test_draft_has_no_place_for_a_name() -> None:
    with pytest.raises(ValidationError):
        EventDraft(verdict="pass", reason="ok", ts=1, name="NGUYEN VAN A")  # type: ignore[call-arg]


def test_event_is_frozen_and_validated() -> None:
    event = _event()
    with pytest.raises(ValidationError):
        event.seq = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ScanEvent.model_validate(event.model_dump() | {"seq": 0})


def test_wrong_key_is_refused() -> None:
    token = sign_event(_event(), KEY)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_event(token, Ed25519PrivateKey.generate().public_key())


def test_unknown_device_is_refused() -> None:
    with pytest.raises(SignatureError, match="unknown key id"):
        verify_event(sign_event(_event(), KEY), lambda kid: None)


def test_tampered_payload_is_refused() -> None:
    header, _, signature = sign_event(_event(), KEY).split(b".")
    forged = _event().model_copy(update={"verdict": "fail"}).to_json()
    with pytest.raises(SignatureError, match="bad signature"):
        verify_event(header + b"." + jws.b64url(forged).encode() + b"." + signature, KEY.public_key())


def test_signature_is_checked_before_the_payload_is_parsed() -> None:
    garbage = jws.sign(b"not json at all", Ed25519PrivateKey.generate(), kid="kiosk-1", typ="kiosk-event")
    with pytest.raises(SignatureError) as caught:
        verify_event(garbage, KEY.public_key())
    assert not isinstance(caught.value, EventError)


def test_signed_payload_that_is_not_an_event() -> None:
    token = jws.sign(b'{"v":1,"seq":"x"}', KEY, kid="kiosk-1", typ="kiosk-event")
    with pytest.raises(EventError, match="not a valid schema-v1 event"):
        verify_event(token, KEY.public_key())


def test_other_token_types_are_refused() -> None:
    token = jws.sign(_event().to_json(), KEY, kid="kiosk-1", typ="kiosk-ack")
    with pytest.raises(SignatureError, match="typ"):
        verify_event(token, KEY.public_key())


def test_device_must_be_the_signer() -> None:
    token = jws.sign(_event().to_json(), KEY, kid="kiosk-2", typ="kiosk-event")
    with pytest.raises(EventError, match="signed by 'kiosk-2'"):
        verify_event(token, KEY.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"seq": 0},
        {"ts": 1.5},
        {"clock_synced": "yes"},
        {"identity": "NGUYEN VAN A"},
        {"direction": "sideways"},
        {"extra": 1},
    ],
)
def test_parse_refuses_invalid_events(change: dict[str, object]) -> None:
    data = json.loads(_event().to_json()) | change
    with pytest.raises(EventError):
        parse_event(json.dumps(data).encode())


@given(
    seq=st.integers(1, MAX_INT),
    ts=st.integers(0, 2**45),
    decode_ms=st.floats(0, 10_000, allow_nan=False),
    card=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=64),
    verdict=st.sampled_from(["pass", "fail"]),
)
def test_any_event_round_trips(seq: int, ts: int, decode_ms: float, card: str, verdict: str) -> None:
    event = build_event(
        _draft(ts=ts, decode_ms=decode_ms, card_identity=card, verdict=verdict),
        device="kiosk-1",
        destination="venue-1",
        epoch=7,
        seq=seq,
        identity_key=IDENTITY_KEY,
        plain_identity=seq % 2 == 0,
    )
    assert verify_event(sign_event(event, KEY), KEY.public_key()) == event


AUTHORITY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def test_ack_round_trip_with_authority_key() -> None:
    from kiosk.events import Ack, sign_ack, verify_ack
    from kiosk.keys import thumbprint

    ack = Ack(device="kiosk-1", epochs={"42": 17}, resend=[(42, 3, 5)], ts=1)
    token = sign_ack(ack, AUTHORITY)
    authority_keys = {thumbprint(AUTHORITY.public_key()): AUTHORITY.public_key()}
    parsed = verify_ack(token, authority_keys.get)
    assert parsed == ack and parsed.acked() == {42: 17}
    with pytest.raises(SignatureError, match="unknown key id"):
        verify_ack(sign_ack(ack, KEY), authority_keys.get)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":1,"device":"kiosk-1","epochs":{"x":1},"ts":1}',
        b'{"v":1,"device":"kiosk-1","epochs":[],"ts":1}',
        b"[]",
    ],
)
def test_bad_acks_are_refused(payload: bytes) -> None:
    from kiosk.events import verify_ack

    token = jws.sign(payload, AUTHORITY, kid="a", typ="kiosk-ack")
    with pytest.raises(EventError):
        verify_ack(token, AUTHORITY.public_key())


DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def _doc_block(name: str) -> str:
    text = DOC.read_text()
    start = text.index(f"<!-- example:{name} -->")
    fence = text.index("```", start)
    body_start = text.index("\n", fence) + 1
    return text[body_start : text.index("```", body_start)].strip()


def test_documented_example_is_what_we_produce() -> None:
    key = serialization.load_pem_private_key(_doc_block("private-key").encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert json.loads(_doc_block("jwk")) == keys.public_jwk(key.public_key())
    draft = EventDraft(
        verdict="pass",
        reason="ok",
        format="national",
        direction="in",
        card_identity="162979388586171100",
        ts=1_700_000_123_456,
        decode_ms=12.5,
    )
    event = build_event(
        draft,
        device="kiosk-0001",
        destination="cho-ben-thanh",
        epoch=1_700_000_000_000,
        seq=1,
        identity_key=bytes(range(32)),
        event_id="0b7c6f8e-3d2a-4c59-9e1f-5a4b3c2d1e0f",
        sw="0.1.0",
    )
    assert event.to_json().decode() == _doc_block("payload")
    assert sign_event(event, key).decode() == _doc_block("token")
    assert verify_event(_doc_block("token"), key.public_key()) == event


def test_documented_example_verifies_with_another_jose_library() -> None:
    from joserfc import jws as other
    from joserfc.jwk import OKPKey

    public = OKPKey.import_key(json.loads(_doc_block("jwk")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags alg EdDSA as superseded by RFC 9864
        obj = other.deserialize_compact(_doc_block("token"), public, algorithms=["EdDSA"])
    assert obj.payload == _doc_block("payload").encode()
    assert obj.headers() == {"alg": "EdDSA", "kid": "kiosk-0001", "typ": "kiosk-event"}


def test_topics_are_built_and_parsed() -> None:
    from kiosk.topics import DeviceTopics, parse_topic, statuslist_topic, subscription

    topics = DeviceTopics("kiosk/v1", "cho-ben-thanh", "kiosk-0001")
    assert topics.event == "kiosk/v1/cho-ben-thanh/kiosk-0001/event"
    assert topics.state.endswith("/state") and topics.ack.endswith("/ack")
    assert statuslist_topic() == "kiosk/v1/statuslist"
    assert subscription(leaf="event") == "kiosk/v1/+/+/event"
    assert parse_topic(topics.ack) == (topics, "ack")
    for other in ("kiosk/v1/statuslist", "kiosk/v1/a/b/c/event", "kiosk/v1/A/b/event", "other/x/y/event"):
        assert parse_topic(other) is None
    with pytest.raises(ValueError, match="not a valid id"):
        DeviceTopics("kiosk/v1", "venue/#", "kiosk-1")
