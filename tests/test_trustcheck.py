"""`kiosk selftest` and the trust material: each part missing, unreadable or expired fails, naming the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kiosk import cardmaker, keys
from kiosk.config import Settings, load_config
from kiosk.selftest import CHECKS, Probes, run_check
from kiosk.trustcheck import (
    FIX,
    TRUST_CHECKS,
    check_authority_keys,
    check_broker_ca,
    check_destination_key,
    check_status_list,
    check_trust_list,
)
from tests.test_bundle import NOW, authority, make, provision

__all__ = ["authority"]  # the fixture, found by name


def provisioned(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> Settings:
    """Provision a kiosk with `argv` and load its config."""
    code, _out, err = provision(tmp_path, capsys, *argv)
    assert code == 0, err
    return load_config(tmp_path / "etc" / "kiosk.toml")


def statuses(settings: Settings) -> dict[str, str]:
    """Each trust check's status."""
    return {check.__name__: run_check(check, settings, Probes()).status for check in TRUST_CHECKS}


def test_the_checks_run_with_the_selftest() -> None:
    assert set(TRUST_CHECKS) <= set(CHECKS)


def test_a_kiosk_provisioned_with_a_bundle_passes(authority: dict[str, Path], tmp_path: Path, capsys) -> None:
    make(authority, capsys)
    settings = provisioned(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert statuses(settings) == dict.fromkeys(statuses(settings), "pass")


def test_a_lab_kiosk_fails_every_trust_check_and_is_told_the_fix(tmp_path: Path, capsys) -> None:
    settings = provisioned(tmp_path, capsys, "--destination", "lab", "--venue", "Lab",
                           "--broker", "mqtts://127.0.0.1:8883")  # fmt: skip
    for check in TRUST_CHECKS:
        result = run_check(check, settings, Probes())
        if check is check_destination_key:  # a lab provisioning makes one (and warns): a one-lane venue
            assert result.status == "pass", result
            continue
        assert result.status == "fail", result
        assert result.advice == FIX and "kiosk provision --bundle" in FIX


def test_plain_mqtt_needs_no_ca(tmp_path: Path, capsys) -> None:
    settings = provisioned(tmp_path, capsys, "--destination", "lab", "--venue", "Lab",
                           "--broker", "mqtt://127.0.0.1:1883")  # fmt: skip
    assert run_check(check_broker_ca, settings, Probes()).status == "skip"


def test_unreadable_parts_fail(authority: dict[str, Path], tmp_path: Path, capsys) -> None:
    make(authority, capsys)
    settings = provisioned(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    for path in (settings.policy.authority_keys, settings.policy.trust_list, settings.uplink.tls.ca_file):
        assert path is not None
        path.write_text("not PEM\n")
    not_x25519 = keys.generate_device_key(tmp_path / "k").public_key()
    settings.paths.sealing_key_file.write_text(keys.public_pem(not_x25519))
    settings.paths.destination_key_file.write_bytes(b"short")
    assert set(statuses(settings).values()) == {"fail"}


def test_a_status_list_from_another_authority_fails(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    make(authority, capsys)
    settings = provisioned(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert settings.policy.authority_keys is not None
    other = keys.generate_device_key(tmp_path / "other.key").public_key()
    settings.policy.authority_keys.write_text(keys.public_pem(other))
    result = run_check(check_status_list, settings, Probes())
    assert result.status == "fail" and "not signed by the authority" in result.detail


def _expired(authority: dict[str, Path], name: str, *, days_left: int) -> None:
    signer = cardmaker.make_dcc_signer(
        not_before=NOW - timedelta(days=400), not_after=NOW + timedelta(days=days_left)
    )
    cardmaker.save_signer(signer, authority[name].with_suffix(".key"), authority[name])


@pytest.mark.parametrize(("days_left", "status"), [(-1, "fail"), (10, "warn"), (100, "pass")])
def test_the_broker_ca_in_force(
    authority: dict[str, Path], tmp_path: Path, capsys, days_left: int, status: str
) -> None:
    _expired(authority, "ca", days_left=days_left)
    make(authority, capsys)
    settings = provisioned(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert run_check(check_broker_ca, settings, Probes()).status == status


def test_a_trust_list_of_expired_signers_fails(authority: dict[str, Path], tmp_path: Path, capsys) -> None:
    _expired(authority, "dsc", days_left=-1)
    make(authority, capsys)
    settings = provisioned(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    result = run_check(check_trust_list, settings, Probes())
    assert result.status == "fail" and "expired" in result.detail


def test_authority_keys_pass_names_the_fingerprint(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    fingerprint = make(authority, capsys)
    settings = provisioned(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert fingerprint in run_check(check_authority_keys, settings, Probes()).detail
