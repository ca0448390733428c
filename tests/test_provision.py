"""`kiosk provision`: keys, config and registration record; every bad argument exits 2 leaving nothing."""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk import keys, sealing
from kiosk.cli import main
from kiosk.config import load_config
from kiosk.errors import ProvisionError
from kiosk.jws import b64url_decode
from kiosk.provision import ProvisionRequest, provision
from tests.support.central import SEALING_KEY

BROKER = "mqtts://broker.example:8883"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder holding what a technician brings: the venue's key, the sealing key, CA and a password."""
    (tmp_path / "venue.key").write_bytes(bytes(range(32)))
    (tmp_path / "seal.pem").write_text(sealing.public_pem(SEALING_KEY.public_key()))
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "broker.password").write_text("s3cret\n")
    (tmp_path / "broker.password").chmod(0o600)
    (tmp_path / "open.password").write_text("s3cret\n")
    (tmp_path / "open.password").chmod(0o644)
    return tmp_path


def run(site: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `kiosk provision` with the site's files and `extra` arguments."""
    argv = ["provision", "--destination", "cho-ben-thanh", "--venue", "Chợ Bến Thành"]
    argv += ["--config", str(site / "etc" / "kiosk.toml"), "--state-dir", str(site / "state")]
    if "--broker" not in extra:
        argv += ["--broker", BROKER]
    code = main([*argv, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def written(site: Path) -> set[str]:
    """Every file provisioning may have written (temporary ones included)."""
    found = set()
    for folder in (site / "etc", site / "state"):
        if folder.exists():
            found |= {str(p.relative_to(site)) for p in folder.rglob("*")}
    return found


def test_provision_writes_key_identity_config_and_prints_record(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        site,
        *("--destination-key", str(site / "venue.key"), "--ca", str(site / "ca.crt")),
        *("--sealing-key", str(site / "seal.pem")),
        *("--password-file", str(site / "broker.password"), "--direction", "auto"),
        capsys=capsys,
    )
    assert code == 0, err
    settings = load_config(site / "etc" / "kiosk.toml")
    record = json.loads(out)
    key = keys.load_private_key(settings.paths.key_file)
    assert stat.S_IMODE(settings.paths.key_file.stat().st_mode) == 0o600
    assert sealing.load_destination_key(settings.paths.destination_key_file) == bytes(range(32))
    assert stat.S_IMODE(settings.paths.destination_key_file.stat().st_mode) == 0o600
    sealed = sealing.seal(sealing.load_authority_public_key(settings.paths.sealing_key_file), "k", "079")
    assert sealing.open_sealed(SEALING_KEY, "k", sealed) == "079"
    assert record["fingerprint"] == keys.thumbprint(key.public_key())
    assert record["device"] == settings.device.id == "kiosk-" + record["fingerprint"][:8].lower()
    assert record["destination"] == settings.destination.id == "cho-ben-thanh"
    assert settings.destination.venue_name == "Chợ Bến Thành"
    assert settings.destination.direction == "auto"
    assert settings.uplink.broker == BROKER
    assert settings.uplink.tls.ca_file == site / "ca.crt"
    assert settings.uplink.password_file == site / "broker.password"
    assert settings.paths.state_dir == site / "state"
    assert "new one was made" not in err and "sealing key" not in err


def test_record_carries_a_usable_public_key(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(site, capsys=capsys)
    assert code == 0
    record = json.loads(out)
    key = keys.load_private_key(site / "state" / "device.key")
    signature = key.sign(b"scan")
    raw = b64url_decode(record["jwk"]["x"])
    Ed25519PublicKey.from_public_bytes(raw).verify(signature, b"scan")
    assert record["public_key"] == keys.public_pem(key.public_key())
    assert record["software"]
    assert record["created"].endswith("Z")


def test_terminal_qr_code_decodes_to_the_record(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(site, capsys=capsys)
    assert code == 0
    payload = _decode_terminal_qr(err)
    assert json.loads(payload) == json.loads(out)


def _decode_terminal_qr(text: str) -> str:
    # segno's compact terminal output: each character is two modules, "█" light over light.
    halves = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}
    lines = [line for line in text.splitlines() if line and set(line) <= set(halves)]
    rows = []
    for line in lines:
        rows.append([halves[c][0] for c in line])
        rows.append([halves[c][1] for c in line])
    modules = np.array(rows, dtype=np.uint8) * 255
    image = np.kron(modules, np.ones((4, 4), dtype=np.uint8))
    found = zxingcpp.read_barcodes(image)
    assert found, "the terminal QR code does not decode"
    return found[0].text


def test_without_keys_a_destination_key_is_made_and_the_sealing_key_is_missed_aloud(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(site, capsys=capsys)
    assert code == 0
    assert "no destination key given, so a new one was made" in err
    assert "not provisioned with the authority's sealing key" in err
    assert len(sealing.load_destination_key(site / "state" / "destination.key")) == 32
    assert not (site / "state" / "authority-seal.pem").exists()


def test_existing_key_is_kept_without_force(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, capsys=capsys)[0] == 0
    before = (site / "state" / "device.key").read_bytes()
    config_before = (site / "etc" / "kiosk.toml").read_text()
    code, out, err = run(site, "--destination", "other-venue", capsys=capsys)
    assert code == 2
    assert "already provisioned" in err and "--force" in err
    assert "Traceback" not in err and out == ""
    assert (site / "state" / "device.key").read_bytes() == before
    assert (site / "etc" / "kiosk.toml").read_text() == config_before


def test_force_replaces_the_key_and_keeps_the_venue_keys(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = ("--destination-key", str(site / "venue.key"), "--sealing-key", str(site / "seal.pem"))
    first = json.loads(run(site, *identity, capsys=capsys)[1])
    code, out, err = run(site, "--force", capsys=capsys)
    second = json.loads(out)
    assert code == 0
    assert second["fingerprint"] != first["fingerprint"]
    assert second["device"] != first["device"]
    assert "key was replaced" in err
    assert "new one was made" not in err
    assert sealing.load_destination_key(site / "state" / "destination.key") == bytes(range(32))
    assert (site / "state" / "authority-seal.pem").read_text() == (site / "seal.pem").read_text()


def test_reprovisioning_keeps_other_sections(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site / "etc" / "kiosk.toml"
    config.parent.mkdir()
    config.write_text('[camera]\nfps = 12.5\n[uplink]\nusername = "old"\nkeepalive_s = 45\n')
    code, _, err = run(site, "--device-id", "kiosk-0001", capsys=capsys)
    assert code == 0, err
    settings = load_config(config)
    assert settings.camera.fps == 12.5
    assert settings.uplink.keepalive_s == 45
    assert settings.uplink.username is None  # old credentials do not linger
    assert settings.device.id == "kiosk-0001"


def test_client_certificate_is_referenced(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "device.crt").write_text("cert")
    (site / "device-tls.key").write_text("key")
    tls = (
        "--ca",
        str(site / "ca.crt"),
        "--cert",
        str(site / "device.crt"),
        "--key",
        str(site / "device-tls.key"),
    )
    code, _, err = run(site, *tls, capsys=capsys)
    assert code == 0, err
    settings = load_config(site / "etc" / "kiosk.toml")
    assert settings.uplink.tls.cert_file == site / "device.crt"
    assert settings.uplink.tls.key_file == site / "device-tls.key"


BAD_ARGUMENTS = {
    "malformed broker URL": (["--broker", "http://broker.example"], "uplink.broker"),
    "broker URL without host": (["--broker", "mqtts://:8883"], "uplink.broker"),
    "broker URL with bad port": (["--broker", "mqtts://broker.example:99999"], "port"),
    "missing CA file": (["--ca", "missing-ca.crt"], "--ca"),
    "missing password file": (["--password-file", "nope"], "--password-file"),
    "password file others can read": (["--password-file", "open.password"], "chmod 600"),
    "cert without key": (["--cert", "ca.crt"], "--cert and --key go together"),
    "key without cert": (["--key", "ca.crt"], "--cert and --key go together"),
    "cert and username": (["--cert", "ca.crt", "--key", "ca.crt", "--username", "u"], "not both"),
    "TLS files with plain mqtt": (["--broker", "mqtt://b.example", "--ca", "ca.crt"], "mqtts://"),
    "short destination key": (["--destination-key", "broker.password"], "32"),
    "sealing key not PEM": (["--sealing-key", "broker.password"], "--sealing-key"),
    "sealing key of another kind": (["--sealing-key", "ca.crt"], "--sealing-key"),
    "bad device id": (["--device-id", "Kiosk One!"], "device.id"),
    "bad destination id": (["--destination", "Chợ Bến Thành"], "destination.id"),
    "config under a file": (["--config", "ca.crt/kiosk.toml"], "not a folder"),
    "state dir under a file": (["--state-dir", "ca.crt/state"], "not a folder"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=list(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_and_write_nothing(
    case: str, site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site)
    extra, message = BAD_ARGUMENTS[case]
    code, out, err = run(site, *extra, capsys=capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""
    assert written(site) == set()


def _request(site: Path, **changes: object) -> ProvisionRequest:
    options: dict = {
        "config_path": site / "etc" / "kiosk.toml",
        "destination": "cho-ben-thanh",
        "venue_name": "Chợ",
        "broker": BROKER,
        "state_dir": site / "state",
    }
    return ProvisionRequest(**(options | changes))


def _fail_moving_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: the disk fills up just as the config file is moved into place.
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if str(dst).endswith("kiosk.toml") and ".provisioning" in str(src):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)


def test_failure_while_writing_removes_everything(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_moving_the_config(monkeypatch)
    with pytest.raises(ProvisionError, match="nothing was changed"):
        provision(_request(site))
    assert written(site) == set()


def test_failure_while_replacing_keeps_the_old_key(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provision(_request(site), owner=None)
    before = {p: p.read_bytes() for p in (site / "state").iterdir()} | {
        site / "etc" / "kiosk.toml": (site / "etc" / "kiosk.toml").read_bytes()
    }
    _fail_moving_the_config(monkeypatch)
    with pytest.raises(ProvisionError, match="nothing was changed"):
        provision(_request(site, force=True), owner=None)
    assert {p: p.read_bytes() for p in before} == before
    assert written(site) == {"etc/kiosk.toml", "state/device.key", "state/destination.key"}


def test_unreadable_existing_config_exits_2(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site / "etc" / "kiosk.toml"
    config.parent.mkdir()
    config.write_text("[device\n")
    code, _, err = run(site, capsys=capsys)
    assert code == 2
    assert "fix or remove it" in err
    assert not (site / "state").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_root_hands_the_keys_to_the_kiosk_user(site: Path) -> None:
    result = provision(_request(site), owner="nobody")
    uid = pwd.getpwnam("nobody").pw_uid
    for path in (site / "state", result.settings.paths.key_file, result.settings.paths.destination_key_file):
        assert path.stat().st_uid == uid


def test_authority_accepts_the_record(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kiosk.central.registry import parse_registration

    code, out, _ = run(site, capsys=capsys)
    assert code == 0
    record = parse_registration(out)
    assert record.destination == "cho-ben-thanh"


def test_force_starts_a_new_spool_epoch(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kiosk.app import open_spool

    same_id = ("--device-id", "kiosk-0001", "--sealing-key", str(site / "seal.pem"))
    assert run(site, *same_id, capsys=capsys)[0] == 0
    with open_spool(load_config(site / "etc" / "kiosk.toml")) as spool:
        first = spool.epoch
    with open_spool(load_config(site / "etc" / "kiosk.toml")) as spool:
        assert spool.epoch == first  # same key, same epoch
    assert run(site, *same_id, "--force", capsys=capsys)[0] == 0
    with open_spool(load_config(site / "etc" / "kiosk.toml")) as spool:
        assert spool.epoch > first
