"""Who is inside a venue with several lanes: the merge rule, and the signed messages its kiosks share.

Every lane (kiosk) of one destination records its own entries and exits and
tells the others through the broker (docs/events.md, "Presence"):

- a *move* message for each entry or exit, QoS 1, not retained, carrying the
  (epoch, seq) of the event that recorded it: a per-device sequence, so a
  receiver drops a message it has already applied;
- a retained *snapshot* of the kiosk's own moves within the presence timeout,
  published on every (re)connection and every few seconds while it changes, so
  a kiosk that was away from the broker (or just started) catches up on
  everything the others did meanwhile.

Both are JWS signed by the device key (like events), verified against the
destination's peer keys before they are read. People are named by the
destination's presence keys (tags under the destination key): never plainly.

The merge rule (`PresenceTable.apply`), the same on every kiosk, so all
converge whatever order the messages arrive in: per presence key, the move with
the latest event time wins; at equal times an exit wins; a move older than the
presence timeout changes nothing (an entry that old no longer counts anyway).

A person recorded by staff without a QR is an anonymous person inside, under a
random key of their own (`anonymous_key`). No card can match them on the way
out: a no-QR exit takes out the anonymous person who entered first (the lane
that records the exit picks them and names their key in its move, so the rule
above still converges); one nobody records leaving counts until the timeout.
"""

from __future__ import annotations

import collections
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import jws, safejson
from kiosk.errors import BrokerMessageError, DeviceKeyError, SignatureError, UnsafeJSONError
from kiosk.topics import ID_PATTERN

Move = Literal["in", "out"]
TYP = "kiosk-presence+jws"
VERSION = 1
MAX_KEYS = 8  # presence keys of one person (a card's identities)
MAX_MOVES = 200_000  # in one snapshot
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_OUTBOX = 10_000  # moves waiting for the broker; past this the next snapshot carries them
_KEY = re.compile(r"^[\x21-\x7e]{1,160}$")  # a presence key: printable ASCII, no spaces
_ID = re.compile(ID_PATTERN)
ANONYMOUS = "anon:"  # the prefix of a person's key who was recorded without a QR


def anonymous_key() -> str:
    """A fresh presence key for a person without a QR: random, so it names nobody."""
    return ANONYMOUS + secrets.token_hex(16)


@dataclass(frozen=True)
class Sighting:
    """One entry or exit of one person: when (UTC), which way, and the person's presence keys."""

    at: datetime
    move: Move
    keys: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The wire form of a move: {"ts": ms, "move": "in"|"out", "keys": [...]}."""
        return {"ts": int(self.at.timestamp() * 1000), "move": self.move, "keys": list(self.keys)}


_RANK = {"in": 0, "out": 1}  # at the same moment an exit wins


@dataclass
class _Person:
    """The presence keys known to be one person's, and their latest move: (time, rank of the move)."""

    latest: tuple[datetime, int]
    keys: set[str]

    @property
    def entered(self) -> datetime | None:
        """When they entered, if their latest move is an entry."""
        at, rank = self.latest
        return at if rank == _RANK["in"] else None


class PresenceTable:
    """Who is inside: per person, the latest move wins (by event time; an exit at a tie).

    A person is every presence key that ever appeared in one move together (a
    national QR names the QID and the citizen number): linking keys and keeping
    the latest move are both order-free, so lanes that apply the same moves in
    any order agree on who is inside.
    """

    def __init__(self) -> None:
        self._person_of: dict[str, _Person] = {}

    def __len__(self) -> int:
        return sum(1 for person in self._people() if person.entered is not None)

    def _people(self) -> list[_Person]:
        return list({id(p): p for p in self._person_of.values()}.values())

    def entered_at(self, keys: Iterable[str]) -> datetime | None:
        """When the person with any of these keys entered, if they are counted inside."""
        times = [t for k in keys if k in self._person_of and (t := self._person_of[k].entered) is not None]
        return max(times) if times else None

    def inside(self, keys: Iterable[str], *, since: datetime) -> bool:
        """Whether someone with any of these keys entered after `since` and has not left."""
        at = self.entered_at(keys)
        return at is not None and at > since

    def count(self, *, since: datetime) -> int:
        """People inside who entered after `since` (the earlier ones have timed out)."""
        return sum(1 for p in self._people() if p.entered is not None and p.entered > since)

    def first_anonymous(self, *, since: datetime) -> str | None:
        """The key of the anonymous person inside who entered first after `since` (key order at a tie)."""
        inside = [
            (p.entered, key)
            for p in self._people()
            if p.entered is not None and p.entered > since
            for key in p.keys
            if key.startswith(ANONYMOUS)
        ]
        return min(inside)[1] if inside else None

    def apply(self, sighting: Sighting, *, horizon: datetime) -> bool:
        """Merge one move (local or a peer's); whether it changed anything."""
        if sighting.at <= horizon or not sighting.keys:
            return False  # older than the presence timeout: it can no longer matter
        move = (sighting.at, _RANK[sighting.move])
        known = list({id(p): p for k in sighting.keys if (p := self._person_of.get(k))}.values())
        if not known:
            person = _Person(move, set(sighting.keys))
        else:
            person = max(known, key=lambda p: len(p.keys))  # merge the smaller into the larger
            for other in known:
                person.keys |= other.keys
                person.latest = max(person.latest, other.latest)
        changed = len(known) != 1 or move > person.latest or not person.keys.issuperset(sighting.keys)
        person.latest = max(person.latest, move)
        person.keys.update(sighting.keys)
        for key in person.keys:
            self._person_of[key] = person
        return changed

    def expire(self, before: datetime) -> None:
        """Forget the people whose latest move was at or before `before` (the presence timeout)."""
        for key in [k for k, p in self._person_of.items() if p.latest[0] <= before]:
            del self._person_of[key]


