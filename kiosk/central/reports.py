"""Inspectors' daily report: per venue, what was scanned, by which devices, what looks wrong and
which inspectors came; and the street inspections' outcomes per handheld.

Days, hours and opening hours are local time (default Asia/Ho_Chi_Minh). The
destinations central knows are those of registered devices plus those listed in
an optional destinations file (TOML, see docs/central.md), which also gives each
one a name, a peer group and its own opening hours; a listed destination without
an active device is flagged "no device installed".

A venue's figures count visitor scans only (`is_visitor_scan`): inspections,
street records of people without a QR and refused inspector cards are reported
on their own. A person staff recorded without a QR at a venue's lane is one of
its visitor scans (a fail with reason no_qr and a direction), counted in its
scans, entries or exits and refusals, and shown on its own as `no_qr`. A
device registered with mode "inspector" is a handheld (`handhelds`), used or not,
and so is one with street checks or no-QR records and no visitor scans in the
report's history window (devices registered before the mode was kept); a destination whose every device is a
handheld is an inspection team or area, not a venue: it gets no venue figures
or flags, and its handhelds appear in the street part of the report.
"""

from __future__ import annotations

import itertools
import statistics
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiosk.central import acks, aggregates
from kiosk.central.aggregates import AreaTotal
from kiosk.central.registry import ACTIVE, HANDHELD
from kiosk.central.store import DeviceRow, EventRow, Store, VenueRow
from kiosk.errors import ConfigError
from kiosk.topics import ID_PATTERN

MINUTE_MS = 60_000
DAY_MS = 86_400_000
OLD_POSTER = "old_venue_qr"
INSPECTOR = "inspector"  # the card format of inspector cards
# Street-check reasons that mean the person breaks the rules; any other refusal is a code that is not valid.
VIOLATIONS = frozenset({"status_blocked"})


def _hours(value: str) -> str:
    try:
        opens, closes = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError as e:
        raise ValueError('must look like "07:00-21:00"') from e
    if closes <= opens:
        raise ValueError("closing time must be after opening time (same day)")
    return value


