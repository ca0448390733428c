"""Ingest without a broker: verification, rejects, idempotent storage, acks and resend requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import jws
from kiosk.central.ingest import IngestOptions, Processor, Topics
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import Store, open_store
from kiosk.events import MAX_RESEND_RANGES, verify_ack
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import TestDevice

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

AUTHORITY = Ed25519PrivateKey.generate()
K1 = TestDevice("kiosk-1", "shop-1")
K2 = TestDevice("kiosk-2", "shop-2")


class Clock:
    """A settable clock in ms."""

    def __init__(self, ms: int = 1_780_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        registry = Registry(s)
        for device in (K1, K2):
            registry.add(parse_registration(json.dumps(device.registration())))
        s.commit()
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def processor(store: Store, clock: Clock) -> Processor:
    return Processor(
        store=store, registry=Registry(store), authority_key=AUTHORITY, clock=clock,
        options=IngestOptions(resend_after_s=10),
    )  # fmt: skip


def _ack(token: bytes) -> dict[str, Any]:
    verified = jws.verify(token, AUTHORITY.public_key())
    assert verified.header["typ"] == "kiosk-ack"
    return dict(json.loads(verified.payload))


def test_valid_events_are_stored_and_acked_after_commit(processor: Processor, store: Store) -> None:
    for seq in (1, 2, 3):
        processor.handle(K1.topic(), K1.token(seq))
    due = processor.flush()
    assert store.count_events() == 3
    [(topic, token)] = due
    assert topic == "kiosk/v1/shop-1/kiosk-1/ack"
    body = _ack(token)
    assert body["epochs"] == {str(K1.epoch): 3}
    assert body["resend"] == [] and body["device"] == "kiosk-1" and body["v"] == 1


def test_replayed_event_is_stored_once_and_acked_again(processor: Processor, store: Store) -> None:
    token = K1.token(1)
    processor.handle(K1.topic(), token)
    processor.handle(K1.topic(), token)
    processor.flush()
    processor.handle(K1.topic(), token)
    [(_, ack)] = processor.flush()
    assert store.count_events() == 1
    assert processor.stats.stored == 1 and processor.stats.duplicates == 2
    assert _ack(ack)["epochs"] == {str(K1.epoch): 1}


@pytest.mark.parametrize(
    ("topic", "token", "reason", "settled"),
    [
        (K1.topic(), TestDevice("kiosk-1", "shop-1").token(1), "bad_signature", None),  # forged: another key
        (K1.topic(), K1.token(1)[:-8] + b"AAAAAAAA", "bad_signature", None),  # tampered signature
        (K1.topic(), b"not a token", "bad_signature", None),
        (K1.topic(), jws.sign(b'{"v":1}', K1.key, kid="kiosk-1", typ="kiosk-event"), "bad_event", None),
        ("kiosk/v1/shop-2/kiosk-1/event", K1.token(1), "topic_mismatch", "kiosk-1"),  # misrouted destination
        ("kiosk/v1/shop-1/kiosk-2/event", K1.token(1), "topic_mismatch", None),  # another device's topic
        (K1.topic(), K1.token(1, destination="shop-2"), "topic_mismatch", "kiosk-1"),
        (
            K2.topic().replace("shop-2", "shop-1"),
            K2.token(1, destination="shop-1"),
            "destination_mismatch",
            "kiosk-2",
        ),
        (
            TestDevice("stranger", "shop-1").topic(),
            TestDevice("stranger", "shop-1").token(1),
            "unknown_device",
            None,
        ),
        ("kiosk/v1/shop-1/event", K1.token(1), "bad_topic", None),
    ],
)
def test_bad_events_are_rejected_counted_and_never_stored(
    processor: Processor, store: Store, topic: str, token: bytes, reason: str, settled: str | None
) -> None:
    processor.handle(topic, token)
    due = processor.flush()
    assert store.count_events() == 0
    assert processor.stats.rejected == {reason: 1}
    assert store.reject_counts() == {reason: 1}
    # Signed by the device its topic names: the seq is refused for good, and the ack covers it.
    assert [(row.device, row.seq, row.reason) for row in store.settled(settled or "")] == (
        [(settled, 1, reason)] if settled else []
    )
    assert [_ack(ack)["epochs"] for _, ack in due] == ([{str(K1.epoch): 1}] if settled else [])


def test_revoked_device_is_rejected(processor: Processor, store: Store) -> None:
    processor.handle(K1.topic(), K1.token(1))
    processor.flush()
    Registry(store).revoke("kiosk-1")
    store.commit()
    processor.reload_registry()
    processor.handle(K1.topic(), K1.token(2))
    assert processor.flush() == []
    assert store.count_events() == 1
    assert store.reject_counts() == {"revoked_device": 1}


def test_gaps_are_asked_for_once_old_enough(processor: Processor, store: Store, clock: Clock) -> None:
    for seq in (1, 2, 5, 6, 9):
        processor.handle(K1.topic(), K1.token(seq))
    first = _ack(processor.flush()[0][1])
    assert first["epochs"] == {str(K1.epoch): 2} and first["resend"] == []  # may still be in flight
    assert not processor.sweep_due
    clock.ms += 11_000
    assert processor.sweep_due
    swept = _ack(processor.flush()[0][1])
    assert swept["resend"] == [[K1.epoch, 3, 4], [K1.epoch, 7, 8]]
    for seq in (3, 4, 7, 8):
        processor.handle(K1.topic(), K1.token(seq))
    last = _ack(processor.flush()[0][1])
    assert last["epochs"] == {str(K1.epoch): 9} and last["resend"] == []
    clock.ms += 11_000
    assert processor.sweep_due  # acked once more in case a late ack from elsewhere overwrote it
    assert _ack(processor.flush()[0][1])["epochs"] == {str(K1.epoch): 9}
    clock.ms += 11_000
    assert not processor.sweep_due


def test_epochs_are_acked_separately(processor: Processor) -> None:
    processor.handle(K1.topic(), K1.token(1, epoch=5))
    processor.handle(K1.topic(), K1.token(1, epoch=6))
    processor.handle(K1.topic(), K1.token(2, epoch=6))
    body = _ack(processor.flush()[0][1])
    assert body["epochs"] == {"5": 1, "6": 2}


def test_signed_states_are_kept_and_bad_ones_rejected(processor: Processor, store: Store) -> None:
    processor.handle(K1.topic("state"), K1.state(ts=5, unsent=2))
    processor.handle(K2.topic("state"), b"{not json")
    processor.handle(K2.topic("state"), K2.state(ts=5, destination="shop-1"))
    processor.handle(K2.topic("state"), b"")  # a cleared retained message is not an error
    processor.flush()
    [state] = store.states()
    assert (state.device, state.status, state.ts, state.health["unsent"]) == ("kiosk-1", "online", 5, 2)
    assert store.reject_counts() == {"bad_signature": 1, "topic_mismatch": 1}


def test_an_unsigned_state_is_refused_and_the_stored_one_stands(processor: Processor, store: Store) -> None:
    processor.handle(K1.topic("state"), K1.state(ts=5))
    processor.flush()
    plain = {"status": "online", "device": "kiosk-1", "destination": "shop-1", "ts": 9, "unsent": 7}
    processor.handle(K1.topic("state"), json.dumps(plain).encode())
    processor.flush()
    [state] = store.states()
    assert (state.ts, "unsent" in state.health) == (5, False)
    assert processor.stats.rejected == {"bad_signature": 1}


def test_a_state_signed_by_another_registered_device_is_refused(processor: Processor, store: Store) -> None:
    forged = {"status": "online", "device": "kiosk-1", "destination": "shop-1", "ts": 9}
    processor.handle(K1.topic("state"), jws.sign(json.dumps(forged).encode(), K2.key, kid="kiosk-2",
                                                 typ="kiosk-state"))  # fmt: skip
    processor.handle(K1.topic("state"), jws.sign(json.dumps(forged).encode(), K2.key, kid="kiosk-1",
                                                 typ="kiosk-state"))  # fmt: skip
    processor.handle(K1.topic("state"), K2.state(ts=9, destination="shop-1"))  # K2's own, on K1's topic
    processor.flush()
    assert store.states() == []
    assert processor.stats.rejected == {"bad_signature": 2, "topic_mismatch": 1}


def test_a_replayed_older_state_does_not_overwrite_a_newer_one(processor: Processor, store: Store) -> None:
    old_online = K1.state(ts=100, unsent=1)
    processor.handle(K1.topic("state"), old_online)
    processor.handle(K1.topic("state"), K1.state("stopped", ts=200))
    processor.flush()
    processor.handle(K1.topic("state"), old_online)  # replayed with the device's broker login
    processor.flush()
    [state] = store.states()
    assert (state.status, state.ts) == ("stopped", 200)
    assert store.state_log("kiosk-1", 0, 1000) == [(100, "online"), (200, "stopped")]


def test_the_will_is_stamped_with_its_arrival(processor: Processor, store: Store, clock: Clock) -> None:
    processor.handle(K1.topic("state"), K1.state(ts=clock.ms - 10))
    processor.flush()
    clock.ms += 60_000
    processor.handle(K1.topic("state"), K1.state("offline", ts=None))
    processor.flush()
    [state] = store.states()
    assert (state.status, state.ts, state.received_ms) == ("offline", clock.ms, clock.ms)


def test_a_revoked_or_unknown_devices_state_is_refused(processor: Processor, store: Store) -> None:
    Registry(store).revoke("kiosk-2")
    store.commit()
    processor.reload_registry()
    processor.handle(K2.topic("state"), K2.state(ts=5))
    stranger = TestDevice("kiosk-9", "shop-1")
    processor.handle(stranger.topic("state"), stranger.state(ts=5))
    processor.flush()
    assert store.states() == []
    assert processor.stats.rejected == {"revoked_device": 1, "unknown_device": 1}


def test_a_state_of_another_destination_than_its_registration_is_refused(
    processor: Processor, store: Store
) -> None:
    moved = TestDevice("kiosk-1", "shop-2", key=K1.key)
    processor.handle(moved.topic("state"), moved.state(ts=5))
    processor.flush()
    assert store.states() == []
    assert processor.stats.rejected == {"destination_mismatch": 1}


def test_topics() -> None:
    topics = Topics(prefix="a/b", share_group="g")
    assert topics.events == "$share/g/a/b/+/+/event"
    assert topics.parse("a/b/shop-1/k-1/state") == ("shop-1", "k-1", "state")
    assert topics.parse("a/b/shop-1/k-1/ack") is None
    assert topics.parse("a/b/SHOP/k-1/event") is None


def test_acks_are_what_the_kiosk_accepts(processor: Processor) -> None:
    processor.handle(K1.topic(), K1.token(2))
    [(_, token)] = processor.flush()
    ack = verify_ack(token, AUTHORITY.public_key())
    assert ack.acked() == {} and ack.device == "kiosk-1"
    processor.handle(K1.topic(), K1.token(1))
    [(_, token)] = processor.flush()
    assert verify_ack(token, AUTHORITY.public_key()).acked() == {K1.epoch: 2}


def test_resend_ranges_are_capped_at_what_a_kiosk_accepts(processor: Processor, clock: Clock) -> None:
    for seq in range(2, 2 * MAX_RESEND_RANGES + 10, 2):  # every odd seq missing
        processor.handle(K1.topic(), K1.token(seq))
    processor.flush()
    clock.ms += 11_000
    ack = verify_ack(processor.flush()[0][1], AUTHORITY.public_key())
    assert len(ack.resend) == MAX_RESEND_RANGES
    assert ack.resend[0] == (K1.epoch, 1, 1)


def test_every_active_device_is_acked_periodically_even_without_events(store: Store, clock: Clock) -> None:
    # A broker that lost accepted events while central was down leaves the kiosks waiting
    # for an ack that nothing would trigger; the periodic ack makes them re-send.
    processor = Processor(
        store=store, registry=Registry(store), authority_key=AUTHORITY, clock=clock,
        options=IngestOptions(resend_after_s=10, ack_all_every_s=60),
    )  # fmt: skip
    processor.handle(K1.topic(), K1.token(1))
    assert [topic for topic, _ in processor.flush()] == [K1.topic("ack")]
    clock.ms += 59_000
    assert K2.topic("ack") not in dict(processor.flush())  # (kiosk-1 is re-acked: it was acked recently)
    clock.ms += 1_000
    assert processor.sweep_due
    due = dict(processor.flush())
    assert set(due) == {K1.topic("ack"), K2.topic("ack")}
    assert _ack(due[K2.topic("ack")])["epochs"] == {}  # never heard of: resend everything unconfirmed
    assert _ack(due[K1.topic("ack")])["epochs"] == {str(K1.epoch): 1}
    Registry(store).revoke(K2.device)
    store.commit()
    processor.reload_registry()
    clock.ms += 60_000
    assert [topic for topic, _ in processor.flush()] == [K1.topic("ack")]
