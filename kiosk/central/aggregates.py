"""What reports and dashboards read: the per-destination counts the ingest keeps, in SQL.

The ingest upserts `hourly` (destination, UTC hour, kind, format, verdict, reason → n,
n_in, n_out), `daily` (destination, local day of UTC+7 → counts by kind, verdict and
direction) and `device_days` (which kinds and formats a device sent on a UTC day) in
the transaction that stores the events, counting only events that were new. So the
figures here never read `events`. Questions about every venue over whole local days
read `daily` (one row per venue and day); a zone whose days are not those of `daily`
sums `hourly` instead, with the same answers, more slowly.

Times are UTC ms; `offset_ms` is the local zone's offset on the day asked about (a
whole number of hours: the aggregates have hourly grain). Visitor scans are `scan`
events of any card but an inspector's (kiosk.central.reports.is_visitor_scan), and a
venue's people recorded without a QR (scans with reason no_qr, kiosk.eventkinds).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from kiosk.central.store import DAY_OFFSET_MS, Store

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
OLD_POSTER = "old_venue_qr"
NO_QR = "no_qr"
VISITOR = "kind = 'scan' AND format <> 'inspector'"
AREA_LEVELS = ("district", "ward")


@dataclass(frozen=True)
class VenueFigures:
    """One destination's counts over a window (a local day, usually)."""

    destination: str
    scans: int = 0  # visitor scans
    kinds: dict[str, int] = field(default_factory=dict)  # every event, by kind
    directions: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0, "none": 0})
    verdicts: dict[str, dict[str, int]] = field(default_factory=lambda: {"pass": {}, "fail": {}})
    hourly: list[int] = field(default_factory=lambda: [0] * 24)  # visitor scans per local hour
    old_poster: int = 0
    no_qr: int = 0  # people recorded without a QR at the venue (visitor scans with reason no_qr)


@dataclass(frozen=True)
class AreaTotal:
    """Visitor scans of a district or ward over a window, with how many venues it has."""

    district: str
    ward: str  # "" when grouped by district
    venues: int
    scans: int
    fails: int


@dataclass(frozen=True)
class DayLevel:
    """A destination's visitor scans on a day, and its usual level: the median of its earlier days."""

    scans: int = 0
    usual: float | None = None  # None: fewer earlier days with scans than asked for


def _hours(start_ms: int, end_ms: int) -> tuple[int, int]:
    return start_ms // HOUR_MS, -(-end_ms // HOUR_MS)


def _daily_days(start_ms: int, end_ms: int, offset_ms: int = DAY_OFFSET_MS) -> tuple[int, int] | None:
    """The `daily` days [first, last) making up a window, or None when the window is not whole days of
    `daily` or the caller numbers days in another zone."""
    if offset_ms != DAY_OFFSET_MS or (start_ms + offset_ms) % DAY_MS or (end_ms + offset_ms) % DAY_MS:
        return None
    return (start_ms + offset_ms) // DAY_MS, (end_ms + offset_ms) // DAY_MS


def daily_scans(store: Store, start_ms: int, end_ms: int, *, offset_ms: int) -> dict[str, dict[int, int]]:
    """Visitor scans per destination per local day number (days since 1970 in local time)."""
    days = _daily_days(start_ms, end_ms, offset_ms)
    if days is not None:
        sql = "SELECT destination, day, scans FROM daily WHERE day >= ? AND day < ? AND scans > 0"
        return _by_destination(store.query(sql, days))
    sql = (
        f"SELECT destination, (hour * {HOUR_MS} + ?) / {DAY_MS} AS day, SUM(n) FROM hourly"
        f" WHERE hour >= ? AND hour < ? AND {VISITOR} GROUP BY destination, day"
    )
    return _by_destination(store.query(sql, (offset_ms, *_hours(start_ms, end_ms))))


def _by_destination(rows: list[tuple[object, ...]]) -> dict[str, dict[int, int]]:
    found: dict[str, dict[int, int]] = {}
    for dest, day, n in rows:
        found.setdefault(str(dest), {})[int(str(day))] = int(str(n))
    return found