class DestinationInfo(BaseModel):
    """One destination the authority expects to see scans from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="Destination id, as in the devices' registrations.")
    name: str = Field("", max_length=120, description="Name shown in reports.")
    group: str = Field("", max_length=64, description="Peer group (e.g. market, office); peers are compared.")
    district: str = Field("", max_length=120, description="District (quận/huyện) the venue is in.")
    ward: str = Field("", max_length=120, description="Ward (phường/xã) the venue is in.")
    opening_hours: str | None = Field(None, description='Local opening hours, "HH:MM-HH:MM"; none = default.')

    @field_validator("opening_hours")
    @classmethod
    def _check_hours(cls, value: str | None) -> str | None:
        return value if value is None else _hours(value)


class ReportSettings(BaseModel):
    """How reports judge compliance (the destinations file, all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field("Asia/Ho_Chi_Minh", description="Time zone of days, hours and opening hours.")
    province: str = Field("", max_length=80, description="The province (tỉnh/thành phố) the database covers.")
    opening_hours: str = Field("07:00-21:00", description='Default local opening hours, "HH:MM-HH:MM".')
    low_fraction: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Flag a day's scans below this fraction of the usual or the peers' level.",
    )
    history_days: int = Field(14, ge=1, le=365, description="Days before the report's day that make 'usual'.")
    min_history_days: int = Field(3, ge=1, le=365, description="Days with scans needed to judge 'usual'.")
    offline_minutes: int = Field(
        15, ge=1, le=1440, description="Flag a device offline this long in opening hours."
    )
    silent_minutes: int = Field(
        120, ge=1, le=1440, description="Flag opening-hours stretches without a scan."
    )
    destinations: list[DestinationInfo] = Field(default_factory=list, description="Known destinations.")

    @field_validator("opening_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        return _hours(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError("unknown time zone (use an IANA name like Asia/Ho_Chi_Minh)") from e
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The time zone."""
        return ZoneInfo(self.timezone)

    def info(self, destination: str) -> DestinationInfo:
        """What the file says about a destination (defaults when it is not listed)."""
        return self.by_id.get(destination) or DestinationInfo(id=destination)

    @cached_property
    def by_id(self) -> dict[str, DestinationInfo]:
        """The listed destinations by id (a province lists thousands)."""
        return {d.id: d for d in self.destinations}

    def with_registry(self, venues: Iterable[VenueRow]) -> ReportSettings:
        """These settings with the venue registry's entries added (the file's own entries win)."""
        listed = self.by_id
        extra = [
            DestinationInfo(
                id=v.destination,
                name=v.name,
                group=v.grp,
                district=v.district,
                ward=v.ward,
                opening_hours=v.opening_hours,
            )
            for v in venues
            if v.destination not in listed
        ]
        if not extra:
            return self
        merged = self.model_copy(update={"destinations": [*self.destinations, *extra]})
        merged.__dict__.pop("by_id", None)  # model_copy copies the cached index of the old list
        return merged


def load_report_settings(path: Path | None) -> ReportSettings:
    """Read the destinations file (TOML), or the defaults when there is none."""
    if path is None:
        return ReportSettings()
    try:
        return ReportSettings.model_validate(tomllib.loads(path.read_text()))
    except OSError as e:
        raise ConfigError(f"cannot read destinations file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except ValidationError as e:
        problems = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"{len(problems)} problem(s) in {path}", problems) from e


@dataclass(frozen=True)
class Flag:
    """A compliance concern: a stable code and a sentence for the inspector."""

    code: str
    message: str  # in English
    values: tuple[str, ...] = ()  # the figures in the message, for other languages (kiosk.central.render)


@dataclass(frozen=True)
class Visit:
    """An inspector's visit to a venue, with what central knew of the venue at that moment."""

    ts: int
    device: str  # the kiosk the inspector card was shown to
    inspector: str | None  # the inspector's identity as stored (hashed like any identity)
    scans: int  # the venue's visitor scans that day up to the visit
    old_poster: int  # ... of them old venue posters
    states: dict[str, str]  # each of the venue's kiosks: its last known state at the visit
    flags: list[str]  # the venue's flag codes in this report


@dataclass(frozen=True)
class StreetCounts:
    """Street inspections by outcome."""

    checks: int = 0  # cards checked
    passed: int = 0
    violations: dict[str, int] = field(default_factory=dict)  # reason -> count (e.g. status_blocked)
    invalid: dict[str, int] = field(default_factory=dict)  # codes that are not valid cards, by reason
    no_qr: int = 0  # people without a QR


@dataclass(frozen=True)
class HandheldReport:
    """One street inspector's handheld: its team or area (its destination id) and the day's outcomes."""

    device: str
    destination: str
    status: str  # registry status
    counts: StreetCounts


@dataclass(frozen=True)
class DeviceReport:
    """One device's day."""

    device: str
    status: str  # registry status
    state: str  # last known state (online, stopped, offline, unknown)
    events: int
    uptime: float  # fraction of the opening hours (so far) it was online
    offline_minutes: float
    missing_seqs: int  # events it sent that central has not got (gaps below its highest seq)
    last_event_ms: int | None


@dataclass(frozen=True)
class DestinationReport:
    """One destination's day."""

    destination: str
    name: str
    group: str
    opening_hours: str
    district: str
    ward: str
    scans: int
    kinds: dict[str, int]
    directions: dict[str, int]  # in, out, none
    verdicts: dict[str, dict[str, int]]  # pass/fail -> reason -> count
    people: int
    hourly: list[int]  # 24 local hours
    old_poster: int
    usual: float | None  # median scans of its own earlier days
    peers: float | None  # median scans of its peers that day
    silences: list[tuple[int, int]]  # opening-hours stretches (start, end ms) without a scan
    devices: list[DeviceReport]
    flags: list[Flag]
    visits: list[Visit] = field(default_factory=list)
    refused_inspector_cards: dict[str, int] = field(default_factory=dict)  # reason -> count
    no_qr: int = 0  # people staff recorded without a QR (in its scans, as fails of reason no_qr)


