"""`kiosk selftest` and the trust material: each part missing, unreadable or expired fails, naming the fix."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import cardmaker, keys
from kiosk.config import Settings, load_config
from kiosk.selftest import CHECKS, Probes, run_check
from kiosk.trustcheck import (
    FIX,
    TRUST_CHECKS,
    check_authority_keys,
    check_broker_ca,
    check_destination_key,
    check_peers,
    check_status_list,
    check_trust_list,
)
from tests.test_bundle import NOW, authority, make, provision
from tests.test_daemon import make_settings

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


# --- the peers file of a venue's lanes ----------------------------------------------------------

VENUE = "cho-ben-thanh"


def lane_settings(tmp_path: Path, **destination: object) -> Settings:
    """lane-in of VENUE, provisioned (device key, venue key), sharing presence, uplink on."""
    return make_settings(
        tmp_path / "state", device={"id": "lane-in"}, uplink={"enabled": True},
        destination={"id": VENUE, "share_presence": True, **destination},
    )  # fmt: skip


def record(device: str, key: object, destination: str = VENUE) -> dict[str, str]:
    """One registration record of the peers file."""
    return {"device": device, "destination": destination, "public_key": keys.public_pem(key)}  # type: ignore[arg-type]


def write_peers(settings: Settings, *others: dict[str, str], own: bool = True) -> None:
    mine = keys.load_private_key(settings.paths.key_file).public_key()
    records = [record("lane-in", mine)] if own else []
    settings.paths.peers_file.write_text(json.dumps([*records, *others]))


OTHER = Ed25519PrivateKey.generate().public_key()
PEERS_FAULTS: dict[str, tuple[Callable[[Settings], None], str]] = {
    "missing": (lambda s: None, "none: the other lanes' entries and exits are refused"),
    "not json": (lambda s: s.paths.peers_file.write_text("lane-in, lane-out"), "cannot read the peer keys"),
    "another venue": (lambda s: write_peers(s, record("lane-far", OTHER, "cho-lon")), "at 'cho-lon'"),
    "bad device id": (lambda s: write_peers(s, record("Lane Out!", OTHER)), "'Lane Out!'"),
    "not a key": (lambda s: write_peers(s, {**record("lane-out", OTHER), "public_key": "x"}), "not a PEM"),
    "not this device": (lambda s: write_peers(s, record("lane-out", OTHER), own=False),
                        "does not name this device lane-in"),
    "an old key": (lambda s: write_peers(s, record("lane-in", OTHER), own=False), "another public key"),
}  # fmt: skip


@pytest.mark.parametrize("fault", PEERS_FAULTS)
def test_a_bad_peers_file_fails_naming_how_to_write_it(tmp_path: Path, fault: str) -> None:
    settings = lane_settings(tmp_path)
    spoil, said = PEERS_FAULTS[fault]
    spoil(settings)
    result = run_check(check_peers, settings, Probes())
    assert (result.status, result.name) == ("fail", "peers"), result
    assert said in result.detail
    assert "kiosk-central peers cho-ben-thanh > peers.json" in result.advice
    assert str(settings.paths.peers_file) in result.advice


def test_a_lane_without_the_venues_key_fails(tmp_path: Path) -> None:
    settings = lane_settings(tmp_path)
    write_peers(settings, record("lane-out", OTHER))
    settings.paths.destination_key_file.unlink()
    result = run_check(check_peers, settings, Probes())
    assert result.status == "fail" and "cannot name the people" in result.detail
    assert result.advice.startswith(FIX)


def test_the_lanes_of_the_venue_pass(tmp_path: Path) -> None:
    settings = lane_settings(tmp_path)
    write_peers(settings, record("lane-out", OTHER))
    result = run_check(check_peers, settings, Probes())
    assert (result.status, result.detail) == (
        "pass",
        f"{settings.paths.peers_file}: 2 lane(s) of {VENUE}: lane-in, lane-out",
    )
    assert check_peers in CHECKS


def test_a_lane_alone_or_without_the_uplink_is_warned(tmp_path: Path) -> None:
    settings = lane_settings(tmp_path)
    write_peers(settings)
    alone = run_check(check_peers, settings, Probes())
    assert alone.status == "warn" and "no other" in alone.detail
    write_peers(settings, record("lane-out", OTHER))
    offline = run_check(
        check_peers,
        settings.model_copy(update={"uplink": settings.uplink.model_copy(update={"enabled": False})}),
        Probes(),
    )
    assert offline.status == "warn" and "nothing is shared" in offline.detail


def test_the_only_lane_of_a_venue_skips_the_check(tmp_path: Path) -> None:
    settings = lane_settings(tmp_path, share_presence=False)
    assert run_check(check_peers, settings, Probes()).status == "skip"
