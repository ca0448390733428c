"""Benchmark: the dashboard's pages on a generated province (SQLite), each page's server time.

A sample province (kiosk/central/web/sample.py) of --venues venues over --days days
with about --scans scans per venue and day is written to a SQLite file; every page is
then requested through Starlette's test client (the whole application: session
check, queries, templates), signed in as the authority. Printed per page: the median
of --repeat requests in ms, its ratio to the baseline (the sign-in form, measured in
the same run: the cost of a request that reads no figures) and to the 200 ms target.
The venue lists and /visit page through the province's snapshot, which the dashboard
rebuilds in a background thread (kiosk.central.web.snapshot): its build is timed on its
own (the median of --repeat builds) and printed first, not counted in any page. The
application runs with its lifespan, as under uvicorn (requests' PostgreSQL connections
kept between them); --fresh-connections opens one per request instead.

With --postgres the province goes to a PostgreSQL server the benchmark starts (PostgreSQL
15, as `make test` installs it) and is written at the scale of a real one: the hourly
aggregates of --venues venues over --days days are generated straight in SQL (one row
per venue, open hour and outcome: about 21 rows per venue and day, so 10,000 venues × 30
days ≈ 6.6 million rows, the ~7.2 million a province's ingest would keep at most) and
`daily` summed from them as the ingest keeps it, with each venue's kiosk and its state;
events (which no list page reads) are written for the one venue whose page is timed,
over every day, at --scans a day (its hours and days counted from them).

Run: .venv/bin/python bench/dashboard.py [--venues 200] [--days 30] [--scans 100] [--repeat 5]
     .venv/bin/python bench/dashboard.py --postgres --venues 10000 --days 30 --scans 700
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from kiosk.central.reports import ReportSettings, day_range
from kiosk.central.store import DAY_OFFSET_MS, DeviceRow, Store, daily_from_hourly, open_store
from kiosk.central.web import sample
from kiosk.central.web.accounts import LIGHT, Accounts
from kiosk.central.web.app import create_app
from kiosk.central.web.context import WebSettings

TARGET_MS = 200.0
PAGES = ["/places", "/places?district=Qu%E1%BA%ADn%201", "/places?flag=silent&page=2", "/venue/venue-0002",
         "/devices", "/visit", "/street"]  # fmt: skip


def timed(client: TestClient, path: str, repeat: int) -> float:
    """Median ms of `repeat` requests (after one warm-up)."""
    client.get(path)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code}")
    return statistics.median(times)


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def generated(store: Store, *, now_ms: int, venues: int, days: int, scans: int) -> ReportSettings:
    """A province of `venues` venues: kiosks, states and hourly aggregates made in SQL; one venue's events."""
    rng = random.Random(20)
    infos = [sample._info(i, rng) for i in range(venues)]
    settings = ReportSettings(province="TP. Hồ Chí Minh", destinations=infos)
    today = datetime.fromtimestamp(now_ms / 1000, settings.zone).date()
    first_ms = day_range(today - timedelta(days=days - 1), settings.zone)[0]
    for i, info in enumerate(infos):
        if i % 11 != 5:  # as the sample: some venues have no kiosk
            store.put_device(
                DeviceRow(f"k-{info.id}", info.id, "-", f"fp{i}", "0.1.0", "2026-01-01T00:00:00Z")
            )
            store.put_state(sample._state(f"k-{info.id}", info.id, i, now_ms))
    ids = "'venue-' || CASE WHEN v < 10000 THEN lpad(v::text, 4, '0') ELSE v::text END"
    hours = f"generate_series({first_ms // 3_600_000}, {now_ms // 3_600_000}) h"
    # Open 07:00 to 21:00 local (UTC+7); venues i % 7 == 3 silent today; i % 11 == 5 without kiosk.
    where = (
        f"mod(h + 7, 24) BETWEEN 7 AND 20 AND mod(v - 1, 11) <> 5"
        f" AND NOT (mod(v - 1, 7) = 3 AND h >= {day_range(today, settings.zone)[0] // 3_600_000})"
    )
    outcomes = [
        ("'pass'", "'ok'", "'national'", "20 + mod(v + h, 40)", "1 = 1"),
        ("'fail'", "'status_blocked'", "'national'", "1 + mod(v + h, 3)", "mod(h, 2) = 0"),
        ("'fail'", "'old_venue_qr'", "'unknown'", "1 + mod(h, 2)", "mod(v - 1, 6) = 2 AND mod(h, 3) = 0"),
    ]
    for verdict, reason, card, n, when in outcomes:
        store.write(
            "INSERT INTO hourly (hour, destination, kind, format, verdict, reason, n, n_in, n_out)"
            f" SELECT h, {ids}, 'scan', {card}, {verdict}, {reason}, {n}, ({n}) * 2 / 3, ({n}) / 3"
            f" FROM generate_series(1, {venues}) v, {hours} WHERE {where} AND {when}"
        )
    store.write(  # an inspector's visit at 10:00 on some days
        "INSERT INTO hourly (hour, destination, kind, format, verdict, reason, n, n_in, n_out)"
        f" SELECT h, {ids}, 'inspection', 'inspector', 'pass', 'inspector_card_ok', 1, 0, 0"
        f" FROM generate_series(1, {venues}) v, {hours} WHERE {where} AND mod(v - 1, 4) = 1"
        " AND mod(h + 7, 24) = 10 AND mod(h / 24 + v, 2) = 0"
    )
    days_of = f"generate_series({first_ms // 86_400_000}, {now_ms // 86_400_000}) d"
    store.write(
        f"INSERT INTO device_days (day, device, kind, format) SELECT d, 'k-' || {ids}, 'scan', 'national'"
        f" FROM generate_series(1, {venues}) v, {days_of} WHERE mod(v - 1, 11) <> 5"
    )
    store.write(daily_from_hourly())  # the local days, as an ingest keeps them
    one = infos[1]
    for back in range(days):
        day = today - timedelta(days=back)
        rows = list(sample._day_events(rng, f"k-{one.id}", one.id, 1, day, settings, now_ms, scans))
        store.ensure_partitions((r.ts for r in rows), now_ms)
        start, end = day_range(day, settings.zone)
        store.write("DELETE FROM hourly WHERE destination = ? AND hour >= ? AND hour < ?",
                    (one.id, start // 3_600_000, end // 3_600_000))  # fmt: skip
        local_day = (start + DAY_OFFSET_MS) // 86_400_000
        store.write("DELETE FROM daily WHERE destination = ? AND day = ?", (one.id, local_day))
        store.insert_events(rows)  # its hours and day recounted from its events
    store.ensure_partitions([now_ms], now_ms)
    sample._street(store, settings, today, now_ms)
    store.commit()
    store.write("ANALYZE")
    store.commit()
    return settings


def _vacuum(db: str) -> None:
    """What autovacuum does to a written database: statistics, and the visibility map that lets
    index-only scans (every venue's week from `daily_week`) skip the table; then a checkpoint, so
    that the build's writes are not flushed while the first pages are timed."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        connection.execute("CHECKPOINT")


def main() -> None:
    """Build the province, time each page, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venues", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="a generated province on PostgreSQL")
    parser.add_argument("--fresh-connections", action="store_true",
                        help="a new database connection per request (as without the application's lifespan)")
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        if args.postgres:
            from tests.support.postgres import PostgresServer

            db = stack.enter_context(PostgresServer()).new_database()
        else:
            db = str(Path(folder) / "central.sqlite3")
        print(f"load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
        started = time.perf_counter()
        with open_store(db) as store:
            if args.postgres:
                report = generated(store, now_ms=now_ms, venues=args.venues, days=args.days, scans=args.scans)
            else:
                report = sample.build(store, now_ms=now_ms, venues=args.venues, days=args.days,
                                      scans_per_day=args.scans).settings  # fmt: skip
            Accounts(store, hasher=LIGHT).add("admin", "authority", "bench-password", now_ms=now_ms)
            if args.postgres:
                _vacuum(db)
            events = store.count_events()
            hourly = int(store.query("SELECT COUNT(*) FROM hourly")[0][0])
        cpu = platform.processor() or platform.machine()
        where = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(
            f"{where}, {store.name}; {args.venues} venues, {args.days} days, {events:,} events,"
            f" {hourly:,} hourly rows (built in {time.perf_counter() - started:.0f} s)"
        )
        # The thread builds once at the start; a refresh while pages are timed would compete with them.
        settings = WebSettings(db=db, report=report, secure_cookie=False, clock=lambda: now_ms / 1000,
                               refresh_seconds=3600)  # fmt: skip
        client = TestClient(create_app(settings))
        if not args.fresh_connections:  # the lifespan: connections kept, the thread's first build
            stack.enter_context(client)
        snapshots = client.app.state.web.snapshots  # type: ignore[attr-defined]
        build = statistics.median(_seconds(snapshots.refresh) for _ in range(args.repeat)) * 1000
        print(f"snapshot build (in the background, every 60 s by default): {build:.1f} ms")
        client.post("/login", data={"username": "admin", "password": "bench-password"})
        baseline = timed(client, "/login", args.repeat)
        print(f"{'page':<40} {'ms':>8} {'÷ baseline':>11} {'÷ 200 ms':>9}")
        print(f"{'/login (baseline)':<40} {baseline:8.1f} {1.0:11.1f} {baseline / TARGET_MS:9.2f}")
        for path in PAGES:
            ms = timed(client, path, args.repeat)
            print(f"{path:<40} {ms:8.1f} {ms / baseline:11.1f} {ms / TARGET_MS:9.2f}")
        print(f"load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
