"""`kiosk selftest` against a freshly provisioned config: replay camera, mock pins, a real mosquitto."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk import scenes
from kiosk.cli import main
from kiosk.config import load_config
from kiosk.provision import ProvisionRequest, provision
from kiosk.selftest import (
    CheckResult,
    Probes,
    Report,
    check_broker,
    check_camera,
    check_clock,
    check_screen,
    run_check,
    run_selftest,
    show_test_pattern,
)
from tests.support import broker as broker_support
from tests.support.broker import BrokerFactory, Mosquitto, TlsListener, free_port
from tests.support.trust import test_bundle

mosquitto = broker_support.mosquitto
mosquitto_factory = broker_support.mosquitto_factory


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
    report = run_selftest(config, probes=Probes(screen_hold_s=0, **probes))  # type: ignore[arg-type]
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
    assert main(["selftest", "--config", str(config), "--hold", "0"]) == 1
    out = capsys.readouterr().out
    assert "device key" in out and "kiosk provision" in out
    assert "FAILED" in out


# --- against a real mosquitto, with the shipped ACL and a test CA ---------------------------

ROOT = Path(__file__).resolve().parents[1]
ACL = (ROOT / "provisioning" / "acl.example").read_text()
DEVICE = "kiosk-0001"


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate for DEVICE."""
    folder = tmp_path_factory.mktemp("ca")
    script = ROOT / "provisioning" / "make-test-ca.sh"
    subprocess.run(["bash", str(script), "--out", str(folder), DEVICE], check=True, capture_output=True)
    return folder


def tls_broker(factory: BrokerFactory, ca: Path, *, certificates: bool = False) -> Mosquitto:
    """A broker with the shipped ACL, a password for DEVICE, and a TLS listener."""
    listener = TlsListener(
        ca / "ca.crt", ca / "server.crt", ca / "server.key", require_certificate=certificates
    )
    extra = "use_identity_as_username true\n" if certificates else ""
    return factory(users={DEVICE: "pw-0001", "central": "pw-c"}, acl=ACL, tls=listener, extra_conf=extra)


def password_file(tmp_path: Path, password: str) -> Path:
    """The broker password as the technician copies it onto the device."""
    path = tmp_path / "broker.password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.broker
