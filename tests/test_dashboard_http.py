"""The dashboard's rules through Starlette's test client: sign-in, sessions, roles, logs, figures."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from kiosk.central.cli import main
from kiosk.central.reports import is_visitor_scan
from kiosk.central.store import DeviceRow, open_store
from kiosk.central.web import sample
from kiosk.central.web.accounts import ACCOUNT_FAILURES, ADDRESS_FAILURES, LIGHT, THROTTLE_MINUTES, Accounts
from kiosk.central.web.app import create_app
from kiosk.central.web.context import COOKIE, WebSettings
from kiosk.central.web.queries import Dashboard
from kiosk.central.web.screenshots import PASSWORD, sample_site
from tests.support import central as central_support
from tests.support import postgres as postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url
store_url = central_support.store_url

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW_MS = int(datetime(2026, 3, 10, 15, 0, tzinfo=ZONE).timestamp() * 1000)


class Clock:
    """A clock the tests move."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> WebSettings:
    return sample_site(tmp_path_factory.mktemp("dashboard"), now_ms=NOW_MS)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW_MS)


@pytest.fixture
def client(site: WebSettings, clock: Clock) -> TestClient:
    settings = WebSettings(db=site.db, report=site.report, secure_cookie=False, clock=clock)
    return TestClient(create_app(settings), follow_redirects=False)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, target: str = "/places") -> int:
    return client.post(
        "/login", data={"username": username, "password": password, "next": target}
    ).status_code


def log_rows(site: WebSettings) -> list[tuple[str, str, str]]:
    with open_store(site.db) as store:
        return [(e.username, e.action, e.detail) for e in Accounts(store).entries(limit=1000)]


