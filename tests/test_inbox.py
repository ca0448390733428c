"""The uplink's inbox without a broker: routes, limits, flood, signed lists and central's acks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import jws
from kiosk.counters import UplinkCounters
from kiosk.errors import BrokerMessageError
from kiosk.events import Ack, EventDraft, sign_ack
from kiosk.inbox import MAX_ACK_BYTES, CentralAcks, Inbox, Route, signed_list
from kiosk.keys import thumbprint
from kiosk.spool import Spool
from tests.support.central import SEALER

DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
AUTHORITY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
AUTHORITY_KEYS = {thumbprint(AUTHORITY.public_key()): AUTHORITY.public_key()}
ACK_TOPIC = "kiosk/v1/venue-1/kiosk-1/ack"
NOW = time.time()  # the spool marks events sent on the real clock


def rejected(counters: UplinkCounters) -> dict[str, int]:
    return dict(counters.snapshot(connected=False).rejected)


def collecting(seen: list[tuple[str, bytes]], topic: str, max_bytes: int = 10) -> Route:
    return Route(topic, max_bytes, lambda payload: seen.append((topic, payload)))


def test_messages_are_handled_in_order_on_their_routes() -> None:
    seen: list[tuple[str, bytes]] = []
    counters = UplinkCounters()
    inbox = Inbox([collecting(seen, "a"), collecting(seen, "b")], counters)
    assert inbox.topics == ("a", "b")
    assert inbox.offer("b", b"1") and inbox.offer("a", bytearray(b"2")) and inbox.offer("b", b"3")
    assert seen == []  # offered on paho's thread, handled only on the drain thread
    inbox.handle_waiting()
    assert seen == [("b", b"1"), ("a", b"2"), ("b", b"3")]
    assert rejected(counters) == {}


def test_unexpected_oversized_and_flooding_messages_are_refused_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, bytes]] = []
    counters = UplinkCounters()
    inbox = Inbox([collecting(seen, "a", max_bytes=3)], counters, max_waiting=2)
    assert not inbox.offer("elsewhere", b"x")
    assert not inbox.offer("a", b"four")
    assert inbox.offer("a", b"abc") and inbox.offer("a", b"")
    assert not inbox.offer("a", b"x")  # two waiting already
    inbox.handle_waiting()
    assert seen == [("a", b"abc"), ("a", b"")]
    assert rejected(counters) == {"unexpected_topic": 1, "oversized": 1, "flood": 1}
    assert "ignored a message from the broker (oversized): 4 bytes on a" in caplog.text


def test_a_refusing_handler_is_counted_and_the_next_message_still_handled() -> None:
    seen: list[bytes] = []

    def handle(payload: bytes) -> None:
        if payload == b"bad":
            raise BrokerMessageError("odd", "a bad one")
        seen.append(payload)

    counters = UplinkCounters()
    inbox = Inbox([Route("a", 10, handle)], counters)
    for payload in (b"bad", b"good"):
        inbox.offer("a", payload)
    inbox.handle_waiting()
    assert (seen, rejected(counters)) == ([b"good"], {"odd": 1})


def test_refused_subscriptions_are_counted_and_named(caplog: pytest.LogCaptureFixture) -> None:
    counters = UplinkCounters()
    inbox = Inbox([collecting([], "a"), collecting([], "b")], counters)
    inbox.subscribed([None, "Not authorized"])
    assert rejected(counters) == {"subscription_refused": 1}
    assert "subscription to b (Not authorized): check its ACL" in caplog.text


def test_a_signed_list_that_the_store_refuses_is_counted_under_its_name() -> None:
    kept: list[bytes] = []

    def take(payload: bytes) -> None:
        if not payload.startswith(b"ey"):
            raise ValueError("not a signed list")
        kept.append(payload)

    counters = UplinkCounters()
    inbox = Inbox([signed_list("trustlist", "kiosk/v1/trustlist", 100, take)], counters)
    for payload in (b"junk", b"eyJ.good"):
        inbox.offer("kiosk/v1/trustlist", payload)
    inbox.handle_waiting()
    assert kept == [b"eyJ.good"]
    assert rejected(counters) == {"trustlist_refused": 1}


def test_a_signed_list_nobody_enforces_is_ignored() -> None:
    counters = UplinkCounters()
    inbox = Inbox([signed_list("statuslist", "s", 100, None)], counters)
    inbox.offer("s", b"anything")
    inbox.handle_waiting()
    assert rejected(counters) == {}


# -- central's acks, against a real spool ----------------------------------------------


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(
        tmp_path / "spool.db",
        device_id="kiosk-1",
        destination_id="venue-1",
        signing_key=DEVICE_KEY,
        sealer=SEALER,
    ) as s:
        yield s


class Acks:
    """CentralAcks on a spool with a fixed clock, counting how often the window must re-read."""

    def __init__(self, spool: Spool, authority: object = AUTHORITY_KEYS) -> None:
        self.counters = UplinkCounters()
        self.rereads = 0
        self.now = NOW
        lookup = AUTHORITY_KEYS.get if authority is AUTHORITY_KEYS else None
        self.acks = CentralAcks(
            spool,
            lookup,
            topic=ACK_TOPIC,
            resend_unacked_s=60.0,
            counters=self.counters,
            on_requeue=self._reread,
            clock=lambda: self.now,
        )

    def _reread(self) -> None:
        self.rereads += 1


def record(spool: Spool, n: int) -> None:
    for i in range(n):
        spool.record(EventDraft(verdict="pass", reason="ok", format="national", direction="in", ts=i))
    spool.mark_sent([event.key for event in spool.unsent()])


def ack(
    spool: Spool, last: int, *, device: str = "kiosk-1", resend: list[tuple[int, int, int]] | None = None
) -> bytes:
    return sign_ack(Ack(device=device, epochs={str(spool.epoch): last}, resend=resend or [], ts=1), AUTHORITY)


def test_an_ack_drops_what_it_covers(spool: Spool) -> None:
    record(spool, 5)
    acks = Acks(spool)
    acks.acks.handle(ack(spool, 3))
    assert spool.depth() == 2
    stats = acks.counters.snapshot(connected=True)
    assert (stats.acks_applied, stats.resent, acks.rereads) == (1, 0, 0)
    assert stats.last_ack is not None and stats.last_ack == datetime.fromtimestamp(NOW, UTC)


def test_an_ack_asking_for_a_range_requeues_it_and_the_window_rereads(spool: Spool) -> None:
    record(spool, 5)
    acks = Acks(spool)
    acks.acks.handle(ack(spool, 2, resend=[(spool.epoch, 4, 5)]))
    assert [event.seq for event in spool.unsent()] == [4, 5]
    assert (acks.counters.snapshot(connected=True).resent, acks.rereads) == (2, 1)


def test_events_the_broker_took_long_ago_and_central_lacks_are_sent_again(spool: Spool) -> None:
    record(spool, 3)
    acks = Acks(spool)
    acks.now = NOW + 3600  # far later than every mark: central should have had them all
    acks.acks.handle(ack(spool, 1))
    assert [event.seq for event in spool.unsent()] == [2, 3]
    assert acks.rereads == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00\xffgarbage", "ack_invalid"),
        (
            sign_ack(Ack(device="kiosk-1", epochs={"1": 10**9}, ts=1), Ed25519PrivateKey.generate()),
            "ack_invalid",
        ),
        (
            jws.sign(b"[1,2]", AUTHORITY, kid=thumbprint(AUTHORITY.public_key()), typ="kiosk-ack"),
            "ack_invalid",
        ),
        (sign_ack(Ack(device="kiosk-2", epochs={"1": 10**9}, ts=1), AUTHORITY), "ack_wrong_device"),
    ],
)
def test_a_bad_ack_is_refused_and_changes_nothing(spool: Spool, payload: bytes, reason: str) -> None:
    record(spool, 3)
    acks = Acks(spool)
    with pytest.raises(BrokerMessageError) as refused:
        acks.acks.handle(payload)
    assert refused.value.reason == reason
    assert spool.depth() == 3 and acks.counters.snapshot(connected=True).acks_applied == 0


def test_without_authority_keys_no_ack_is_believed(spool: Spool) -> None:
    record(spool, 3)
    acks = Acks(spool, authority=None)
    with pytest.raises(BrokerMessageError, match=r"policy\.authority_keys") as refused:
        acks.acks.handle(ack(spool, 3))
    assert refused.value.reason == "ack_unverifiable" and spool.depth() == 3


def test_the_ack_route_has_the_ack_size_limit(spool: Spool) -> None:
    route = Acks(spool).acks.route()
    assert (route.topic, route.max_bytes) == (ACK_TOPIC, MAX_ACK_BYTES)


@pytest.fixture(scope="module")
def hostile_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Spool, UplinkCounters, Inbox]]:
    counters = UplinkCounters()
    with Spool.open(
        tmp_path_factory.mktemp("hostile") / "spool.db",
        device_id="kiosk-1",
        destination_id="venue-1",
        signing_key=DEVICE_KEY,
        sealer=SEALER,
    ) as spool:
        acks = CentralAcks(
            spool,
            AUTHORITY_KEYS.get,
            topic=ACK_TOPIC,
            resend_unacked_s=60,
            counters=counters,
            on_requeue=lambda: None,
        )
        yield spool, counters, Inbox([acks.route()], counters)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
def test_any_bytes_on_the_ack_topic_are_counted_never_raised(
    hostile_target: tuple[Spool, UplinkCounters, Inbox], payload: bytes
) -> None:
    _spool, counters, inbox = hostile_target
    before = sum(counters.snapshot(connected=False).rejected.values())
    inbox.offer(ACK_TOPIC, payload)
    inbox.handle_waiting()
    assert sum(counters.snapshot(connected=False).rejected.values()) == before + 1
