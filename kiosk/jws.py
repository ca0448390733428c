"""JWS compact serialization with EdDSA (RFC 7515, RFC 8037), Ed25519 only.

Everything the kiosk signs or trusts travels in this form: scan events (signed by
the device), status lists, acks, inspector cards and commands (signed by the
authority). Any JOSE library can verify the tokens. The signature covers the exact
bytes sent; `verify` checks it before anything parses the payload.

The general JOSE libraries now warn on `alg: EdDSA` (RFC 9864 prefers `Ed25519`),
but the wire protocol fixes `EdDSA`; this module is the few lines of glue over
`cryptography` that the protocol needs and nothing more.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import safejson
from kiosk.errors import SignatureError, UnsafeJSONError

ALG = "EdDSA"
MAX_TOKEN_BYTES = 8 * 1024 * 1024  # a 1,000,000-entry status list fits; anything larger is refused
MAX_HEADER_BYTES = 1024
HEADER_FIELDS = frozenset({"alg", "kid", "typ"})  # what `sign` writes; anything else is refused


@dataclass(frozen=True)
class Verified:
    """A token whose signature checked out: its header and its exact payload bytes."""

    header: Mapping[str, Any]
    payload: bytes

    @property
    def kid(self) -> str:
        """The key id the signer named."""
        return str(self.header["kid"])


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(rb"[A-Za-z0-9_-]*")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode canonical base64url without padding; raise SignatureError on anything else.

    Strict, so one value has one spelling: no padding, no `+`, `/`, whitespace or
    other inserted characters, no impossible length, no stray bits in the last
    character. Every base64url value the kiosk reads goes through here.
    """
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as e:
        raise SignatureError("bad base64url: not ASCII") from e
    if raw.endswith(b"="):
        raise SignatureError("base64url must not be padded")
    if not _B64URL.fullmatch(raw):
        raise SignatureError("bad base64url: only A-Z, a-z, 0-9, '-' and '_' without padding")
    if len(raw) % 4 == 1:
        raise SignatureError("bad base64url: impossible length")
    data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if b64url(data).encode("ascii") != raw:  # unused low bits set: a second spelling of the same bytes
        raise SignatureError("bad base64url: not canonical (stray bits in the last character)")
    return data


def sign(payload: bytes, key: Ed25519PrivateKey, *, kid: str, typ: str | None = None) -> bytes:
    """Sign `payload` and return the compact token as ASCII bytes."""
    header: dict[str, str] = {"alg": ALG, "kid": kid}
    if typ:
        header["typ"] = typ
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    signing_input = f"{protected}.{b64url(payload)}".encode("ascii")
    return signing_input + b"." + b64url(key.sign(signing_input)).encode("ascii")


KeyLookup = Callable[[str], Ed25519PublicKey | None]


def verify(token: bytes | str, keys: KeyLookup | Ed25519PublicKey) -> Verified:
    """Check a compact token's signature and return its header and payload.

    `keys` is one public key or a function from kid to key (None = unknown kid).
    Raises SignatureError with the reason on any failure.
    """
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    if len(raw) > MAX_TOKEN_BYTES:
        raise SignatureError(f"token of {len(raw)} bytes is larger than {MAX_TOKEN_BYTES}")
    parts = raw.strip().split(b".")
    if len(parts) != 3:
        raise SignatureError("not a JWS compact token (expected three dot-separated parts)")
    header = _header(parts[0])
    key = keys(header["kid"]) if callable(keys) else keys
    if key is None:
        raise SignatureError(f"unknown key id {header['kid']!r}")
    try:
        key.verify(b64url_decode(parts[2]), parts[0] + b"." + parts[1])
    except InvalidSignature as e:
        raise SignatureError("bad signature") from e
    return Verified(header=header, payload=b64url_decode(parts[1]))


def _header(segment: bytes) -> dict[str, Any]:
    if len(segment) > MAX_HEADER_BYTES:
        raise SignatureError(f"header is larger than {MAX_HEADER_BYTES} bytes")
    try:
        header = safejson.loads(b64url_decode(segment), max_bytes=MAX_HEADER_BYTES, max_depth=1)
    except UnsafeJSONError as e:
        raise SignatureError(f"header is not acceptable JSON: {e}") from e
    if not isinstance(header, dict) or header.get("alg") != ALG:
        raise SignatureError(f"header must name alg {ALG!r}")
    if not isinstance(header.get("kid"), str) or not 0 < len(header["kid"]) <= 128:
        raise SignatureError("header has no kid (a string of 1 to 128 characters)")
    if not isinstance(header.get("typ", ""), str):
        raise SignatureError("header typ must be a string")
    # crit, jwk, jku, x5u... would ask the verifier to trust or honour something else: refused.
    extra = sorted(set(header) - HEADER_FIELDS)
    if extra:
        raise SignatureError(f"header fields {', '.join(extra)} are not allowed (only alg, kid, typ)")
    return header
