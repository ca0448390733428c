"""Everything the dashboard reads, in one place, so that its source can change under the pages.

The figures come from what the ingest keeps (kiosk.central.store): the per-destination
aggregates `daily` (local days of UTC+7, with each day's last scan and inspector visit),
`hourly` (for one venue's hours, and for every venue in a zone whose days are not those
of `daily`) and `device_days`, and each device's health columns in `device_state`. No page
reads the `events` table beyond one venue's few rows (its inspections), so a page costs
the same however long the history grows. Local days are whole hours away from UTC (Vietnam).

Figures are visitor scans (`kiosk.central.reports.is_visitor_scan`: `scan` events of
any card but an inspector's); days and hours are local (the settings' time zone).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

from kiosk.central.registry import ACTIVE, HANDHELD
from kiosk.central.reports import (
    INSPECTOR,
    OLD_POSTER,
    VIOLATIONS,
    ReportSettings,
    StreetCounts,
    day_range,
    handhelds,
)
from kiosk.central.store import DAY_OFFSET_MS, HEALTH_COLUMNS, Health, Store

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
WEEK_DAYS = 7
INSPECTION_DAYS = 30  # "never inspected" looks this far back
BACKLOG = 100  # unsent events above which a device is backlogged
FLAGS = ("silent", "no_device", "device_offline", "old_posters")
VISITOR = "kind = 'scan' AND format <> 'inspector'"
# DeviceHealth.problems as SQL over devices d and device_state s: offline, backlogged, faulty.
PROBLEMS = (
    f"(CASE WHEN d.status = '{ACTIVE}' AND COALESCE(s.status, '') <> 'online' THEN 1 ELSE 0 END"
    f" + CASE WHEN COALESCE(s.unsent, 0) > {BACKLOG} OR COALESCE(s.spool_depth, 0) > {BACKLOG}"
    " THEN 1 ELSE 0 END"
    " + CASE WHEN COALESCE(s.alarms, '[]') <> '[]' OR s.clock_synced = 0 THEN 1 ELSE 0 END)"
)
# Devices with street records (checks, no-QR) and no visitor scans on the UTC days [?, ?), twice:
# handhelds registered before the registry kept the mode (kiosk.central.reports.handhelds).
STREET_ONLY = (
    "SELECT DISTINCT s.device FROM device_days s WHERE s.day >= ? AND s.day < ?"
    f" AND (s.kind = 'no_qr' OR (s.kind = 'inspection' AND s.format <> '{INSPECTOR}'))"
    " AND NOT EXISTS (SELECT 1 FROM device_days v WHERE v.device = s.device AND v.day >= ? AND v.day < ?"
    f" AND v.kind = 'scan' AND v.format <> '{INSPECTOR}')"
)


class Counts(NamedTuple):
    """Visitor scans in a period: all, in, out, pass, fail (a tuple: a province's are summed per page)."""

    scans: int = 0
    entries: int = 0
    exits: int = 0
    passed: int = 0
    failed: int = 0

    def __add__(self, other: tuple[Any, ...]) -> Counts:
        """Added field by field (not a longer tuple)."""
        return Counts(*(a + b for a, b in zip(self, other, strict=True)))

    @staticmethod
    def total(many: Iterable[Counts]) -> Counts:
        """The sum of many, in one pass per field."""
        return Counts(*(sum(column) for column in zip(*many, strict=True)))  # none: all zero


@dataclass(frozen=True)
class Venue:
    """One venue's line: where it is, its scans today and over 7 days, and its compliance flags."""

    destination: str
    name: str
    district: str
    ward: str
    today: Counts
    week: Counts
    old_posters: int  # over 7 days
    last_scan_ms: int | None
    kiosks: int  # active kiosks
    flags: tuple[str, ...]


@dataclass(frozen=True)
class Area:
    """A district or ward: its venues' figures added up, and how many venues carry each flag."""

    name: str
    venues: int
    today: Counts
    week: Counts
    flagged: dict[str, int]


@dataclass(frozen=True)
class DeviceHealth:
    """A device as the fleet view shows it."""

    device: str
    destination: str
    status: str  # registry status
    state: str  # online, stopped, offline, unknown
    last_seen_ms: int | None
    unsent: int | None
    spool_depth: int | None
    fps: float | None
    clock_synced: bool | None
    alarms: tuple[str, ...]
    software: str

    @property
    def problems(self) -> tuple[str, ...]:
        """Why this device needs attention: offline, backlogged, faulty."""
        found = []
        if self.status == ACTIVE and self.state != "online":
            found.append("offline")
        if (self.unsent or 0) > BACKLOG or (self.spool_depth or 0) > BACKLOG:
            found.append("backlogged")
        if self.alarms or self.clock_synced is False:
            found.append("faulty")
        return tuple(found)


@dataclass(frozen=True)
class Inspection:
    """An inspector's visit to a venue, and what central knew that day by then."""

    ts: int
    device: str
    inspector: str
    scans_before: int
    old_posters_before: int


@dataclass(frozen=True)
class Candidate:
    """A venue worth a visit: a score and the evidence for it, in words codes."""

    venue: Venue
    score: int
    evidence: tuple[tuple[str, str], ...]  # (code, figure) pairs
    last_inspected_ms: int | None


@dataclass(frozen=True)
class Street:
    """Street inspections over a day: per team or area, and the total."""

    teams: list[tuple[str, StreetCounts]]
    total: StreetCounts


@dataclass(frozen=True)
class Province:
    """Every venue's line as of one moment: what the venue lists and /visit filter, page and rank."""

    as_of_ms: int
    venues: list[Venue]  # by district, ward and name
    ranked: list[Venue]  # worth a visit, best first
    last_inspections: dict[str, int]  # per venue inspected in 30 days, when (the start of its hour)
    _places: dict[tuple[str, str], tuple[list[Venue], list[Area]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def place(self, district: str, ward: str) -> tuple[list[Venue], list[Area]]:
        """The venues of a district or ward ("": all), and its areas a level down (none in a ward).

        Worked out once per place and kept (a place no venue is in is not: hostile names stay out).
        """
        found = self._places.get((district, ward))
        if found is None:
            where = VenueFilter(district=district, ward=ward)
            venues = [v for v in self.venues if where(v)] if district or ward else self.venues
            found = (venues, [] if ward else areas(venues, "ward" if district else "district"))
            if venues:
                self._places[district, ward] = found
        return found


# Per destination: today's counts, 7 days' counts, old posters in 7 days, the end of its last scan's hour.
_Figures = tuple[Counts, Counts, int, int | None]


@dataclass
class _Clock:
    now_ms: int
    today: date
    today_start: int
    week_start: int
    end: int


class Dashboard:
    """The dashboard's read side over one store, as of `now_ms`."""

    def __init__(self, store: Store, settings: ReportSettings, *, now_ms: int) -> None:
        self.store, self.settings = store, settings
        today = datetime.fromtimestamp(now_ms / 1000, settings.zone).date()
        start, end = day_range(today, settings.zone)
        week_start = day_range(today - timedelta(days=WEEK_DAYS - 1), settings.zone)[0]
        self.clock = _Clock(now_ms, today, start, week_start, end)

    # Venues.

    def venues(self) -> list[Venue]:
        """Every venue (not a street team), by district, ward and name."""
        return sorted(self._venues(), key=_place_order)

    def _venues(self) -> list[Venue]:
        """Every venue (not a street team), in no order."""
        kiosks = self._kiosk_counts()
        teams = {dest for dest, (registered, _, _) in kiosks.items() if not registered}
        known = ({d for d, (n, _, _) in kiosks.items() if n} | set(self.settings.by_id)) - teams
        counts = self._scan_counts()
        silent = _SilentCheck(self)
        no_kiosk = (0, 0, 0)
        return [self._venue(dest, counts.get(dest), kiosks.get(dest, no_kiosk)[1:], silent) for dest in known]

    def _kiosk_counts(self) -> dict[str, tuple[int, int, int]]:
        """Per destination with devices: its kiosks, those active, and those active but not online.

        A kiosk is a device that is not a handheld (`reports.handhelds`): neither registered as
        one nor sending street records and no visitor scans in the last 7 days.
        """
        days = (self.clock.week_start // DAY_MS, -(-self.clock.end // DAY_MS))  # UTC days, as device_days
        kiosk = f"d.mode <> '{HANDHELD}' AND d.device NOT IN (SELECT device FROM street)"
        active = f"{kiosk} AND d.status = '{ACTIVE}'"
        sql = (
            f"WITH street AS ({STREET_ONLY}) SELECT d.destination, SUM(CASE WHEN {kiosk} THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN {active} THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN {active} AND COALESCE(s.status, '') <> 'online' THEN 1 ELSE 0 END)"
            " FROM devices d LEFT JOIN device_state s ON s.device = d.device GROUP BY d.destination"
        )
        rows = self.store.query(sql, days * 2)
        return {str(dest): (int(n), int(on), int(off)) for dest, n, on, off in rows}

    def _venue(self, dest: str, row: _Figures | None,
               kiosks: tuple[int, int], silent: _SilentCheck) -> Venue:  # fmt: skip
        """A venue's line from its counts and its active kiosks (how many, how many not online)."""
        info = self.settings.info(dest)
        today, week, posters, last = row or (Counts(), Counts(), 0, None)
        active, offline = kiosks
        flags = []
        if active and silent(info.opening_hours or self.settings.opening_hours, last):
            flags.append("silent")
        if not active:
            flags.append("no_device")
        if offline:
            flags.append("device_offline")
        if posters:
            flags.append("old_posters")
        return Venue(dest, info.name, info.district, info.ward, today, week, posters, last, active,
                     tuple(flags))  # fmt: skip

    def _scan_counts(self, destination: str | None = None) -> dict[str, _Figures]:
        """Per destination: today's counts, 7 days' counts, old posters in 7 days, last scan.

        Read from `daily` (one row per venue and day) when the local days are its days, else
        summed from `hourly`. The last scan is taken as the end of its hour (or now), as
        `hourly` knows it, so that a venue is called silent only when it surely is.
        """
        days = _daily_days(self.clock.week_start, self.clock.end)
        if days is None:
            return self._scan_counts_hourly(destination)
        today = _daily_days(self.clock.today_start, self.clock.end)
        assert today is not None  # a whole local day of UTC+7, as the week is
        # Integer sums: PostgreSQL sums BIGINT as NUMERIC, several times slower (a day's count fits).
        columns = ("scans", "scans_in", "scans_out", "scans_fail", "old_poster")
        parts = [f"CAST({c} AS INTEGER)" for c in columns]
        on_day = [f"SUM(CASE WHEN day = {today[0]} THEN {p} ELSE 0 END)" for p in parts[:4]]
        one = " AND destination = ?" if destination is not None else ""
        sql = (
            f"SELECT destination, {', '.join(on_day + [f'SUM({p})' for p in parts])}, MAX(last_scan)"
            f" FROM daily WHERE day >= ? AND day < ? AND scans > 0{one} GROUP BY destination"
        )
        params = [*days, *([destination] if destination is not None else [])]
        found = {}
        for dest, scans, n_in, n_out, fail, week, w_in, w_out, w_fail, posters, last in self.store.query(
            sql, params
        ):
            # Integers on both backends (SUM of INTEGER is BIGINT): no conversions, 10,000 rows a page.
            ends = None if last is None else min((last // HOUR_MS + 1) * HOUR_MS, self.clock.now_ms)
            today_counts = Counts(scans, n_in, n_out, scans - fail, fail)
            week_counts = Counts(week, w_in, w_out, week - w_fail, w_fail)
            found[dest] = (today_counts, week_counts, posters, ends)
        return found

    def _scan_counts_hourly(self, destination: str | None) -> dict[str, _Figures]:
        """`_scan_counts` from the hourly aggregates (local days that are not those of `daily`)."""
        parts = ["n", "n_in", "n_out", "CASE WHEN verdict = 'pass' THEN n ELSE 0 END",
                 "CASE WHEN verdict = 'fail' THEN n ELSE 0 END"]  # fmt: skip
        today = [f"SUM(CASE WHEN hour >= ? THEN {p} ELSE 0 END)" for p in parts]
        week = [f"SUM({p})" for p in parts]
        one = " AND destination = ?" if destination is not None else ""
        sql = (
            f"SELECT destination, {', '.join(today + week)},"
            f" SUM(CASE WHEN reason = '{OLD_POSTER}' THEN n ELSE 0 END), MAX(hour)"
            f" FROM hourly WHERE hour >= ? AND hour < ? AND {VISITOR}{one} GROUP BY destination"
        )
        params: list[Any] = [self.clock.today_start // HOUR_MS] * len(parts)
        params += [self.clock.week_start // HOUR_MS, -(-self.clock.end // HOUR_MS)]
        params += [destination] if destination is not None else []
        found = {}
        for dest, *n in self.store.query(sql, params):
            values = [int(x or 0) for x in n[:11]]
            last = min((int(n[11]) + 1) * HOUR_MS, self.clock.now_ms) if n[11] is not None else None
            found[str(dest)] = (Counts(*values[:5]), Counts(*values[5:10]), values[10], last)
        return found

    def venue(self, destination: str) -> Venue | None:
        """One venue's line, None when central knows no such venue (reads that venue's rows only)."""
        devices = self.store.query("SELECT device, status, mode FROM devices WHERE destination = ?",
                                   (destination,))  # fmt: skip
        kinds: dict[str, set[tuple[str, str]]] = {}
        sql = (
            "SELECT DISTINCT k.device, k.kind, k.format FROM device_days k"
            " JOIN devices d ON d.device = k.device WHERE d.destination = ? AND k.day >= ? AND k.day < ?"
        )
        days = (self.clock.week_start // DAY_MS, -(-self.clock.end // DAY_MS))
        for device, kind, card_format in self.store.query(sql, (destination, *days)):
            kinds.setdefault(str(device), set()).add((str(kind), str(card_format)))
        hand = handhelds(kinds) | {str(d) for d, _, mode in devices if mode == HANDHELD}
        kiosks = [(str(d), str(status)) for d, status, _ in devices if d not in hand]
        listed = destination in self.settings.by_id
        if not kiosks and (devices or not listed):
            return None  # a street team's, or unknown
        mine = [d for d, status in kiosks if status == ACTIVE]
        marks = ", ".join("?" for _ in mine) or "NULL"
        states = dict(
            self.store.query(f"SELECT device, status FROM device_state WHERE device IN ({marks})", mine)
        )
        offline = sum(states.get(d) != "online" for d in mine)
        counts = self._scan_counts(destination).get(destination)
        return self._venue(destination, counts, (len(mine), offline), _SilentCheck(self))

    def hourly(self, destination: str) -> list[int]:
        """Today's visitor scans per local hour (24 values)."""
        offset = self._offset_ms()
        sql = (
            f"SELECT (hour * {HOUR_MS} + ?) / {HOUR_MS} AS local, SUM(n) FROM hourly"
            f" WHERE destination = ? AND hour >= ? AND hour < ? AND {VISITOR} GROUP BY local"
        )
        hours = [0] * 24
        params = (offset, destination, *self._hours(self.clock.today_start, self.clock.end))
        for hour, n in self.store.query(sql, params):
            hours[int(hour) % 24] = int(n)  # the day's hours since the epoch, local
        return hours

    def daily(self, destination: str) -> list[tuple[date, int]]:
        """Visitor scans of each of the last 7 local days, oldest first."""
        offset = self._offset_ms()
        sql = (
            f"SELECT (hour * {HOUR_MS} + ?) / {DAY_MS} AS day, SUM(n) FROM hourly"
            f" WHERE destination = ? AND hour >= ? AND hour < ? AND {VISITOR} GROUP BY day"
        )
        rows = self.store.query(
            sql, (offset, destination, *self._hours(self.clock.week_start, self.clock.end))
        )
        by_day = {int(day): int(n) for day, n in rows}
        first = (self.clock.week_start + offset) // DAY_MS
        return [(self.clock.today - timedelta(days=WEEK_DAYS - 1 - i), by_day.get(first + i, 0))
                for i in range(WEEK_DAYS)]  # fmt: skip

    @staticmethod
    def _hours(start_ms: int, end_ms: int) -> tuple[int, int]:
        """The aggregates' hours (since the epoch, UTC) that cover a window."""
        return start_ms // HOUR_MS, -(-end_ms // HOUR_MS)

    def _offset_ms(self) -> int:
        """UTC to local time today (the zone's offset at noon; Vietnam has no daylight saving)."""
        noon = datetime.combine(self.clock.today, time(12), tzinfo=self.settings.zone)
        offset = noon.utcoffset() or timedelta(0)
        return int(offset.total_seconds() * 1000)

    # Devices.

    def devices(self, destination: str) -> list[DeviceHealth]:
        """One venue's devices: offline, backlogged or faulty first, then by id."""
        return self._health_rows(" WHERE d.destination = ?", [destination])

    def device_page(self, number: int, size: int) -> Page:
        """One page of the fleet: offline, backlogged or faulty first, then by id (sorted in SQL)."""
        shape = page_shape(int(self.store.query("SELECT COUNT(*) FROM devices")[0][0]), number, size)
        return replace(shape, rows=self._health_rows("", [], limit=(size, shape.first)))

    def _health_rows(self, where: str, params: list[Any], *, limit: tuple[int, int] | None = None
                     ) -> list[DeviceHealth]:  # fmt: skip
        """Devices with their last state's health, most problems first (DeviceHealth.problems in SQL)."""
        sql = (
            "SELECT d.device, d.destination, d.status, d.software, s.status, s.received_ms,"
            f" {', '.join(f's.{c}' for c in HEALTH_COLUMNS.split(', '))}"
            f" FROM devices d LEFT JOIN device_state s ON s.device = d.device{where}"
            f" ORDER BY {PROBLEMS} DESC, d.device{self._binary}"
        )
        if limit is not None:
            sql, params = sql + " LIMIT ? OFFSET ?", [*params, *limit]
        return [_health(row) for row in self.store.query(sql, params)]

    @property
    def _binary(self) -> str:
        """Text ordered by code point, as Python orders it (PostgreSQL's default follows the locale)."""
        return ' COLLATE "C"' if self.store.name == "postgresql" else ""

    # Inspections.

    def inspections(self, destination: str, *, limit: int = 20) -> list[Inspection]:
        """An inspector's visits to a venue in 30 days, newest first, with that day's scans by then."""
        since = self.clock.today_start - INSPECTION_DAYS * DAY_MS
        sql = (
            "SELECT ts, device, identity FROM events WHERE destination = ? AND ts >= ? AND ts < ?"
            f" AND kind = 'inspection' AND format = '{INSPECTOR}' ORDER BY ts DESC LIMIT ?"
        )
        rows = self.store.query(sql, (destination, since, self.clock.end, limit))
        return [self._inspection(destination, int(ts), str(dev), str(who or "")) for ts, dev, who in rows]

    def _inspection(self, destination: str, ts: int, device: str, inspector: str) -> Inspection:
        local = datetime.fromtimestamp(ts / 1000, self.settings.zone).date()
        start = day_range(local, self.settings.zone)[0]
        sql = (
            f"SELECT COUNT(*), SUM(CASE WHEN reason = '{OLD_POSTER}' THEN 1 ELSE 0 END) FROM events"
            f" WHERE destination = ? AND ts >= ? AND ts <= ? AND {VISITOR}"
        )
        scans, posters = self.store.query(sql, (destination, start, ts))[0]
        return Inspection(ts, device, inspector, int(scans or 0), int(posters or 0))

    def last_inspections(self) -> dict[str, int]:
        """Per venue inspected in the last 30 days, when (UTC ms) its last inspector visit was.

        From `daily` (the time itself, or the start of its hour for days counted from `hourly`
        before `daily` kept it) or, in a zone other than UTC+7, from `hourly`: the start of its hour.
        `inspected_at` gives the time to the millisecond for the few shown.
        """
        since = self.clock.today_start - INSPECTION_DAYS * DAY_MS
        days = _daily_days(since, self.clock.end)
        if days is not None:
            sql = (
                "SELECT destination, MAX(last_inspection) FROM daily WHERE day >= ? AND day < ?"
                " AND last_inspection IS NOT NULL GROUP BY destination"
            )
            return {str(d): int(ms) for d, ms in self.store.query(sql, days)}
        sql = (
            "SELECT destination, MAX(hour) FROM hourly WHERE kind = 'inspection' AND hour >= ? AND hour < ?"
            f" AND format = '{INSPECTOR}' GROUP BY destination"
        )
        rows = self.store.query(sql, self._hours(since, self.clock.end))
        return {str(d): int(hour) * HOUR_MS for d, hour in rows}

    def inspected_at(self, destination: str, hour_ms: int) -> int:
        """The time of a venue's last inspector visit, known to be in the hour starting at `hour_ms`."""
        sql = (
            "SELECT MAX(ts) FROM events WHERE destination = ? AND ts >= ? AND ts < ?"
            f" AND kind = 'inspection' AND format = '{INSPECTOR}'"
        )
        found = self.store.query(sql, (destination, hour_ms, hour_ms + HOUR_MS))[0][0]
        return int(found) if found is not None else hour_ms

    def province(self) -> Province:
        """Every venue's line, sorted and ranked: what the lists read (the snapshot of web/snapshot.py)."""
        venues = self._venues()
        last = self.last_inspections()
        return Province(self.clock.now_ms, sorted(venues, key=_place_order), _ranked(venues, last), last)

    def to_visit(self) -> list[Candidate]:
        """Venues ranked for a visit: silent, old posters seen, never inspected; the evidence for each."""
        last = self.last_inspections()
        return [_candidate(v, last.get(v.destination)) for v in _ranked(self._venues(), last)]

    def visit_page(self, number: int, size: int, *, province: Province | None = None) -> Page:
        """One page of `to_visit` (`province`'s when given), its last inspections to the millisecond."""
        found_in = province or self.province()
        last = found_in.last_inspections
        found = page(found_in.ranked, number, size)
        rows = [_candidate(v, last.get(v.destination)) for v in found.rows]
        rows = [c if c.last_inspected_ms is None else replace(c, last_inspected_ms=self._inspected(c))
                for c in rows]  # fmt: skip
        return replace(found, rows=rows)

    def _inspected(self, candidate: Candidate) -> int:
        last = candidate.last_inspected_ms or 0
        return self.inspected_at(candidate.venue.destination, last // HOUR_MS * HOUR_MS)

    # Street inspections.

    def street(self, day: date) -> Street:
        """Street checks and no-QR records of one local day, by team or area and outcome."""
        start, end = day_range(day, self.settings.zone)
        sql = (
            "SELECT destination, kind, verdict, reason, SUM(n) FROM hourly WHERE hour >= ? AND hour < ?"
            f" AND (kind = 'no_qr' OR (kind = 'inspection' AND format <> '{INSPECTOR}'))"
            " GROUP BY destination, kind, verdict, reason"
        )
        per_team: dict[str, list[tuple[str, str, str, int]]] = {}
        for dest, kind, verdict, reason, n in self.store.query(sql, self._hours(start, end)):
            per_team.setdefault(str(dest), []).append((str(kind), str(verdict), str(reason), int(n)))
        teams = [(team, _street_counts(rows)) for team, rows in sorted(per_team.items())]
        return Street(teams, _street_counts([r for rows in per_team.values() for r in rows]))


def _ranked(venues: Iterable[Venue], last: dict[str, int]) -> list[Venue]:
    """The venues worth a visit, best first (only scored: a province's evidence is made per page)."""
    scored = [(-s, v.today.scans, v.destination, v) for v in venues if (s := _score(v, last))]
    return [v for *_, v in sorted(scored, key=lambda r: r[:3])]


def _place_order(v: Venue) -> tuple[str, str, str, str]:
    return v.district, v.ward, v.name or v.destination, v.destination


class _SilentCheck:
    """Whether a venue had no visitor scan for `silent_minutes` of today's opening hours, up to now.

    Today's window of each distinct opening hours is worked out once (a province has a few).
    """

    def __init__(self, board: Dashboard) -> None:
        self.clock, self.zone = board.clock, board.settings.zone
        self.limit = board.settings.silent_minutes * MINUTE_MS
        self.windows: dict[str, tuple[int, int]] = {}

    def __call__(self, hours: str, last_scan_ms: int | None) -> bool:
        """Silent with these opening hours and this last scan (None: none in 7 days)."""
        start, end = self.windows.get(hours) or self.windows.setdefault(hours, self._window(hours))
        return end - max(start, last_scan_ms or 0) > self.limit

    def _window(self, hours: str) -> tuple[int, int]:
        opens, closes = (time.fromisoformat(part.strip()) for part in hours.split("-"))
        start = int(datetime.combine(self.clock.today, opens, tzinfo=self.zone).timestamp() * 1000)
        end = int(datetime.combine(self.clock.today, closes, tzinfo=self.zone).timestamp() * 1000)
        return start, min(end, self.clock.now_ms)


def _daily_days(start_ms: int, end_ms: int) -> tuple[int, int] | None:
    """The days of `daily` [first, last) that make up a window, None when its ends are not their
    midnights (a zone other than UTC+7)."""
    if (start_ms + DAY_OFFSET_MS) % DAY_MS or (end_ms + DAY_OFFSET_MS) % DAY_MS:
        return None
    return (start_ms + DAY_OFFSET_MS) // DAY_MS, (end_ms + DAY_OFFSET_MS) // DAY_MS


def _health(row: Sequence[Any]) -> DeviceHealth:
    """A device's line from its registration, its last state and that state's health columns."""
    device, destination, status, software, state, seen, *columns = row
    health = Health.from_columns(columns) if state is not None else Health()
    return DeviceHealth(
        device=str(device), destination=str(destination), status=str(status),
        state=str(state) if state is not None else "unknown",
        last_seen_ms=None if seen is None else int(seen),
        unsent=health.unsent, spool_depth=health.spool_depth, fps=health.fps,
        clock_synced=health.clock_synced, alarms=health.alarms,
        software=health.version if health.version is not None else str(software),
    )  # fmt: skip


def _score(venue: Venue, last: dict[str, int]) -> int:
    """`_candidate`'s score alone."""
    flags = venue.flags
    return (3 * ("silent" in flags) + (2 + (venue.old_posters >= 10) if venue.old_posters else 0)
            + ("device_offline" in flags) + (venue.destination not in last))  # fmt: skip


def _candidate(venue: Venue, last_inspected: int | None) -> Candidate:
    """Score a venue: silent 3, old posters 2 (+1 for many), never inspected 1, a kiosk offline 1."""
    evidence: list[tuple[str, str]] = []
    score = 0
    if "silent" in venue.flags:
        score += 3
        evidence.append(("silent", str(venue.today.scans)))
    if venue.old_posters:
        score += 2 + (venue.old_posters >= 10)
        evidence.append(("old_posters", str(venue.old_posters)))
    if "device_offline" in venue.flags:
        score += 1
        evidence.append(("device_offline", ""))
    if last_inspected is None:
        score += 1
        evidence.append(("never_inspected", str(INSPECTION_DAYS)))
    return Candidate(venue, score, tuple(evidence), last_inspected)


def _street_counts(rows: Sequence[tuple[str, str, str, int]]) -> StreetCounts:
    """Street outcomes from (kind, verdict, reason, count) rows, as reports.street_counts counts them."""
    violations: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    checks = passed = no_qr = 0
    for kind, verdict, reason, n in rows:
        if kind == "no_qr":
            no_qr += n
            continue
        checks += n
        if verdict == "pass":
            passed += n
        elif verdict == "fail":
            (violations if reason in VIOLATIONS else invalid)[reason] += n
    return StreetCounts(checks=checks, passed=passed, violations=dict(sorted(violations.items())),
                        invalid=dict(sorted(invalid.items())), no_qr=no_qr)  # fmt: skip


def areas(venues: Sequence[Venue], level: str) -> list[Area]:
    """Venues added up by `level` ("district" or "ward"), by name."""
    groups: dict[str, list[Venue]] = {}
    for v in venues:
        groups.setdefault(getattr(v, level) or "", []).append(v)
    return [_area(name, group) for name, group in sorted(groups.items())]


def _area(name: str, venues: Sequence[Venue]) -> Area:
    flagged = Counter(f for v in venues for f in v.flags)
    today = Counts.total([v.today for v in venues])
    week = Counts.total([v.week for v in venues])
    return Area(name, len(venues), today, week, {f: flagged.get(f, 0) for f in FLAGS})


@dataclass(frozen=True)
class VenueFilter:
    """The venue list's filter: place, one flag, a text in the id or name."""

    district: str = ""
    ward: str = ""
    flag: str = ""
    text: str = ""

    def __call__(self, v: Venue) -> bool:
        return (
            (not self.district or v.district == self.district)
            and (not self.ward or v.ward == self.ward)
            and (not self.flag or self.flag in v.flags)
            and (not self.text or self.text.casefold() in f"{v.destination} {v.name}".casefold())
        )


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, its number (from 1) and how many pages there are."""

    rows: list[Any]
    number: int
    pages: int
    total: int
    size: int

    @property
    def first(self) -> int:
        """The position (from 0) of this page's first row in the whole list."""
        return (self.number - 1) * self.size


def page_shape(total: int, number: int, size: int) -> Page:
    """Page `number` (clamped to the pages there are) of a list of `total` rows, without its rows."""
    pages = max(1, -(-total // size))
    return Page([], min(max(1, number), pages), pages, total, size)


def page(rows: Sequence[Any], number: int, size: int) -> Page:
    """Rows of page `number` (clamped to the pages there are)."""
    shape = page_shape(len(rows), number, size)
    return replace(shape, rows=list(rows[shape.first : shape.first + size]))
