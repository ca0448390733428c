"""The signed state message (kiosk.state): what the kiosk signs, and what a verifier accepts of it."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import jws
from kiosk.errors import SignatureError, StateError
from kiosk.health import Health, state_message
from kiosk.state import (
    MAX_STATE_BYTES,
    MAX_STATE_TOKEN_BYTES,
    STATE_TYP,
    parse_state,
    sign_state,
    verify_state,
)
from kiosk.topics import DeviceTopics

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
TOPICS = DeviceTopics("kiosk/v1", "cho-ben-thanh", "kiosk-0001")
KEYS = {"kiosk-0001": KEY.public_key(), "kiosk-0002": OTHER.public_key()}
HEALTH = Health(spool_depth=3, unsent=0, counts_today={"in": 1}, fps=29.8, clock_synced=True)


def lookup(kid: str) -> Ed25519PublicKey | None:
    """The registry: each device's public key by id."""
    return KEYS.get(kid)


def signed(data: dict[str, Any] | bytes, key: Ed25519PrivateKey = KEY, kid: str = "kiosk-0001") -> bytes:
    """`data` (a dict as compact JSON, or raw bytes) signed as a state."""
    payload = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return jws.sign(payload, key, kid=kid, typ=STATE_TYP)


ONLINE = {"status": "online", "device": "kiosk-0001", "destination": "cho-ben-thanh", "ts": 1_700_000_123_456}


def test_the_kiosks_online_state_verifies_with_its_exact_json() -> None:
    payload = state_message("online", TOPICS, ts_ms=5, health=HEALTH)
    token = sign_state(payload, KEY, device="kiosk-0001")
    state = verify_state(token, lookup)
    assert (state.status, state.device, state.destination, state.ts) == (
        "online", "kiosk-0001", "cho-ben-thanh", 5,
    )  # fmt: skip
    assert state.payload == payload and json.loads(state.text)["fps"] == 29.8
    header = jws.verify(token, KEY.public_key()).header
    assert header == {"alg": "EdDSA", "kid": "kiosk-0001", "typ": "kiosk-state"}


def test_the_will_is_signed_without_a_time() -> None:
    token = sign_state(state_message("offline", TOPICS), KEY, device="kiosk-0001")
    state = verify_state(token, lookup)
    assert (state.status, state.ts) == ("offline", None)


@pytest.mark.parametrize("status", ["online", "stopped"])
def test_only_the_will_may_leave_out_the_time(status: str) -> None:
    # A time-less online could be replayed as "now" for ever by whoever kept a copy.
    with pytest.raises(StateError, match="must carry its ts"):
        verify_state(signed({**ONLINE, "status": status, "ts": None}), lookup)
    with pytest.raises(StateError, match="must carry its ts"):
        verify_state(signed({k: v for k, v in ONLINE.items() if k != "ts"} | {"status": status}), lookup)


def test_an_unsigned_state_is_refused() -> None:
    for plain in (json.dumps(ONLINE).encode(), state_message("online", TOPICS, ts_ms=5, health=HEALTH)):
        with pytest.raises(SignatureError):  # its "0.1.0" version even splits into three parts
            verify_state(plain, lookup)


def test_a_forged_or_tampered_state_is_refused() -> None:
    with pytest.raises(SignatureError, match="bad signature"):
        verify_state(signed(ONLINE, key=OTHER), lookup)  # another key claiming kiosk-0001
    header, _, signature = signed({**ONLINE, "status": "offline"}).split(b".")
    tampered = jws.b64url(json.dumps(ONLINE).encode()).encode()
    with pytest.raises(SignatureError, match="bad signature"):
        verify_state(b".".join((header, tampered, signature)), lookup)


def test_a_state_signed_by_another_device_than_it_names_is_refused() -> None:
    with pytest.raises(SignatureError, match="signed by 'kiosk-0002'"):
        verify_state(signed(ONLINE, key=OTHER, kid="kiosk-0002"), lookup)


def test_an_unknown_or_revoked_signer_and_a_wrong_typ_are_refused() -> None:
    with pytest.raises(SignatureError, match="unknown key id"):
        verify_state(signed({**ONLINE, "device": "kiosk-9"}, kid="kiosk-9"), lookup)
    with pytest.raises(SignatureError, match="typ must be 'kiosk-state'"):
        verify_state(jws.sign(json.dumps(ONLINE).encode(), KEY, kid="kiosk-0001", typ="kiosk-event"), lookup)


