"""Self-test checks of the trust material: authority keys, sealing and destination keys, lists, broker CA;
and the peers file of a venue's lanes (`check_peers`: the other lanes' keys, written from the registry).

Each fails while its part is missing, unreadable or expired, and names the command
that fixes it: the authority's provisioning bundle applied with `kiosk provision`.
`kiosk.selftest` runs them with its own checks (TRUST_CHECKS).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509

from kiosk.checkresult import CheckResult, Status
from kiosk.config import Settings
from kiosk.errors import KioskError

if TYPE_CHECKING:
    from kiosk.trustlist import SignedTrustList

FIX = "apply the authority's bundle (`kiosk-central bundle`): `sudo kiosk provision --bundle FILE --keep-key`"
SOON = timedelta(days=30)
STALE_STATUS_LIST = timedelta(days=7)


def _result(name: str, status: Status, detail: str, advice: str = "") -> CheckResult:
    return CheckResult(name, status, detail, advice)


def check_authority_keys(settings: Settings, probes: object) -> CheckResult:
    """The authority's public keys are configured and load."""
    from kiosk.keys import load_public_keys, shown_fingerprint

    path = settings.policy.authority_keys
    if path is None:
        return _result("authority keys", "fail", "none: central's acks and status lists are refused", FIX)
    found = load_public_keys(path)
    shown = ", ".join(map(shown_fingerprint, sorted(found)))
    return _result("authority keys", "pass", f"{path}: {len(found)} key(s), {shown}")


def check_sealing_key(settings: Settings, probes: object) -> CheckResult:
    """The authority's sealing public key is installed and is an X25519 key."""
    from kiosk.sealing import load_authority_public_key

    path = settings.paths.sealing_key_file
    if not path.is_file():
        return _result("sealing key", "fail", f"{path}: none: no card can be recorded", FIX)
    load_authority_public_key(path)
    return _result("sealing key", "pass", f"{path}: X25519 public key")


def check_destination_key(settings: Settings, probes: object) -> CheckResult:
    """The venue's key is installed, 32 bytes, readable only by its owner."""
    from kiosk.sealing import load_destination_key

    path = settings.paths.destination_key_file
    if not path.is_file():
        return _result("destination key", "fail", f"{path}: none: no card can be recorded", FIX)
    load_destination_key(path)
    return _result("destination key", "pass", f"{path}: 32 bytes, mode {oct(path.stat().st_mode & 0o777)}")


