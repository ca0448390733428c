"""The ingest's systemd unit: notify type, watchdog, restart, secrets as credentials, hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "kiosk-central-ingest.service"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser["Service"]


def test_unit_asks_for_what_the_ingest_does() -> None:
    s = service()
    assert s["Type"] == "notify" and s["Restart"] == "on-failure"
    assert int(s["WatchdogSec"]) > 0
    assert "kiosk-central --db ${DB} ingest" in s["ExecStart"]
    assert (
        "--key %d/authority.key" in s["ExecStart"] and "--password-file %d/broker.password" in s["ExecStart"]
    )
    assert s["User"] == "kiosk-central"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("StateDirectory", "kiosk-central"),
        ("UMask", "0077"),
    ],
)
def test_unit_is_hardened(key: str, value: str) -> None:
    assert service()[key] == value


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "kiosk-central-ingest.service"
    unit.write_text(UNIT.read_text().replace("/opt/kiosk/venv/bin/kiosk-central", "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert problems == [], problems
