"""Contact tracing on a constructed scenario with hashed and plain identities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk.central.store import EventRow, Store, open_store
from kiosk.central.trace import Presence, as_json, as_table, identities_for, presences, trace
from kiosk.events import hash_identity
from tests.support import central as central_support
from tests.support import postgres as postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
KEY = bytes(range(32))
X_CARD = "001093029317"
X_NATIONAL = hash_identity(KEY, "national", X_CARD)
X_CCCD = hash_identity(KEY, "cccd", X_CARD)
HOUR = 3_600_000


def at(hour: int, minute: int = 0, day: int = 20) -> int:
    return int(datetime(2026, 11, day, hour, minute, tzinfo=ZONE).timestamp() * 1000)


def _event(n: int, who: str, dest: str, ts: int, direction: str | None, verdict: str = "pass") -> EventRow:
    return EventRow(
        device=f"k-{dest}", epoch=1, seq=n, id=f"e{n}", destination=dest, kind="scan", ts=ts,
        clock_synced=True,
        direction=direction, verdict=verdict, reason="ok" if verdict == "pass" else "status_blocked",
        format="national", identity=who, sw="0.1.0", decode_ms=1.0, received_ms=ts, token="-",
    )  # fmt: skip


SCENARIO: list[tuple[Any, ...]] = [
    (X_NATIONAL, "shop-a", at(10), "in"),
    (X_NATIONAL, "shop-a", at(11), "out"),
    (X_NATIONAL, "shop-b", at(14), "in"),  # no out: an hour's dwell
    (X_NATIONAL, "shop-c", at(15), None, "fail"),  # refused: not a visit
    (X_CCCD, "shop-d", at(18), "in"),  # the CCCD of the same person
    (X_NATIONAL, "shop-a", at(10, day=21), "in"),  # the next day, outside the window
    ("hmac:" + "1" * 64, "shop-a", at(10, 30), "in"),  # Y: 10:30-12:00, 30 min with X
    ("hmac:" + "1" * 64, "shop-a", at(12), "out"),
    ("hmac:" + "2" * 64, "shop-a", at(8), "in"),  # Z: left before X came
    ("hmac:" + "2" * 64, "shop-a", at(9, 59), "out"),
    ("hmac:" + "3" * 64, "shop-a", at(9), "in"),  # W: 09:00 + dwell ends exactly when X comes
    ("hmac:" + "4" * 64, "shop-a", at(10, 45), "out"),  # V: out without in, 09:45-10:45, 45 min
    ("plain:U123", "shop-b", at(14, 50), None),  # U: 14:50-15:50, 10 min with X
    ("hmac:" + "5" * 64, "shop-b", at(16), "in"),  # T: after X left
    ("hmac:" + "6" * 64, "shop-c", at(15), "in"),  # at shop-c, where X was refused
    ("hmac:" + "7" * 64, "shop-a", at(4), "in"),  # S: in at 04:00, out 10:15: 15 min with X
    ("hmac:" + "7" * 64, "shop-a", at(10, 15), "out"),
]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        s.insert_events([_event(n, *row) for n, row in enumerate(SCENARIO, start=1)])
        s.commit()
        yield s


def test_trace_finds_visits_and_contacts(store: Store) -> None:
    who = identities_for(X_CARD, identity_key=KEY, formats=("national", "cccd", "dcc"))
    result = trace(store, who, at(0), at(0, day=21), dwell_ms=HOUR)
    assert [(v.destination, v.start, v.end, v.closed_by_out) for v in result.visits] == [
        ("shop-a", at(10), at(11), True),
        ("shop-b", at(14), at(15), False),
        ("shop-d", at(18), at(19), False),
    ]
    assert [(c.identity[:6], c.destination, c.first, c.last, c.minutes) for c in result.contacts] == [
        ("hmac:4", "shop-a", at(10), at(10, 45), 45),
        ("hmac:1", "shop-a", at(10, 30), at(11), 30),
        ("hmac:7", "shop-a", at(10), at(10, 15), 15),
        ("plain:", "shop-b", at(14, 50), at(15), 10),
    ]
    assert result.contacts[3].identity == "plain:U123"


def test_one_format_only(store: Store) -> None:
    who = identities_for(X_CARD, identity_key=KEY, formats=("national",))
    result = trace(store, who, at(0), at(0, day=21))
    assert "shop-d" not in {v.destination for v in result.visits}


def test_hashed_identity_is_taken_as_is(store: Store) -> None:
    assert identities_for(X_CCCD, identity_key=None, formats=("national",)) == [X_CCCD]
    assert identities_for("U123", identity_key=None, formats=("national",)) == ["plain:U123"]
    result = trace(store, identities_for("U123", identity_key=None, formats=()), at(0), at(0, day=21))
    assert [c.identity for c in result.contacts] == [X_NATIONAL]


def test_repeated_in_scans_split_into_stays() -> None:
    events = [_event(1, "plain:a", "s", at(8), "in"), _event(2, "plain:a", "s", at(8, 20), "in")]
    assert presences(events, dwell_ms=HOUR) == [
        Presence("plain:a", "s", at(8), at(8, 20), False),
        Presence("plain:a", "s", at(8, 20), at(9, 20), False),
    ]


def test_renderings(store: Store) -> None:
    result = trace(
        store, identities_for(X_CARD, identity_key=KEY, formats=("national",)), at(0), at(0, day=21)
    )
    table = as_table(result, ZONE)
    assert "shop-a  2026-11-20 10:00 - 2026-11-20 11:00" in table
    assert "plain:U123  at shop-b" in table
    assert '"minutes": 45.0' in as_json(result)


def test_only_visitor_scans_are_visits(store_url: str) -> None:
    # An inspector checking the venue, a street check and a person without a QR at the same
    # place and time are no one's visit, so the inspector becomes nobody's contact.
    inspector = "hmac:" + "9" * 64
    rows = [
        _event(1, X_NATIONAL, "shop-a", at(10), "in"),
        _event(2, X_NATIONAL, "shop-a", at(11), "out"),
        replace(_event(3, inspector, "shop-a", at(10, 30), None), kind="inspection", format="inspector"),
        replace(_event(4, "hmac:" + "8" * 64, "shop-a", at(10, 30), None), kind="inspection"),
        replace(_event(5, inspector, "shop-a", at(10, 40), None, "fail"), format="inspector"),
        replace(_event(6, None, "shop-a", at(10, 40), None, "fail"), kind="no_qr", format="unknown"),
    ]  # fmt: skip
    with open_store(store_url) as s:
        s.insert_events(rows)
        s.commit()
        assert trace(s, [X_NATIONAL], at(0), at(23)).contacts == ()
        assert [v.identity for v in trace(s, [inspector], at(0), at(23)).visits] == []