def check_trust_list(settings: Settings, probes: object) -> CheckResult:
    """The vaccine passports' trust list in force (the saved signed one, else the configured one) is valid."""
    from kiosk.trustlist import TOKEN_FILE, TrustList

    signed = _saved_trust_list(settings)
    path = settings.policy.trust_list
    if signed is None and path is None:
        return _result("trust list", "fail", "none: every vaccine passport is refused", FIX)
    certificates = list(signed.certificates if signed else TrustList.load(path or ""))
    now = datetime.now(UTC)
    valid = [c for c in certificates if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    source = f"{settings.paths.state_dir / TOKEN_FILE}: version {signed.version}" if signed else str(path)
    detail = f"{source}: {len(certificates)} document signer(s), {len(valid)} in force"
    if not valid:
        return _result("trust list", "fail", detail + ": every certificate has expired", FIX)
    if len(valid) < len(certificates):
        return _result("trust list", "warn", detail, "the next trust list will replace the expired ones")
    return _result("trust list", "pass", detail)


def _saved_trust_list(settings: Settings) -> SignedTrustList | None:
    """The signed list a running kiosk saved (it outranks the configured one), if it verifies."""
    from kiosk.keys import load_public_keys
    from kiosk.trustlist import TOKEN_FILE, verify_trust_list

    saved = settings.paths.state_dir / TOKEN_FILE
    if settings.policy.authority_keys is None or not saved.exists():
        return None
    try:
        return verify_trust_list(saved.read_bytes().strip(), load_public_keys(settings.policy.authority_keys))
    except (KioskError, OSError):
        return None  # the kiosk ignores it too; the configured list is checked instead


def check_status_list(settings: Settings, probes: object) -> CheckResult:
    """A status list signed by the authority is saved, and recent."""
    from kiosk.statuslist import StatusListStore

    path = settings.paths.statuslist_file
    if not path.exists():
        return _result("status list", "fail", f"{path}: none yet, so no one is refused for their status", FIX)
    store = StatusListStore.from_config(settings.policy.authority_keys, path)
    current = store.current
    if current is None:
        return _result(
            "status list", "fail", f"{path}: unreadable or not signed by the authority's keys", FIX
        )
    age = datetime.now(UTC) - current.issued
    detail = (
        f"{path}: version {current.version}, {current.count} entries, issued {current.issued:%Y-%m-%d %H:%M}"
    )
    if age > STALE_STATUS_LIST:
        return _result("status list", "warn", detail, "is the broker reachable? newer lists arrive on it")
    return _result("status list", "pass", detail)


def check_broker_ca(settings: Settings, probes: object) -> CheckResult:
    """The broker's CA certificate is configured for TLS, loads, and is in force."""
    if not settings.uplink.broker.startswith("mqtts://"):
        return _result("broker ca", "skip", "plain MQTT: no TLS (lab only)")
    path = settings.uplink.tls.ca_file
    if path is None:
        return _result("broker ca", "fail", "none: the authority's broker CA is not installed", FIX)
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as e:
        return _result("broker ca", "fail", f"{path}: cannot be read as PEM certificates ({e})", FIX)
    return _validity("broker ca", path.name, min(c.not_valid_after_utc for c in certificates))


def peers_fix(settings: Settings) -> str:
    """How the peers file is made: on the authority's side, from the registry, then copied to the kiosk."""
    return (
        f"register every lane (`kiosk-central devices add`), then `kiosk-central peers"
        f" {settings.destination.id} > peers.json` and install it as {settings.paths.peers_file}"
    )


def check_peers(settings: Settings, probes: object) -> CheckResult:
    """A lane of several: its peers file loads and names this device with its key; the venue's key is here."""
    from kiosk.keys import load_private_key, public_pem
    from kiosk.presence import load_peers

    if not settings.destination.share_presence:
        return _result("peers", "skip", "destination.share_presence is false: the venue's only lane")
    path, device = settings.paths.peers_file, settings.device.id
    if not path.is_file():
        return _result("peers", "fail", f"{path}: none: the other lanes' entries and exits are refused",
                       peers_fix(settings))  # fmt: skip
    try:
        peers = load_peers(path, settings.destination.id)
    except KioskError as e:
        return _result("peers", "fail", str(e), peers_fix(settings))
    if device not in peers:
        return _result("peers", "fail", f"{path}: does not name this device {device}", peers_fix(settings))
    own = public_pem(load_private_key(settings.paths.key_file).public_key())
    if public_pem(peers[device]) != own:
        detail = f"{path}: names {device} with another public key (made before this device's key?)"
        return _result("peers", "fail", detail, peers_fix(settings))
    if not settings.paths.destination_key_file.is_file():
        detail = f"{settings.paths.destination_key_file}: none: the lanes cannot name the people they share"
        return _result("peers", "fail", detail, FIX + " (the same bundle on every lane)")
    return _peers_found(settings, sorted(peers))


def _peers_found(settings: Settings, lanes: list[str]) -> CheckResult:
    where = f"{settings.paths.peers_file}: {len(lanes)} lane(s) of {settings.destination.id}"
    detail = f"{where}: {', '.join(lanes)}"
    if len(lanes) == 1:
        later = peers_fix(settings) + " once the others are registered"
        return _result("peers", "warn", detail + ", no other", later)
    if not settings.uplink.enabled:
        return _result("peers", "warn", detail + "; uplink.enabled is false: nothing is shared",
                       "enable the uplink: the lanes share through the broker")  # fmt: skip
    return _result("peers", "pass", detail)


def _validity(name: str, what: str, ends: datetime) -> CheckResult:
    now = datetime.now(UTC)
    if ends < now:
        return _result(name, "fail", f"{what}: expired {ends:%Y-%m-%d}", FIX)
    if ends - now < SOON:
        return _result(name, "warn", f"{what}: expires {ends:%Y-%m-%d}", "ask the authority for a new bundle")
    return _result(name, "pass", f"{what}: valid until {ends:%Y-%m-%d}")


TRUST_CHECKS: tuple[Callable[[Settings, object], CheckResult], ...] = (
    check_authority_keys,
    check_sealing_key,
    check_destination_key,
    check_trust_list,
    check_status_list,
    check_broker_ca,
)
