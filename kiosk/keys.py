"""Device and authority keys: made on the device, stored 0600, checked on load.

A device has an Ed25519 signing key (PEM, PKCS#8) and a 32-byte HMAC key for
card identities. The authority's public keys (PEM, one or more) verify status
lists, acks, inspector cards and commands; each is known by its RFC 7638 JWK
thumbprint, which is also the `kid` the authority signs with.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.errors import DeviceKeyError
from kiosk.jws import b64url

IDENTITY_KEY_BYTES = 32


def write_secret(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write a secret file atomically with mode 0600 (never briefly readable by others)."""
    if path.exists() and not overwrite:
        raise DeviceKeyError(f"{path} exists; refusing to replace a key (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_secret(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can read."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise DeviceKeyError(f"{path} not found: provision the device with `kiosk provision`") from e
    except PermissionError as e:
        raise DeviceKeyError(f"{path}: permission denied (run as the kiosk user)") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DeviceKeyError(f"{path} is readable by others (mode {oct(mode & 0o777)}): chmod 600 {path}")
    return data


def generate_device_key(path: Path, *, overwrite: bool = False) -> Ed25519PrivateKey:
    """Make a new Ed25519 key and store it at `path` (PEM, 0600)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret(path, pem, overwrite=overwrite)
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key stored by `generate_device_key`."""
    try:
        key = serialization.load_pem_private_key(read_secret(path), password=None)
    except ValueError as e:
        raise DeviceKeyError(f"{path} is not a PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise DeviceKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def generate_identity_key(path: Path, *, overwrite: bool = False) -> bytes:
    """Make the HMAC key for card identities and store it (raw bytes, 0600)."""
    key = secrets.token_bytes(IDENTITY_KEY_BYTES)
    write_secret(path, key, overwrite=overwrite)
    return key


def load_identity_key(path: Path) -> bytes:
    """Load the HMAC key for card identities."""
    key = read_secret(path)
    if len(key) != IDENTITY_KEY_BYTES:
        raise DeviceKeyError(f"{path} must hold {IDENTITY_KEY_BYTES} bytes, not {len(key)}")
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo) text."""
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK (RFC 8037)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's fingerprint and kid."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


FINGERPRINT_PREFIX = "SHA256:"


def shown_fingerprint(key_id: str) -> str:
    """A thumbprint as people read and type it: `SHA256:` first, so it never starts with `-`."""
    # A bare base64url thumbprint may start with "-", which argparse takes for an option.
    return FINGERPRINT_PREFIX + key_id


def fingerprint_names(given: str, key_id: str) -> bool:
    """Whether a typed fingerprint (with or without `SHA256:`, spaces around) names the key `key_id`."""
    return given.strip().removeprefix(FINGERPRINT_PREFIX) == key_id


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """Load one or more Ed25519 public keys from a PEM file, keyed by thumbprint."""
    try:
        text = path.read_bytes()
    except OSError as e:
        raise DeviceKeyError(f"cannot read public keys from {path}: {e.strerror}") from e
    keys: dict[str, Ed25519PublicKey] = {}
    for block in _pem_blocks(text):
        key = _load_public(block, path)
        keys[thumbprint(key)] = key
    if not keys:
        raise DeviceKeyError(f"{path} holds no PEM public key")
    return keys


def _pem_blocks(text: bytes) -> list[bytes]:
    end = b"-----END PUBLIC KEY-----"
    return [chunk.strip() + b"\n" + end + b"\n" for chunk in text.split(end) if b"-----BEGIN" in chunk]


def _load_public(block: bytes, path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(block)
    except ValueError as e:
        raise DeviceKeyError(f"{path}: not a PEM public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise DeviceKeyError(f"{path}: holds a {type(key).__name__}, not an Ed25519 public key")
    return key