def csrf(client: TestClient, path: str = "/places") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/places", "/devices", "/visit", "/street", "/venue/venue-0001", "/trace", "/log"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_repeated_failed_logins_are_refused_per_account_and_per_address(site: WebSettings) -> None:
    clock = Clock(NOW_MS + 3 * 86_400_000)  # a later day: other tests' failures are long past
    app = create_app(WebSettings(db=site.db, report=site.report, secure_cookie=False, clock=clock))
    guesser = TestClient(app, follow_redirects=False, client=("192.0.2.7", 4000))
    for _ in range(ACCOUNT_FAILURES):
        assert sign_in(guesser, "admin", "wrong password!") == 401
    # The right password no longer opens the account, from anywhere, and is not even checked.
    elsewhere = TestClient(app, follow_redirects=False, client=("192.0.2.8", 4000))
    response = elsewhere.post("/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 429 and 'id="login-throttled"' in response.text
    assert ("admin", "login_throttled", "account") in log_rows(site)
    # A spray over many accounts from one address is refused for every account, even a right one.
    sprayer = TestClient(app, follow_redirects=False, client=("192.0.2.9", 4000))
    for n in range(ADDRESS_FAILURES):
        assert sign_in(sprayer, f"user{n}", "wrong password!") == 401
    assert sign_in(sprayer, "inspector", PASSWORD) == 429
    assert sign_in(elsewhere, "inspector", PASSWORD) == 303  # another address is not held up
    # The limit lifts by itself once the failures are older than the window.
    clock.ms += THROTTLE_MINUTES * 60_000 + 1
    assert sign_in(guesser, "admin", PASSWORD) == 303 and sign_in(sprayer, "inspector", PASSWORD) == 303


def test_login_is_checked_and_logged(client: TestClient, site: WebSettings) -> None:
    assert sign_in(client, "admin", "wrong password!") == 401
    assert sign_in(client, "nobody", PASSWORD) == 401
    assert client.get("/places").status_code == 303
    response = client.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/devices"})
    assert response.status_code == 303 and response.headers["location"] == "/devices"
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/places").status_code == 200
    rows = log_rows(site)
    assert ("admin", "login_failed", "") in rows and ("nobody", "login_failed", "") in rows
    assert ("admin", "login", "") in rows


def test_passwords_are_argon2id_hashes(site: WebSettings) -> None:
    with open_store(site.db) as store:
        hashes = [h for (h,) in store.query("SELECT password_hash FROM web_accounts")]
    assert hashes and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_a_session_expires_when_idle_and_at_its_lifetime(client: TestClient, clock: Clock) -> None:
    sign_in(client, "admin")
    clock.ms += 29 * 60_000
    assert client.get("/places").status_code == 200  # used: idle time starts again
    clock.ms += 29 * 60_000
    assert client.get("/places").status_code == 200
    clock.ms += 31 * 60_000
    assert client.get("/places").status_code == 303
    sign_in(client, "admin")
    for _ in range(26):  # busy all day (12.6 h): the lifetime still ends it
        clock.ms += 29 * 60_000
        client.get("/devices")
    assert client.get("/places").status_code == 303


def test_logout_ends_the_session_and_needs_its_token(client: TestClient, site: WebSettings) -> None:
    sign_in(client, "inspector")
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 400
    assert client.get("/places").status_code == 200
    token = client.cookies.get(COOKIE)
    assert client.post("/logout", data={"csrf": csrf(client)}).status_code == 303
    client.cookies.set(COOKIE, token or "")
    assert client.get("/places").status_code == 303  # the old cookie opens nothing
    assert ("inspector", "logout", "") in log_rows(site)


def test_an_inspector_cannot_trace_or_read_the_log(client: TestClient, site: WebSettings) -> None:
    sign_in(client, "inspector")
    before = [r for r in log_rows(site) if r[1] == "trace"]
    assert "/trace" not in client.get("/places").text
    assert client.get("/trace").status_code == 403
    form = {
        "csrf": csrf(client),
        "identity": "hmac:000001",
        "start": "2026-03-01T00:00",
        "end": "2026-03-10T00:00",
    }
    assert client.post("/trace", data=form).status_code == 403
    assert client.get("/log").status_code == 403
    assert [r for r in log_rows(site) if r[1] == "trace"] == before


def test_a_trace_is_logged_with_who_asked_whom(client: TestClient, site: WebSettings) -> None:
    with open_store(site.db) as store:
        (identity,) = store.query(
            "SELECT identity FROM events WHERE kind = 'scan' AND verdict = 'pass' LIMIT 1"
        )[0]
    sign_in(client, "admin")
    form = {"identity": identity, "start": "2026-03-01T00:00", "end": "2026-03-11T00:00"}
    assert client.post("/trace", data=form).status_code == 400  # no CSRF token
    response = client.post("/trace", data={**form, "csrf": csrf(client, "/trace")})
    assert response.status_code == 200
    visits = re.search(r'id="visit-count">(\d+)<', response.text)
    assert visits and int(visits.group(1)) >= 1
    logged = [json.loads(d) for u, a, d in log_rows(site) if u == "admin" and a == "trace"]
    assert {
        "identity": identity,
        "from": "2026-03-01T00:00:00+07:00",
        "to": "2026-03-11T00:00:00+07:00",
    } in logged
    assert identity in client.get("/log").text


@pytest.mark.parametrize(
    ("start", "end", "identity"),
    [("2026-03-02T00:00", "2026-03-01T00:00", "x"), ("2026-01-01T00:00", "2026-03-01T00:00", "x"),
     ("yesterday", "2026-03-01T00:00", "x"), ("2026-03-01T00:00", "2026-03-02T00:00", "a\x00b"),
     ("2026-03-01T00:00", "2026-03-02T00:00", "9" * 200)],
)  # fmt: skip
def test_a_bad_trace_query_is_refused_with_a_reason(
    client: TestClient, start: str, end: str, identity: str
) -> None:
    sign_in(client, "admin")
    form = {"csrf": csrf(client, "/trace"), "identity": identity, "start": start, "end": end}
    response = client.post("/trace", data=form)
    assert response.status_code == 400 and 'id="trace-error"' in response.text


def test_sign_in_never_redirects_to_another_site(client: TestClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = client.post("/login", data={"username": "admin", "password": PASSWORD, "next": target})
        assert response.headers["location"] == "/places"
    assert client.get("/lang/en?next=//evil.example").headers["location"] == "/places"


def test_every_page_sends_protective_headers(client: TestClient) -> None:
    sign_in(client, "admin")
    for path in ("/login", "/places", "/venue/venue-0002"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"


def test_places_drill_down_filter_and_pages(client: TestClient, site: WebSettings) -> None:
    sign_in(client, "admin")
    province = client.get("/places").text
    assert all(f">{d}</a>" in province for d in sample.DISTRICTS)
    district = client.get("/places", params={"district": "Quận 1"}).text
    assert all(f">{w}</a>" in district for w in sample.DISTRICTS["Quận 1"])
    ward = client.get("/places", params={"district": "Quận 1", "ward": "Bến Nghé"}).text
    names = re.findall(r'class="id">(venue-\d+)<', ward)
    expected = [d.id for d in site.report.destinations if (d.district, d.ward) == ("Quận 1", "Bến Nghé")]
    assert sorted(names) == sorted(expected) and names
    flagged = client.get("/places", params={"flag": "no_device"}).text
    assert set(re.findall(r'class="id">(venue-\d+)<', flagged)) == {
        f"venue-{i + 1:04d}" for i in range(40) if i % 11 == 5
    }
    first, second = (client.get("/places", params={"page": n}).text for n in (1, 2))
    assert 'id="page-number">2<' in second and "page-next" not in second
    assert not set(re.findall(r'class="id">(venue-\d+)<', first)) & set(
        re.findall(r'class="id">(venue-\d+)<', second)
    )
    assert 'id="page-number">2<' in client.get("/places", params={"page": "999"}).text
    assert 'id="page-number">1<' in client.get("/places", params={"page": "x"}).text


def test_venue_devices_visit_street_pages(client: TestClient) -> None:
    sign_in(client, "admin")
    venue = client.get("/venue/venue-0002").text
    assert venue.count("<svg") == 2 and "k-venue-0002" in venue and 'id="inspections"' in venue
    assert client.get("/venue/no-such-venue").status_code == 404
    devices = re.findall(r'<tr class="device( attention)?">', client.get("/devices").text)
    assert devices and devices == sorted(devices, reverse=True)  # those needing attention first
    visit = client.get("/visit").text
    assert 'class="candidate"' in visit
    street = client.get("/street", params={"day": "2026-03-10"}).text
    assert re.search(r"<td>team-q1</td><td class=\"n\">38</td><td class=\"n\">30</td>", street)
    assert client.get("/street", params={"day": "10/03/2026"}).status_code == 400


def test_words_follow_the_chosen_language(client: TestClient) -> None:
    sign_in(client, "inspector")
    assert "Thiết bị" in client.get("/places").text
    client.get("/lang/en?next=/places")
    text = client.get("/places").text
    assert "Devices" in text and "Thiết bị" not in text
    assert "no inspector visit in 30 days" in client.get("/visit").text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["district", "ward", "flag", "q", "page", "day"]),
                              st.text(max_size=300)))  # fmt: skip
