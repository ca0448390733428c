"""The provisioning bundle: everything a kiosk must trust, as one file signed by the authority.

`kiosk-central bundle` makes it; `kiosk provision --bundle FILE` checks and applies
it. It is a compact JWS (kiosk.jws, typ `kiosk-bundle`, kid = the signing key's
RFC 7638 thumbprint) whose payload is JSON holding:

- `authority_keys`: the authority's Ed25519 public keys (PEM); the signing key is one of them;
- `trust_list`: the vaccine passports' document-signer certificates (PEM) and its version;
- `status_list`: the current signed status list token, or null;
- `broker_ca`: the CA certificate of the authority's broker (PEM), or null; `broker`: its URL;
- `destination`: the venue record (id, name, district, ward, direction, mode, capacity);
- `sealing_key`: the authority's X25519 public key (PEM) card identities are sealed to, or null;
- `destination_key`: the venue's own key (32 bytes, base64url), shared by its kiosks only, or null.

The destination key is a secret of that venue's kiosks: a bundle holding it is
handled like a key file (copied to the device, then deleted).

A bundle carries the keys it is checked with, so its signature only proves it is
whole: the technician confirms the authority key's fingerprint, which both sides
print (or passes it as `--authority-fingerprint` to have it compared).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from kiosk import jws, statuslist
from kiosk.errors import ProvisionError, SignatureError, StatusListError, TrustListError
from kiosk.keys import public_pem, thumbprint
from kiosk.topics import ID_PATTERN
from kiosk.trustlist import verify_trust_list

TYP = "kiosk-bundle"
_PUBLIC_END = b"-----END PUBLIC KEY-----"


class DestinationRecord(BaseModel):
    """The venue a device is provisioned for, as the authority registered it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="Destination (venue) id.")
    venue_name: str = Field(min_length=1, max_length=80, description="Name shown on the screen.")
    district: str = Field(min_length=1, max_length=80, description="District (quận/huyện).")
    ward: str = Field(min_length=1, max_length=80, description="Ward (phường/xã).")
    direction: Literal["in", "out", "auto"] = Field("in", description="Entry, exit, or toggling.")
    mode: Literal["kiosk", "inspector"] = Field(
        "kiosk", description="`kiosk` at an entrance, `inspector` on a street inspector's handheld."
    )
    capacity: int | None = Field(None, ge=1, le=100_000, description="Occupancy limit (auto only).")


class BundleContent(BaseModel):
    """The bundle's payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = Field(1, description="Bundle format version.")
    issued: AwareDatetime = Field(description="When the authority made the bundle.")
    authority_keys: str = Field(min_length=1, description="The authority's Ed25519 public keys, PEM.")
    trust_list: str = Field(description="Document-signer certificates, PEM (empty: none).")
    trust_list_version: int = Field(ge=0, description="Version of that trust list.")
    trust_list_token: str | None = Field(None, description="The same list as the authority's signed token.")
    status_list: str | None = Field(None, description="The current signed status list token.")
    broker: str | None = Field(None, description="The broker's URL, e.g. mqtts://HOST:8883.")
    broker_ca: str | None = Field(None, description="The broker's CA certificate, PEM.")
    destination: DestinationRecord
    sealing_key: str | None = Field(None, description="The authority's X25519 sealing public key, PEM.")
    destination_key: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{43}$", description="The venue's key (32 bytes, base64url)."
    )


@dataclass(frozen=True)
class Bundle:
    """A checked bundle: its content, the key that signed it, and what its parts hold."""

    content: BundleContent
    fingerprint: str
    keys: dict[str, Ed25519PublicKey]
    certificates: tuple[x509.Certificate, ...]
    status_list_version: int | None

    def missing(self) -> list[str]:
        """What this bundle leaves out, in words for the technician."""
        gaps = []
        if not self.certificates:
            gaps.append("a vaccine-passport trust list")
        if self.content.status_list is None:
            gaps.append("a status list")
        if self.content.broker_ca is None:
            gaps.append("the broker's CA certificate")
        if self.content.sealing_key is None:
            gaps.append("the authority's sealing key")
        if self.content.destination_key is None:
            gaps.append("the destination's key")
        return gaps

    @property
    def destination_key(self) -> bytes | None:
        """The venue's key, when the bundle carries it."""
        key = self.content.destination_key
        return None if key is None else jws.b64url_decode(key)