# ---------------------------------------------------------------- the signed messages


@dataclass(frozen=True)
class Message:
    """A verified presence message of one peer: its moves, and the (epoch, seq) of a move message."""

    device: str
    kind: Literal["move", "snapshot"]
    sightings: tuple[Sighting, ...]
    epoch: int = 0
    seq: int = 0


def move_token(
    key: Ed25519PrivateKey, *, device: str, destination: str, epoch: int, seq: int, sighting: Sighting
) -> bytes:
    """The signed message of one entry or exit, numbered by the event that recorded it."""
    body = {"v": VERSION, "kind": "move", "device": device, "destination": destination,
            "epoch": epoch, "seq": seq, **sighting.to_json()}  # fmt: skip
    return _sign(key, device, body)


def snapshot_token(
    key: Ed25519PrivateKey, *, device: str, destination: str, now: datetime, sightings: Iterable[Sighting]
) -> bytes:
    """The signed, retained snapshot of a kiosk's own moves within the presence timeout."""
    body = {"v": VERSION, "kind": "snapshot", "device": device, "destination": destination,
            "ts": int(now.timestamp() * 1000), "moves": [s.to_json() for s in sightings]}  # fmt: skip
    return _sign(key, device, body)


def _sign(key: Ed25519PrivateKey, device: str, body: dict[str, Any]) -> bytes:
    return jws.sign(json.dumps(body, separators=(",", ":")).encode(), key, kid=device, typ=TYP)


def read_message(token: bytes, *, topic_device: str, destination: str, peers: jws.KeyLookup) -> Message:
    """Verify a peer's presence message, then parse it; BrokerMessageError with a reason code if refused."""
    try:
        verified = jws.verify(token, peers)
    except SignatureError as e:
        reason = "presence_unknown_peer" if "unknown key id" in str(e) else "presence_bad_signature"
        raise BrokerMessageError(reason, f"presence message from {topic_device!r}: {e}") from e
    if verified.kid != topic_device:
        raise BrokerMessageError(
            "presence_wrong_device", f"signed by {verified.kid!r} on the topic of {topic_device!r}"
        )
    try:
        body = safejson.loads(verified.payload, max_bytes=MAX_MESSAGE_BYTES, max_depth=4)
        return _parse(body, topic_device, destination)
    except (UnsafeJSONError, ValueError, TypeError, KeyError, OverflowError) as e:
        raise BrokerMessageError("presence_malformed", f"presence message from {topic_device!r}: {e}") from e


def _parse(body: Any, device: str, destination: str) -> Message:
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise ValueError(f"not a version {VERSION} presence message")
    if body.get("device") != device or body.get("destination") != destination:
        raise ValueError(f"names {body.get('device')!r} at {body.get('destination')!r}")
    if body.get("kind") == "move":
        epoch, seq = _count(body["epoch"]), _count(body["seq"])
        return Message(device, "move", (_sighting(body),), epoch=epoch, seq=seq)
    if body.get("kind") == "snapshot":
        moves = body["moves"]
        if not isinstance(moves, list) or len(moves) > MAX_MOVES:
            raise ValueError(f"moves must be a list of at most {MAX_MOVES}")
        return Message(device, "snapshot", tuple(_sighting(m) for m in moves))
    raise ValueError(f"unknown kind {body.get('kind')!r}")


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"{value!r} is not a count")
    return value


def _sighting(item: Any) -> Sighting:
    if not isinstance(item, dict) or item.get("move") not in ("in", "out"):
        raise ValueError("a move needs move = 'in' or 'out'")
    keys = item["keys"]
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_KEYS:
        raise ValueError(f"keys must be a list of 1 to {MAX_KEYS}")
    if not all(isinstance(k, str) and _KEY.fullmatch(k) for k in keys):
        raise ValueError("a presence key is printable ASCII of 1 to 160 characters")
    ts = _count(item["ts"])
    return Sighting(datetime.fromtimestamp(ts / 1000, UTC), item["move"], tuple(keys))