def test_provision_then_selftest_passes_over_tls(
    tmp_path: Path, mosquitto_factory: BrokerFactory, test_ca: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = tls_broker(mosquitto_factory, test_ca)
    config = provisioned(
        tmp_path,
        broker.tls_url,
        device_id=DEVICE,
        ca_file=test_ca / "ca.crt",
        password_file=password_file(tmp_path, "pw-0001"),
        bundle=test_bundle(tmp_path / "authority"),
    )
    # A frame rate this machine keeps even when busy: the check compares with camera.fps.
    config.write_text(config.read_text(encoding="utf-8") + "\n[camera]\nfps = 10\n", encoding="utf-8")
    code = main(["selftest", "--config", str(config), "--json", "--hold", "0"])
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, [c for c in checks.values() if c["status"] == "fail"]
    trust = ["authority keys", "sealing key", "destination key", "trust list", "status list", "broker ca"]
    hardware = ["disk", "decoder", "camera", "signals", "video driver", "screen", "broker"]
    assert {name: c["status"] for name, c in checks.items() if name != "clock"} == dict.fromkeys(
        ["config", "device key", *trust, *hardware], "pass"
    ) | {"peers": "skip"}  # the venue's only lane
    assert checks["camera"]["figures"]["decoded"] >= 1
    assert checks["camera"]["figures"]["fps"] >= 0.7 * 10
    assert "TLS" in checks["broker"]["detail"]


@pytest.mark.broker
def test_selftest_with_a_client_certificate(
    tmp_path: Path, mosquitto_factory: BrokerFactory, test_ca: Path
) -> None:
    broker = tls_broker(mosquitto_factory, test_ca, certificates=True)
    config = provisioned(
        tmp_path,
        broker.tls_url,
        device_id=DEVICE,
        ca_file=test_ca / "ca.crt",
        cert_file=test_ca / f"{DEVICE}.crt",
        key_file=test_ca / f"{DEVICE}.key",
    )
    assert statuses(config)["broker"] == "pass"


@pytest.mark.broker
def test_publish_outside_the_devices_acl_fails(
    tmp_path: Path, mosquitto_factory: BrokerFactory, test_ca: Path
) -> None:
    # Registered as kiosk-0001 at the broker, but provisioned with another device id.
    broker = tls_broker(mosquitto_factory, test_ca)
    config = provisioned(
        tmp_path,
        broker.tls_url,
        device_id="kiosk-0002",
        username=DEVICE,
        ca_file=test_ca / "ca.crt",
        password_file=password_file(tmp_path, "pw-0001"),
    )
    result = _broker_result(config)
    assert result.status == "fail"
    assert "not accepted" in result.detail and "ACL" in result.detail


@pytest.mark.broker
def test_wrong_password_fails(tmp_path: Path, mosquitto_factory: BrokerFactory, test_ca: Path) -> None:
    broker = tls_broker(mosquitto_factory, test_ca)
    config = provisioned(
        tmp_path,
        broker.tls_url,
        device_id=DEVICE,
        ca_file=test_ca / "ca.crt",
        password_file=password_file(tmp_path, "wrong"),
    )
    result = _broker_result(config)
    assert result.status == "fail"
    assert "refused" in result.detail and "password" in result.detail


@pytest.mark.broker
def test_untrusted_broker_certificate_fails(
    tmp_path: Path, mosquitto_factory: BrokerFactory, test_ca: Path
) -> None:
    broker = tls_broker(mosquitto_factory, test_ca)
    other_ca = tmp_path / "other-ca"
    subprocess.run(
        ["bash", str(ROOT / "provisioning" / "make-test-ca.sh"), "--out", str(other_ca)],
        check=True,
        capture_output=True,
    )
    config = provisioned(
        tmp_path,
        broker.tls_url,
        device_id=DEVICE,
        ca_file=other_ca / "ca.crt",
        password_file=password_file(tmp_path, "pw-0001"),
    )
    result = _broker_result(config)
    assert result.status == "fail"
    assert "certificate is not trusted" in result.detail


def test_broker_not_running_fails_quickly(tmp_path: Path) -> None:
    config = provisioned(tmp_path, f"mqtt://127.0.0.1:{free_port()}", device_id=DEVICE)
    started = time.monotonic()
    result = _broker_result(config)
    assert result.status == "fail"
    assert "cannot reach" in result.detail
    assert time.monotonic() - started < 5


@pytest.mark.broker
def test_plain_mqtt_is_a_warning(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = provisioned(tmp_path, mosquitto.url, device_id=DEVICE)
    result = _broker_result(config)
    assert result.status == "warn"
    assert "mqtts://" in result.advice


def _broker_result(config: Path) -> CheckResult:
    settings = load_config(config)
    return run_check(check_broker, settings, Probes(broker_timeout_s=3))


# --- camera figures ---------------------------------------------------------------------------


def camera_result(tmp_path: Path, frames: list[np.ndarray]) -> CheckResult:
    """The camera check on replayed `frames`."""
    config = tmp_path / "kiosk.toml"
    config.write_text("[camera]\nreplay_realtime = false\n")
    return run_check(check_camera, load_config(config), Probes(frames=frames))


def test_camera_without_a_code_in_view_asks_for_one(tmp_path: Path) -> None:
    result = camera_result(tmp_path, [scenes.empty_frame(scenes.Scene(seed=i)) for i in range(5)])
    assert result.status == "fail"
    assert "hold a QR code" in result.advice
    assert result.figures["frames"] == 5


def test_blurred_camera_is_reported(tmp_path: Path) -> None:
    frame = scenes.render("0123", scenes.Scene(blur_sigma=8))
    result = camera_result(tmp_path, [frame] * 5)
    assert result.status == "fail"
    assert "blurred" in result.advice
    assert float(result.figures["sharpness"]) < 50


def test_dark_camera_is_reported(tmp_path: Path) -> None:
    result = camera_result(tmp_path, [np.zeros((480, 640), dtype=np.uint8)] * 5)
    assert result.status == "fail"
    assert "exposed" in result.advice
    assert result.figures["clipped"] == 1.0


def test_a_sharp_code_in_view_passes(tmp_path: Path) -> None:
    frames = [
        scenes.render("001093029317|NGUYEN VAN A", scenes.Scene(seed=i, noise_sigma=3)) for i in range(5)
    ]
    result = camera_result(tmp_path, frames)
    assert result.status == "pass", result
    assert result.figures["decoded"] == 1


def test_table_shows_advice_under_failures() -> None:
    report = Report(
        (
            CheckResult("disk", "pass", "plenty"),
            CheckResult("clock", "fail", "not synchronised", "enable NTP"),
        )
    )
    lines = report.table().splitlines()
    assert lines[0].startswith("disk ") and "PASS" in lines[0]
    assert "FAIL" in lines[1] and "enable NTP" in lines[2]
    assert lines[-1] == "some checks FAILED"
    assert not report.ok


def test_clock_probes(tmp_path: Path) -> None:
    settings = load_config(None)
    flag = tmp_path / "synchronized"
    no_command = ("false",)
    assert (
        run_check(check_clock, settings, Probes(clock_command=no_command, clock_flag=flag)).status == "warn"
    )
    flag.touch()
    assert (
        run_check(check_clock, settings, Probes(clock_command=no_command, clock_flag=flag)).status == "pass"
    )
    says_no = ("echo", "no")
    assert run_check(check_clock, settings, Probes(clock_command=says_no, clock_flag=flag)).status == "fail"


# --- screen -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["offscreen", "window"])
def test_screen_shows_the_test_pattern(tmp_path: Path, mode: str) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[feedback]\nscreen = "{mode}"\n[destination]\nvenue_name = "Chợ Bến Thành"\n')
    result = run_check(check_screen, load_config(config), Probes(screen_hold_s=0))
    assert result.status == "pass", result
    assert "Vietnamese text complete" in result.detail
    assert result.detail.startswith(f"{mode} 800x480")


def test_no_screen_is_skipped(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text('[feedback]\nscreen = "none"\n')
    assert run_check(check_screen, load_config(config), Probes(screen_hold_s=0)).status == "skip"


def test_test_pattern_reads_back_its_bars() -> None:
    import pygame

    surface = pygame.Surface((600, 200))
    assert show_test_pattern(surface, flip=False) == []
    assert tuple(surface.get_at((50, 100)))[:3] == (255, 255, 255)
    assert tuple(surface.get_at((150, 100)))[:3] == (255, 0, 0)