def test_hostile_query_strings_never_break_a_page(client: TestClient, params: dict[str, str]) -> None:
    if COOKIE not in client.cookies:
        sign_in(client, "admin")
    for path in ("/places", "/street"):
        assert client.get(path, params=params).status_code in (200, 400)


def test_venue_figures_match_the_events(store_url: str) -> None:
    with open_store(store_url) as store:
        province = sample.build(store, now_ms=NOW_MS, venues=12, days=8, scans_per_day=20)
        board = Dashboard(store, province.settings, now_ms=NOW_MS)
        venues = {v.destination: v for v in board.venues()}
        start = board.clock.today_start
        week = [e for e in store.events(board.clock.week_start, board.clock.end) if is_visitor_scan(e)]
        for dest, venue in venues.items():
            mine = [e for e in week if e.destination == dest]
            today = [e for e in mine if e.ts >= start]
            assert venue.week.scans == len(mine) and venue.today.scans == len(today)
            assert venue.today.entries == sum(e.direction == "in" for e in today)
            assert venue.week.failed == sum(e.verdict == "fail" for e in mine)
            assert venue.old_posters == sum(e.reason == "old_venue_qr" for e in mine)
            hours = Counter(datetime.fromtimestamp(e.ts / 1000, ZONE).hour for e in today)
            assert board.hourly(dest) == [hours.get(h, 0) for h in range(24)]
            assert sum(n for _, n in board.daily(dest)) == len(mine)
            assert board.venue(dest) == venue  # one venue's own reads give its line in the list
        assert "team-q1" not in venues and board.venue("team-q1") is None  # a street team is no venue
        assert board.venue("nowhere") is None
        assert "no_device" in venues["venue-0006"].flags and "silent" in venues["venue-0004"].flags
        street = board.street(board.clock.today)
        assert (street.total.checks, street.total.passed, street.total.no_qr) == (38, 30, 4)
        assert street.total.violations == {"status_blocked": 3}


