"""COSE_Sign1 (RFC 9052) as vaccine passports use it: decode the envelope, verify its signature.

Algorithms: ES256 (-7; the signature is raw r||s, re-encoded as DER for
`cryptography`), PS256 (-37; RSASSA-PSS, SHA-256, MGF1 SHA-256, salt 32) and
EdDSA (-8; Ed25519 or Ed448). The envelope may carry CBOR tag 18, be untagged,
or be wrapped in the CWT tag 61.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kiosk.cards.base import Invalid
from kiosk.reasons import Reason

ES256, PS256, EDDSA = -7, -37, -8
ALGORITHMS = {ES256: "ES256", PS256: "PS256", EDDSA: "EdDSA"}
HEADER_ALG, HEADER_KID = 1, 4
TAG_SIGN1, TAG_CWT = 18, 61


@dataclass(frozen=True)
class Sign1:
    """A decoded COSE_Sign1: the protected header as sent and decoded, the rest as found."""

    protected_bytes: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes

    @property
    def alg(self) -> int:
        """The signature algorithm (COSE id) from the protected header."""
        return int(self.protected[HEADER_ALG])

    @property
    def kid(self) -> bytes | None:
        """The key id: protected header first, else unprotected."""
        kid = self.protected.get(HEADER_KID, self.unprotected.get(HEADER_KID))
        return kid if isinstance(kid, bytes) else None

    def to_be_signed(self) -> bytes:
        """The Sig_structure the signature covers."""
        return cbor2.dumps(["Signature1", self.protected_bytes, b"", self.payload])


def _bad(detail: str) -> Invalid:
    return Invalid(Reason.DCC_BAD_COSE, detail)


def loads_exact(data: bytes, what: str, reason: Reason = Reason.DCC_BAD_COSE) -> Any:
    """Decode one CBOR item that fills `data` exactly; raises Invalid(reason) otherwise."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as e:  # cbor2 raises several types on hostile input; all mean "not CBOR"
        raise Invalid(reason, f"{what} is not CBOR ({type(e).__name__})") from e
    if stream.tell() != len(data):  # bytes after the item: one message must have one encoding
        raise Invalid(reason, f"{len(data) - stream.tell()} bytes after the {what}")
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, cbor2.CBORTag) and value.tag == TAG_CWT:
        value = value.value
    if isinstance(value, cbor2.CBORTag) and value.tag == TAG_SIGN1:
        value = value.value
    return value


def _header(protected_bytes: bytes) -> Mapping[Any, Any]:
    header = loads_exact(protected_bytes, "protected header") if protected_bytes else {}
    if not isinstance(header, Mapping):
        raise _bad("protected header is not a map")
    return header


def decode_sign1(data: bytes) -> Sign1:
    """Decode a COSE_Sign1; raises Invalid(DCC_BAD_COSE) if it is not one with a known algorithm."""
    value = _untag(loads_exact(data, "COSE message"))
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or len(value) != 4:
        raise _bad("not a four-element COSE_Sign1 array")
    protected_bytes, unprotected, payload, signature = value
    if not (isinstance(protected_bytes, bytes) and isinstance(unprotected, Mapping)):
        raise _bad("bad header types")
    if not (isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise _bad("payload or signature is not a byte string")
    sign1 = Sign1(protected_bytes, _header(protected_bytes), unprotected, payload, signature)
    if type(sign1.protected.get(HEADER_ALG)) is not int or sign1.alg not in ALGORITHMS:
        raise _bad("missing or unsupported algorithm")
    return sign1


def _es256(key: object, message: bytes, signature: bytes) -> None:
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidSignature("ES256 needs a P-256 key")
    if len(signature) != 64:
        raise InvalidSignature("ES256 signature is not 64 bytes")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


def _ps256(key: object, message: bytes, signature: bytes) -> None:
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSignature("PS256 needs an RSA key")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    key.verify(signature, message, pss, hashes.SHA256())


def _eddsa(key: object, message: bytes, signature: bytes) -> None:
    if not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raise InvalidSignature("EdDSA needs an Ed25519 or Ed448 key")
    key.verify(signature, message)


_VERIFIERS: dict[int, Callable[[object, bytes, bytes], None]] = {ES256: _es256, PS256: _ps256, EDDSA: _eddsa}


def signature_valid(sign1: Sign1, public_key: object) -> bool:
    """Whether `sign1` carries a valid signature by `public_key` under its algorithm."""
    try:
        _VERIFIERS[sign1.alg](public_key, sign1.to_be_signed(), sign1.signature)
    except (InvalidSignature, ValueError):
        return False
    return True
