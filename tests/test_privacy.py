"""docs/privacy.md: nothing on a provisioned kiosk's disk recovers an identity from events.

Two venues are provisioned as a technician does it: `kiosk-central identity-keys`,
`kiosk-central bundle` for each destination, `kiosk provision --bundle` for each
kiosk. Both kiosks then record scans of real cards through the kiosk's own path
(card reader, policy, event draft, spool). The attacker takes every file under
kiosk A's config and state folders, pulls out everything that could be key
material (raw 32-byte files, PEM keys, base64url and hex strings, also inside
JWS payloads such as the bundle), and tries each as the X25519 private key of
the seals in kiosk B's events and in A's own. The same search run on central's
folder finds the sealing key and opens them: the attack is real, so its failure
on the kiosk means something.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from kiosk import cardmaker, keys, sealing
from kiosk.app import open_spool, presence_keys
from kiosk.cards import parse_card
from kiosk.central.cli import main as central_main
from kiosk.cli import main as kiosk_main
from kiosk.config import Settings, load_config
from kiosk.daemon import draft_for
from kiosk.jws import b64url_decode
from kiosk.policy import Policy

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
# Visitors of venue B (the victims) and of venue A (the attacker's own).
B_NATIONAL = cardmaker.national_payload(id_number="001093029317", qid="162979388586171100")
B_CCCD = cardmaker.cccd_payload(province="079", birth_date=date(1995, 3, 2), gender="Nữ", serial="123456",
                                name="Trần Thị Bình")  # fmt: skip
A_NATIONAL = cardmaker.national_payload(id_number="038095001234", qid="270000000000000001",
                                        name="LE VAN C", phone="0909000111")  # fmt: skip
B_IDENTITIES = {"001093029317", "162979388586171100", "079195123456"}
A_IDENTITIES = {"038095001234", "270000000000000001"}


@dataclass(frozen=True)
class Kiosk:
    """A provisioned kiosk: its config file and the folders a thief would take."""

    config: Path
    state: Path
    settings: Settings

    def files(self) -> list[Path]:
        """Every file on the kiosk's disk that belongs to it (config and state folders)."""
        found = {p for folder in (self.config.parent, self.state) for p in folder.rglob("*") if p.is_file()}
        return sorted(found)


@dataclass(frozen=True)
class Authority:
    """Central's folder: its signing key, sealing key pair, hash key and the venues' keys."""

    folder: Path

    @property
    def sealing_key(self) -> x25519.X25519PrivateKey:
        """The sealing private key, which exists only here."""
        return sealing.load_authority_private_key(self.folder / "seal.key")


