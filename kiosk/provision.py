"""Provisioning: make a kiosk belong to one destination, and say who it is.

`provision(request)` checks everything first, then writes the device's new
Ed25519 key, its destination's key, the authority's sealing key and a validated config file under
temporary names, and moves them into place only when all of them are ready;
on any failure it removes what it wrote, so a device is never left half
provisioned. It returns the registration record the authority needs to
accept the device's events.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import shutil
import stat
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk import __version__, keys, sealing
from kiosk.bundle import Bundle, keys_pem
from kiosk.config import Settings, parse_config
from kiosk.errors import ConfigError, DeviceKeyError, ProvisionError
from kiosk.names import reserved_pattern
from kiosk.trustlist import TOKEN_FILE

log = logging.getLogger(__name__)

KIOSK_USER = "kiosk"
# Stands in for the real id while the config is checked before the key exists.
_PLACEHOLDER_ID = "kiosk-00000000"


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    """What the technician asked for (paths already absolute)."""

    config_path: Path
    destination: str
    venue_name: str
    broker: str
    device_id: str | None = None
    direction: Literal["in", "out", "auto"] = "in"
    state_dir: Path | None = None  # None: keep the config's paths.state_dir
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    destination_key: Path | None = None  # the venue's key, shared by its kiosks (32 bytes)
    sealing_key: Path | None = None  # the authority's X25519 public key (PEM) identities are sealed to
    force: bool = False
    keep_key: bool = False  # re-provision (a new bundle) keeping the device's key and id
    mode: Literal["kiosk", "inspector"] = "kiosk"
    bundle: Bundle | None = None  # checked trust material from `kiosk-central bundle`
    capacity: int | None = None
    authority_fingerprint: str | None = None  # what the authority printed, compared with the bundle's


# Where a bundle's parts go, beside the config file.
AUTHORITY_KEYS_FILE = "authority.pem"
TRUST_LIST_FILE = "trustlist.pem"
BROKER_CA_FILE = "broker-ca.crt"


@dataclass(frozen=True, slots=True)
class Registration:
    """The record the authority registers a device from (`kiosk-central devices add`)."""

    device: str
    destination: str
    public_key: str
    jwk: dict[str, str]
    fingerprint: str
    software: str
    created: str
    mode: str = "kiosk"  # or "inspector": a street inspector's handheld, not a venue's kiosk

    def to_json(self, *, indent: int | None = 2) -> str:
        """The record as JSON text; `indent=None` gives the compact form used in the QR code."""
        separators = None if indent else (",", ":")
        return json.dumps(asdict(self), indent=indent, separators=separators, sort_keys=True)


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What provisioning wrote, and the device's registration record."""

    registration: Registration
    settings: Settings
    config_path: Path
    destination_key_generated: bool
    replaced_key: bool
    bundle: Bundle | None = None


