"""The decision rules of one destination: a Card or a Rejection in, a frozen Decision out.

Order of the rules for a card read on entry: accepted format, status list,
vaccine-passport rules, capacity. Leaving is never refused for a card that was
read (the status is still recorded). The same identity seen again within the
repeat window (sliding: each sighting extends it) is the same scan: the earlier
decision comes back with `repeat=True`, and nothing toggles or counts. Another
card of the same person within the window repeats a pass, but not a refusal.

A person may carry several identities (a national QR names the QID and the
citizen number, a CCCD the new and the old id number): the status list and
presence match on any of them, so a listed number is found whichever card
shows it, and leaving with another card of the same person counts as leaving.

Deciding is two steps, so that nothing changes for a scan that was not
recorded: `evaluate()` turns a card into a Decision without changing any state,
and `commit()` applies its effects (the repeat table, who is inside) once the
loop has recorded it. A record that fails (a full disk) leaves the policy as it
was: the person is refused, and their next try is decided afresh. `decide()`
does both at once, for callers that record nothing (the CLI, examples).

`evaluate()` runs on the main loop for every decoded symbol, so it does a few
dictionary operations, one tag (HMAC) and at most one status-list lookup per card identity.

The repeat table knows a card by its presence keys (the daemon's are the
destination key's tags, kiosk.sealing.tag) and a payload by a keyed hash
(repeats.PayloadKeys), and keeps each decision without the card's identities:
no plain identity stays in memory once its scan is decided and recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol

from kiosk.cards import Card, DccCard, DiagnosticTest, Rejection, Vaccination
from kiosk.cards.dcc import CLOCK_SKEW
from kiosk.cards.dcc_schema import Recovery
from kiosk.config import DEFAULT_BLOCKED, DestinationConfig, PolicyConfig
from kiosk.presence import PresenceTable, Sighting, anonymous_key
from kiosk.reasons import Reason, message
from kiosk.repeats import PayloadKeys, RecentScans
from kiosk.statuslist import VIETNAM, Status
from kiosk.text import Lang

Verdict = Literal["pass", "fail"]
Direction = Literal["in", "out"]
_DCC_TYPES = {"v": "vaccination", "t": "test", "r": "recovery"}


class StatusSource(Protocol):
    """Anything that answers status-list lookups (a StatusListStore or a StatusList)."""

    def lookup(self, identity: str) -> Status | None:
        """The listed status of `identity`, or None."""


@dataclass(frozen=True)
class Effects:
    """What committing a decision changes: the keys it repeats under, and who is inside."""

    repeat_keys: tuple[Hashable, ...] = ()
    move: Direction | None = None  # in: count the person inside; out: count them out
    presence_keys: tuple[str, ...] = ()  # the person's keys in the presence table, primary first


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What the kiosk decided about one scan, with everything the screen and the event need."""

    verdict: Verdict
    reason: Reason
    direction: Direction | None
    identity: str | None
    masked_name: str
    format: str
    at: datetime
    repeat: bool = False
    clock_synced: bool = True
    status: str | None = None
    identities: tuple[str, ...] = field(default=(), repr=False)  # every identity of the card, primary first
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    effects: Effects = field(default=Effects(), compare=False, repr=False)

    @property
    def passed(self) -> bool:
        """Whether the person may go through."""
        return self.verdict == "pass"

    def message(self, lang: Lang = "vi") -> str:
        """The human message for the screen, Vietnamese by default."""
        return message(self.reason, lang, **self.details)

    @property
    def message_vi(self) -> str:
        """The message in Vietnamese."""
        return self.message("vi")

    @property
    def message_en(self) -> str:
        """The message in English."""
        return self.message("en")


class _Refused(Exception):  # noqa: N818 - internal control flow inside Policy.decide
    def __init__(self, reason: Reason, **details: Any) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.details = details


