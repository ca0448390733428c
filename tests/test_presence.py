"""Presence shared by the lanes of one venue: the merge rule, the signed messages, the board."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk import cardmaker, jws, keys
from kiosk.cards import parse_card
from kiosk.config import DestinationConfig, PolicyConfig
from kiosk.errors import BrokerMessageError, DeviceKeyError
from kiosk.policy import Policy
from kiosk.presence import (
    PresenceBoard,
    PresenceTable,
    Sighting,
    load_peers,
    move_token,
    read_message,
    snapshot_token,
)
from kiosk.reasons import Reason

NOW = datetime(2021, 10, 1, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("lane-in", "lane-out", "lane-auto", "elsewhere")}
PEERS = {name: key.public_key() for name, key in KEYS.items() if name != "elsewhere"}


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def table_of(sightings: list[Sighting], horizon: datetime = NOW - HOUR) -> set[str]:
    table = PresenceTable()
    for sighting in sightings:
        table.apply(sighting, horizon=horizon)
    return {key for key in ("a", "b", "c") if table.inside([key], since=horizon)}


# ---------------------------------------------------------------- the merge rule


def test_the_latest_move_of_a_person_wins_whatever_order_it_arrives_in() -> None:
    entry, exit_ = Sighting(at(0), "in", ("a",)), Sighting(at(10), "out", ("a",))
    assert table_of([entry, exit_]) == table_of([exit_, entry]) == set()
    again = Sighting(at(20), "in", ("a",))
    assert table_of([exit_, again, entry]) == {"a"}, "re-entered after the exit"


def test_an_exit_beats_an_entry_at_the_same_moment() -> None:
    assert table_of([Sighting(at(5), "in", ("a",)), Sighting(at(5), "out", ("a",))]) == set()
    assert table_of([Sighting(at(5), "out", ("a",)), Sighting(at(5), "in", ("a",))]) == set()


def test_a_move_older_than_the_presence_timeout_changes_nothing() -> None:
    table = PresenceTable()
    assert table.apply(Sighting(NOW - 2 * HOUR, "in", ("a",)), horizon=NOW - HOUR) is False
    assert len(table) == 0


def test_a_person_leaving_with_another_card_is_counted_out() -> None:
    table = PresenceTable()
    table.apply(Sighting(at(0), "in", ("qid", "citizen-no")), horizon=NOW - HOUR)
    table.apply(Sighting(at(9), "out", ("citizen-no",)), horizon=NOW - HOUR)
    assert len(table) == 0 and not table.inside(["qid"], since=NOW - HOUR)


def test_entries_time_out() -> None:
    table = PresenceTable()
    table.apply(Sighting(at(0), "in", ("a",)), horizon=NOW - HOUR)
    table.apply(Sighting(at(60), "in", ("b",)), horizon=NOW - HOUR)
    assert table.count(since=at(30)) == 1
    table.expire(at(30))
    assert len(table) == 1


moves = st.lists(
    st.builds(
        Sighting,
        st.integers(0, 50).map(lambda s: at(s)),
        st.sampled_from(["in", "out"]),
        st.sampled_from([("a",), ("b",), ("c",), ("a", "b")]),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(moves, st.randoms(use_true_random=False))
def test_every_lane_ends_with_the_same_people_inside_whatever_the_order(
    sightings: list[Sighting], rng: object
) -> None:
    shuffled = list(sightings)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert table_of(sightings) == table_of(shuffled) == table_of(sightings + shuffled)


# ---------------------------------------------------------------- the signed messages


def a_move(device: str = "lane-in", *, destination: str = "cho-ben-thanh", seq: int = 1) -> bytes:
    sighting = Sighting(at(1), "in", ("tag:1f",))
    return move_token(
        KEYS[device], device=device, destination=destination, epoch=1, seq=seq, sighting=sighting
    )


def read(token: bytes, topic_device: str = "lane-in") -> object:
    return read_message(token, topic_device=topic_device, destination="cho-ben-thanh", peers=PEERS.get)


def test_a_peers_move_and_snapshot_are_read_back() -> None:
    message = read(a_move())
    assert (message.kind, message.epoch, message.seq) == ("move", 1, 1)  # type: ignore[attr-defined]
    assert message.sightings == (Sighting(at(1), "in", ("tag:1f",)),)  # type: ignore[attr-defined]
    snap = snapshot_token(
        KEYS["lane-out"], device="lane-out", destination="cho-ben-thanh", now=at(9),
        sightings=[Sighting(at(2), "out", ("tag:2e",))],
    )  # fmt: skip
    assert read(snap, "lane-out").sightings == (Sighting(at(2), "out", ("tag:2e",)),)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("token", "topic_device", "reason"),
    [
        (a_move("elsewhere"), "elsewhere", "presence_unknown_peer"),
        (a_move("lane-in"), "lane-out", "presence_wrong_device"),
        (a_move(destination="another-venue"), "lane-in", "presence_malformed"),
        (a_move()[:-4] + b"AAAA", "lane-in", "presence_bad_signature"),
        (b"not a token", "lane-in", "presence_bad_signature"),
        (jws.sign(b'{"v":1,"kind":"move"}', KEYS["lane-in"], kid="lane-in"), "lane-in", "presence_malformed"),
    ],
)
def test_a_bad_presence_message_is_refused_with_a_reason(
    token: bytes, topic_device: str, reason: str
) -> None:
    with pytest.raises(BrokerMessageError) as refused:
        read(token, topic_device)
    assert refused.value.reason == reason


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Lists and objects of `inner`: one level deeper of JSON (a named function: see test_safejson)."""
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20), _nested, max_leaves=20))
def test_a_signed_message_of_any_shape_is_read_or_refused_never_crashes(body: object) -> None:
    token = jws.sign(json.dumps(body).encode(), KEYS["lane-in"], kid="lane-in")
    try:
        read(token)
    except BrokerMessageError as e:
        assert e.reason == "presence_malformed"