@pytest.fixture
def authority(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Authority:
    folder = tmp_path / "authority"
    folder.mkdir()
    keys.generate_device_key(folder / "authority.key")  # `kiosk statuslist keygen`
    made = [f"--{name}={folder / file}" for name, file in
            (("sealing-key", "seal.key"), ("hash-key", "hash.key"), ("public", "seal.pem"))]  # fmt: skip
    assert central_main(["identity-keys", *made]) == 0
    capsys.readouterr()
    return Authority(folder)


def provisioned(
    authority: Authority, root: Path, destination: str, device: str, capsys: pytest.CaptureFixture[str]
) -> Kiosk:
    """`kiosk-central bundle` for the destination, then `kiosk provision --bundle` on a fresh kiosk."""
    bundle = authority.folder / f"{destination}.bundle"
    assert central_main([
        "bundle", "--authority-key", str(authority.folder / "authority.key"),
        "--destination", destination, "--venue", destination.title(), "--district", "Quận 1",
        "--ward", "Phường Bến Thành", "--broker", "mqtt://127.0.0.1:1883", "-o", str(bundle),
        "--sealing-key", str(authority.folder / "seal.pem"),
        "--destination-keys", str(authority.folder / "venues"),
    ]) == 0  # fmt: skip
    fingerprint = capsys.readouterr().out.split()[-1]
    config, state = root / "etc" / "kiosk.toml", root / "state"
    config.parent.mkdir(parents=True)
    config.write_text(f'[paths]\nstate_dir = "{state}"\n[policy]\nrepeat_window_s = 10\n')
    argv = ["provision", "--bundle", str(bundle), f"--authority-fingerprint={fingerprint}",
            "--device-id", device, "--config", str(config), "--state-dir", str(state)]  # fmt: skip
    assert kiosk_main(argv) == 0
    capsys.readouterr()
    return Kiosk(config, state, load_config(config))


def record_scans(kiosk: Kiosk, scans: list[tuple[datetime, str]]) -> list[dict]:
    """Each payload read, decided and spooled as the running kiosk does it; the events' payloads."""
    settings = kiosk.settings
    policy = Policy(settings.policy, settings.destination, presence_keys=presence_keys(settings))
    with open_spool(settings) as spool:
        for at, payload in scans:
            decision = policy.evaluate(parse_card(payload.encode(), trust=None, now=at), now=at)
            assert not decision.repeat and decision.identities
            spool.record(draft_for(decision, 1.0))
            policy.commit(decision)
        return [json.loads(event.event().model_dump_json()) for event in spool.unsent()]


@dataclass(frozen=True)
class Venues:
    """Venue A (whose disk is taken) and venue B (whose visitors are sought), with their events."""

    a: Kiosk
    b: Kiosk
    a_events: list[dict]
    b_events: list[dict]


@pytest.fixture
def venues(authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Venues:
    a = provisioned(authority, tmp_path / "a", "quan-an-a", "kiosk-a1", capsys)
    b = provisioned(authority, tmp_path / "b", "cho-b", "kiosk-b1", capsys)
    later = NOW + timedelta(hours=1)  # past the repeat window: the same person recorded again
    b_events = record_scans(b, [(NOW, B_NATIONAL), (NOW + timedelta(minutes=1), B_CCCD), (later, B_NATIONAL)])
    a_events = record_scans(a, [(NOW, A_NATIONAL)])
    return Venues(a, b, a_events, b_events)


def seals(events: list[dict]) -> list[tuple[str, str]]:
    """(device, sealed identity) of every identity the events carry."""
    found = [(e["device"], sealed) for e in events for sealed in e["identities"]]
    assert found and all(sealed.startswith(sealing.SEALED_PREFIX) for _, sealed in found)
    return found


# ---------------------------------------------------------------- what a thief can pull off a disk

_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----[^-]+-----END [A-Z0-9 ]+-----")
_B64 = re.compile(rb"[A-Za-z0-9_\-+/]{40,}={0,2}")
_HEX = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def key_material(data: bytes, depth: int = 0) -> set[bytes]:
    """Every 32-byte value in `data` that could be a private key: raw, PEM, base64(url), hex, nested."""
    found = {data} if len(data) == 32 else set()
    for block in _PEM.findall(data):
        found |= _pem_private(block)
    found |= {bytes.fromhex(h.decode()) for h in _HEX.findall(data)}
    if depth < 3:
        for text in _B64.findall(data):
            decoded = _b64(text)
            if decoded is not None:
                found |= key_material(decoded, depth + 1)  # a JWS payload, a base64 key
    return found


def _b64(text: bytes) -> bytes | None:
    padded = text.rstrip(b"=").replace(b"+", b"-").replace(b"/", b"_")
    try:
        return base64.urlsafe_b64decode(padded + b"=" * (-len(padded) % 4))
    except (binascii.Error, ValueError):
        return None


def _pem_private(block: bytes) -> set[bytes]:
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except (ValueError, TypeError):
        return set()
    if isinstance(key, ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey):
        raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        return {key.private_bytes(*raw)}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {key.private_numbers().private_value.to_bytes(32, "big")}
    return set()


def disk_keys(files: list[Path]) -> list[x25519.X25519PrivateKey]:
    """Every key material found in the files, taken as an X25519 private key."""
    material = set().union(*(key_material(path.read_bytes()) for path in files))
    return [x25519.X25519PrivateKey.from_private_bytes(raw) for raw in sorted(material)]


def opens(key: x25519.X25519PrivateKey, device: str, sealed: str) -> str | None:
    """The identity inside `sealed` if `key` opens it (with cryptography's HPKE), else None."""
    blob = b64url_decode(sealed.removeprefix(sealing.SEALED_PREFIX))
    try:
        return sealing.SUITE.decrypt(blob, key, info=sealing.info_for(device)).decode()
    except InvalidTag:
        return None


def raw_private(key: x25519.X25519PrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """A private key's 32 raw bytes."""
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    return key.private_bytes(*raw)


# ---------------------------------------------------------------- the tests


def test_the_disk_holds_the_kiosks_keys_and_the_search_finds_them(venues: Venues) -> None:
    a = venues.a
    names = {p.name for p in a.files()}
    assert {"kiosk.toml", a.settings.paths.key_file.name, a.settings.paths.destination_key_file.name,
            a.settings.paths.sealing_key_file.name, a.settings.paths.spool_file.name} <= names  # fmt: skip
    assert any(name.endswith(".pem") and "seal" not in name for name in names)  # the authority's keys
    found = {raw_private(k) for k in disk_keys(a.files())}
    # The search is not blind: the device key and the destination key are among what it tries.
    assert raw_private(keys.load_private_key(a.settings.paths.key_file)) in found
    assert sealing.load_destination_key(a.settings.paths.destination_key_file) in found
    assert len(found) >= 3


def test_no_key_on_a_kiosk_opens_another_kiosks_seals_or_its_own(venues: Venues) -> None:
    candidates = disk_keys(venues.a.files())
    for device, sealed in seals(venues.b_events) + seals(venues.a_events):
        for key in candidates:
            assert opens(key, device, sealed) is None
            assert opens(key, venues.a.settings.device.id, sealed) is None


def test_centrals_key_opens_them_and_the_search_finds_it_where_it_is(
    venues: Venues, authority: Authority
) -> None:
    opened = {opens(authority.sealing_key, device, sealed) for device, sealed in seals(venues.b_events)}
    assert opened == B_IDENTITIES
    # The same search over central's folder finds the key that opens them: a leak would be caught.
    at_central = disk_keys([p for p in authority.folder.rglob("*") if p.is_file()])
    device, sealed = seals(venues.b_events)[0]
    assert any(opens(key, device, sealed) == "162979388586171100" for key in at_central)


def test_seals_are_randomized_so_no_guess_can_be_checked(venues: Venues, authority: Authority) -> None:
    first, _, again = venues.b_events
    assert first["identities"] != again["identities"]  # one person, twice: nothing alike
    device, sealed = first["device"], first["identities"][1]
    assert opens(authority.sealing_key, device, sealed) == "001093029317"  # the citizen number
    public = sealing.load_authority_public_key(venues.a.settings.paths.sealing_key_file)
    # Sealing every guess with the public key on A's disk, the right one included, matches nothing.
    guesses = [f"{n:012d}" for n in range(1_093_029_017, 1_093_029_618)]
    assert "001093029317" in guesses
    assert all(sealing.seal(public, device, guess) != sealed for guess in guesses)
    assert len({sealing.seal(public, device, "001093029317") for _ in range(50)}) == 50


def test_another_venues_tags_do_not_match_tags_under_this_venues_key(venues: Venues) -> None:
    a_key = sealing.load_destination_key(venues.a.settings.paths.destination_key_file)
    b_key = sealing.load_destination_key(venues.b.settings.paths.destination_key_file)
    assert a_key != b_key  # one key per destination, from central's folder of them
    b_tags = set(spooled_tags(venues.b))
    assert b_tags and b_tags == {sealing.tag(b_key, i) for i in ("162979388586171100", "079195123456")}
    guesses = [f"{n:012d}" for n in range(1_093_029_017, 1_093_029_618)]
    guesses += ["162979388586171100", "079195123456"]
    assert not b_tags & {sealing.tag(a_key, guess) for guess in guesses}
    # With B's own key (on B's disk, not A's) the right guess is found: the comparison can succeed.
    assert b_tags & {sealing.tag(b_key, guess) for guess in guesses}


def test_no_plain_identity_or_name_is_written_to_the_disk(venues: Venues) -> None:
    disk = b"".join(path.read_bytes() for path in [*venues.a.files(), *venues.b.files()])
    for secret in [*A_IDENTITIES, *B_IDENTITIES, "LE VAN C", "0909000111", "NGUYEN VAN A", "Trần Thị Bình"]:
        assert secret.encode() not in disk, secret


def spooled_tags(kiosk: Kiosk) -> Iterator[str]:
    """The presence tags in a kiosk's spool database, read as a thief would (plain SQLite)."""
    with sqlite3.connect(kiosk.settings.paths.spool_file) as db:
        rows = db.execute("SELECT presence FROM events WHERE presence IS NOT NULL").fetchall()
    return (str(row[0]) for row in rows)
