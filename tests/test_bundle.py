"""The provisioning bundle: made by `kiosk-central bundle`, applied by `kiosk provision --bundle`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kiosk import cardmaker, jws, keys, sealing, statuslist
from kiosk.bundle import TYP, BundleContent, DestinationRecord, make_bundle, read_bundle
from kiosk.central.cli import main as central_main
from kiosk.cli import main
from kiosk.config import load_config
from kiosk.errors import ProvisionError
from kiosk.statuslist import StatusListStore
from kiosk.trustlist import TOKEN_FILE, TrustList, TrustListStore

NOW = datetime.now(UTC)


@pytest.fixture
def authority(tmp_path: Path) -> dict[str, Path]:
    """The authority's side: a signing key, a document signer, a status list and a broker CA."""
    folder = tmp_path / "authority"
    folder.mkdir()
    key = keys.generate_device_key(folder / "authority.key")
    signer = cardmaker.make_dcc_signer(
        not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
    )
    cardmaker.save_signer(signer, folder / "dsc.key", folder / "dsc.pem")
    entry = statuslist.Entry("001093029317", statuslist.Status("F0"))
    payload = statuslist.build_payload([entry], version=7, issued=NOW)
    (folder / "statuslist.jws").write_bytes(statuslist.sign_payload(payload, key))
    ca = cardmaker.make_dcc_signer(not_before=NOW, not_after=NOW + timedelta(days=365), common_name="test CA")
    cardmaker.save_signer(ca, folder / "ca.key", folder / "ca.crt")
    seal = sealing.generate_authority_key(folder / "seal.key")
    (folder / "seal.pem").write_text(sealing.public_pem(seal.public_key()))
    names = {"key": "authority.key", "dsc": "dsc.pem", "statuslist": "statuslist.jws", "ca": "ca.crt",
             "seal_private": "seal.key", "seal": "seal.pem", "venue_keys": "venue-keys"}  # fmt: skip
    return {name: folder / file for name, file in names.items()} | {"bundle": folder / "venue.bundle"}