class Policy:
    """Decides pass or fail for each scan at one destination, and tracks who is inside."""

    def __init__(
        self,
        rules: PolicyConfig,
        destination: DestinationConfig,
        *,
        statuslist: StatusSource | None = None,
        presence_keys: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        self.statuslist = statuslist
        # How an identity is known in the presence table: the daemon passes the destination key's tags,
        # so that who is inside can be rebuilt from the spool after a restart (restore_presence).
        self._presence_keys = presence_keys or (lambda identity: (identity,))
        self.reconfigure(rules, destination)
        # Each decision under its repeat keys, with the key of the card's primary identity.
        self._recent: RecentScans[tuple[Decision, Hashable]] = RecentScans()
        self._payload_key = PayloadKeys()
        self._present = PresenceTable()

    def reconfigure(self, rules: PolicyConfig, destination: DestinationConfig) -> None:
        """Apply new rules (SIGHUP); who is inside and the recent scans are kept."""
        self.rules = rules
        self.destination = destination
        self._blocked = frozenset(rules.blocked_statuses)
        self._window = timedelta(seconds=rules.repeat_window_s)
        self._timeout = timedelta(seconds=destination.presence_timeout_s)

    @property
    def occupancy(self) -> int:
        """People counted inside (every lane of the venue): entered, not yet left, not timed out."""
        return len(self._present)

    def expire(self, now: datetime) -> None:
        """Stop counting the people who entered longer than the presence timeout ago."""
        self._present.expire(now - self._timeout)

    def merge(self, sightings: Iterable[Sighting], *, now: datetime) -> int:
        """Apply the other lanes' entries and exits (presence.py's rule); how many changed anything."""
        self.expire(now)
        horizon = now - self._timeout
        return sum(self._present.apply(sighting, horizon=horizon) for sighting in sightings)

    def decide(
        self,
        item: Card | Rejection,
        *,
        now: datetime,
        clock_synced: bool = True,
        payload: bytes | None = None,
    ) -> Decision:
        """Evaluate and commit at once, for a caller that records nothing (the CLI, examples)."""
        decision = self.evaluate(item, now=now, clock_synced=clock_synced, payload=payload)
        self.commit(decision)
        return decision

    def evaluate(
        self,
        item: Card | Rejection,
        *,
        now: datetime,
        clock_synced: bool = True,
        payload: bytes | None = None,
    ) -> Decision:
        """Decide one decoded symbol without changing any state; `payload` tells unnamed codes apart."""
        tags = self._keys(item.identities) if isinstance(item, Card) else ()
        keys = self._repeat_keys(item, tags, payload)
        earlier = self._earlier(item, keys, now)
        if earlier is not None:
            card = item if isinstance(item, Card) else None  # the earlier decision kept no identity
            return replace(
                earlier, repeat=True, at=now, clock_synced=clock_synced, effects=Effects(keys),
                identity=card.identity if card else None, identities=card.identities if card else (),
            )  # fmt: skip
        decision = self._fresh(item, tags, now, clock_synced)
        return replace(decision, effects=replace(decision.effects, repeat_keys=keys))

    def no_qr(self, *, now: datetime, clock_synced: bool = True) -> Decision:
        """A person without a QR whom staff record (button or key): an anonymous entry (exit at an exit lane).

        Always a fail (no card was checked) with a direction: staff let the person in, so they
        count inside (and against the capacity) under a key of their own; at an `out` lane
        the anonymous person who entered first leaves (presence.py). Nothing repeats it.
        """
        if self.destination.direction == "out":
            first = self._present.first_anonymous(since=now - self._timeout)
            direction: Direction = "out"
            keys = (first,) if first is not None else ()
        else:
            direction, keys = "in", (anonymous_key(),)
        return Decision(
            verdict="fail", reason=Reason.NO_QR, direction=direction, identity=None, masked_name="",
            format="unknown", at=now, clock_synced=clock_synced,
            effects=Effects(move=direction if keys else None, presence_keys=keys),
        )  # fmt: skip

    def commit(self, decision: Decision) -> None:
        """Apply a recorded decision (or a repeat): remember it for the window, count people in or out."""
        now, effects = decision.at, decision.effects
        self.expire(now)
        keys = effects.repeat_keys
        kept = replace(decision, identity=None, identities=())
        self._recent.remember(keys, (kept, keys[0] if keys else None), now, self._window)
        if effects.move is not None and effects.presence_keys:
            self._present.apply(
                Sighting(now, effects.move, effects.presence_keys), horizon=now - self._timeout
            )

    def _earlier(self, item: Card | Rejection, keys: tuple[Hashable, ...], now: datetime) -> Decision | None:
        """The decision this scan repeats, if any."""
        for key in keys:
            seen = self._recent.find(key, now)
            if seen is None:
                continue
            earlier, card = seen
            # Another card of the same person just after a pass is the same visit (not an exit);
            # after a refusal it is a new try with a card that may be accepted.
            if not isinstance(item, Card) or card == keys[0] or earlier.passed:
                return earlier
        return None

    def _repeat_keys(
        self, item: Card | Rejection, tags: tuple[str, ...], payload: bytes | None
    ) -> tuple[Hashable, ...]:
        """The keys a scan repeats under: the card's presence keys, else its payload's keyed hash."""
        if tags:
            return tuple(("identity", tag) for tag in tags)
        if payload is not None:
            return (("payload", self._payload_key(payload)),)
        return (("item", item),)

    def _fresh(
        self, item: Card | Rejection, keys: tuple[str, ...], now: datetime, clock_synced: bool
    ) -> Decision:
        if isinstance(item, Rejection):
            return Decision(
                verdict="fail", reason=item.reason, direction=None, identity=None,
                masked_name="", format=item.format, at=now, clock_synced=clock_synced,
            )  # fmt: skip
        direction = self._direction(keys, now)
        status = self._status(item, now)
        base = Decision(
            verdict="pass", reason=Reason.OK, direction=direction, identity=item.identity,
            identities=item.identities, masked_name=item.masked_name, format=item.format, at=now,
            clock_synced=clock_synced, status=status.code if status else None,
            details={"name": item.masked_name},
        )  # fmt: skip
        if direction == "out":
            return replace(
                base, reason=self._exit_reason(keys, now), effects=Effects(move="out", presence_keys=keys)
            )
        try:
            self._check_entry(item, status, now)
            self._check_second_entry(keys, now)
        except _Refused as refused:
            return replace(base, verdict="fail", reason=refused.reason, details=refused.details)
        reason = Reason.ALREADY_INSIDE if self._present.inside(keys, since=now - self._timeout) else Reason.OK
        return replace(base, reason=reason, effects=self._entry_effects(base, keys))

    def _exit_reason(self, keys: tuple[str, ...], now: datetime) -> Reason:
        """An exit is never refused; one of a person no lane saw entering is recorded as such."""
        return Reason.OK if self._present.inside(keys, since=now - self._timeout) else Reason.EXIT_UNSEEN

    def _check_second_entry(self, keys: tuple[str, ...], now: datetime) -> None:
        # Only a lane that counts entries alone meets this (auto mode would have counted an exit).
        refuse = self.destination.second_entry == "refuse"
        if refuse and self._present.inside(keys, since=now - self._timeout):
            raise _Refused(Reason.ALREADY_INSIDE)

    def _check_entry(self, card: Card, status: Status | None, now: datetime) -> None:
        if card.format not in self.rules.accepted_formats:
            raise _Refused(Reason.FORMAT_NOT_ACCEPTED)
        if status is not None and status.code in self._blocked:
            raise _Refused(Reason.STATUS_BLOCKED, status=status.code)
        if isinstance(card, DccCard):
            self._check_dcc(card, now)
        capacity = self.destination.capacity
        inside = self._present.count(since=now - self._timeout)
        if capacity is not None and inside >= capacity:
            raise _Refused(Reason.CAPACITY_FULL, occupancy=inside, limit=capacity)

    # ------------------------------------------------------------ vaccine passports

    def _check_dcc(self, card: DccCard, now: datetime) -> None:
        rules = self.rules.dcc
        if rules.require_verified and not card.verified:
            raise _Refused(Reason.DCC_NOT_VERIFIABLE)
        if _DCC_TYPES[card.kind] not in rules.accepted_types:
            raise _Refused(Reason.DCC_TYPE_NOT_ACCEPTED)
        entry = card.certificate.entry
        if isinstance(entry, Vaccination):
            self._check_vaccination(entry, _local_day(now))
        elif isinstance(entry, DiagnosticTest):
            self._check_test(entry, now)
        else:
            self._check_recovery(entry, _local_day(now))

    def _check_vaccination(self, entry: Vaccination, today: date) -> None:
        if self.rules.dcc.complete_vaccination and not entry.complete:
            raise _Refused(
                Reason.DCC_VACCINATION_INCOMPLETE, dose=entry.dose_number, series=entry.total_doses
            )
        waited = (today - entry.date).days
        if waited < self.rules.dcc.min_days_after_dose:
            raise _Refused(
                Reason.DCC_VACCINATION_TOO_RECENT, days=self.rules.dcc.min_days_after_dose - waited
            )

    def _check_test(self, entry: DiagnosticTest, now: datetime) -> None:
        if entry.positive:
            raise _Refused(Reason.DCC_TEST_POSITIVE)
        age = now - entry.sample_time
        if age < -CLOCK_SKEW:  # sampled in the future: a forged or mistyped certificate
            raise _Refused(Reason.DCC_NOT_YET_VALID)
        if age > timedelta(hours=self.rules.dcc.test_max_age_hours):
            raise _Refused(Reason.DCC_TEST_TOO_OLD, hours=int(age.total_seconds() // 3600))

    def _check_recovery(self, entry: Recovery, today: date) -> None:
        if today < entry.valid_from:
            raise _Refused(Reason.DCC_NOT_YET_VALID)
        too_long_ago = (today - entry.first_positive).days > self.rules.dcc.recovery_max_days
        if today > entry.valid_until or too_long_ago:
            raise _Refused(Reason.DCC_RECOVERY_EXPIRED)

    # ------------------------------------------------------------ state: repeats, presence, status

    def _status(self, card: Card, now: datetime) -> Status | None:
        status = listed_status(self.statuslist, card, now, blocked=self._blocked)
        return status if status is not None and status.applies(now) else None

    def _direction(self, keys: tuple[str, ...], now: datetime) -> Direction:
        if self.destination.direction != "auto":
            return self.destination.direction
        return "out" if self._present.inside(keys, since=now - self._timeout) else "in"

    def _entry_effects(self, decision: Decision, keys: tuple[str, ...]) -> Effects:
        # A card without identity cannot be matched on exit; every lane counts the others in.
        if decision.identity is None or not keys:
            return Effects()
        return Effects(move="in", presence_keys=keys)

    def _keys(self, identities: Iterable[str]) -> tuple[str, ...]:
        return tuple(key for identity in identities for key in self._presence_keys(identity))

    def restore_presence(self, passes: Iterable[tuple[datetime, Direction, str]]) -> None:
        """Replay recorded entries and exits (time, direction, presence key), oldest first (restart)."""
        for at, direction, key in passes:
            self._present.apply(Sighting(at, direction, (key,)), horizon=at - self._timeout)


def listed_status(
    statuslist: StatusSource | None,
    item: Card | Rejection,
    now: datetime,
    *,
    blocked: Collection[str] = DEFAULT_BLOCKED,
) -> Status | None:
    """The status-list entry of a card, looked up under each of its identities.

    A `blocked` status in force comes first, then any status in force, then a
    listed one that has ended (for the inspector's screen); None if none is listed.
    """
    if statuslist is None or not isinstance(item, Card):
        return None
    listed = [status for status in map(statuslist.lookup, item.identities) if status is not None]
    in_force = [status for status in listed if status.applies(now)]
    ranked = [*(s for s in in_force if s.code in blocked), *in_force, *listed]
    return ranked[0] if ranked else None


def _local_day(now: datetime) -> date:
    """The calendar day in Vietnam, where dose dates and recovery dates are counted."""
    return now.astimezone(VIETNAM).date()
