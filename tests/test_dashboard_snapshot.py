"""The venue lists' snapshot: as old as the pages say, refreshed, and kept when the database is down.

The lists and /visit read the province as the last refresh built it (kiosk.central.web.snapshot);
each says the time its figures are as of. A scan stored after a refresh must not show before
the next one, must show after it, and the page's time must move with it. A refresh that fails
(PostgreSQL stopped) keeps the last figures, which the pages show with their time and the
failure's; while the database is away a page says so (503), never a traceback.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from kiosk.central.cli import main
from kiosk.central.store import EventRow, open_store
from kiosk.central.web import sample
from kiosk.central.web.accounts import LIGHT, Accounts
from kiosk.central.web.app import create_app
from kiosk.central.web.context import WebSettings
from kiosk.central.web.i18n import words
from kiosk.central.web.queries import areas
from kiosk.central.web.screenshots import PASSWORD, sample_site
from kiosk.central.web.snapshot import Snapshots
from tests.support.postgres import BIN, PostgresServer

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW_MS = int(datetime(2026, 3, 10, 15, 0, tzinfo=ZONE).timestamp() * 1000)
MINUTE_MS = 60_000
SILENT = "venue-0004"  # the sample's venues i % 7 == 3 have a kiosk and no scan today


class Clock:
    """A clock the tests move."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def signed_in(settings: WebSettings) -> TestClient:
    client = TestClient(create_app(settings), follow_redirects=False)
    reply = client.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/places"})
    assert reply.status_code == 303
    return client


def snapshots(client: TestClient) -> Snapshots:
    found: Snapshots = client.app.state.web.snapshots  # type: ignore[attr-defined]
    return found


def silent_listed(client: TestClient) -> bool:
    page = client.get("/places", params={"flag": "silent", "q": SILENT})
    assert page.status_code == 200
    return f'class="id">{SILENT}<' in page.text


def as_of(page: str) -> str:
    found = re.search(r'id="as-of">(.*?)</p>', page, re.S)
    assert found, page[:2000]
    return found.group(1)


def scan(db: str, ts: int) -> None:
    """A visitor's scan at `SILENT`, stored as the ingest stores it (its aggregates with it)."""
    device = f"k-{SILENT}"
    row = EventRow(device=device, epoch=9, seq=1, id=f"{device}-late", destination=SILENT, kind="scan",
                   ts=ts, clock_synced=True, direction="in", verdict="pass", reason="ok",
                   format="national", identity="hmac:late", sw="0.1.0", decode_ms=10.0,
                   received_ms=ts + 500, token="-")  # fmt: skip
    with open_store(db) as store:
        assert store.insert_events([row]) == 1
        store.commit()


@pytest.fixture
def site(tmp_path: Path) -> WebSettings:
    return sample_site(tmp_path, now_ms=NOW_MS)


def test_a_scan_stored_after_a_refresh_shows_after_the_next_one_with_its_time(site: WebSettings) -> None:
    clock = Clock(NOW_MS)
    client = signed_in(WebSettings(db=site.db, report=site.report, secure_cookie=False, clock=clock))
    assert silent_listed(client)
    first = as_of(client.get("/places").text)
    assert "15:00" in first and "60" in first
    clock.ms += 5 * MINUTE_MS
    scan(site.db, NOW_MS + 4 * MINUTE_MS)
    assert silent_listed(client)  # not refreshed yet: the figures of 15:00, and the page says 15:00
    assert as_of(client.get("/places").text) == first and "15:00" in as_of(client.get("/visit").text)
    assert snapshots(client).refresh()
    assert not silent_listed(client)
    assert "15:05" in as_of(client.get("/places").text) and "15:05" in as_of(client.get("/visit").text)
    assert 'id="refresh-failed"' not in client.get("/places").text


