"""The systemd unit: notify type, watchdog, restart, hardening, and `systemd-analyze verify`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "kiosk.service"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser["Service"]


def test_unit_asks_for_what_the_daemon_does() -> None:
    s = service()
    assert s["Type"] == "notify"
    assert s["Restart"] == "on-failure"
    assert int(s["WatchdogSec"]) > 0
    assert s["ExecStart"].endswith("kiosk run --config /etc/kiosk/kiosk.toml")
    assert s["User"] == "kiosk" and "video" in s["SupplementaryGroups"] and "gpio" in s["SupplementaryGroups"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DevicePolicy", "closed"),
        ("StateDirectory", "kiosk"),
        ("ConfigurationDirectory", "kiosk"),
    ],
)
def test_unit_is_hardened(key: str, value: str) -> None:
    assert service()[key] == value


def test_unit_allows_only_the_devices_it_needs() -> None:
    text = UNIT.read_text()
    for device in ("char-video4linux", "char-media", "char-dma_heap", "char-gpiochip"):
        assert f"DeviceAllow={device}" in text
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK" in text


def test_gpio_library_can_write_its_pipes() -> None:
    s = service()
    assert s["WorkingDirectory"] == "/var/lib/kiosk"
    assert "LG_WD=/var/lib/kiosk" in UNIT.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "kiosk.service"
    # The installed path of the program does not exist here; everything else is checked as written.
    unit.write_text(UNIT.read_text().replace("/opt/kiosk/venv/bin/kiosk", "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "kiosk.service" in line]
    assert problems == [], problems


def test_a_stalled_camera_read_ends_before_the_watchdog_fires() -> None:
    """The loop pets every half WatchdogSec; the longest allowed read must fit in the other half."""
    from kiosk.config import MAX_STALL_TIMEOUT_S, UNIT_WATCHDOG_S

    watchdog_s = float(service()["WatchdogSec"])
    assert watchdog_s == UNIT_WATCHDOG_S
    assert watchdog_s / 2 + MAX_STALL_TIMEOUT_S < watchdog_s