# Per destination, its scans on the day and the median of its earlier days with scans, in one
# statement: the median is the mean of the middle row (odd count) or of the two middle rows.
LEVELS = """
WITH past AS (
    SELECT destination, scans, ROW_NUMBER() OVER (PARTITION BY destination ORDER BY scans) AS r,
        COUNT(*) OVER (PARTITION BY destination) AS c
    FROM daily WHERE day >= ? AND day < ? AND scans > 0
)
SELECT destination, 0, MIN(scans), MAX(scans), MAX(c) FROM past
WHERE r IN ((c + 1) / 2, (c + 2) / 2) GROUP BY destination
UNION ALL
SELECT destination, scans, 0, 0, 0 FROM daily WHERE day = ? AND scans > 0
"""


def day_levels(
    store: Store, start_ms: int, end_ms: int, *, history_days: int, min_days: int, offset_ms: int
) -> dict[str, DayLevel]:
    """Every destination's visitor scans on the local day [start_ms, end_ms) and its usual level over
    the `history_days` before, judged when at least `min_days` of them had scans (others: no entry)."""
    days = _daily_days(start_ms, end_ms, offset_ms)
    if days is None:
        return _levels_from_hourly(store, start_ms, end_ms, history_days, min_days, offset_ms)
    today = days[0]
    scans: dict[str, int] = {}
    usual: dict[str, float] = {}
    for dest, n, lo, hi, count in store.query(LEVELS, (today - history_days, today, today)):
        lo, hi, count = int(str(lo)), int(str(hi)), int(str(count))
        if count == 0:
            scans[str(dest)] = int(str(n))
        elif count >= min_days:
            usual[str(dest)] = lo if count % 2 else (lo + hi) / 2  # as statistics.median
    return {d: DayLevel(scans.get(d, 0), usual.get(d)) for d in scans.keys() | usual.keys()}


def _levels_from_hourly(
    store: Store, start_ms: int, end_ms: int, history_days: int, min_days: int, offset_ms: int
) -> dict[str, DayLevel]:
    daily = daily_scans(store, start_ms - history_days * DAY_MS, end_ms, offset_ms=offset_ms)
    today = (start_ms + offset_ms) // DAY_MS
    levels = {}
    for dest, days in daily.items():
        past = [n for day, n in days.items() if day < today]
        usual = statistics.median(past) if len(past) >= min_days else None
        levels[dest] = DayLevel(days.get(today, 0), usual)
    return levels