def make(authority: dict[str, Path], capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run `kiosk-central bundle`; returns the fingerprint it printed."""
    argv = ["bundle", "--authority-key", str(authority["key"]), "--trust-list", str(authority["dsc"]),
            "--trust-list-version", "3", "--status-list", str(authority["statuslist"]),
            "--broker", "mqtts://broker.example:8883", "--broker-ca", str(authority["ca"]),
            "--destination", "cho-ben-thanh", "--venue", "Chợ Bến Thành", "--district", "Quận 1",
            "--ward", "Phường Bến Thành", "--sealing-key", str(authority["seal"]),
            "--destination-keys", str(authority["venue_keys"]), "-o", str(authority["bundle"]),
            *extra]  # fmt: skip
    assert central_main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("authority key fingerprint SHA256:")
    return out.split()[-1]


def provision(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    """Run `kiosk provision` into tmp_path/etc and tmp_path/state."""
    argv = [
        "provision",
        "--config",
        str(tmp_path / "etc" / "kiosk.toml"),
        "--state-dir",
        str(tmp_path / "state"),
    ]
    code = main([*argv, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bundle_provisions_everything_and_both_sides_print_one_fingerprint(
    authority: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fingerprint = make(authority, capsys)
    code, out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert code == 0, err
    assert f"authority key fingerprint {fingerprint}" in err
    assert "not provisioned with" not in err
    settings = load_config(tmp_path / "etc" / "kiosk.toml")
    assert settings.destination.id == "cho-ben-thanh" and settings.destination.venue_name == "Chợ Bến Thành"
    assert settings.uplink.broker == "mqtts://broker.example:8883"
    assert settings.policy.authority_keys is not None and settings.policy.trust_list is not None
    assert fingerprint.removeprefix("SHA256:") in keys.load_public_keys(settings.policy.authority_keys)
    assert len(TrustList.load(settings.policy.trust_list)) == 1
    assert settings.uplink.tls.ca_file is not None
    assert settings.uplink.tls.ca_file.read_bytes() == authority["ca"].read_bytes()
    store = StatusListStore.from_config(settings.policy.authority_keys, settings.paths.statuslist_file)
    assert store.version == 7
    assert json.loads(out)["mode"] == "kiosk"
    # Identities are sealed to the authority, and the venue's key is the one central keeps for it.
    sealed = sealing.seal(sealing.load_authority_public_key(settings.paths.sealing_key_file), "k", "079")
    opener = sealing.load_authority_private_key(authority["seal_private"])
    assert sealing.open_sealed(opener, "k", sealed) == "079"
    venue_key = sealing.load_destination_key(authority["venue_keys"] / "cho-ben-thanh.key")
    assert sealing.load_destination_key(settings.paths.destination_key_file) == venue_key


def test_every_bundle_of_a_destination_carries_its_one_key(
    authority: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(authority, capsys)
    first = read_bundle(authority["bundle"].read_bytes()).destination_key
    make(authority, capsys)
    assert first is not None and read_bundle(authority["bundle"].read_bytes()).destination_key == first
    make(authority, capsys, "--destination", "cho-lon")
    assert read_bundle(authority["bundle"].read_bytes()).destination_key not in (None, first)


def test_a_bundle_with_a_bad_sealing_key_is_refused(
    authority: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for wrong in (authority["ca"], authority["dsc"]):  # not PEM public keys / not X25519
        code = central_main(["bundle", "--authority-key", str(authority["key"]), "--destination", "x",
                             "--venue", "X", "--district", "D", "--ward", "W", "--sealing-key", str(wrong),
                             "-o", str(authority["bundle"])])  # fmt: skip
        assert code == 2 and "sealing_key" in capsys.readouterr().err


def test_an_inspectors_handheld(authority: dict[str, Path], tmp_path: Path, capsys) -> None:
    make(authority, capsys, "--mode", "inspector")
    code, out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert code == 0, err
    assert json.loads(out)["mode"] == "inspector"
    assert load_config(tmp_path / "etc" / "kiosk.toml").device.mode == "inspector"


def test_the_technician_can_have_the_fingerprint_compared(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    fingerprint = make(authority, capsys)
    code, _out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]),
                                f"--authority-fingerprint={fingerprint}")  # fmt: skip
    assert code == 0, err
    other = keys.thumbprint(Ed25519PrivateKey.generate().public_key())
    code, out, err = provision(tmp_path / "2", capsys, "--bundle", str(authority["bundle"]),
                               f"--authority-fingerprint={other}")  # fmt: skip
    assert code == 2 and f"not {other}" in err and f"authority key {fingerprint}," in err and out == ""
    assert not (tmp_path / "2").exists()


@pytest.mark.parametrize("form", ["as printed", "with spaces", "bare"])
def test_the_fingerprint_is_typed_as_printed_or_bare(
    authority: dict[str, Path], tmp_path: Path, capsys, form: str
) -> None:
    fingerprint = make(authority, capsys)
    typed = {
        "as printed": ["--authority-fingerprint", fingerprint],  # its own argument: never starts with "-"
        "with spaces": ["--authority-fingerprint", f" {fingerprint} "],
        "bare": [f"--authority-fingerprint={fingerprint.removeprefix('SHA256:')}"],
    }[form]
    code, _out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]), *typed)
    assert code == 0, err


def test_a_printed_fingerprint_never_reads_as_an_option() -> None:
    # Thumbprints are base64url: about one in 64 starts with "-"; the printed form never does.
    starting_with_dash = next(
        key_id
        for key_id in (keys.thumbprint(Ed25519PrivateKey.generate().public_key()) for _ in range(5000))
        if key_id.startswith("-")
    )
    assert keys.shown_fingerprint(starting_with_dash).startswith("SHA256:-")
    assert keys.fingerprint_names(keys.shown_fingerprint(starting_with_dash), starting_with_dash)
    assert not keys.fingerprint_names("SHA256:" + starting_with_dash[1:], starting_with_dash)


def test_without_a_bundle_provisioning_says_what_is_missing(tmp_path: Path, capsys) -> None:
    code, _out, err = provision(tmp_path, capsys, "--destination", "lab", "--venue", "Lab",
                                "--broker", "mqtts://127.0.0.1:8883")  # fmt: skip
    assert code == 0, err
    for gap in ("authority's public keys", "vaccine-passport trust list", "broker's CA"):
        assert f"warning: not provisioned with {'the ' if 'auth' in gap or 'CA' in gap else 'a '}{gap}" in err
    assert "--bundle" in err


def test_a_bundle_for_another_destination_is_refused(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    make(authority, capsys)
    code, _out, err = provision(
        tmp_path, capsys, "--bundle", str(authority["bundle"]), "--destination", "other"
    )
    assert code == 2 and "the bundle is for cho-ben-thanh" in err


def test_a_changed_bundle_is_refused(authority: dict[str, Path], tmp_path: Path, capsys) -> None:
    make(authority, capsys)
    header, payload, signature = authority["bundle"].read_bytes().split(b".")
    content = json.loads(jws.b64url_decode(payload))
    content["destination"]["venue_name"] = "Somewhere else"
    forged = b".".join([header, jws.b64url(json.dumps(content).encode()).encode(), signature])
    authority["bundle"].write_bytes(forged)
    code, _out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert code == 2 and "signature does not verify" in err
    assert not (tmp_path / "etc").exists()


def _content(authority_keys: str, **changes: object) -> BundleContent:
    destination = DestinationRecord(id="x", venue_name="X", district="D", ward="W")
    values: dict = {"issued": NOW, "authority_keys": authority_keys, "trust_list": "",
                    "trust_list_version": 0, "destination": destination, **changes}  # fmt: skip
    return BundleContent(**values)


def test_the_signer_must_be_one_of_the_bundles_keys() -> None:
    signer, listed = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with pytest.raises(ProvisionError, match="not among the bundle's authority keys"):
        make_bundle(_content(keys.public_pem(listed.public_key())), signer)
    # Forged by hand: signed by a key the payload does not list.
    payload = _content(keys.public_pem(listed.public_key())).model_dump_json().encode()
    token = jws.sign(payload, signer, kid=keys.thumbprint(signer.public_key()), typ=TYP)
    with pytest.raises(ProvisionError, match="signature does not verify"):
        read_bundle(token)


def test_a_status_list_signed_by_another_key_is_refused() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    token = statuslist.sign_payload(statuslist.build_payload([], version=1, issued=NOW), other).decode()
    with pytest.raises(ProvisionError, match="status list is refused"):
        make_bundle(_content(keys.public_pem(key.public_key()), status_list=token), key)


def test_a_bundle_without_lists_says_so() -> None:
    key = Ed25519PrivateKey.generate()
    bundle = read_bundle(make_bundle(_content(keys.public_pem(key.public_key())), key))
    assert bundle.missing() == [
        "a vaccine-passport trust list",
        "a status list",
        "the broker's CA certificate",
        "the authority's sealing key",
        "the destination's key",
    ]


@given(st.binary(max_size=400))
def test_any_bytes_are_a_bundle_or_a_clear_refusal(data: bytes) -> None:
    with pytest.raises(ProvisionError):
        read_bundle(data)


@given(st.text(max_size=200))
def test_any_payload_with_keys_is_refused_cleanly(text: str) -> None:
    key = Ed25519PrivateKey.generate()
    payload = json.dumps({"authority_keys": keys.public_pem(key.public_key()), "destination": text}).encode()
    token = jws.sign(payload, key, kid=keys.thumbprint(key.public_key()), typ=TYP)
    with pytest.raises(ProvisionError, match="malformed"):
        read_bundle(token)


def test_a_new_bundle_keeps_the_key_and_id(authority: dict[str, Path], tmp_path: Path, capsys) -> None:
    make(authority, capsys)
    code, out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert code == 0, err
    first = json.loads(out)
    code, _out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert code == 2 and "already provisioned" in err
    code, out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]), "--keep-key")
    assert code == 0, err
    again = json.loads(out)
    assert (again["device"], again["fingerprint"]) == (first["device"], first["fingerprint"])
    assert "key was replaced" not in err


def test_a_signed_trust_list_travels_with_its_version(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    token = authority["key"].with_name("trustlist.jws")
    assert central_main(["trustlist", "sign", str(authority["dsc"]), "--version", "12",
                         "--authority-key", str(authority["key"]), "-o", str(token)]) == 0  # fmt: skip
    argv = ["bundle", "--authority-key", str(authority["key"]), "--trust-list-token", str(token),
            "--broker", "mqtt://127.0.0.1:1883", "--destination", "cho-ben-thanh", "--venue", "Chợ",
            "--district", "Quận 1", "--ward", "Bến Thành", "-o", str(authority["bundle"])]  # fmt: skip
    assert central_main(argv) == 0
    code, _out, err = provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))
    assert code == 0, err
    settings = load_config(tmp_path / "etc" / "kiosk.toml")
    assert settings.policy.trust_list is not None and settings.policy.authority_keys is not None
    trust = TrustList.load(settings.policy.trust_list)
    store = TrustListStore(trust, keys.load_public_keys(settings.policy.authority_keys),
                           path=settings.paths.state_dir / TOKEN_FILE)  # fmt: skip
    assert store.version == 12 and len(trust) == 1
