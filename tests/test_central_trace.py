"""Contact tracing on a constructed scenario with hashed and plain identities, and on sealed events.

The sealed events are made by the kiosk's own path (card reader, policy, event draft,
spool) from a national QR and a CCCD QR, ingested into a SQLite store, and traced with
`kiosk-central trace` by either of a person's identities.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import cardmaker, keys
from kiosk.cards import parse_card
from kiosk.central.cli import main as central_main
from kiosk.central.ingest import Processor
from kiosk.central.registry import Registry, parse_registration
from kiosk.central.reports import ReportSettings, build_report
from kiosk.central.store import EventRow, Store, open_store
from kiosk.central.trace import Presence, as_json, as_table, identities_for, presences, trace
from kiosk.config import DestinationConfig, PolicyConfig
from kiosk.daemon import draft_for
from kiosk.events import hash_identity
from kiosk.jws import b64url_decode
from kiosk.policy import Policy
from kiosk.spool import Spool
from tests.support import central as central_support
from tests.support import postgres as postgres_support
from tests.support.central import HASH_KEY, OPENER, SEALER, TestDevice

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


# ---------------------------------------------------------------- sealed events from the kiosk's own path

X_QID = "162979388586171100"
X_NATIONAL_QR = cardmaker.national_payload(id_number=X_CARD, qid=X_QID)
X_CCCD_QR = cardmaker.cccd_payload(serial="029317")  # 001 093 029317: X's citizen number again
Y_CCCD_QR = cardmaker.cccd_payload(province="079", birth_date=date(1995, 3, 2), gender="Nữ",
                                   serial="123456", name="Trần Thị Bình")  # fmt: skip
Z_QID = "270000000000000001"
Z_NATIONAL_QR = cardmaker.national_payload(id_number="038095001234", qid=Z_QID, name="LE VAN C")
W_NATIONAL_QR = cardmaker.national_payload(id_number="038095009999", qid="270000000000000002")
SHOP_1, SHOP_2 = TestDevice("kiosk-s1", "shop-1"), TestDevice("kiosk-s2", "shop-2")


def kiosk_tokens(device: TestDevice, folder: Path, scans: list[tuple[datetime, str]]) -> list[bytes]:
    """Each payload read by the card reader, decided by the policy and spooled as the kiosk does it."""
    policy = Policy(PolicyConfig(), DestinationConfig(id=device.destination, direction="in"),
                    presence_keys=lambda identity: (SEALER.tag(identity),))  # fmt: skip
    path = folder / f"{device.device}.sqlite3"
    with Spool.open(path, device_id=device.device, destination_id=device.destination,
                    signing_key=device.key, sealer=SEALER) as spool:  # fmt: skip
        for moment, payload in scans:
            decision = policy.evaluate(parse_card(payload.encode(), trust=None, now=moment), now=moment)
            assert decision.passed and decision.identities, decision
            spool.record(draft_for(decision, 1.0))
            policy.commit(decision)
        return [spooled.token for spooled in spool.unsent()]


def moment(hour: int, minute: int = 0) -> datetime:
    return datetime.fromtimestamp(at(hour, minute) / 1000, UTC)


@pytest.fixture
def sealed_day(tmp_path: Path) -> str:
    """shop-1: X (national QR) 10:00, Y (CCCD) 10:10; shop-2: X (CCCD) 14:00, Z 14:20, W 20:00."""
    db = f"sqlite://{tmp_path / 'central.sqlite3'}"
    tokens = {
        SHOP_1: kiosk_tokens(SHOP_1, tmp_path, [(moment(10), X_NATIONAL_QR), (moment(10, 10), Y_CCCD_QR)]),
        SHOP_2: kiosk_tokens(SHOP_2, tmp_path, [(moment(14), X_CCCD_QR), (moment(14, 20), Z_NATIONAL_QR),
                                                 (moment(20), W_NATIONAL_QR)]),
    }  # fmt: skip
    with open_store(db) as store:
        registry = Registry(store)
        processor = Processor(store=store, registry=registry, authority_key=Ed25519PrivateKey.generate(),
                              identities=OPENER)  # fmt: skip
        for device, signed in tokens.items():
            registry.add(parse_registration(json.dumps(device.registration())))
            for token in signed:
                assert b"hpke:" in b64url_decode(token.split(b".")[1])  # sealed, schema v2
                processor.handle(device.topic(), token)
        processor.flush()
        assert processor.stats.stored == 5 and not processor.stats.rejected
    return db


@pytest.mark.parametrize("identity", [X_QID, X_CARD])
def test_trace_on_sealed_events_finds_the_contacts_by_either_identity(
    sealed_day: str, identity: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "hash.key"
    keys.write_secret(key_file, HASH_KEY)
    asked = [f"--identity={identity}", f"--hash-key={key_file}", "--from=2026-11-20", "--to=2026-11-21"]
    code = central_main(["--db", sealed_day, "trace", *asked, "--output-format=json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    # The national QR's visit and the CCCD's, whichever of X's identities was asked for.
    visits = [(v["destination"], v["start"]) for v in result["visits"]]
    assert visits == [("shop-1", at(10)), ("shop-2", at(14))]
    contacts = [(c["identity"], c["destination"], c["minutes"]) for c in result["contacts"]]
    assert contacts == [(OPENER.hash("079195123456"), "shop-1", 50), (OPENER.hash(Z_QID), "shop-2", 40)]


def test_the_report_counts_the_sealed_visits(sealed_day: str) -> None:
    with open_store(sealed_day) as store:
        report = build_report(store, day=date(2026, 11, 20), settings=ReportSettings(), now_ms=at(23))
    figures = {d.destination: (d.scans, d.people, d.directions["in"]) for d in report.destinations}
    assert figures == {"shop-1": (2, 2, 2), "shop-2": (3, 3, 3)}
