"""The device registry: which devices central trusts, for which destination, with which key.

Fed by the registration record `kiosk provision` prints. A revoked device stays in
the registry (its past events remain attributable) but its new events are refused.
"""

from __future__ import annotations

from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiosk import keys, safejson
from kiosk.central.store import DeviceRow, Store
from kiosk.errors import RegistryError, UnsafeJSONError
from kiosk.names import check_not_reserved
from kiosk.topics import ID_PATTERN

ACTIVE = "active"
REVOKED = "revoked"
HANDHELD = "inspector"  # the registration's mode of a street inspector's handheld


class Registration(BaseModel):
    """The registration record a provisioned device hands to the authority."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    device: str = Field(pattern=ID_PATTERN, description="Device id (the signatures' kid).")
    destination: str = Field(pattern=ID_PATTERN, description="Destination (venue) id.")
    public_key: str = Field(min_length=1, description="Ed25519 public key, PEM.")
    jwk: dict[str, str] = Field(description="The same key as a JWK (RFC 8037).")
    fingerprint: str = Field(description="RFC 7638 thumbprint of the key.")
    software: str = Field(description="Software version at provisioning.")
    created: str = Field(description="When the key was made, ISO-8601 UTC.")
    # Records made before the field existed are kiosks: handhelds came with `--mode inspector`.
    mode: Literal["kiosk", "inspector"] = Field(
        default="kiosk", description="A venue's kiosk, or a street inspector's handheld."
    )

    _device_not_reserved = field_validator("device")(check_not_reserved)


def parse_registration(text: str | bytes) -> Registration:
    """Validate a registration record; its PEM, JWK and fingerprint must all name one key."""
    try:
        record = Registration.model_validate(safejson.loads(text, max_bytes=64 * 1024, max_depth=3))
    except UnsafeJSONError as e:
        raise RegistryError(f"registration record is not JSON: {e}") from e
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise RegistryError(f"registration record is invalid: {problems}") from e
    key = public_key_from_pem(record.public_key)
    if keys.public_jwk(key) != record.jwk or keys.thumbprint(key) != record.fingerprint:
        raise RegistryError(
            f"registration of {record.device}: public_key, jwk and fingerprint disagree;"
            " ask the technician for the record `kiosk provision` printed, unedited"
        )
    return record


def public_key_from_pem(pem: str) -> Ed25519PublicKey:
    """Load one Ed25519 public key from PEM text."""
    try:
        key: Any = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as e:
        raise RegistryError(f"public_key is not a PEM public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise RegistryError(f"public_key is a {type(key).__name__}, not an Ed25519 key")
    return key


class Registry:
    """Registered devices and their keys, read from the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys: dict[str, tuple[DeviceRow, Ed25519PublicKey]] = {}
        self.reload()

    def add(self, record: Registration) -> DeviceRow:
        """Register (or re-register) a device as active; the caller commits."""
        row = DeviceRow(
            device=record.device,
            destination=record.destination,
            public_key=record.public_key,
            fingerprint=record.fingerprint,
            software=record.software,
            created=record.created,
            status=ACTIVE,
            mode=record.mode,
        )
        self._store.put_device(row)
        self._keys[row.device] = (row, public_key_from_pem(row.public_key))
        return row

    def revoke(self, device: str) -> None:
        """Stop trusting a device's signatures; the caller commits."""
        if not self._store.set_device_status(device, REVOKED):
            raise RegistryError(f"no device {device!r} is registered (see `kiosk-central devices list`)")
        self.reload()

    def reload(self) -> None:
        """Re-read the registry (another process may have added or revoked devices)."""
        self._keys = {row.device: (row, public_key_from_pem(row.public_key)) for row in self._store.devices()}

    def get(self, device: str) -> DeviceRow | None:
        """A device's record, or None when it was never registered."""
        entry = self._keys.get(device)
        return entry[0] if entry else None

    def key(self, device: str) -> Ed25519PublicKey | None:
        """The public key of an active device; None when unknown or revoked."""
        entry = self._keys.get(device)
        if entry is None or entry[0].status != ACTIVE:
            return None
        return entry[1]

    def devices(self) -> list[DeviceRow]:
        """Every registered device."""
        return [row for row, _ in sorted(self._keys.values(), key=lambda e: e[0].device)]
