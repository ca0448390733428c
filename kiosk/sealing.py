"""Card identities sealed to the authority (HPKE), and tagged for one destination's kiosks.

An event carries each identity of the card as `"hpke:" + base64url(enc || ct)`:
HPKE base mode (RFC 9180) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
AES-128-GCM, to the authority's X25519 public key, with `info` binding the
ciphertext to the device that sealed it. The sender's key is fresh for every
seal, so two seals of one identity share nothing: no kiosk can open or link
another kiosk's events. Only central, which holds the private key, opens them
and stores its own keyed hash instead (kiosk.central.identities).

On the device, repeats and presence use `tag(identity)`: HMAC-SHA256 under the
destination key, which only the kiosks of that destination hold.

The library is `cryptography`'s HPKE (OpenSSL's implementation); docs/events.md
has a worked example that a second implementation (pyhpke) opens.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from kiosk import keys
from kiosk.errors import DeviceKeyError, SignatureError
from kiosk.jws import b64url, b64url_decode

if TYPE_CHECKING:
    from kiosk.config import Settings

SEALED_PREFIX = "hpke:"
PLAIN_PREFIX = "plain:"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
INFO_PREFIX = b"kiosk-identity/v2 device="
ENC_BYTES = 32
TAG_BYTES = 16
MAX_IDENTITY_BYTES = 512  # 128 characters of up to 4 bytes each
DESTINATION_KEY_BYTES = 32


def info_for(device: str) -> bytes:
    """The HPKE `info` of a device's seals: a ciphertext opens only under the device that made it."""
    return INFO_PREFIX + device.encode("ascii")


def seal(public_key: X25519PublicKey, device: str, identity: str) -> str:
    """`"hpke:"` + base64url(enc || ciphertext) of the UTF-8 identity, for the authority only."""
    return SEALED_PREFIX + b64url(SUITE.encrypt(identity.encode("utf-8"), public_key, info=info_for(device)))


def open_sealed(private_key: X25519PrivateKey, device: str, sealed: str) -> str:
    """The identity inside a seal made by `device`; SignatureError if it does not open."""
    if not sealed.startswith(SEALED_PREFIX):
        raise SignatureError(f"sealed identity must start with {SEALED_PREFIX!r}")
    blob = b64url_decode(sealed[len(SEALED_PREFIX) :])
    if not ENC_BYTES + TAG_BYTES < len(blob) <= ENC_BYTES + TAG_BYTES + MAX_IDENTITY_BYTES:
        raise SignatureError(f"sealed identity of {len(blob)} bytes has the wrong size")
    try:
        return SUITE.decrypt(blob, private_key, info=info_for(device)).decode("utf-8")
    except (InvalidTag, ValueError) as e:  # ValueError: a point X25519 refuses, bad UTF-8
        raise SignatureError("sealed identity does not open with the authority's key") from e


def tag(destination_key: bytes, identity: str) -> str:
    """The destination's tag of an identity: how its kiosks recognise a person (repeats, presence)."""
    return "tag:" + hmac.new(destination_key, identity.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Sealer:
    """What a kiosk does with card identities: seal them for events, tag them for its destination."""

    authority: X25519PublicKey = field(repr=False)
    destination_key: bytes = field(repr=False)
    plain: bool = False  # the destination's rules demand plain identities (a privacy trade-off)

    def event_identity(self, device: str, identity: str) -> str:
        """The identity as an event carries it: sealed, or plain where configured."""
        return PLAIN_PREFIX + identity if self.plain else seal(self.authority, device, identity)

    def tag(self, identity: str) -> str:
        """The destination's tag of `identity`."""
        return tag(self.destination_key, identity)


def open_sealer(settings: Settings) -> Sealer:
    """This kiosk's sealer: the authority's public key and the destination key named by `paths`."""
    return Sealer(
        authority=load_authority_public_key(settings.paths.sealing_key_file),
        destination_key=load_destination_key(settings.paths.destination_key_file),
        plain=settings.uplink.plain_identity,
    )


# ---------------------------------------------------------------- key files


def generate_authority_key(path: Path, *, overwrite: bool = False) -> X25519PrivateKey:
    """Make the authority's sealing key pair; the private key (PEM, 0600) stays at central."""
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keys.write_secret(path, pem, overwrite=overwrite)
    return key


def load_authority_private_key(path: Path) -> X25519PrivateKey:
    """Central's sealing private key (PEM, 0600)."""
    try:
        key = serialization.load_pem_private_key(keys.read_secret(path), password=None)
    except ValueError as e:
        raise DeviceKeyError(f"{path} is not a PEM private key: {e}") from e
    if not isinstance(key, X25519PrivateKey):
        raise DeviceKeyError(f"{path} holds a {type(key).__name__}, not an X25519 sealing key")
    return key


def public_pem(key: X25519PublicKey) -> str:
    """A sealing public key as PEM (SubjectPublicKeyInfo) text."""
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def load_authority_public_key(path: Path) -> X25519PublicKey:
    """The authority's sealing public key, as provisioned on a kiosk (PEM)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError as e:
        raise DeviceKeyError(f"{path} not found: provision the authority's sealing key") from e
    except (OSError, ValueError) as e:
        raise DeviceKeyError(f"{path} is not a PEM public key: {e}") from e
    if not isinstance(key, X25519PublicKey):
        raise DeviceKeyError(f"{path} holds a {type(key).__name__}, not an X25519 sealing key")
    return key


def generate_destination_key(path: Path, *, overwrite: bool = False) -> bytes:
    """Make a destination key (32 random bytes, 0600): one per venue, shared by its kiosks."""
    return keys.generate_identity_key(path, overwrite=overwrite)


def load_destination_key(path: Path) -> bytes:
    """The destination key of this kiosk's venue."""
    return keys.load_identity_key(path)