def test_a_hostile_move_is_refused() -> None:
    hostile = ({"ts": 2**70, "keys": ["a"]}, {"ts": 1, "keys": ["a b"]}, {"ts": 1, "keys": ["x"] * 9},
               {"ts": 1, "keys": ["٣"]}, {"ts": True, "keys": ["a"]})  # fmt: skip
    for sighting in ({"move": "in", **h} for h in hostile):
        body = {"v": 1, "kind": "move", "device": "lane-in", "destination": "cho-ben-thanh", "epoch": 1,
                "seq": 1, **sighting}  # fmt: skip
        with pytest.raises(BrokerMessageError, match="presence message"):
            read(jws.sign(json.dumps(body).encode(), KEYS["lane-in"], kid="lane-in"))


def test_the_peers_come_from_the_registration_records_of_the_destination(tmp_path: Path) -> None:
    record = {
        "device": "lane-out",
        "destination": "cho-ben-thanh",
        "public_key": keys.public_pem(PEERS["lane-out"]),
    }
    (tmp_path / "peers.json").write_text(json.dumps([record]))
    assert set(load_peers(tmp_path / "peers.json", "cho-ben-thanh")) == {"lane-out"}
    with pytest.raises(DeviceKeyError, match="not 'another-venue'"):
        load_peers(tmp_path / "peers.json", "another-venue")
    (tmp_path / "peers.json").write_text("{")
    with pytest.raises(DeviceKeyError, match="cannot read the peer keys"):
        load_peers(tmp_path / "peers.json", "cho-ben-thanh")


# ---------------------------------------------------------------- two lanes through their boards


def lane(device: str, direction: str, **destination: object) -> tuple[Policy, PresenceBoard]:
    rules = DestinationConfig(id="cho-ben-thanh", direction=direction, share_presence=True, **destination)
    board = PresenceBoard(device=device, destination="cho-ben-thanh", signing_key=KEYS[device],
                          peers=PEERS, timeout=HOUR, now=lambda: at(100))  # fmt: skip
    return Policy(PolicyConfig(repeat_window_s=0), rules), board


def scan(policy: Policy, board: PresenceBoard, when: datetime, seq: int, payload: str) -> Reason:
    decision = policy.decide(parse_card(payload.encode(), trust=None, now=when), now=when)
    if decision.effects.move:
        board.mine(Sighting(when, decision.effects.move, decision.effects.presence_keys), epoch=1, seq=seq)
    return decision.reason


def deliver(sender: PresenceBoard, receiver: tuple[Policy, PresenceBoard], when: datetime) -> None:
    for token in sender.outgoing():
        receiver[1].receive(sender.device, token)
    receiver[0].merge(receiver[1].take_received(), now=when)


def test_the_exit_lane_knows_who_came_in_at_the_entry_lane_and_both_count_the_venue() -> None:
    person = cardmaker.national_payload()
    entry, exit_ = lane("lane-in", "in", capacity=1), lane("lane-out", "out")
    assert scan(*entry, at(0), 1, person) == Reason.OK
    deliver(entry[1], exit_, at(1))
    assert exit_[0].occupancy == 1
    other = cardmaker.national_payload(id_number="079201000123", qid="123456789012345678", name="TRAN THI B")
    assert scan(*entry, at(2), 2, other) == Reason.CAPACITY_FULL
    assert scan(*exit_, at(5), 1, person) == Reason.OK, "seen entering at the other lane"
    deliver(exit_[1], entry, at(6))
    assert entry[0].occupancy == exit_[0].occupancy == 0
    assert scan(*exit_, at(7), 2, other) == Reason.EXIT_UNSEEN


def test_a_snapshot_after_an_outage_brings_a_lane_up_to_date_and_a_repeat_is_dropped() -> None:
    entry, exit_ = lane("lane-in", "in"), lane("lane-out", "out")
    scan(*entry, at(0), 1, cardmaker.national_payload())
    entry[1].outgoing()  # lost with the broker
    snapshot = entry[1].snapshot(force=True)
    assert snapshot is not None and entry[1].snapshot(force=False) is None, "unchanged: not sent again"
    exit_[1].receive("lane-in", snapshot)
    exit_[0].merge(exit_[1].take_received(), now=at(50))
    assert exit_[0].occupancy == 1
    token = a_move(seq=7)
    exit_[1].receive("lane-in", token)
    exit_[1].receive("lane-in", token)
    assert len(exit_[1].take_received()) == 1, "QoS 1 may deliver twice; applied once"
    exit_[1].receive("lane-out", b"our own message back")  # ignored, not even parsed
