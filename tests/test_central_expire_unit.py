"""The retention's systemd units: an hourly timer starting a hardened oneshot `kiosk-central expire`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"


def section(unit: str, name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / unit)
    return parser[name]


def test_the_timer_runs_the_retention_hourly_even_after_downtime() -> None:
    timer = section("kiosk-central-expire.timer", "Timer")
    assert timer["OnCalendar"] == "hourly" and timer["Persistent"] == "true"


def test_the_service_expires_with_the_documented_default() -> None:
    service = section("kiosk-central-expire.service", "Service")
    assert service["Type"] == "oneshot"
    assert "kiosk-central --db ${DB} expire --days ${DAYS}" in service["ExecStart"]
    assert (
        "Environment=DB=/var/lib/kiosk-central/central.sqlite3 DAYS=30"
        in (SYSTEMD / "kiosk-central-expire.service").read_text()
    )
    ingest = section("kiosk-central-ingest.service", "Service")
    for key in ("User", "ProtectSystem", "CapabilityBoundingSet", "RestrictAddressFamilies", "UMask"):
        assert service[key] == ingest[key], key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    units = []
    for name in ("kiosk-central-expire.service", "kiosk-central-expire.timer"):
        unit = tmp_path / name
        text = (SYSTEMD / name).read_text()
        unit.write_text(text.replace("/opt/kiosk/venv/bin/kiosk-central", "/bin/true"))
        units.append(str(unit))
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if "kiosk-central-expire" in line]
    assert problems == [], problems
