"""Benchmark: the dashboard's pages on a generated province (SQLite), each page's server time.

A sample province (kiosk/central/web/sample.py) of --venues venues over --days days
with about --scans scans per venue and day is written to a SQLite file; every page is
then requested through Starlette's test client (the whole application: session
check, queries, templates), signed in as the authority. Printed per page: the median
of --repeat requests in ms, its ratio to the baseline (the sign-in form, measured in
the same run: the cost of a request that reads no figures) and to the 200 ms target.

Run: .venv/bin/python bench/dashboard.py [--venues 200] [--days 30] [--scans 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from kiosk.central.store import open_store
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


def main() -> None:
    """Build the province, time each page, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venues", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "central.sqlite3")
        started = time.perf_counter()
        with open_store(db) as store:
            province = sample.build(store, now_ms=now_ms, venues=args.venues, days=args.days,
                                    scans_per_day=args.scans)  # fmt: skip
            Accounts(store, hasher=LIGHT).add("admin", "authority", "bench-password", now_ms=now_ms)
            events = store.count_events()
        cpu = platform.processor() or platform.machine()
        where = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
        built = time.perf_counter() - started
        print(
            f"{where}, SQLite; {args.venues} venues, {args.days} days, {events:,} events"
            f" (built in {built:.0f} s)"
        )
        settings = WebSettings(
            db=db, report=province.settings, secure_cookie=False, clock=lambda: now_ms / 1000
        )
        client = TestClient(create_app(settings))
        client.post("/login", data={"username": "admin", "password": "bench-password"})
        baseline = timed(client, "/login", args.repeat)
        print(f"{'page':<40} {'ms':>8} {'÷ baseline':>11} {'÷ 200 ms':>9}")
        print(f"{'/login (baseline)':<40} {baseline:8.1f} {1.0:11.1f} {baseline / TARGET_MS:9.2f}")
        for path in PAGES:
            ms = timed(client, path, args.repeat)
            print(f"{path:<40} {ms:8.1f} {ms / baseline:11.1f} {ms / TARGET_MS:9.2f}")


if __name__ == "__main__":
    main()
