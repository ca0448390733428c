"""A message the database refuses is refused as `unstorable`; the rest of its batch is stored.

Only the database's own failures (a lost connection, a locked file) make the ingest
wait and write the batch again. A data error is a message's fault: waiting would
stall every device behind it forever, so the batch is halved until the messages to
blame are found, and they are refused, counted and acknowledged like any other.
The errors here are the real databases' own: a CHECK constraint of the test refuses
one identity on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import jws
from kiosk.central.ingest import MessageQueue, Processor, run_loop, unstorable
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.store import EventRow, Store, open_store
from kiosk.events import EVENT_TYP, ScanEventV1
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import OPENER, TestDevice

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

AUTHORITY = Ed25519PrivateKey.generate()
K1 = TestDevice("kiosk-1", "shop-1")
POISON = "plain:POISON"
# The test devices' destination may send plain identities (ingest --plain-destination).
PLAIN_OPENER = dataclasses.replace(OPENER, plain_destinations=frozenset({K1.destination}))


def plain_event(seq: int, card: str) -> ScanEventV1:
    """A schema-v1 event of K1 that carries its card's identity in the clear ("plain:" + card).

    v1 is the schema that keeps a plain identity as sent (v2 ones are hashed by central),
    so the guard below sees exactly the identity the test chose.
    """
    return ScanEventV1(id=str(uuid.uuid4()), kind="scan", device=K1.device, destination=K1.destination,
                       epoch=K1.epoch, seq=seq, ts=1_780_000_000_000, clock_synced=True, direction="in",
                       verdict="pass", reason="ok", format="national", identity=f"plain:{card}",
                       sw="0.1.0", decode_ms=1.0)  # fmt: skip


def token(seq: int, card: str) -> bytes:
    return jws.sign(plain_event(seq, card).to_json(), K1.key, kid=K1.device, typ=EVENT_TYP)


class GuardedStore:
    """A store whose events also go through a table with a CHECK that refuses one identity.

    The error is the database's own (sqlite3.IntegrityError, psycopg's CheckViolation),
    raised inside the transaction like any constraint of the events table would be.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        store._execute(f"CREATE TEMP TABLE guard (identity TEXT CHECK (identity <> '{POISON}'))")
        store.commit()
        self.refused = 0

    def insert_events(self, rows: list[EventRow]) -> int:
        for row in rows:
            try:
                self.store._execute("INSERT INTO guard (identity) VALUES (?)", (row.identity,))
            except Exception:
                self.refused += 1
                raise
        return self.store.insert_events(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        Registry(s).add(parse_registration(json.dumps(K1.registration())))
        s.commit()
        yield s


def processor_of(store: Any) -> Processor:
    plain = store.store if isinstance(store, GuardedStore) else store
    return Processor(store=store, registry=Registry(plain), authority_key=AUTHORITY, identities=PLAIN_OPENER)


def stored_seqs(store: Store) -> list[int]:
    return [row.seq for row in store.events(0, 2**62)]


def test_a_message_the_database_refuses_is_refused_and_the_rest_stored(store: Store) -> None:
    guarded = GuardedStore(store)
    processor = processor_of(guarded)
    for seq in range(1, 7):
        card = "POISON" if seq == 3 else f"card-{seq}"
        processor.handle(K1.topic(), token(seq, card))
    due = processor.flush()
    assert guarded.refused >= 1, "the database itself refused the poison event"
    assert stored_seqs(store) == [1, 2, 4, 5, 6]
    assert processor.stats.rejected == {"unstorable": 1}
    assert processor.stats.stored == 5
    assert store.reject_counts() == {"unstorable": 1}
    [(topic, detail)] = store.query("SELECT topic, detail FROM rejects")
    assert topic == K1.topic() and ("IntegrityError" in detail or "CheckViolation" in detail)
    assert due, "the devices are acked as after any commit"
    # Signed by its device, so its seq is refused for good: the ack goes past it.
    assert [(row.seq, row.reason) for row in store.settled(K1.device)] == [(3, "unstorable")]
    assert store.progress(K1.device) == {K1.epoch: 6}
    processor.handle(K1.topic(), token(7, "card-7"))
    processor.flush()
    assert stored_seqs(store) == [1, 2, 4, 5, 6, 7], "the ingest goes on"


def test_several_poison_messages_among_many(store: Store) -> None:
    guarded = GuardedStore(store)
    processor = processor_of(guarded)
    poison = {7, 150, 151, 299}
    for seq in range(1, 301):
        card = "POISON" if seq in poison else f"card-{seq}"
        processor.handle(K1.topic(), token(seq, card))
    processor.flush()
    assert stored_seqs(store) == [seq for seq in range(1, 301) if seq not in poison]
    assert store.reject_counts() == {"unstorable": 4}
    # Halving: a few probes per poison message, not one per message of the batch.
    assert guarded.refused <= 1 + 4 * 10


def test_the_poison_and_other_rejects_of_one_batch_are_all_recorded(store: Store) -> None:
    processor = processor_of(GuardedStore(store))
    processor.handle(K1.topic(), b"not a token")
    processor.handle(K1.topic(), token(1, "POISON"))
    processor.handle(K1.topic(), token(2, "card-2"))
    processor.flush()
    assert stored_seqs(store) == [2]
    assert store.reject_counts() == {"unstorable": 1, "bad_signature": 1}


def test_a_lost_connection_keeps_the_batch_for_after_the_outage(store: Store, store_url: str) -> None:
    processor = processor_of(store)
    for seq in (1, 2, 3):
        processor.handle(K1.topic(), K1.token(seq))
    store.close()  # the database's fault (its connection is gone): nothing may be refused for it
    with pytest.raises((sqlite3.ProgrammingError, psycopg.OperationalError)) as failure:
        processor.flush()
    assert not unstorable(failure.value)
    assert processor.stats.rejected == {} and processor.pending == 3
    with open_store(store_url) as reopened:
        processor.use_store(reopened)
        processor.flush()
        assert stored_seqs(reopened) == [1, 2, 3]
        assert reopened.reject_counts() == {}


def test_the_loop_acknowledges_the_poison_message_and_goes_on(store: Store) -> None:
    processor = processor_of(GuardedStore(store))
    messages, stop, settled = MessageQueue(), threading.Event(), []
    outages: list[Exception] = []
    for seq in range(1, 5):
        card = "POISON" if seq == 2 else f"card-{seq}"
        messages.put(K1.topic(), token(seq, card), seq, 1)

    def settle(items: list[tuple[str, bytes, int, int]], due: list[tuple[str, bytes]]) -> None:
        settled.extend(mid for _topic, _payload, mid, _qos in items)
        stop.set()

    def reopen(error: Exception) -> bool:
        outages.append(error)
        return False

    run_loop(processor, messages, settle=settle, stop=stop, reopen=reopen)
    assert sorted(settled) == [1, 2, 3, 4], "every message PUBACKed, the poison one too"
    assert outages == [] and stored_seqs(store) == [1, 3, 4]


def test_what_is_the_data_s_fault() -> None:
    assert unstorable(sqlite3.IntegrityError("CHECK constraint failed"))
    assert unstorable(sqlite3.DataError("string or blob too big"))
    assert unstorable(psycopg.errors.NumericValueOutOfRange("bigint out of range"))
    assert unstorable(psycopg.errors.CheckViolation("check"))
    assert unstorable(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert unstorable(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert unstorable(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert not unstorable(sqlite3.OperationalError("database is locked"))
    assert not unstorable(sqlite3.OperationalError("disk I/O error"))
    assert not unstorable(psycopg.OperationalError("connection is lost"))
    assert not unstorable(psycopg.errors.SerializationFailure("could not serialize"))
    assert not unstorable(psycopg.errors.UndefinedTable("relation does not exist"))
    assert not unstorable(psycopg.InterfaceError("the connection is closed"))


def event_payload(identity: str, seq: int, *, ascii_only: bool) -> bytes:
    """A schema-v1 event with `identity` as it is, whatever the kiosk itself would build."""
    event = plain_event(seq, "x").model_dump(mode="json")
    event["identity"] = identity
    return json.dumps(event, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def pg_store(postgres_server: postgres_support.PostgresServer) -> Iterator[Store]:
    """One PostgreSQL database for every example (a new one each would take seconds)."""
    with open_store(postgres_server.new_database()) as store:
        Registry(store).add(parse_registration(json.dumps(K1.registration())))
        store.commit()
        yield store


SEQS = itertools.count(1, 2)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.characters(codec=None), min_size=1, max_size=40),
    ascii_only=st.booleans(),
)
def test_any_identity_text_is_stored_as_sent_or_refused_with_a_reason(
    pg_store: Store, text: str, ascii_only: bool
) -> None:
    """Every code point class in the one free text field, on PostgreSQL: never a stall."""
    processor, seq = processor_of(pg_store), next(SEQS)
    payload = event_payload("plain:" + text, seq, ascii_only=ascii_only)
    processor.handle(K1.topic(), jws.sign(payload, K1.key, kid=K1.device, typ=EVENT_TYP))
    processor.handle(K1.topic(), K1.token(seq + 1))
    processor.flush()
    stored = {row.seq: row for row in pg_store.events(0, 2**62) if row.seq in (seq, seq + 1)}
    assert seq + 1 in stored, "the message after it is stored"
    if seq in stored:
        assert stored[seq].identity == "plain:" + text and processor.stats.rejected == {}
    else:
        assert sum(processor.stats.rejected.values()) == 1
        assert set(processor.stats.rejected) <= {"bad_event", "unstorable"}