def device_kinds(store: Store, start_ms: int, end_ms: int) -> dict[str, set[tuple[str, str]]]:
    """Per device, the (kind, format) pairs it sent on the UTC days overlapping a window."""
    sql = "SELECT DISTINCT device, kind, format FROM device_days WHERE day >= ? AND day < ?"
    found: dict[str, set[tuple[str, str]]] = {}
    for device, kind, card_format in store.query(sql, (start_ms // DAY_MS, -(-end_ms // DAY_MS))):
        found.setdefault(str(device), set()).add((str(kind), str(card_format)))
    return found


def venue_figures(
    store: Store, start_ms: int, end_ms: int, destinations: list[str], *, offset_ms: int
) -> dict[str, VenueFigures]:
    """The counts of these destinations over a window (every one listed gets an entry)."""
    tallies = {dest: _Tally() for dest in destinations}
    if destinations:
        marks = ", ".join("?" for _ in destinations)
        sql = (
            "SELECT destination, hour, kind, format, verdict, reason, n, n_in, n_out FROM hourly"
            f" WHERE hour >= ? AND hour < ? AND destination IN ({marks})"
        )
        for dest, hour, kind, fmt, verdict, reason, n, n_in, n_out in store.query(
            sql, (*_hours(start_ms, end_ms), *destinations)
        ):
            tallies[str(dest)].add(
                (int(hour) * HOUR_MS + offset_ms) // HOUR_MS % 24, str(kind), str(fmt), str(verdict),
                str(reason), (int(n), int(n_in), int(n_out)),
            )  # fmt: skip
    return {dest: t.figures(dest) for dest, t in tallies.items()}


@dataclass
class _Tally:
    scans: int = 0
    old_poster: int = 0
    no_qr: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    directions: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0, "none": 0})
    verdicts: dict[str, dict[str, int]] = field(default_factory=lambda: {"pass": {}, "fail": {}})
    hourly: list[int] = field(default_factory=lambda: [0] * 24)

    def add(
        self, hour: int, kind: str, fmt: str, verdict: str, reason: str, counts: tuple[int, int, int]
    ) -> None:
        n, n_in, n_out = counts
        self.kinds[kind] = self.kinds.get(kind, 0) + n
        if kind != "scan" or fmt == "inspector":
            return  # not a visitor scan: only `kinds` counts it
        self.scans += n
        self.old_poster += n if reason == OLD_POSTER else 0
        self.no_qr += n if reason == NO_QR else 0
        self.directions["in"] += n_in
        self.directions["out"] += n_out
        self.directions["none"] += n - n_in - n_out
        reasons = self.verdicts.setdefault(verdict, {})
        reasons[reason] = reasons.get(reason, 0) + n
        self.hourly[hour] += n

    def figures(self, destination: str) -> VenueFigures:
        return VenueFigures(
            destination=destination, scans=self.scans, kinds=dict(sorted(self.kinds.items())),
            directions=self.directions,
            verdicts={v: dict(sorted(r.items())) for v, r in self.verdicts.items()},
            hourly=self.hourly, old_poster=self.old_poster, no_qr=self.no_qr,
        )  # fmt: skip


def area_totals(
    store: Store,
    start_ms: int,
    end_ms: int,
    *,
    level: str = "district",
    district: str | None = None,
) -> list[AreaTotal]:
    """Visitor scans per district (or per ward, optionally of one district) of the venue registry.

    Destinations that are not in the registry are grouped under an empty district.
    """
    if level not in AREA_LEVELS:
        raise ValueError(f"level must be one of {AREA_LEVELS}")
    ward = "COALESCE(v.ward, '')" if level == "ward" else "''"
    where = " AND COALESCE(v.district, '') = ?" if district is not None else ""
    days = _daily_days(start_ms, end_ms)
    if days is None:
        counts = (
            "COUNT(DISTINCT h.destination), SUM(h.n), SUM(CASE WHEN h.verdict = 'fail' THEN h.n ELSE 0 END)"
            f" FROM hourly h LEFT JOIN venues v ON v.destination = h.destination WHERE h.hour >= ?"
            f" AND h.hour < ? AND h.{VISITOR.replace(' AND ', ' AND h.')}"
        )
        window = _hours(start_ms, end_ms)
    else:  # whole local days: one row per venue and day
        counts = (
            "COUNT(DISTINCT h.destination), SUM(h.scans), SUM(h.scans_fail) FROM daily h"
            " LEFT JOIN venues v ON v.destination = h.destination"
            " WHERE h.day >= ? AND h.day < ? AND h.scans > 0"
        )
        window = days
    sql = f"SELECT COALESCE(v.district, '') AS d, {ward} AS w, {counts}{where} GROUP BY d, w ORDER BY d, w"
    params: tuple[object, ...] = (*window, *([district] if district is not None else []))
    return [
        AreaTotal(str(d), str(w), int(venues), int(scans), int(fails))
        for d, w, venues, scans, fails in store.query(sql, params)
    ]


def hourly_totals(store: Store, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """(hour start in UTC ms, visitor scans) of every hour in a window that had any, for charts."""
    sql = f"SELECT hour, SUM(n) FROM hourly WHERE hour >= ? AND hour < ? AND {VISITOR}"
    sql += " GROUP BY hour ORDER BY hour"
    return [(int(hour) * HOUR_MS, int(n)) for hour, n in store.query(sql, _hours(start_ms, end_ms))]
