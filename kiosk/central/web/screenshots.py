"""The dashboard served on a loopback port and driven by headless chromium: screenshots and browser tests.

Debian's `chromium` and `chromium-driver` packages; selenium drives them (the `dev`
extra). Nothing is downloaded: the driver's path is given, never looked up online.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kiosk.central.store import open_store
from kiosk.central.web import sample
from kiosk.central.web.accounts import LIGHT, Accounts
from kiosk.central.web.app import create_app
from kiosk.central.web.context import WebSettings
from kiosk.errors import ConfigError
from kiosk.ports import HOST, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "sample-password-1"
VIEWS = {  # file name: path (signed in as the authority)
    "dashboard-places.png": "/places",
    "dashboard-district.png": "/places?district=Qu%E1%BA%ADn%201",
    "dashboard-venue.png": "/venue/venue-0002",
    "dashboard-devices.png": "/devices",
    "dashboard-visit.png": "/visit",
    "dashboard-street.png": "/street",
}


@contextmanager
def serving(settings: WebSettings) -> Iterator[str]:
    """The dashboard under uvicorn in a thread on a free loopback port; its base URL."""
    server, thread = _start(settings)
    try:
        yield f"http://{HOST}:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _start(settings: WebSettings, starts: int = 3) -> tuple[Any, threading.Thread]:
    import uvicorn

    for _ in range(starts):
        config = uvicorn.Config(create_app(settings), host=HOST, port=free_port(), log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if server.started:
            return server, thread
        if thread.is_alive():
            server.should_exit = True
            break
        # The thread ended before serving: its port was taken after it was picked; pick again.
    raise ConfigError("the dashboard did not start within 10 s")


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """Headless chromium under selenium; closed on exit."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise ConfigError("screenshots need selenium: pip install 'kiosk[dev]'") from e
    if not Path(CHROMEDRIVER).exists():
        raise ConfigError("chromium-driver is not installed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--lang=vi"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def sample_site(folder: Path, *, now_ms: int, venues: int = 40) -> WebSettings:
    """A sample province's database in `folder`, with an authority `admin` and an inspector `inspector`."""
    db = str(folder / "central.sqlite3")
    with open_store(db) as store:
        province = sample.build(store, now_ms=now_ms, venues=venues)
        accounts = Accounts(store, hasher=LIGHT)  # a sample's accounts: quick to check
        accounts.add("admin", "authority", PASSWORD, now_ms=now_ms)
        accounts.add("inspector", "inspector", PASSWORD, now_ms=now_ms)
    return WebSettings(db=db, report=province.settings, secure_cookie=False, clock=lambda: now_ms / 1000)


def sign_in(driver: Any, base: str, username: str, password: str = PASSWORD) -> None:
    """Fill the sign-in form and submit it."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    follow(driver, driver.find_element(By.ID, "login"))


def follow(driver: Any, element: Any) -> None:
    """Click a link or button and wait for the next page (a click returns before it has loaded)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(driver, 10)
    wait.until(staleness_of(page))
    # The old page is gone; read the new one only once it is whole (rows still arriving are half a table).
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def full_page(driver: Any, path: Path) -> Path:
    """Save the whole page (the window grown to the page's height) as a PNG."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height, 600), 2400))
    driver.save_screenshot(str(path))
    return path


def take(output: Path) -> list[Path]:
    """Screenshots of the main views of a sample province, in Vietnamese, saved in `output`."""
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        settings = sample_site(Path(folder), now_ms=_afternoon_ms())
        with serving(settings) as base, browser() as driver:
            sign_in(driver, base, "admin")
            saved = []
            for name, path in VIEWS.items():
                driver.get(base + path)
                saved.append(full_page(driver, output / name))
            return saved


def _afternoon_ms() -> int:
    """Today 15:00 in Vietnam, so the pictures show a day's scans whatever the hour they are made."""
    from datetime import datetime
    from datetime import time as clock
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    today = datetime.now(zone).date()
    return int(datetime.combine(today, clock(15), tzinfo=zone).timestamp() * 1000)
