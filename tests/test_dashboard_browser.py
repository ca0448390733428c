"""The dashboard in a real headless chromium: sign-in, each view, paging, roles, language, screenshots.

One server and one browser for the module (chromium takes seconds to start).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("selenium")
from selenium.webdriver.common.by import By

from kiosk.central.store import open_store
from kiosk.central.web import screenshots
from kiosk.central.web.screenshots import follow

pytestmark = pytest.mark.skipif(
    not shutil.which("chromedriver") or not Path(screenshots.CHROMIUM).exists(),
    reason="needs Debian's chromium and chromium-driver (make test installs them)",
)

NOW_MS = int(datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp() * 1000)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    settings = screenshots.sample_site(tmp_path_factory.mktemp("browser"), now_ms=NOW_MS)
    with screenshots.serving(settings) as base:
        yield base, settings.db


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with screenshots.browser() as chromium:
        chromium.implicitly_wait(5)  # a click that submits a form returns before the next page is there
        yield chromium


@pytest.fixture
def base(site: tuple[str, str], driver: Any) -> str:
    driver.delete_all_cookies()
    return site[0]


def absent(driver: Any, element_id: str) -> bool:
    """No such element on the page (looked up at once: the page is known to be loaded)."""
    driver.implicitly_wait(0)
    try:
        return not driver.find_elements(By.ID, element_id)
    finally:
        driver.implicitly_wait(5)


def texts(driver: Any, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_sign_in_refuses_a_wrong_password_then_opens_the_asked_page(driver: Any, base: str) -> None:
    driver.get(f"{base}/devices")
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys("not the password")
    follow(driver, driver.find_element(By.ID, "login"))
    assert driver.find_element(By.ID, "login-error").is_displayed()
    screenshots.sign_in(driver, base, "admin")
    assert driver.current_url.endswith("/places")
    assert "admin (authority)" in driver.find_element(By.ID, "user").text


def test_drill_down_from_province_to_a_venue(driver: Any, base: str) -> None:
    screenshots.sign_in(driver, base, "inspector")
    follow(driver, driver.find_element(By.LINK_TEXT, "Quận 1"))
    follow(driver, driver.find_element(By.LINK_TEXT, "Bến Nghé"))
    assert "Bến Nghé" in driver.find_element(By.ID, "crumbs").text
    follow(driver, driver.find_element(By.CSS_SELECTOR, "#venues tr.venue a"))
    assert driver.find_element(By.ID, "venue-name").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 2
    assert driver.find_elements(By.CSS_SELECTOR, "#devices tr.device")


def test_filter_and_page_the_venues(driver: Any, base: str) -> None:
    screenshots.sign_in(driver, base, "inspector")
    assert driver.find_element(By.ID, "page-number").text == "1"
    first = texts(driver, "#venues tr.venue .id")
    follow(driver, driver.find_element(By.ID, "page-next"))
    assert driver.find_element(By.ID, "page-number").text == "2"
    assert not set(first) & set(texts(driver, "#venues tr.venue .id"))
    driver.find_element(By.CSS_SELECTOR, "#flag option[value=no_device]").click()
    follow(driver, driver.find_element(By.ID, "filter"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#venues tr.venue")
    assert rows and all(r.find_elements(By.CSS_SELECTOR, ".flag-no_device") for r in rows)


def test_devices_visit_and_street_views(driver: Any, base: str) -> None:
    screenshots.sign_in(driver, base, "inspector")
    follow(driver, driver.find_element(By.ID, "nav-devices"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#devices tr.device")
    marks = ["attention" in r.get_attribute("class") for r in rows]
    assert any(marks) and marks == sorted(marks, reverse=True)
    follow(driver, driver.find_element(By.ID, "nav-visit"))
    assert driver.find_elements(By.CSS_SELECTOR, "#candidates tr.candidate ul.evidence li")
    follow(driver, driver.find_element(By.ID, "nav-street"))
    assert "team-q1" in texts(driver, "#street tr.team td")
    assert driver.find_element(By.CSS_SELECTOR, "#outcomes svg").is_displayed()


def test_an_inspector_cannot_trace(driver: Any, base: str) -> None:
    screenshots.sign_in(driver, base, "inspector")
    assert driver.find_element(By.ID, "nav-devices") and absent(driver, "nav-trace")
    driver.get(f"{base}/trace")
    assert driver.find_element(By.ID, "error").is_displayed()
    assert absent(driver, "identity")


def test_the_authority_traces_and_the_query_is_logged(driver: Any, base: str, site: tuple[str, str]) -> None:
    with open_store(site[1]) as store:
        (identity,) = store.query(
            "SELECT identity FROM events WHERE kind = 'scan' AND verdict = 'pass' LIMIT 1"
        )[0]
    screenshots.sign_in(driver, base, "admin")
    follow(driver, driver.find_element(By.ID, "nav-trace"))
    driver.find_element(By.ID, "identity").send_keys(identity)
    for field, value in (("start", "2026-03-01T00:00"), ("end", "2026-03-11T00:00")):
        driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, field), value)
    follow(driver, driver.find_element(By.ID, "run-trace"))
    assert int(driver.find_element(By.ID, "visit-count").text) >= 1
    follow(driver, driver.find_element(By.ID, "nav-log"))
    cells = [
        r.find_elements(By.TAG_NAME, "td") for r in driver.find_elements(By.CSS_SELECTOR, "#log tr.entry")
    ]
    actions = [(row[1].text, row[2].text) for row in cells]
    assert ("admin", "trace") in actions and identity in driver.page_source


def test_language_switch(driver: Any, base: str) -> None:
    screenshots.sign_in(driver, base, "inspector")
    assert driver.find_element(By.ID, "nav-devices").text == "Thiết bị"
    follow(driver, driver.find_element(By.ID, "lang-en"))
    assert driver.find_element(By.ID, "nav-devices").text == "Devices"
    follow(driver, driver.find_element(By.ID, "lang-vi"))


def test_screenshots_are_made_by_the_code(driver: Any, base: str, tmp_path: Path) -> None:
    screenshots.sign_in(driver, base, "admin")
    driver.get(f"{base}/places")
    png = screenshots.full_page(driver, tmp_path / "places.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    driver.set_window_size(1280, 900)


def test_sign_out(driver: Any, base: str) -> None:
    screenshots.sign_in(driver, base, "inspector")
    follow(driver, driver.find_element(By.ID, "logout"))
    driver.get(f"{base}/places")
    assert "/login" in driver.current_url
