"""The decision rules of one destination: a Card or a Rejection in, a frozen Decision out.

Order of the rules for a card read on entry: accepted format, status list,
vaccine-passport rules, capacity. Leaving is never refused for a card that was
read (the status is still recorded). The same identity seen again within the
repeat window (sliding: each sighting extends it) is the same scan: the earlier
decision comes back with `repeat=True`, and nothing toggles or counts.

`decide()` runs on the main loop for every decoded symbol, so it does a few
dictionary operations and at most one status-list lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol

from kiosk.cards import Card, DccCard, DiagnosticTest, Rejection, Vaccination
from kiosk.cards.dcc_schema import Recovery
from kiosk.config import DestinationConfig, PolicyConfig
from kiosk.reasons import Lang, Reason, message
from kiosk.statuslist import VIETNAM, Status

Verdict = Literal["pass", "fail"]
Direction = Literal["in", "out"]
_DCC_TYPES = {"v": "vaccination", "t": "test", "r": "recovery"}


class StatusSource(Protocol):
    """Anything that answers status-list lookups (a StatusListStore or a StatusList)."""

    def lookup(self, identity: str) -> Status | None:
        """The listed status of `identity`, or None."""


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
    details: dict[str, Any] = field(default_factory=dict, compare=False)

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
        self, rules: PolicyConfig, destination: DestinationConfig, *, statuslist: StatusSource | None = None
    ) -> None:
        self.statuslist = statuslist
        self.reconfigure(rules, destination)
        self._recent: OrderedDict[Hashable, tuple[datetime, Decision]] = OrderedDict()
        self._present: OrderedDict[str, datetime] = OrderedDict()

    def reconfigure(self, rules: PolicyConfig, destination: DestinationConfig) -> None:
        """Apply new rules (SIGHUP); who is inside and the recent scans are kept."""
        self.rules = rules
        self.destination = destination
        self._blocked = frozenset(rules.blocked_statuses)
        self._window = timedelta(seconds=rules.repeat_window_s)
        self._timeout = timedelta(seconds=destination.presence_timeout_s)

    @property
    def occupancy(self) -> int:
        """People counted inside (auto mode): entered, not yet left, not timed out."""
        return len(self._present)

    def decide(
        self,
        item: Card | Rejection,
        *,
        now: datetime,
        clock_synced: bool = True,
        payload: bytes | None = None,
    ) -> Decision:
        """Decide one decoded symbol; `payload` (its raw bytes) tells repeats of unnamed codes apart."""
        self._expire(now)
        key = _repeat_key(item, payload)
        seen, earlier = self._recent.get(key, (None, None))
        # A clock that jumped back makes `now < seen`: decide afresh rather than repeat for long.
        if earlier is not None and seen is not None and seen <= now:
            self._remember(key, earlier, now)
            return replace(earlier, repeat=True, at=now, clock_synced=clock_synced)
        decision = self._fresh(item, now, clock_synced)
        self._remember(key, decision, now)
        return decision

    def _fresh(self, item: Card | Rejection, now: datetime, clock_synced: bool) -> Decision:
        if isinstance(item, Rejection):
            return Decision(
                verdict="fail", reason=item.reason, direction=None, identity=None,
                masked_name="", format=item.format, at=now, clock_synced=clock_synced,
            )  # fmt: skip
        direction = self._direction(item.identity)
        status = self._status(item.identity, now)
        base = Decision(
            verdict="pass", reason=Reason.OK, direction=direction, identity=item.identity,
            masked_name=item.masked_name, format=item.format, at=now, clock_synced=clock_synced,
            status=status.code if status else None, details={"name": item.masked_name},
        )  # fmt: skip
        if direction == "out":
            return self._leave(base)
        try:
            self._check_entry(item, status, now)
        except _Refused as refused:
            return replace(base, verdict="fail", reason=refused.reason, details=refused.details)
        return self._enter(base)

    def _check_entry(self, card: Card, status: Status | None, now: datetime) -> None:
        if card.format not in self.rules.accepted_formats:
            raise _Refused(Reason.FORMAT_NOT_ACCEPTED)
        if status is not None and status.code in self._blocked:
            raise _Refused(Reason.STATUS_BLOCKED, status=status.code)
        if isinstance(card, DccCard):
            self._check_dcc(card, now)
        capacity = self.destination.capacity
        if capacity is not None and self.occupancy >= capacity:
            raise _Refused(Reason.CAPACITY_FULL, occupancy=self.occupancy, limit=capacity)

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
        if age > timedelta(hours=self.rules.dcc.test_max_age_hours):
            raise _Refused(Reason.DCC_TEST_TOO_OLD, hours=int(age.total_seconds() // 3600))

    def _check_recovery(self, entry: Recovery, today: date) -> None:
        if today < entry.valid_from:
            raise _Refused(Reason.DCC_NOT_YET_VALID)
        too_long_ago = (today - entry.first_positive).days > self.rules.dcc.recovery_max_days
        if today > entry.valid_until or too_long_ago:
            raise _Refused(Reason.DCC_RECOVERY_EXPIRED)

    # ------------------------------------------------------------ state: repeats, presence, status

    def _status(self, identity: str | None, now: datetime) -> Status | None:
        if identity is None or self.statuslist is None:
            return None
        status = self.statuslist.lookup(identity)
        return status if status is not None and status.applies(now) else None

    def _direction(self, identity: str | None) -> Direction:
        if self.destination.direction != "auto":
            return self.destination.direction
        return "out" if identity is not None and identity in self._present else "in"

    def _enter(self, decision: Decision) -> Decision:
        # Only auto mode sees people leave, and a card without identity cannot be matched on exit.
        if self.destination.direction == "auto" and decision.identity is not None:
            self._present[decision.identity] = decision.at
        return decision

    def _leave(self, decision: Decision) -> Decision:
        if decision.identity is not None:
            self._present.pop(decision.identity, None)
        return decision

    def _remember(self, key: Hashable, decision: Decision, now: datetime) -> None:
        if self._window:
            self._recent[key] = (now, decision)
            self._recent.move_to_end(key)

    def _expire(self, now: datetime) -> None:
        # Both maps are in order of last touch, so the stale entries are at the front.
        while self._recent and next(iter(self._recent.values()))[0] <= now - self._window:
            self._recent.popitem(last=False)
        while self._present and next(iter(self._present.values())) <= now - self._timeout:
            self._present.popitem(last=False)


def _repeat_key(item: Card | Rejection, payload: bytes | None) -> Hashable:
    if isinstance(item, Card) and item.identity is not None:
        return ("identity", item.identity)
    if payload is not None:
        return ("payload", payload)
    return ("item", item)


def _local_day(now: datetime) -> date:
    """The calendar day in Vietnam, where dose dates and recovery dates are counted."""
    return now.astimezone(VIETNAM).date()