def make_bundle(content: BundleContent, key: Ed25519PrivateKey) -> bytes:
    """Sign `content` with an authority key that must be one of its `authority_keys`."""
    kid = thumbprint(key.public_key())
    if kid not in parse_public_keys(content.authority_keys.encode()):
        raise ProvisionError("the signing key is not among the bundle's authority keys")
    payload = content.model_dump_json().encode()
    read_bundle(jws.sign(payload, key, kid=kid, typ=TYP))  # what the kiosk will check, checked now
    return jws.sign(payload, key, kid=kid, typ=TYP)


def read_bundle(token: bytes) -> Bundle:
    """Check a bundle's signature and every part; raises ProvisionError saying what is wrong."""
    keys = _keys_inside(token)
    try:
        verified = jws.verify(token, keys.get)
    except SignatureError as e:
        raise ProvisionError(f"the bundle's signature does not verify ({e}): ask the authority again") from e
    if verified.header.get("typ") != TYP:
        raise ProvisionError(f"this is a {verified.header.get('typ')!r} token, not a provisioning bundle")
    content = _content(verified.payload)
    _check_trust_list_token(content, keys)
    return Bundle(
        content=content,
        fingerprint=verified.header["kid"],
        keys=keys,
        certificates=_certificates(content.trust_list, "trust_list"),
        status_list_version=_status_list_version(content.status_list, keys),
    )


def _check_trust_list_token(content: BundleContent, keys: dict[str, Ed25519PublicKey]) -> None:
    if content.trust_list_token is None:
        return
    try:
        signed = verify_trust_list(content.trust_list_token.encode(), keys)
    except TrustListError as e:
        raise ProvisionError(f"the bundle's trust list token is refused: {e}") from e
    if signed.version != content.trust_list_version:
        raise ProvisionError("the bundle's trust list token and trust_list_version disagree")


def _keys_inside(token: bytes) -> dict[str, Ed25519PublicKey]:
    # The keys travel inside the payload: read them (only them) before the signature is checked.
    try:
        payload = jws.b64url_decode(bytes(token).strip().split(b".")[1])
        text = json.loads(payload)["authority_keys"]
    except (IndexError, KeyError, TypeError, ValueError) as e:
        raise ProvisionError("this file is not a provisioning bundle (no authority keys inside)") from e
    if not isinstance(text, str):
        raise ProvisionError("the bundle's authority_keys is not PEM text")
    return parse_public_keys(text.encode())


def _content(payload: bytes) -> BundleContent:
    try:
        content = BundleContent.model_validate_json(payload)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ProvisionError(f"the bundle is malformed: {problems}") from e
    if content.broker_ca is not None:
        _certificates(content.broker_ca, "broker_ca")
    if content.sealing_key is not None:
        _sealing_key(content.sealing_key)
    return content


def _sealing_key(pem: str) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii", "replace"))
    except ValueError as e:
        raise ProvisionError(f"the bundle's sealing_key is not a PEM public key: {e}") from e
    if not isinstance(key, X25519PublicKey):
        raise ProvisionError(f"the bundle's sealing_key is a {type(key).__name__}, not an X25519 key")
    return key


def parse_public_keys(pem: bytes) -> dict[str, Ed25519PublicKey]:
    """Ed25519 public keys in PEM text, by thumbprint; raises ProvisionError."""
    found: dict[str, Ed25519PublicKey] = {}
    for chunk in pem.split(_PUBLIC_END):
        if b"-----BEGIN" not in chunk:
            continue
        try:
            key = serialization.load_pem_public_key(chunk.strip() + b"\n" + _PUBLIC_END + b"\n")
        except ValueError as e:
            raise ProvisionError(f"the bundle's authority keys are not PEM public keys: {e}") from e
        if not isinstance(key, Ed25519PublicKey):
            raise ProvisionError(f"the bundle holds a {type(key).__name__}, not an Ed25519 authority key")
        found[thumbprint(key)] = key
    if not found:
        raise ProvisionError("the bundle holds no authority public key")
    return found


def _certificates(pem: str, part: str) -> tuple[x509.Certificate, ...]:
    if not pem.strip():
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(pem.encode()))
    except ValueError as e:
        raise ProvisionError(f"the bundle's {part} holds no valid certificate: {e}") from e


def _status_list_version(token: str | None, keys: dict[str, Ed25519PublicKey]) -> int | None:
    if token is None:
        return None
    try:
        return statuslist.verify_token(token.encode(), keys).version
    except StatusListError as e:
        raise ProvisionError(f"the bundle's status list is refused: {e}") from e


def keys_pem(keys: dict[str, Ed25519PublicKey]) -> str:
    """Public keys as one PEM text, in thumbprint order."""
    return "".join(public_pem(keys[kid]) for kid in sorted(keys))


def now() -> datetime:
    """The current time, aware (for `issued`)."""
    return datetime.now(UTC)
