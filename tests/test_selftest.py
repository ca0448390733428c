"""`kiosk selftest` against a freshly provisioned config: replay camera, mock pins, a real mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.provision import ProvisionRequest, provision
from kiosk.selftest import Probes, run_selftest


def provisioned(tmp_path: Path, broker: str, **options: object) -> Path:
    """Provision a kiosk into `tmp_path` and return its config file."""
    request = ProvisionRequest(
        config_path=tmp_path / "etc" / "kiosk.toml",
        destination="cho-ben-thanh",
        venue_name="Chợ Bến Thành",
        broker=broker,
        state_dir=tmp_path / "state",
        **options,  # type: ignore[arg-type]
    )
    return provision(request, owner=None).config_path


def statuses(config: Path, **probes: object) -> dict[str, str]:
    """Each check's status."""
    report = run_selftest(config, probes=Probes(**probes))  # type: ignore[arg-type]
    return {r.name: r.status for r in report.results}


def test_invalid_config_fails_the_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text("[camera]\nfps = -1\n")
    assert main(["selftest", "--config", str(config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["checks"][0]["name"] == "config"
    assert "camera.fps" in report["checks"][0]["advice"]


def test_missing_key_fails_with_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n[uplink]\nenabled = false\n')
    assert main(["selftest", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "device key" in out and "kiosk provision" in out
    assert "FAILED" in out