def load_peers(path: Path, destination: str) -> dict[str, Ed25519PublicKey]:
    """The public keys of the destination's kiosks, by device id, from their registration records.

    The file is a JSON list of the records `kiosk provision` prints (device,
    destination, public_key), as `kiosk-central peers DESTINATION` writes it from
    the registry; records of other destinations are refused, not skipped.
    """
    try:
        records = safejson.loads(path.read_bytes(), max_depth=3)
    except (OSError, UnsafeJSONError) as e:
        raise DeviceKeyError(f"cannot read the peer keys in {path}: {e}") from e
    if not isinstance(records, list):
        raise DeviceKeyError(f"{path}: expected a JSON list of registration records")
    peers: dict[str, Ed25519PublicKey] = {}
    for record in records:
        device, where = (
            record.get(k) if isinstance(record, dict) else None for k in ("device", "destination")
        )
        if not isinstance(device, str) or not _ID.fullmatch(device) or where != destination:
            raise DeviceKeyError(f"{path}: a record of device {device!r} at {where!r}, not {destination!r}")
        peers[device] = _public_key(record.get("public_key"), f"{path}: {device}")
    return peers


def _public_key(pem: Any, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(str(pem).encode("ascii", "replace"))
    except ValueError as e:
        raise DeviceKeyError(f"{where}: not a PEM public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise DeviceKeyError(f"{where}: not an Ed25519 public key")
    return key


# ---------------------------------------------------------------- between the loop and the uplink


class PresenceBoard:
    """The kiosk's side of the sharing: its own moves out to the uplink, the peers' moves in to the loop.

    The loop calls `mine()` and `take_received()`; the uplink's drain thread
    calls `outgoing()`, `snapshot()` and `receive()`. One lock guards the queues.
    """

    def __init__(
        self,
        *,
        device: str,
        destination: str,
        signing_key: Ed25519PrivateKey,
        peers: dict[str, Ed25519PublicKey],
        timeout: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.device, self.destination = device, destination
        self._key, self._peers = signing_key, peers
        self.timeout, self._now = timeout, now
        self._lock = threading.Lock()
        self._own: dict[str, Sighting] = {}  # own latest move per primary key, for the snapshot
        self._outbox: collections.deque[tuple[int, int, Sighting]] = collections.deque(maxlen=MAX_OUTBOX)
        self._received: collections.deque[Sighting] = collections.deque()
        self._last_seq: dict[tuple[str, int], int] = {}  # (peer, epoch) -> the highest seq applied
        self._changed = True

    def mine(self, sighting: Sighting, *, epoch: int, seq: int) -> None:
        """A move this kiosk recorded (event epoch and seq): to be told to the peers."""
        with self._lock:
            self._own[sighting.keys[0]] = sighting
            self._outbox.append((epoch, seq, sighting))
            self._changed = True

    def outgoing(self) -> list[bytes]:
        """The signed move messages waiting for the broker, oldest first (taken off the queue)."""
        with self._lock:
            waiting, self._outbox = list(self._outbox), collections.deque(maxlen=MAX_OUTBOX)
        return [
            move_token(
                self._key, device=self.device, destination=self.destination, epoch=e, seq=s, sighting=m
            )
            for e, s, m in waiting
        ]

    def snapshot(self, *, force: bool) -> bytes | None:
        """The signed snapshot of own moves within the timeout, if it changed since the last (or `force`)."""
        now = self._now()
        with self._lock:
            if not (force or self._changed):
                return None
            self._changed = False
            horizon = now - self.timeout
            self._own = {k: s for k, s in self._own.items() if s.at > horizon}
            sightings = sorted(self._own.values(), key=lambda s: s.at)
        return snapshot_token(
            self._key, device=self.device, destination=self.destination, now=now, sightings=sightings
        )

    def receive(self, topic_device: str, token: bytes) -> None:
        """A peer's message (drain thread): verified, de-duplicated, queued for the loop, or refused."""
        if topic_device == self.device:
            return  # our own retained snapshot or move coming back
        message = read_message(token, topic_device=topic_device, destination=self.destination,
                               peers=self._peers.get)  # fmt: skip
        with self._lock:
            if message.kind == "move":
                number = (message.device, message.epoch)
                if message.seq <= self._last_seq.get(number, 0):
                    return  # delivered twice (QoS 1): the merge would ignore it anyway
                self._last_seq[number] = message.seq
            self._received.extend(message.sightings)

    def take_received(self) -> list[Sighting]:
        """The peers' moves waiting for the loop to merge (taken off the queue)."""
        with self._lock:
            taken = list(self._received)
            self._received.clear()
        return taken