def test_the_thread_started_with_the_application_refreshes_by_itself(site: WebSettings) -> None:
    settings = WebSettings(db=site.db, report=site.report, secure_cookie=False, clock=lambda: NOW_MS / 1000,
                           refresh_seconds=0.05)  # fmt: skip
    with signed_in(settings) as client:  # the lifespan: the thread runs until the block ends
        assert silent_listed(client)
        scan(site.db, NOW_MS - MINUTE_MS)
        seen = snapshots(client).refreshes  # two more builds: the second surely began after the scan
        wait_for(lambda: snapshots(client).refreshes >= seen + 2, "two refreshes after the scan")
        assert not silent_listed(client)
    assert "dashboard-refresh" not in {t.name for t in threading.enumerate()}  # stopped with the app


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    # A server of this test's own: the session's shared one must not go away under other tests.
    if not (BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL 15 is not installed ({BIN}/postgres missing; `make test` installs it)")
    with PostgresServer() as server:
        yield server


def postgres_site(server: PostgresServer) -> WebSettings:
    db = server.new_database()
    with open_store(db) as store:
        province = sample.build(store, now_ms=NOW_MS, venues=12, days=2, scans_per_day=10)
        Accounts(store, hasher=LIGHT).add("admin", "authority", PASSWORD, now_ms=NOW_MS)
    return WebSettings(db=db, report=province.settings, secure_cookie=False, clock=lambda: NOW_MS / 1000)


def sessions_of(db: str) -> list[str]:
    """The states of the other connections to this database (idle, active, idle in transaction)."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        sql = ("SELECT state FROM pg_stat_activity"
               " WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip
        return sorted(str(state) for (state,) in conn.execute(sql).fetchall())


@pytest.mark.slow
def test_a_failed_refresh_keeps_the_last_figures_and_says_how_old_they_are(postgres: PostgresServer) -> None:
    site = postgres_site(postgres)
    clock = Clock(NOW_MS)
    client = signed_in(replace(site, clock=clock))
    before = client.get("/places").text
    assert silent_listed(client) and "15:00" in as_of(before)
    clock.ms += 10 * MINUTE_MS
    postgres.stop()
    assert not snapshots(client).refresh()
    down = client.get("/places")
    assert down.status_code == 503 and words("vi")["unavailable"] in down.text
    assert "Traceback" not in down.text
    postgres.start()
    kept = client.get("/places").text
    said = as_of(kept)
    assert "15:00" in said and 'id="refresh-failed"' in said and "15:10" in said.split("refresh-failed")[1]
    assert re.findall(r'class="id">(venue-\d+)<', kept) == re.findall(r'class="id">(venue-\d+)<', before)
    assert 'id="refresh-failed"' in client.get("/visit").text
    assert snapshots(client).refresh()
    again = as_of(client.get("/places").text)
    assert "15:10" in again and 'id="refresh-failed"' not in again


@pytest.mark.parametrize("seconds", ["4", "3601"])
def test_serve_refuses_a_refresh_interval_out_of_bounds(
    tmp_path: Path, seconds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "central.sqlite3")
    assert main(["--db", db, "serve", "--refresh-seconds", seconds]) == 2
    assert "--refresh-seconds must be between 5 and 3600" in capsys.readouterr().err


@pytest.mark.slow
def test_requests_reuse_a_postgres_connection_while_the_application_runs(postgres: PostgresServer) -> None:
    site = postgres_site(postgres)
    with signed_in(replace(site, refresh_seconds=3600)) as client:
        connections = client.app.state.web.connections  # type: ignore[attr-defined]
        for path in ("/places", "/venue/venue-0002", "/devices", "/visit", "/street") * 2:
            assert client.get(path).status_code == 200
        # One request at a time: one connection (the sign-in's, before the lifespan, was closed),
        # left idle between requests: not in a transaction that would hold rows back from vacuum.
        # (A closed connection's server process ends a moment later: waited for, not assumed.)
        assert connections.opened == 2
        wait_for(lambda: sessions_of(site.db) == ["idle"], "one idle connection")
        postgres.stop()  # the kept connection's server goes away ...
        postgres.start()
        assert client.get("/places").status_code == 200  # ... and the next request opens another
        assert connections.opened == 3
        wait_for(lambda: sessions_of(site.db) == ["idle"], "one idle connection")
    wait_for(lambda: sessions_of(site.db) == [], "no connection after the application stopped")


def test_without_the_application_running_no_connection_is_kept(site: WebSettings) -> None:
    client = signed_in(site)
    for _ in range(3):
        assert client.get("/devices").status_code == 200
    assert client.app.state.web.connections.opened == 4  # type: ignore[attr-defined]


def test_areas_are_kept_only_for_places_that_exist(site: WebSettings) -> None:
    client = signed_in(site)
    real = {(d.district, "") for d in site.report.destinations} | {
        (d.district, d.ward) for d in site.report.destinations
    }
    for district, ward in sorted(real):
        assert client.get("/places", params={"district": district, "ward": ward}).status_code == 200
    for n in range(50):  # made-up names: answered (no venue), never kept
        assert client.get("/places", params={"district": f"x{n}", "ward": f"y{n}"}).status_code == 200
        assert client.get("/places", params={"district": "Quận 1", "ward": f"y{n}"}).status_code == 200
    province = snapshots(client).current().province
    assert set(province._places) == real
    for (district, ward), (venues, found) in province._places.items():  # the same as worked out afresh
        assert venues == [v for v in province.venues if (v.district, v.ward)[: 2 if ward else 1]
                          == (district, ward)[: 2 if ward else 1]]  # fmt: skip
        assert found == ([] if ward else areas(venues, "ward"))
