"""Scan events: schema v2 (sealed identities; v1 still read), signing and verifying (signature first)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kiosk import jws, keys, sealing
from kiosk.errors import EventError, SignatureError
from kiosk.events import (
    MAX_INT,
    EventDraft,
    ScanEvent,
    ScanEventV1,
    build_event,
    hash_identity,
    parse_event,
    sign_event,
    verify_event,
)
from tests.support.central import SEALER, SEALING_KEY

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
        sealer=SEALER,
    )


def test_round_trip() -> None:
    event = _event()
    assert verify_event(sign_event(event, KEY), KEY.public_key()) == event
    assert verify_event(sign_event(event, KEY).decode(), lambda kid: KEY.public_key()) == event


def test_payload_is_compact_json_in_schema_order() -> None:
    payload = _event().to_json()
    assert payload.startswith(b'{"v":2,"id":"')
    assert b" " not in payload
    assert list(json.loads(payload)) == list(ScanEvent.model_fields)


def test_identities_are_sealed_to_the_authority_and_never_alike() -> None:
    event = _event(card_identities=("162979388586171100", "001093029317"))
    assert [i[:5] for i in event.identities] == ["hpke:", "hpke:"]
    opened = [sealing.open_sealed(SEALING_KEY, "kiosk-1", i) for i in event.identities]
    assert opened == ["162979388586171100", "001093029317"]
    assert "162979388586171100" not in event.to_json().decode()
    assert _event().identity != _event().identity  # a fresh ephemeral key every time: nothing to link


def test_a_seal_opens_only_for_the_device_that_made_it() -> None:
    with pytest.raises(SignatureError, match="does not open"):
        sealing.open_sealed(SEALING_KEY, "kiosk-2", _event().identities[0])


def test_plain_identity_when_configured() -> None:
    plain = sealing.Sealer(SEALER.authority, SEALER.destination_key, plain=True)
    event = build_event(_draft(), device="k", destination="v", epoch=1, seq=1, sealer=plain)
    assert event.identities == ("plain:162979388586171100",)


def test_v1_events_are_still_read() -> None:
    fields = {k: v for k, v in json.loads(_event().to_json()).items() if k != "identities"}
    old_identity = hash_identity(IDENTITY_KEY, "national", "1")
    v1 = ScanEventV1.model_validate(fields | {"v": 1, "identity": old_identity})
    parsed = verify_event(jws.sign(v1.to_json(), KEY, kid="kiosk-1", typ="kiosk-event"), KEY.public_key())
    assert isinstance(parsed, ScanEventV1) and parsed == v1


def test_no_identity_for_no_qr() -> None:
    event = _event(kind="no_qr", verdict="fail", card_identity=None, format="unknown", direction=None)
    assert event.identities == () and event.identity is None


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
        {"v": 3},
        {"v": 1},
        {"seq": 0},
        {"ts": 1.5},
        {"clock_synced": "yes"},
        {"identities": ["NGUYEN VAN A"]},
        {"identities": ["plain:1", "plain:2", "plain:3"]},
        {"identities": "plain:1"},
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
        sealer=sealing.Sealer(SEALER.authority, SEALER.destination_key, plain=seq % 2 == 0),
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
    sealing_pem = _doc_block("sealing-private-key").encode()
    sealing_key = serialization.load_pem_private_key(sealing_pem, password=None)
    assert sealing.public_pem(sealing_key.public_key()).strip() == _doc_block("sealing-public-key")  # type: ignore[union-attr]
    draft = EventDraft(
        verdict="pass",
        reason="ok",
        format="national",
        direction="in",
        card_identities=("162979388586171100", "001093029317"),
        ts=1_700_000_123_456,
        decode_ms=12.5,
    )
    event = build_event(
        draft,
        device="kiosk-0001",
        destination="cho-ben-thanh",
        epoch=1_700_000_000_000,
        seq=1,
        sealer=sealing.Sealer(sealing_key.public_key(), bytes(32)),  # type: ignore[arg-type,union-attr]
        event_id="0b7c6f8e-3d2a-4c59-9e1f-5a4b3c2d1e0f",
        sw="0.1.0",
    )
    documented = verify_event(_doc_block("token"), key.public_key())
    assert isinstance(documented, ScanEvent)
    assert documented.to_json().decode() == _doc_block("payload")
    assert sign_event(documented, key).decode() == _doc_block("token")
    assert event.model_copy(update={"identities": documented.identities}) == documented
    opened = [sealing.open_sealed(sealing_key, "kiosk-0001", i) for i in documented.identities]  # type: ignore[arg-type]
    assert opened == ["162979388586171100", "001093029317"]


def test_documented_example_verifies_and_opens_with_other_libraries() -> None:
    from joserfc import jws as other
    from joserfc.jwk import OKPKey
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

    public = OKPKey.import_key(json.loads(_doc_block("jwk")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags alg EdDSA as superseded by RFC 9864
        obj = other.deserialize_compact(_doc_block("token"), public, algorithms=["EdDSA"])
    assert obj.payload == _doc_block("payload").encode()
    assert obj.headers() == {"alg": "EdDSA", "kid": "kiosk-0001", "typ": "kiosk-event"}
    suite = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)
    recipient = KEMKey.from_pem(_doc_block("sealing-private-key"))
    opened = []
    for sealed in json.loads(obj.payload)["identities"]:
        blob = jws.b64url_decode(sealed.removeprefix("hpke:"))
        info = b"kiosk-identity/v2 device=kiosk-0001"
        context = suite.create_recipient_context(blob[:32], recipient, info=info)
        opened.append(context.open(blob[32:]).decode())
    assert opened == ["162979388586171100", "001093029317"]


def test_documented_v1_example_still_verifies() -> None:
    key = serialization.load_pem_private_key(_doc_block("private-key").encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    event = verify_event(_doc_block("v1-token"), key.public_key())
    assert isinstance(event, ScanEventV1) and event.to_json().decode() == _doc_block("v1-payload")
    assert event.identity == hash_identity(bytes(range(32)), "national", "162979388586171100")


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