def provision(
    request: ProvisionRequest,
    *,
    owner: str | None = KIOSK_USER,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ProvisionResult:
    """Provision this device; raises ProvisionError or ConfigError and then leaves nothing behind."""
    base, settings = _checked(request)
    replaced = settings.paths.key_file.exists() and not request.keep_key
    key, settings, generated = _write_all(request, base, settings)
    _hand_over(settings, owner)
    record = registration_for(key, settings, created=now())
    return ProvisionResult(record, settings, request.config_path, generated, replaced, request.bundle)


def _checked(request: ProvisionRequest) -> tuple[dict[str, Any], Settings]:
    """Every check that can be made before writing: arguments, config, key slot, folders."""
    check_request(request)
    base = _existing_config(request.config_path)
    settings = _validate(request, base, request.device_id or _PLACEHOLDER_ID)
    if not (request.keep_key and settings.paths.key_file.exists()):
        _check_key_slot(settings.paths.key_file, request.force)
    _check_writable(request.config_path.parent, "config folder")
    _check_writable(settings.paths.state_dir, "state folder")
    return base, settings


def _write_all(
    request: ProvisionRequest, base: dict[str, Any], settings: Settings
) -> tuple[Ed25519PrivateKey, Settings, bool]:
    """Stage the keys and the config, then move them into place together."""
    with _Staging() as staging:
        key = _device_key(request, staging, settings.paths.key_file)
        device_id = request.device_id or _kept_id(request, base) or device_id_for(key)
        settings = _validate(request, base, device_id)
        generated = _stage_destination_key(staging, request, settings.paths.destination_key_file)
        _stage_sealing_key(staging, request, settings.paths.sealing_key_file)
        if request.bundle is not None:
            _stage_bundle(staging, request.bundle, request.config_path.parent, settings.paths.statuslist_file)
        staging.write(request.config_path, _config_text(request, base, device_id).encode(), mode=0o644)
        staging.commit()
    return key, settings, generated


def device_id_for(key: Ed25519PrivateKey) -> str:
    """A stable, unique default device id: "kiosk-" and the key thumbprint's start."""
    return "kiosk-" + keys.thumbprint(key.public_key())[:8].lower()


def registration_for(key: Ed25519PrivateKey, settings: Settings, *, created: datetime) -> Registration:
    """The registration record of a provisioned device."""
    public = key.public_key()
    return Registration(
        device=settings.device.id,
        destination=settings.destination.id,
        public_key=keys.public_pem(public),
        jwk=keys.public_jwk(public),
        fingerprint=keys.thumbprint(public),
        software=__version__,
        created=created.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        mode=settings.device.mode,
    )


# --- checks (nothing is written until they all pass) -----------------------------------------


def check_request(request: ProvisionRequest) -> None:
    """Every problem with the arguments at once, as one ProvisionError."""
    problems = _credential_problems(request) + _reserved_name_problems(request) + _bundle_problems(request)
    files = {
        "--ca": request.ca_file,
        "--cert": request.cert_file,
        "--key": request.key_file,
        "--password-file": request.password_file,
        "--destination-key": request.destination_key,
        "--sealing-key": request.sealing_key,
    }
    problems += [_file_problem(flag, path) for flag, path in files.items() if path is not None]
    problems += _destination_key_problems(request.destination_key)
    problems += _sealing_key_problems(request.sealing_key)
    problems += _secret_mode_problems("--password-file", request.password_file)
    found = [p for p in problems if p]
    if found:
        raise ProvisionError("; ".join(found))


def _credential_problems(request: ProvisionRequest) -> list[str]:
    problems = []
    if (request.cert_file is None) != (request.key_file is None):
        problems.append("--cert and --key go together: give both, or neither")
    if request.keep_key and request.force:
        problems.append("--keep-key keeps the device key, --force replaces it: give one of them")
    if request.cert_file is not None and (request.username or request.password_file):
        problems.append(
            "give either a client certificate (--cert/--key) or --username/--password-file, not both"
        )
    if request.broker.startswith("mqtt://") and (request.ca_file or request.cert_file):
        problems.append("TLS files were given but the broker URL is mqtt://: use mqtts://HOST:8883")
    return problems


def _bundle_problems(request: ProvisionRequest) -> list[str]:
    bundle = request.bundle
    expected = request.authority_fingerprint
    if bundle is None:
        return ["--authority-fingerprint needs --bundle"] if expected else []
    problems = []
    if expected is not None and not keys.fingerprint_names(expected, bundle.fingerprint):
        problems.append(
            f"the bundle is signed by authority key {keys.shown_fingerprint(bundle.fingerprint)},"
            f" not {expected.strip()}: "
            "do not use it; ask the authority for a new bundle"
        )
    if request.destination != bundle.content.destination.id:
        problems.append(
            f"--destination {request.destination}, but the bundle is for {bundle.content.destination.id}"
        )
    return problems


def _reserved_name_problems(request: ProvisionRequest) -> list[str]:
    # A device named like central could log in as central and read every device's acks.
    names = {"--device-id": request.device_id, "--username": request.username}
    return [
        f"{flag} {name}: reserved for the authority's services (matches {pattern!r}); choose another"
        for flag, name in names.items()
        if name is not None and (pattern := reserved_pattern(name)) is not None
    ]


def _file_problem(flag: str, path: Path) -> str:
    if not path.is_file():
        return f"{flag} {path}: no such file (copy it onto the device first)"
    if not os.access(path, os.R_OK):
        return f"{flag} {path}: not readable (check its owner and mode)"
    return ""


def _destination_key_problems(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        return []
    size = path.stat().st_size
    if size != sealing.DESTINATION_KEY_BYTES:
        return [
            f"--destination-key {path}: holds {size} bytes, not {sealing.DESTINATION_KEY_BYTES}: "
            "use the destination key file the authority issued for this venue"
        ]
    return []


def _sealing_key_problems(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        return []
    try:
        sealing.load_authority_public_key(path)
    except DeviceKeyError as e:
        return [f"--sealing-key: {e}: use the sealing public key the authority issued"]
    return []


def _secret_mode_problems(flag: str, path: Path | None) -> list[str]:
    # The uplink refuses a password file others can read; say so now, not at the first scan.
    if path is None or not path.is_file():
        return []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [f"{flag} {path}: readable by others (mode {oct(mode)}): chmod 600 {path}"]
    return []


def _check_key_slot(key_file: Path, force: bool) -> None:
    if key_file.exists() and not force:
        raise ProvisionError(
            f"{key_file} exists: this device is already provisioned. Replacing its key needs --force, "
            "and the authority must then register the new key"
        )


def _check_writable(folder: Path, what: str) -> None:
    # The nearest existing ancestor decides whether the folder can be made and written.
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ProvisionError(f"{what} {folder}: {existing} is not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ProvisionError(f"{what} {folder}: {existing} is not writable (run with sudo?)")


# --- the configuration -----------------------------------------------------------------------


def _existing_config(path: Path) -> dict[str, Any]:
    # Re-provisioning keeps what a technician set in other sections (camera, pins, ...).
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the existing config {path}: {e}; fix or remove it first") from e


def config_data(request: ProvisionRequest, base: dict[str, Any], device_id: str) -> dict[str, Any]:
    """The config file's content: `base` with the provisioned keys set."""
    data = {name: dict(section) for name, section in base.items()}
    data.setdefault("device", {}).update(id=device_id, mode=request.mode)
    data.setdefault("destination", {}).update(
        id=request.destination, venue_name=request.venue_name, direction=request.direction
    )
    if request.capacity is not None:
        data["destination"]["capacity"] = request.capacity
    data["uplink"] = _uplink_data(request, base.get("uplink", {}))
    if request.bundle is not None:
        _point_at_bundle(data, request.bundle, request.config_path.parent)
    if request.state_dir is not None:
        data.setdefault("paths", {})["state_dir"] = str(request.state_dir)
    return data


def _uplink_data(request: ProvisionRequest, base: dict[str, Any]) -> dict[str, Any]:
    # Credentials are replaced as a whole so no stale password or certificate lingers.
    uplink = {k: v for k, v in base.items() if k not in ("username", "password_file", "tls")}
    uplink["broker"] = request.broker
    optional = {"username": request.username, "password_file": request.password_file}
    uplink.update({k: str(v) for k, v in optional.items() if v is not None})
    tls = {"ca_file": request.ca_file, "cert_file": request.cert_file, "key_file": request.key_file}
    if any(tls.values()):
        uplink["tls"] = {k: str(v) for k, v in tls.items() if v is not None}
    return uplink


def _point_at_bundle(data: dict[str, Any], bundle: Bundle, folder: Path) -> None:
    # The bundle's files sit beside the config; a --ca given by hand wins over the bundle's CA.
    policy = data.setdefault("policy", {})
    policy["authority_keys"] = str(folder / AUTHORITY_KEYS_FILE)
    if bundle.certificates:
        policy["trust_list"] = str(folder / TRUST_LIST_FILE)
    tls = data["uplink"].setdefault("tls", {})
    if bundle.content.broker_ca is not None and "ca_file" not in tls:
        tls["ca_file"] = str(folder / BROKER_CA_FILE)
    if not tls:
        del data["uplink"]["tls"]


def missing_trust(settings: Settings) -> list[str]:
    """The trust material a provisioned config lacks, with what each one costs."""
    gaps = []
    if not settings.paths.sealing_key_file.is_file():
        gaps.append("the authority's sealing key: `kiosk run` cannot record a card until it is installed")
    if settings.policy.authority_keys is None:
        gaps.append("the authority's public keys: central's acks, status lists, inspector cards are refused")
    if settings.policy.trust_list is None:
        gaps.append("a vaccine-passport trust list: every vaccine passport is refused")
    if settings.uplink.broker.startswith("mqtts://") and settings.uplink.tls.ca_file is None:
        gaps.append("the broker's CA certificate: the system's CAs are trusted instead")
    return gaps


def _validate(request: ProvisionRequest, base: dict[str, Any], device_id: str) -> Settings:
    data = config_data(request, base, device_id)
    return parse_config(data, base_dir=request.config_path.parent)


def _config_text(request: ProvisionRequest, base: dict[str, Any], device_id: str) -> str:
    header = (
        f"# kiosk configuration, written by `kiosk provision` (kiosk {__version__}).\n"
        "# Every key is documented by `kiosk config example`; check with `kiosk config check`.\n\n"
    )
    return header + tomli_w.dumps(config_data(request, base, device_id))


# --- writing ---------------------------------------------------------------------------------


@dataclass
class _Staging:
    """Files written under temporary names, moved into place together, or all removed."""

    pending: list[tuple[Path, Path]] = field(default_factory=list)
    made_dirs: list[Path] = field(default_factory=list)
    done: bool = False

    def temp_for(self, final: Path) -> Path:
        """A fresh temporary path beside `final` (its folder made if missing)."""
        self._make_dirs(final.parent)
        temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.provisioning")
        self.pending.append((temp, final))
        return temp

    def write(self, final: Path, data: bytes, *, mode: int) -> None:
        """Stage `data` for `final`, flushed to disk."""
        temp = self.temp_for(final)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self) -> None:
        """Move every staged file into place; if one move fails, put back what was there."""
        moved: list[tuple[Path, Path | None]] = []
        try:
            for temp, final in self.pending:
                moved.append((final, self._backup(final)))
                os.replace(temp, final)
        except OSError:
            self._restore(moved)
            raise
        for _final, backup in moved:
            if backup is not None:
                backup.unlink()
        self.done = True

    def _backup(self, final: Path) -> Path | None:
        if not final.exists():
            return None
        backup = final.with_name(f".{final.name}.{secrets.token_hex(4)}.previous")
        os.link(final, backup)
        return backup

    def _restore(self, moved: list[tuple[Path, Path | None]]) -> None:
        for final, backup in reversed(moved):
            if backup is not None:
                os.replace(backup, final)
                # rename() between two links of one file does nothing, leaving the backup name.
                backup.unlink(missing_ok=True)
            elif final.is_file():
                final.unlink()

    def _make_dirs(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self.made_dirs += [p for p in missing if p not in self.made_dirs]

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if not self.done:
            self._discard()
        if isinstance(exc, OSError) and not isinstance(exc, DeviceKeyError):
            raise ProvisionError(f"provisioning failed, nothing was changed: {exc}") from exc

    def _discard(self) -> None:
        for temp, _final in self.pending:
            temp.unlink(missing_ok=True)
        for folder in sorted(self.made_dirs, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _device_key(request: ProvisionRequest, staging: _Staging, key_file: Path) -> Ed25519PrivateKey:
    if request.keep_key and key_file.exists():
        return keys.load_private_key(key_file)
    return _stage_device_key(staging, key_file)


def _kept_id(request: ProvisionRequest, base: dict[str, Any]) -> str | None:
    # The key is kept, so is the id the authority registered it under.
    kept = base.get("device", {}).get("id") if request.keep_key else None
    return kept if isinstance(kept, str) else None


def _stage_device_key(staging: _Staging, key_file: Path) -> Ed25519PrivateKey:
    return keys.generate_device_key(staging.temp_for(key_file), overwrite=False)


def _stage_destination_key(staging: _Staging, request: ProvisionRequest, target: Path) -> bool:
    """Stage the venue's key (given, or the bundle's); keep one already installed; else make one (True)."""
    given = request.bundle.destination_key if request.bundle is not None else None
    if request.destination_key is not None:
        given = request.destination_key.read_bytes()
    if given is not None:
        keys.write_secret(staging.temp_for(target), given)
        return False
    if target.exists():
        return False
    sealing.generate_destination_key(staging.temp_for(target))
    return True


def _stage_sealing_key(staging: _Staging, request: ProvisionRequest, target: Path) -> None:
    """Stage the authority's sealing public key (given, or the bundle's); else keep what is installed."""
    pem = request.bundle.content.sealing_key if request.bundle is not None else None
    if request.sealing_key is not None:
        pem = request.sealing_key.read_text()
    if pem is not None:
        staging.write(target, pem.encode("ascii"), mode=0o644)


def _stage_bundle(staging: _Staging, bundle: Bundle, folder: Path, statuslist_file: Path) -> None:
    """Stage the bundle's keys, trust list, broker CA and status list."""
    staging.write(folder / AUTHORITY_KEYS_FILE, keys_pem(bundle.keys).encode(), mode=0o644)
    if bundle.certificates:
        staging.write(folder / TRUST_LIST_FILE, bundle.content.trust_list.encode(), mode=0o644)
    if bundle.content.broker_ca is not None:
        staging.write(folder / BROKER_CA_FILE, bundle.content.broker_ca.encode(), mode=0o644)
    if bundle.content.status_list is not None:
        staging.write(statuslist_file, bundle.content.status_list.encode(), mode=0o644)
    if bundle.content.trust_list_token is not None:
        token_file = statuslist_file.parent / TOKEN_FILE
        staging.write(token_file, bundle.content.trust_list_token.encode(), mode=0o644)


def _hand_over(settings: Settings, owner: str | None) -> None:
    """Give the state folder and secrets to the kiosk user, when root provisions for it."""
    if owner is None or os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(owner)
    except KeyError:
        log.info("no user %r: the key files stay owned by root", owner)
        return
    paths = settings.paths
    for path in (paths.state_dir, paths.key_file, paths.destination_key_file, paths.statuslist_file):
        if path.exists():
            shutil.chown(path, user=owner, group=_group_of(owner))


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid
