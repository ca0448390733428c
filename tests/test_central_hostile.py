"""No message stops the ingest: hostile events and states are refused with a reason, and counted.

With nothing more than one device's broker login (its key, its topics), each of
these once raised out of `Processor.handle` or `flush` and stopped the ingest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import jws
from kiosk.central.ingest import Processor
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import Store, open_store
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import TestDevice

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

AUTHORITY = Ed25519PrivateKey.generate()
K1 = TestDevice("kiosk-1", "shop-1")


def _processor(store: Store) -> Processor:
    Registry(store).add(parse_registration(json.dumps(K1.registration())))
    store.commit()
    return Processor(
        store=store, registry=Registry(store), authority_key=AUTHORITY, identities=central_support.OPENER
    )


@pytest.fixture
def processor(store_url: str) -> Iterator[Processor]:
    with open_store(store_url) as store:
        yield _processor(store)


def _signed(payload: bytes, *, typ: str = "kiosk-event") -> bytes:
    """A payload signed by the device's own key: only a broker login and that key are needed."""
    return jws.sign(payload, K1.key, kid=K1.device, typ=typ)


def _event_with(**change: Any) -> bytes:
    data = json.loads(K1.event(1).to_json()) | change
    return _signed(json.dumps(data, separators=(",", ":")).encode())


def _state_json(**change: Any) -> bytes:
    data = {"status": "online", "device": K1.device, "destination": K1.destination, "ts": 1} | change
    return json.dumps(data).encode()


def _signed_state(payload: bytes) -> bytes:
    return _signed(payload, typ="kiosk-state")


def _state(**change: Any) -> bytes:
    """A state signed by the device's own key, with fields changed."""
    return _signed_state(_state_json(**change))


def _deep_header_token() -> bytes:
    return f"{jws.b64url(b'[' * 100_000)}.{jws.b64url(b'{}')}.{jws.b64url(bytes(64))}".encode()


HOSTILE = [
    pytest.param("event", _deep_header_token(), "bad_signature", id="header-100000-brackets"),
    pytest.param("event", _event_with(epoch=2**63), "bad_event", id="epoch-2**63"),
    pytest.param("event", _event_with(epoch=2**64), "bad_event", id="epoch-2**64"),
    pytest.param("event", _event_with(seq=2**63), "bad_event", id="seq-2**63"),
    pytest.param("event", _event_with(ts=-1), "bad_event", id="ts-negative"),
    pytest.param("event", _event_with(sw="0.1\u0000"), "bad_event", id="sw-with-nul"),
    pytest.param("event", _event_with(format="inspector"), "bad_event", id="passed-scan-of-an-inspector"),
    pytest.param(
        "event",
        _event_with(kind="no_qr", direction=None, verdict="fail"),
        "bad_event",
        id="no-qr-with-a-card",
    ),
    pytest.param("event", _signed(b'{"v":1,"v":1}'), "bad_event", id="repeated-key"),
    pytest.param("event", _signed(b"[" * 2000), "bad_event", id="payload-2000-brackets"),
    pytest.param("event", _signed(b"[" * 100_000), "bad_signature", id="token-over-4096-bytes"),
    pytest.param("event", _signed("{}".encode("utf-16")), "bad_event", id="payload-utf16"),
    pytest.param("event", b"x" * 100_000, "bad_signature", id="huge-garbage"),
    pytest.param(
        "state", _signed_state(_state_json().decode().encode("utf-16")), "bad_state", id="state-utf16"
    ),
    pytest.param("state", _state(ts=2**64), "bad_state", id="state-ts-2**64"),
    pytest.param("state", _state(ts="soon"), "bad_state", id="state-ts-text"),
    pytest.param(
        "state", _signed_state(b'{"status":"online","x":' + b"[" * 40_000), "bad_state", id="state-nested"
    ),
    pytest.param("state", _state(alarms=[[[[[["deep"]]]]]]), "bad_state", id="state-too-deep"),
    pytest.param("state", _signed_state(b"\xff" * 10), "bad_state", id="state-not-utf8"),
    pytest.param("state", _signed_state(b"[" * 100_000), "bad_state", id="state-over-64kib"),
    pytest.param("state", b"x" * 100_000, "bad_state", id="state-huge-garbage"),
    pytest.param("state", _state_json().decode().encode("utf-16"), "bad_state", id="state-unsigned-utf16"),
    pytest.param("state", _state_json(), "bad_signature", id="state-unsigned"),
    pytest.param("state", _signed(_state_json()), "bad_signature", id="state-typed-as-an-event"),
]