@dataclass(frozen=True)
class Report:
    """The whole report of one day."""

    day: str
    timezone: str
    generated_ms: int
    destinations: list[DestinationReport] = field(default_factory=list)
    street: list[HandheldReport] = field(default_factory=list)
    street_total: StreetCounts = field(default_factory=StreetCounts)
    page: int = 1
    pages: int = 1
    venues: int = 0  # venues matching the filter, on every page
    areas: list[AreaTotal] = field(default_factory=list)  # visitor scans per district (or ward)


@dataclass(frozen=True)
class _Window:
    start: int
    end: int

    @property
    def minutes(self) -> float:
        return max(0, self.end - self.start) / MINUTE_MS


def _local_ms(day: date, at: time, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, at, tzinfo=zone).timestamp() * 1000)


def day_range(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """UTC ms of local midnight at the start and end of `day`."""
    return _local_ms(day, time(0), zone), _local_ms(day + timedelta(days=1), time(0), zone)


def _opening(day: date, hours: str, zone: ZoneInfo, now_ms: int) -> _Window:
    opens, closes = (time.fromisoformat(part.strip()) for part in hours.split("-"))
    # A report on today only judges the hours that have passed.
    return _Window(_local_ms(day, opens, zone), min(_local_ms(day, closes, zone), now_ms))


@dataclass(frozen=True)
class Selection:
    """Which venues a report shows: one destination, or a district and ward, one page at a time."""

    destination: str | None = None
    district: str | None = None
    ward: str | None = None
    page: int = 1
    per_page: int = 50

    def matches(self, info: DestinationInfo) -> bool:
        """Whether a venue passes the filter."""
        return (
            self.destination in (None, info.id)
            and self.district in (None, info.district)
            and self.ward in (None, info.ward)
        )


def build_report(
    store: Store,
    *,
    day: date,
    settings: ReportSettings,
    now_ms: int,
    destination: str | None = None,
    selection: Selection | None = None,
) -> Report:
    """Compute the report of `day`: the totals per area, then one page of the selected venues."""
    selection = selection or Selection(destination=destination)
    settings = settings.with_registry(store.venues())
    context = _Context(store, settings, day, now_ms, store.devices())
    venues = {d.destination for d in context.kiosks} | {d.id for d in settings.destinations}
    wanted = sorted(d for d in venues - context.street_areas if selection.matches(settings.info(d)))
    pages = max(1, -(-len(wanted) // selection.per_page))
    shown = wanted[(selection.page - 1) * selection.per_page : selection.page * selection.per_page]
    handhelds = context.street(selection.destination)
    return Report(
        day=day.isoformat(), timezone=settings.timezone, generated_ms=now_ms,
        destinations=context.destinations(shown),
        street=handhelds, street_total=_total(h.counts for h in handhelds),
        page=selection.page, pages=pages, venues=len(wanted), areas=context.areas(selection),
    )  # fmt: skip


def is_visitor_scan(event: EventRow) -> bool:
    """A visitor's scan (or a person staff recorded without a QR at the venue); not an inspection,
    not a street record of a person without a QR, not an inspector's card."""
    return event.kind == "scan" and event.format != INSPECTOR


def _is_street(kind: str, card_format: str) -> bool:
    return kind == "no_qr" or (kind == "inspection" and card_format != INSPECTOR)


def handhelds(kinds: dict[str, set[tuple[str, str]]], devices: Iterable[DeviceRow] = ()) -> set[str]:
    """Devices registered as handhelds, and those whose (kind, format) pairs show street checks or
    no-QR records and no visitor scans (devices registered before the registry kept the mode).

    Inspector cards do not count either way: a handheld opens the inspection screen too.
    """
    registered = {d.device for d in devices if d.mode == HANDHELD}
    return registered | {
        dev
        for dev, pairs in kinds.items()
        if any(_is_street(*pair) for pair in pairs)
        and not any(kind == "scan" and card_format != INSPECTOR for kind, card_format in pairs)
    }


def street_counts(events: Iterable[EventRow]) -> StreetCounts:
    """Street checks and no-QR records by outcome."""
    events = [e for e in events if _is_street(e.kind, e.format)]
    checks = [e for e in events if e.kind == "inspection"]
    fails = [e.reason for e in checks if e.verdict == "fail"]
    return StreetCounts(
        checks=len(checks),
        passed=sum(1 for e in checks if e.verdict == "pass"),
        violations=dict(sorted(Counter(r for r in fails if r in VIOLATIONS).items())),
        invalid=dict(sorted(Counter(r for r in fails if r not in VIOLATIONS).items())),
        no_qr=sum(1 for e in events if e.kind == "no_qr"),
    )


def _total(counts: Iterable[StreetCounts]) -> StreetCounts:
    violations: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    checks = passed = no_qr = 0
    for c in counts:
        checks, passed, no_qr = checks + c.checks, passed + c.passed, no_qr + c.no_qr
        violations.update(c.violations)
        invalid.update(c.invalid)
    return StreetCounts(
        checks=checks, passed=passed, violations=dict(sorted(violations.items())),
        invalid=dict(sorted(invalid.items())), no_qr=no_qr,
    )  # fmt: skip


class _Context:
    """What the per-destination computations share: the store, the settings, the day's counts."""

    def __init__(
        self, store: Store, settings: ReportSettings, day: date, now_ms: int, devices: list[DeviceRow]
    ):
        self.store, self.settings, self.day, self.now_ms = store, settings, day, now_ms
        self.devices = devices
        self.states = {s.device: s.status for s in store.states()}
        self.start, self.end = day_range(day, settings.zone)
        history_start = day_range(day - timedelta(days=settings.history_days), settings.zone)[0]
        self.handhelds = handhelds(aggregates.device_kinds(store, history_start, self.end), devices)
        self.kiosks = [d for d in devices if d.device not in self.handhelds]
        self.street_areas = {d.destination for d in devices} - {d.destination for d in self.kiosks}
        noon = datetime.combine(day, time(12))
        offset = int(noon.replace(tzinfo=UTC).timestamp() * 1000) - _local_ms(day, time(12), settings.zone)
        self.offset = offset
        # Every venue's scans on the day and usual level, in one query; peers compare with them.
        self.levels = aggregates.day_levels(
            store, self.start, self.end, history_days=settings.history_days,
            min_days=settings.min_history_days, offset_ms=offset,
        )  # fmt: skip
        self.peer_groups: dict[str, list[str]] = {}
        for kiosk in sorted({d.destination for d in self.kiosks if d.status == ACTIVE}):
            self.peer_groups.setdefault(settings.info(kiosk).group, []).append(kiosk)

    def areas(self, selection: Selection) -> list[AreaTotal]:
        """Visitor scans per district, or per ward of the district selected."""
        level = "ward" if selection.district is not None else "district"
        return aggregates.area_totals(
            self.store, self.start, self.end, level=level, district=selection.district
        )

    def destinations(self, shown: list[str]) -> list[DestinationReport]:
        """The reports of these venues; their counts come from the aggregates in one query."""
        counts = aggregates.venue_figures(self.store, self.start, self.end, shown, offset_ms=self.offset)
        return [self.destination(dest, counts[dest]) for dest in shown]

    def destination(self, dest: str, counts: aggregates.VenueFigures) -> DestinationReport:
        info = self.settings.info(dest)
        hours = info.opening_hours or self.settings.opening_hours
        window = _opening(self.day, hours, self.settings.zone, self.now_ms)
        # One venue's day of events (an index range): devices, silences, visits and distinct people.
        events = self.store.events(self.start, self.end, destination=dest)
        scans = [e for e in events if is_visitor_scan(e)]
        own = [d for d in self.kiosks if d.destination == dest]
        device_reports = [self._device(d, events, window) for d in own]
        silences = _silences([e.ts for e in scans], window, self.settings.silent_minutes)
        usual, peers = self._usual(dest), self._peers(dest, info.group)
        figures = _figures(counts, scans)
        flags = _flags(self.settings, counts.scans, usual, peers, own, device_reports, silences)
        refused = Counter(e.reason for e in events if e.kind == "scan" and e.format == INSPECTOR)
        return DestinationReport(
            destination=dest, name=info.name, group=info.group, opening_hours=hours,
            district=info.district, ward=info.ward, **figures,
            usual=usual, peers=peers, silences=silences, devices=device_reports, flags=flags,
            visits=self._visits(events, own, [f.code for f in flags]),
            refused_inspector_cards=dict(sorted(refused.items())),
        )  # fmt: skip

    def _visits(self, events: Sequence[EventRow], own: Sequence[DeviceRow], flags: list[str]) -> list[Visit]:
        visits = [e for e in events if e.kind == "inspection" and e.format == INSPECTOR]
        return [self._visit(v, events, own, flags) for v in visits]

    def _visit(
        self, visit: EventRow, events: Sequence[EventRow], own: Sequence[DeviceRow], flags: list[str]
    ) -> Visit:
        before = [e for e in events if is_visitor_scan(e) and e.ts <= visit.ts]
        return Visit(
            ts=visit.ts, device=visit.device, inspector=visit.identity, scans=len(before),
            old_poster=sum(1 for e in before if e.reason == OLD_POSTER),
            states={d.device: self._state_at(d.device, visit.ts) for d in own}, flags=flags,
        )  # fmt: skip

    def _state_at(self, device: str, ts: int) -> str:
        """A device's last status change at or before ts ("unknown" when none is logged)."""
        changes = self.store.state_log(device, ts + 1, ts + 1)
        return changes[-1][1] if changes else "unknown"

    def street(self, destination: str | None) -> list[HandheldReport]:
        """The day's street inspections of every handheld (or those of one team or area)."""
        rows = [
            d for d in self.devices if d.device in self.handhelds and destination in (None, d.destination)
        ]
        events = {
            dest: self.store.events(self.start, self.end, destination=dest)
            for dest in sorted({d.destination for d in rows})
        }
        return [self._handheld(d, events[d.destination]) for d in rows]

    def _handheld(self, row: DeviceRow, events: Sequence[EventRow]) -> HandheldReport:
        counts = street_counts(e for e in events if e.device == row.device)
        return HandheldReport(
            device=row.device, destination=row.destination, status=row.status, counts=counts
        )

    def _device(self, row: DeviceRow, events: Sequence[EventRow], window: _Window) -> DeviceReport:
        own = [e for e in events if e.device == row.device]
        online = _online_ms(self.store.state_log(row.device, window.start, window.end), window)
        return DeviceReport(
            device=row.device,
            status=row.status,
            state=self.states.get(row.device, "unknown"),
            events=len(own),
            uptime=online / (window.end - window.start) if window.end > window.start else 1.0,
            offline_minutes=max(0, window.end - window.start - online) / MINUTE_MS,
            missing_seqs=_missing(self.store, row.device),
            last_event_ms=max((e.ts for e in own), default=None),
        )

    def _usual(self, dest: str) -> float | None:
        return self.levels.get(dest, aggregates.DayLevel()).usual

    def _peers(self, dest: str, group: str) -> float | None:
        peers = [p for p in self.peer_groups.get(group, []) if p != dest]
        if len(peers) < 2:
            return None
        return statistics.median(self.levels.get(p, aggregates.DayLevel()).scans for p in peers)


def _figures(counts: aggregates.VenueFigures, scans: Sequence[EventRow]) -> dict[str, Any]:
    """The visitor-scan figures from the aggregates; distinct people from the day's scans."""
    return {
        "scans": counts.scans, "kinds": counts.kinds, "directions": counts.directions,
        "verdicts": counts.verdicts, "hourly": counts.hourly, "old_poster": counts.old_poster,
        "no_qr": counts.no_qr,
        "people": count_people(scans),
    }  # fmt: skip


def count_people(scans: Iterable[EventRow]) -> int:
    """Distinct people among scans: identities a card shows together are one person.

    A national QR names the QID and the citizen number, which a CCCD shows alone: the
    same person showing either card, or both, counts once (as trace finds them).
    """
    parent: dict[str, str] = {}

    def root(identity: str) -> str:
        while parent.setdefault(identity, identity) != identity:
            parent[identity] = parent[parent[identity]]  # halve the path as it is walked
            identity = parent[identity]
        return identity

    for e in scans:
        if e.identity is not None:
            first = root(e.identity)
            if e.identity_alt is not None:
                parent[root(e.identity_alt)] = first
    return sum(1 for identity in parent if root(identity) == identity)


def _online_ms(changes: Iterable[tuple[int, str]], window: _Window) -> int:
    """Time within the window the device was online, from its status changes (earlier one first)."""
    total, since = 0, None
    for ts, status in changes:
        at = min(max(ts, window.start), window.end)
        if status == "online" and since is None:
            since = at
        elif status != "online" and since is not None:
            total, since = total + at - since, None
    return total + (window.end - since if since is not None else 0)


def _silences(stamps: Sequence[int], window: _Window, minutes: int) -> list[tuple[int, int]]:
    """Stretches within the window longer than `minutes` without an event."""
    inside = sorted(ts for ts in stamps if window.start <= ts < window.end)
    edges = [window.start, *inside, window.end]
    return [(a, b) for a, b in itertools.pairwise(edges) if b - a > minutes * MINUTE_MS]


def _missing(store: Store, device: str) -> int:
    missing = 0
    for epoch, mark in store.progress(device).items():
        stored = store.seqs_after(device, epoch, mark, 1_000_000)
        missing += acks.walk(mark, stored, older_than_ms=0).missing
    return missing


def _flags(
    settings: ReportSettings,
    scans: int,
    usual: float | None,
    peers: float | None,
    devices: Sequence[DeviceRow],
    reports: Sequence[DeviceReport],
    silences: Sequence[tuple[int, int]],
) -> list[Flag]:
    flags = []
    if not any(d.status == ACTIVE for d in devices):
        flags.append(Flag("no_device", "no active kiosk is installed"))
    for r in reports:
        if r.status == ACTIVE and r.offline_minutes >= settings.offline_minutes:
            flags.append(
                Flag(
                    "device_offline",
                    f"{r.device} offline {r.offline_minutes:.0f} min in opening hours",
                    (r.device, f"{r.offline_minutes:.0f}"),
                )
            )
    if usual is not None and scans < settings.low_fraction * usual:
        flags.append(Flag("below_usual", f"{scans} scans, usually {usual:g}", (str(scans), f"{usual:g}")))
    if peers is not None and scans < settings.low_fraction * peers:
        flags.append(Flag("below_peers", f"{scans} scans, peers {peers:g}", (str(scans), f"{peers:g}")))
    if silences and any(d.status == ACTIVE for d in devices):
        longest = max(b - a for a, b in silences) / MINUTE_MS
        message = f"{len(silences)} stretch(es) without scans, longest {longest:.0f} min"
        flags.append(Flag("silent", message, (str(len(silences)), f"{longest:.0f}")))
    return flags
