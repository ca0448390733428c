"""A refused event its device signed settles its seq: the ack goes past it and the kiosk prunes it.

Without this, one event central refuses for good (an unstorable value, a kind/format pair
the table has not, a destination the registry does not give the device) is asked for on
every sweep, re-sent, refused again, and the ack stops below it: the kiosk keeps every
later event and its spool grows without end. Only the device's own signature may settle
a seq; anyone could forge an unsigned or wrongly signed one to blank out a place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kiosk import jws
from kiosk.central.ingest import IngestOptions, Processor
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import Store, open_store
from kiosk.counters import UplinkCounters
from kiosk.errors import EventError
from kiosk.events import EVENT_TYP, MAX_INT, EventDraft, verify_event
from kiosk.inbox import CentralAcks
from kiosk.keys import thumbprint
from kiosk.spool import Spool
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import TestDevice

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

AUTHORITY = Ed25519PrivateKey.generate()
K1 = TestDevice("kiosk-1", "shop-1")
K2 = TestDevice("kiosk-2", "shop-2")
START_MS = 1_780_000_000_000
RESEND_AFTER_S = 10


class Clock:
    """A settable clock in ms."""

    def __init__(self, ms: int = START_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def register(store: Store, *devices: TestDevice) -> None:
    registry = Registry(store)
    for device in devices:
        registry.add(parse_registration(json.dumps(device.registration())))
    store.commit()


def processor_of(store: Store, clock: Clock) -> Processor:
    options = IngestOptions(resend_after_s=RESEND_AFTER_S)
    registry = Registry(store)
    return Processor(store=store, registry=registry, authority_key=AUTHORITY, clock=clock, options=options)


def refused_token(device: TestDevice, seq: int, key: Ed25519PrivateKey | None = None) -> bytes:
    """An event of `device` at `seq` whose kind/format pair the table has not (no_qr of a national card)."""
    body = {**device.event(seq).model_dump(), "kind": "no_qr"}
    return jws.sign(json.dumps(body).encode(), key or device.key, kid=device.device, typ=EVENT_TYP)


def ack_body(token: bytes) -> dict[str, Any]:
    return dict(json.loads(jws.verify(token, AUTHORITY.public_key()).payload))


def swept(processor: Processor, clock: Clock) -> dict[str, Any]:
    """The ack a sweep publishes once every gap is old enough to be asked for."""
    clock.ms += (RESEND_AFTER_S + 1) * 1000
    assert processor.sweep_due
    [(_, token)] = processor.flush()
    return ack_body(token)


def test_a_refused_signed_event_is_settled_and_the_ack_goes_past_it(store: Store) -> None:
    register(store, K1)
    clock = Clock()
    processor = processor_of(store, clock)
    for seq in (1, 2):
        processor.handle(K1.topic(), K1.token(seq))
    processor.handle(K1.topic(), refused_token(K1, 3))
    for seq in (4, 5):
        processor.handle(K1.topic(), K1.token(seq))
    [(_, token)] = processor.flush()
    assert processor.stats.rejected == {"bad_event": 1}
    assert ack_body(token)["epochs"] == {str(K1.epoch): 5}
    assert [(row.seq, row.reason) for row in store.settled("kiosk-1")] == [(3, "bad_event")]
    later = swept(processor, clock)
    assert later["epochs"] == {str(K1.epoch): 5} and later["resend"] == []


def test_a_refused_event_sent_again_settles_once_and_the_ack_holds(store: Store) -> None:
    register(store, K1)
    clock = Clock()
    processor = processor_of(store, clock)
    processor.handle(K1.topic(), K1.token(1))
    processor.handle(K1.topic(), refused_token(K1, 2))
    processor.flush()
    processor.handle(K1.topic(), refused_token(K1, 2))  # the kiosk had not seen the ack yet
    processor.handle(K1.topic(), K1.token(3))
    [(_, token)] = processor.flush()
    assert ack_body(token)["epochs"] == {str(K1.epoch): 3}
    assert [row.seq for row in store.settled("kiosk-1")] == [2]
    assert store.reject_counts() == {"bad_event": 2}


@pytest.mark.parametrize(
    ("topic", "token"),
    [
        (K1.topic(), refused_token(K1, 3, key=Ed25519PrivateKey.generate())),  # forged: not K1's key
        (K1.topic(), jws.sign(b'{"epoch":1700000000000,"seq":3}', K1.key, kid="kiosk-1")),  # no typ
        (K1.topic(), b"not a token"),
        (K1.topic(), refused_token(K2, 3)),  # K2's own, on K1's topic: K2's seq, not K1's
        (K2.topic(), refused_token(K2, 3, key=K1.key)),  # signed by K1 under K2's name
    ],
)
def test_a_refusal_not_signed_by_the_topics_device_settles_nothing(
    store: Store, topic: str, token: bytes
) -> None:
    register(store, K1, K2)
    clock = Clock()
    processor = processor_of(store, clock)
    for seq in (1, 2, 4):
        processor.handle(K1.topic(), K1.token(seq))
    processor.handle(topic, token)
    [(_, first)] = processor.flush()
    assert ack_body(first)["epochs"] == {str(K1.epoch): 2}
    assert store.settled("kiosk-1") == [] and store.settled("kiosk-2") == []
    later = swept(processor, clock)
    assert later["epochs"] == {str(K1.epoch): 2} and later["resend"] == [[K1.epoch, 3, 3]]


DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def test_the_kiosk_prunes_a_refused_event_and_every_later_one(store: Store, tmp_path: Path) -> None:
    with Spool.open(
        tmp_path / "spool.db", device_id="kiosk-1", destination_id="venue-1",
        signing_key=DEVICE_KEY, sealer=central_support.SEALER,
    ) as spool:  # fmt: skip
        kiosk = TestDevice("kiosk-1", "venue-1", key=DEVICE_KEY, epoch=spool.epoch)
        register(store, kiosk)
        for i in range(5):
            spool.record(EventDraft(verdict="pass", reason="ok", format="national", direction="in", ts=i))
        sent = spool.unsent()
        spool.mark_sent([event.key for event in sent])
        clock = Clock()
        processor = processor_of(store, clock)
        for event in sent:  # what arrives as seq 3 is refused (as a kiosk of another version might send it)
            token = refused_token(kiosk, 3) if event.seq == 3 else event.token
            processor.handle(kiosk.topic(), token)
        [(topic, ack)] = processor.flush()
        assert topic == "kiosk/v1/venue-1/kiosk-1/ack"
        acks = CentralAcks(
            spool, {thumbprint(AUTHORITY.public_key()): AUTHORITY.public_key()}.get,
            topic=topic, resend_unacked_s=60.0, counters=UplinkCounters(), on_requeue=lambda: None,
        )  # fmt: skip
        acks.handle(ack)
        assert spool.depth() == 0, "every event is covered: stored, or refused for good"
        assert spool.unsent() == [], "nothing is queued to be sent again"


@given(
    epoch=st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.text(), st.none()),
    seq=st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.floats()),
)
def test_a_signed_non_event_names_its_place_only_within_bounds(epoch: object, seq: object) -> None:
    body = {**K1.event(1).model_dump(), "kind": "no_qr", "epoch": epoch, "seq": seq}
    token = jws.sign(json.dumps(body).encode(), K1.key, kid="kiosk-1", typ=EVENT_TYP)
    with pytest.raises(EventError) as refused:
        verify_event(token, K1.key.public_key())
    in_bounds = (
        all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, seq))
        and 0 <= epoch <= MAX_INT  # type: ignore[operator]
        and 1 <= seq <= MAX_INT  # type: ignore[operator]
    )
    assert refused.value.signed == (("kiosk-1", epoch, seq) if in_bounds else None)