class CountingLookup:
    """A registry lookup that counts its calls: a refused bound must never reach it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, kid: str) -> Ed25519PublicKey | None:
        self.calls += 1
        return lookup(kid)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(b"x" * (MAX_STATE_TOKEN_BYTES + 1), "larger than", id="huge"),
        pytest.param(b"a.\xff\xfe.b", "other than ASCII", id="not-ascii"),
        pytest.param(json.dumps(ONLINE).encode("utf-16"), "other than ASCII", id="utf16-plain"),
        pytest.param(b"a." + b"A" * (MAX_STATE_TOKEN_BYTES - 200) + b".b", "payload is", id="big-payload"),
    ],
)
def test_the_bounds_are_checked_before_any_key_or_signature(token: bytes, reason: str) -> None:
    keys = CountingLookup()
    with pytest.raises(StateError, match=reason):
        verify_state(token, keys)
    assert keys.calls == 0


def test_the_documented_token_bound_is_the_one_checked() -> None:
    from tests.test_events import DOC

    assert f"a token of at most {MAX_STATE_TOKEN_BYTES:,} bytes" in " ".join(DOC.read_text().split())


def test_the_largest_state_payload_fits_the_token_bound() -> None:
    padding = "x" * (MAX_STATE_BYTES - len(json.dumps({**ONLINE, "pad": ""}, separators=(",", ":"))))
    token = signed({**ONLINE, "pad": padding})
    assert len(token) <= MAX_STATE_TOKEN_BYTES
    assert verify_state(token, lookup).ts == ONLINE["ts"]
    with pytest.raises(StateError, match="larger than"):
        verify_state(signed({**ONLINE, "pad": padding + "x"}), lookup)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(json.dumps({**ONLINE, "alarms": [[[["deep"]]]]}).encode(), "nested", id="too-deep"),
        pytest.param(b'{"status":"online","x":' + b"[" * 10_000, "nested", id="10000-brackets"),
        pytest.param(json.dumps(ONLINE).encode("utf-16"), "UTF-8", id="utf16"),
        pytest.param(b"\xff" * 10, "UTF-8", id="not-utf8"),
        pytest.param(b'{"status":"online","status":"offline"}', "repeats the key", id="repeated-key"),
        pytest.param(json.dumps({**ONLINE, "ts": 2**53}).encode(), "ts must be", id="ts-2**53"),
        pytest.param(json.dumps({**ONLINE, "ts": -1}).encode(), "ts must be", id="ts-negative"),
        pytest.param(json.dumps({**ONLINE, "ts": True}).encode(), "ts must be", id="ts-bool"),
        pytest.param(json.dumps({**ONLINE, "ts": 5.0}).encode(), "ts must be", id="ts-float"),
        pytest.param(json.dumps({**ONLINE, "status": "ONLINE"}).encode(), "status one of", id="status"),
        pytest.param(json.dumps({**ONLINE, "device": "kiosk-０"}).encode(), "destination", id="id-fullwidth"),
        pytest.param(json.dumps({**ONLINE, "destination": None}).encode(), "destination", id="no-dest"),
        pytest.param(b"[]", "JSON object", id="a-list"),
    ],
)
def test_a_signed_payload_that_is_not_a_state_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(StateError, match=reason):
        verify_state(signed(payload), lookup)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    change=st.dictionaries(st.sampled_from(["status", "device", "destination", "ts", "x"]), json_values),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1"]),
)
def test_any_signed_payload_is_a_state_or_a_state_error(change: dict[str, Any], encoding: str) -> None:
    text = json.dumps(ONLINE | change, ensure_ascii=False)
    try:
        payload = text.encode(encoding, "surrogatepass")
    except UnicodeEncodeError:
        payload = text.encode("utf-8", "surrogatepass")
    try:
        state = verify_state(signed(payload), lookup)
    except StateError:
        return
    except SignatureError as e:  # only when the payload names another device than the signer
        assert "but was signed by" in str(e)
        return
    assert state.status in ("online", "stopped", "offline") and state.payload == payload
    assert state.ts is None or 0 <= state.ts <= 2**53 - 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_are_refused_with_a_state_or_signature_error(token: bytes) -> None:
    with pytest.raises((StateError, SignatureError)):
        verify_state(token, lookup)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_state_is_total(payload: bytes) -> None:
    with contextlib.suppress(StateError):
        parse_state(payload)


def test_the_documented_state_tokens_are_what_the_kiosk_signs() -> None:
    from tests.test_e2e import verify_independently
    from tests.test_events import _doc_block

    key = serialization.load_pem_private_key(_doc_block("private-key").encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    jwk = json.loads(_doc_block("jwk"))
    stopped = state_message("stopped", TOPICS, ts_ms=1_700_000_999_000)
    assert stopped.decode() == _doc_block("state-payload")
    assert sign_state(stopped, key, device="kiosk-0001").decode() == _doc_block("state-token")
    will = sign_state(state_message("offline", TOPICS), key, device="kiosk-0001")
    assert will.decode() == _doc_block("will-token")
    for name in ("state-token", "will-token"):
        token = _doc_block(name).encode()
        assert verify_independently(token, jwk) == json.loads(verify_state(token, key.public_key()).payload)
