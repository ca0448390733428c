"""Contact tracing: where a person was, and who was at the same venue at the same time.

A person is found by the identities their card yields in the store: central's
keyed hash of the card identity (schema-v2 events: any identity of the card,
whatever its format), and, for schema-v1 events still stored, the HMAC of
f"{format}:{card identity}" under the old shared identity key for each card
format (or one) and the plain "plain:<id>" form some destinations sent. Presence
at a venue runs from an "in" scan to the next "out" scan of the same person there;
without an out scan it lasts a configurable dwell time (and an out scan without an
in scan is taken to close a dwell that ended then). Only admitted scans (verdict
"pass") count as presence: a refused person did not go in.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.central.identities import central_hash
from kiosk.central.store import EventRow, Store
from kiosk.events import hash_identity

HOUR_MS = 3_600_000
TRACE_FORMATS = ("national", "cccd", "dcc")


@dataclass(frozen=True)
class Presence:
    """One person at one venue from `start` to `end` (UTC ms)."""

    identity: str
    destination: str
    start: int
    end: int
    closed_by_out: bool  # False: the end is estimated from the dwell time


@dataclass(frozen=True)
class Contact:
    """Someone present at a venue while the traced person was: when, and for how long in all."""

    identity: str
    destination: str
    first: int
    last: int
    minutes: float


@dataclass(frozen=True)
class Trace:
    """The answer: the identities searched, the visits found, and the contacts, longest first."""

    identities: tuple[str, ...]
    visits: tuple[Presence, ...]
    contacts: tuple[Contact, ...]


def identities_for(
    card_identity: str,
    *,
    identity_key: bytes | None,
    formats: Sequence[str],
    hash_key: bytes | None = None,
) -> list[str]:
    """Every stored identity a card identity may appear as (central's hash; v1's forms)."""
    if card_identity.startswith(("hmac:", "plain:")):
        return [card_identity]
    found = [central_hash(hash_key, card_identity)] if hash_key is not None else []
    found.append(f"plain:{card_identity}")
    if identity_key is not None:
        found += [hash_identity(identity_key, fmt, card_identity) for fmt in formats]
    return found


def presences(events: Iterable[EventRow], *, dwell_ms: int) -> list[Presence]:
    """Presence intervals from admitted visitor scans, per person and venue, in time order.

    Only a visitor's `scan` is presence: an inspector's own card, a street check and a
    person without a QR are not visits (else an inspector is everyone's contact).
    """
    by_person: dict[tuple[str, str], list[EventRow]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.ts):
        if e.identity is not None and e.verdict == "pass" and e.kind == "scan" and e.format != "inspector":
            by_person[(e.identity, e.destination)].append(e)
    found = [p for scans in by_person.values() for p in _intervals(scans, dwell_ms)]
    return sorted(found, key=lambda p: (p.start, p.identity))


def _intervals(scans: Sequence[EventRow], dwell_ms: int) -> list[Presence]:
    """Pair one person's in and out scans at one venue (oldest first) into intervals."""
    out: list[Presence] = []
    opened: int | None = None
    first = scans[0]

    def add(start: int, end: int, closed: bool) -> None:
        out.append(Presence(first.identity or "", first.destination, start, end, closed))

    for e in scans:
        if e.direction == "out":
            add(opened if opened is not None else e.ts - dwell_ms, e.ts, True)
            opened = None
            continue
        if opened is not None:  # in again without an out: the earlier stay ended by now at the latest
            add(opened, min(e.ts, opened + dwell_ms), False)
        opened = e.ts
    if opened is not None:
        add(opened, opened + dwell_ms, False)
    return out


def trace(
    store: Store,
    identities: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    dwell_ms: int = HOUR_MS,
    lookback_ms: int = 24 * HOUR_MS,
) -> Trace:
    """Visits of a person within [start_ms, end_ms) and the people present with them."""
    found, own = _person_events(store, identities, start_ms, end_ms)
    visits = presences(found, dwell_ms=dwell_ms)
    overlaps: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for visit in visits:
        # Others' stays may have started long before the visit (an in scan hours earlier).
        nearby = store.events(visit.start - lookback_ms, visit.end + dwell_ms, destination=visit.destination)
        for other in presences(nearby, dwell_ms=dwell_ms):
            first, last = max(other.start, visit.start), min(other.end, visit.end)
            if other.identity not in own and last > first:
                overlaps[(other.identity, other.destination)].append((first, last))
    contacts = [_contact(who, where, spans) for (who, where), spans in overlaps.items()]
    contacts.sort(key=lambda c: (-c.minutes, c.identity))
    return Trace(tuple(identities), tuple(visits), tuple(contacts))


def _person_events(
    store: Store, identities: Sequence[str], start_ms: int, end_ms: int
) -> tuple[list[EventRow], set[str]]:
    """The person's events, and every identity they are known by (never counted as their contacts).

    A national QR names the QID and the citizen number, which a CCCD shows alone: the
    other identities of the cards found are searched too (once), so either one finds both.
    """
    asked = set(identities)
    found = store.events_of(identities, start_ms, end_ms)
    linked = asked | _identities_in(found)
    if linked != asked:
        found = store.events_of(sorted(linked), start_ms, end_ms)
    return found, linked | _identities_in(found)


def _identities_in(events: Iterable[EventRow]) -> set[str]:
    return {i for e in events for i in (e.identity, e.identity_alt) if i is not None}


def _contact(identity: str, destination: str, spans: list[tuple[int, int]]) -> Contact:
    minutes = sum(b - a for a, b in _merged(spans)) / 60_000
    return Contact(identity, destination, min(a for a, _ in spans), max(b for _, b in spans), minutes)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of intervals, so a stay seen from two overlapping visits is not counted twice."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def as_json(result: Trace) -> str:
    """The trace as JSON."""
    return json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n"


def as_table(result: Trace, zone: ZoneInfo) -> str:
    """The trace as text for a terminal, times in `zone`."""

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")

    lines = [f"Visits ({len(result.visits)}):"]
    lines += [
        f"  {v.destination}  {when(v.start)} - {when(v.end)}{'' if v.closed_by_out else ' (est.)'}"
        for v in result.visits
    ]
    lines.append(f"Contacts ({len(result.contacts)}):")
    lines += [
        f"  {c.identity}  at {c.destination}  {when(c.first)} - {when(c.last)}  {c.minutes:.0f} min"
        for c in result.contacts
    ]
    return "\n".join(lines) + "\n"