@pytest.mark.parametrize(("leaf", "payload", "reason"), HOSTILE)
def test_a_hostile_message_is_refused_counted_and_the_ingest_goes_on(
    processor: Processor, leaf: str, payload: bytes, reason: str
) -> None:
    processor.handle(K1.topic(leaf), payload)
    processor.handle(K1.topic(), K1.token(1))
    processor.flush()
    assert processor.stats.rejected == {reason: 1}
    assert processor.stats.stored == 1
    assert processor._store.reject_counts() == {reason: 1}


def test_the_largest_event_is_within_the_stated_bounds(processor: Processor) -> None:
    from kiosk.events import MAX_EVENT_PAYLOAD_BYTES, MAX_EVENT_TOKEN_BYTES, MAX_INT

    widest = ("\U0001f600" * 128, "\U0001f601" * 128)  # the most identities, 4 bytes a character in UTF-8
    event = K1.event(MAX_INT, ts=MAX_INT, epoch=MAX_INT, card_identities=widest, reason="r" * 64)
    payload = event.to_json()
    assert len(payload) <= MAX_EVENT_PAYLOAD_BYTES
    token = _signed(payload)
    assert len(token) <= MAX_EVENT_TOKEN_BYTES
    processor.handle(K1.topic(), token)
    processor.flush()
    assert processor.stats.stored == 1 and not processor.stats.rejected


integers = (
    st.sampled_from([0, 1, -1, 2**31, 2**53, 2**53 - 1, 2**63 - 1, 2**63, 2**64, 10**30]) | st.integers()
)
texts = st.text(max_size=80) | st.sampled_from(["", "\u0000", "\ud800", "kiosk-1", "shop-1", "in", "scan"])
json_scalars = st.none() | st.booleans() | integers | st.floats() | texts


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and objects of `inner`: one level deeper of JSON."""
    # A named function rather than a lambda: hypothesis reads `extend`'s source to check that it uses
    # its argument, and a lambda's source is found by searching lines, which can fail.
    return st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3)


json_values = st.recursive(json_scalars, _nested, max_leaves=12)
FIELDS = list(json.loads(K1.event(1).to_json()))


@st.composite
def hostile_events(draw: st.DrawFn) -> bytes:
    """A payload the device signs: a real event with fields changed, dropped, added or replaced."""
    data: dict[str, Any] = json.loads(K1.event(draw(st.integers(1, 50))).to_json())
    for name in draw(st.lists(st.sampled_from([*FIELDS, "extra"]), max_size=3)):
        if draw(st.booleans()):
            data[name] = draw(json_values)
        else:
            data.pop(name, None)
    text = json.dumps(data, ensure_ascii=False, allow_nan=True)
    return _signed(text.encode("utf-8", "surrogatepass"))


@st.composite
def hostile_states(draw: st.DrawFn) -> bytes:
    """A state message with fields replaced by anything, in any encoding, signed by the device or not."""
    data = json.loads(_state_json()) | draw(
        st.dictionaries(st.sampled_from(["status", "ts", "device", "destination", "x"]), json_values)
    )
    payload = json.dumps(data, ensure_ascii=False).encode(
        draw(st.sampled_from(["utf-8", "utf-16", "utf-32"])), "surrogatepass"
    )
    return _signed_state(payload) if draw(st.booleans()) else payload


messages = st.one_of(
    st.tuples(st.just(K1.topic()), hostile_events()),
    st.tuples(st.just(K1.topic("state")), hostile_states()),
    st.tuples(st.sampled_from([K1.topic(), K1.topic("state"), "kiosk/v1/x/y/z"]), st.binary(max_size=200)),
)


def _survives(processor: Processor, batch: list[tuple[str, bytes]]) -> None:
    before = processor.stats.stored + sum(processor.stats.rejected.values())
    for topic, payload in batch:
        processor.handle(topic, payload)
    processor.flush()  # would raise (and stop the ingest) on a value the database refuses
    assert "unhandled" not in processor.stats.rejected
    assert (
        processor.stats.stored + processor.stats.duplicates + sum(processor.stats.rejected.values()) >= before
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, min_size=1, max_size=5))
def test_any_message_on_sqlite_is_stored_or_refused(batch: list[tuple[str, bytes]]) -> None:
    with open_store(":memory:") as store:
        _survives(_processor(store), batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(messages, min_size=1, max_size=5))
def test_any_message_on_postgresql_is_stored_or_refused(
    postgres_url: str, batch: list[tuple[str, bytes]]
) -> None:
    # One database for every example: duplicates and old states meet new ones, as in production.
    with open_store(postgres_url) as store:
        processor = (
            _processor(store)
            if not Registry(store).get(K1.device)
            else Processor(
                store=store,
                registry=Registry(store),
                authority_key=AUTHORITY,
                identities=central_support.OPENER,
            )
        )
        _survives(processor, batch)