def test_an_unused_handheld_is_no_venue_on_the_dashboard(store_url: str) -> None:
    with open_store(store_url) as store:
        province = sample.build(store, now_ms=NOW_MS, venues=3, days=2, scans_per_day=5)
        for device, mode in (("hh-idle", "inspector"), ("k-idle", "kiosk")):
            store.put_device(DeviceRow(device, f"area-{mode}", "-", "fp", "0.1.0", "2026-01-01T00:00:00Z",
                                       mode=mode))  # fmt: skip
        store.commit()
        board = Dashboard(store, province.settings, now_ms=NOW_MS)
        venues = {v.destination: v for v in board.venues()}
        alone = (board.venue("area-inspector"), board.venue("area-kiosk"))
    assert alone[0] is None and alone[1] is not None and "silent" in alone[1].flags
    assert "area-inspector" not in venues  # never used, yet a handheld: no silent venue, no missing kiosk
    assert "silent" in venues["area-kiosk"].flags  # the same device registered as a kiosk is one


def test_accounts_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.sqlite3")
    secret = tmp_path / "pw"
    secret.write_text("a long enough password\n")
    assert (
        main(["--db", db, "accounts", "add", "lan", "--role", "inspector", "--password-file", str(secret)])
        == 0
    )
    assert main(["--db", db, "accounts", "list"]) == 0
    assert re.search(r"lan\s+inspector\s+enabled", capsys.readouterr().out)
    with open_store(db) as store:
        (stored,) = store.query("SELECT password_hash FROM web_accounts")[0]
    assert stored.startswith("$argon2id$") and "m=65536" in stored  # a real account: memory-hard defaults
    assert main(["--db", db, "accounts", "disable", "lan"]) == 0
    with open_store(db) as store:
        assert Accounts(store).authenticate("lan", "a long enough password") is None
    secret.write_text("short")
    assert (
        main(["--db", db, "accounts", "add", "lan", "--role", "inspector", "--password-file", str(secret)])
        == 2
    )
    assert main(["--db", db, "accounts", "disable", "nobody"]) == 2
    assert "no account 'nobody'" in capsys.readouterr().err


def test_a_postgres_user_with_only_the_documented_grants_runs_the_dashboard(postgres_url: str) -> None:
    # docs/central.md: SELECT on central's tables, INSERT/UPDATE/DELETE on the three web_ tables only.
    import psycopg

    with open_store(postgres_url) as store:
        province = sample.build(store, now_ms=NOW_MS, venues=8, days=2, scans_per_day=10)
        accounts = Accounts(store, hasher=LIGHT)
        accounts.add("admin", "authority", PASSWORD, now_ms=NOW_MS)
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute("CREATE ROLE dashboard LOGIN")
        owner.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO dashboard")
        owner.execute("GRANT INSERT, UPDATE, DELETE ON web_accounts, web_sessions, web_log TO dashboard")
    url = postgres_url.replace("postgres@", "dashboard@", 1)
    settings = WebSettings(db=url, report=province.settings, secure_cookie=False, clock=lambda: NOW_MS / 1000)
    client = TestClient(create_app(settings), follow_redirects=False)
    assert sign_in(client, "admin") == 303  # a session and a log line written
    for path in ("/places", "/venue/venue-0002", "/devices", "/visit", "/street", "/log"):
        assert client.get(path).status_code == 200, path
    assert ("admin", "login", "") in log_rows(settings)
    with psycopg.connect(url, autocommit=True) as dashboard:
        for statement in ("DELETE FROM events", "UPDATE hourly SET n = 0", "DELETE FROM devices",
                          "INSERT INTO venues VALUES ('x', 'x', 'x', 'x', 'x', NULL)"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dashboard.execute(statement)
