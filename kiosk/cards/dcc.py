"""The vaccine passport (Decision 5772/QĐ-BYT, the EU Digital COVID Certificate), verified offline.

`HC1:` + Base45 + zlib (or uncompressed) + COSE_Sign1 holding a CWT whose claim
-260/1 is the health certificate. With a trust list the steps are, in order
(each failure has its own reason code): decode the envelope; find the signer by
kid; verify the signature over the bytes as sent, before reading them; check
the signer certificate's validity period; read the claims and the certificate
schema; check the signer's extended key usage for the certificate's type; check
the CWT's expiry and issue time against "now". Without a trust list everything
but the signer steps is done and the card is marked `verified=False`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import base45
from cryptography import x509
from pydantic import ValidationError

from kiosk.cards.base import Card, Invalid
from kiosk.cards.cose import Sign1, decode_sign1, loads_exact, signature_valid
from kiosk.cards.dcc_schema import (
    DiagnosticTest,
    HealthCertificate,
    Recovery,
    Vaccination,
    describe_errors,
    is_plain_text,
)
from kiosk.cards.masking import mask_identity, mask_name
from kiosk.reasons import Reason
from kiosk.trustlist import key_usages

if TYPE_CHECKING:
    from kiosk.trustlist import TrustList

PREFIX = "HC1:"
CLAIM_ISSUER, CLAIM_EXPIRY, CLAIM_ISSUED_AT, CLAIM_HCERT = 1, 4, 6, -260
HCERT_EU_DCC = 1
# A passport decompresses to a few hundred bytes; the cap stops a zlib bomb.
MAX_INFLATED = 64 * 1024
# The kiosk's clock may run a little behind the issuer's.
CLOCK_SKEW = timedelta(minutes=5)
_DCC_OID = "1.3.6.1.4.1.1847.2021.1.{}"
_DCC_OID_ALT = "1.3.6.1.4.1.0.1847.2021.1.{}"
KEY_USAGE_OIDS: dict[str, frozenset[str]] = {
    kind: frozenset({_DCC_OID.format(n), _DCC_OID_ALT.format(n)})
    for kind, n in (("t", 1), ("v", 2), ("r", 3))
}
ALL_KEY_USAGE_OIDS = frozenset().union(*KEY_USAGE_OIDS.values())
_BASE45 = re.compile(r"[0-9A-Z $%*+\-./:]*")


@dataclass(frozen=True, kw_only=True)
class DccCard(Card):
    """A vaccine passport: its claims, its one v/t/r entry, and whether its signature was verified."""

    format = "dcc"
    certificate: HealthCertificate
    issuer: str
    issued_at: datetime
    expires_at: datetime
    verified: bool
    kid: bytes | None

    @property
    def kind(self) -> Literal["v", "t", "r"]:
        """`v` vaccination, `t` test, `r` recovery."""
        return self.certificate.kind

    @property
    def vaccination(self) -> Vaccination | None:
        """The vaccination entry, if this is one (dose_number, total_doses, date, complete)."""
        entry = self.certificate.entry
        return entry if isinstance(entry, Vaccination) else None

    @property
    def test(self) -> DiagnosticTest | None:
        """The test entry, if this is one (test_type, result, positive, sample_time)."""
        entry = self.certificate.entry
        return entry if isinstance(entry, DiagnosticTest) else None

    @property
    def recovery(self) -> Recovery | None:
        """The recovery entry, if this is one (valid_from, valid_until)."""
        entry = self.certificate.entry
        return entry if isinstance(entry, Recovery) else None

    @property
    def identity(self) -> str:
        """The certificate identifier (UVCI)."""
        return self.certificate.entry.uvci

    @property
    def masked_name(self) -> str:
        """The name (family then given) masked for the screen."""
        return mask_name(self.certificate.name.display())

    def masked_fields(self) -> dict[str, str]:
        """Fields for display with the UVCI masked."""
        return {
            "format": self.format,
            "kind": self.kind,
            "name": self.masked_name,
            "uvci": mask_identity(self.identity, "dcc"),
            "birth_year": self.certificate.birth_date[:4],
            "issuer": self.issuer,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "verified": "yes" if self.verified else "no",
            **_entry_summary(self.certificate.entry),
        }


def _entry_summary(entry: Vaccination | DiagnosticTest | Recovery) -> dict[str, str]:
    if isinstance(entry, Vaccination):
        return {"dose": f"{entry.dose_number}/{entry.total_doses}", "vaccinated_on": entry.date.isoformat()}
    if isinstance(entry, DiagnosticTest):
        result = "positive" if entry.positive else "negative"
        return {"test_type": entry.test_type, "result": result, "sampled_at": entry.sample_time.isoformat()}
    return {"valid_from": entry.valid_from.isoformat(), "valid_until": entry.valid_until.isoformat()}


def _unbase45(text: str) -> bytes:
    # The alphabet is checked here, not left to the library, which forgives trailing line ends.
    if not _BASE45.fullmatch(text):
        raise Invalid(Reason.DCC_BAD_BASE45, "a character outside the Base45 alphabet")
    try:
        return base45.b45decode(text)
    except (ValueError, TypeError) as e:
        raise Invalid(Reason.DCC_BAD_BASE45, "not Base45") from e


def _inflate(data: bytes) -> bytes:
    if data[:1] != b"\x78":  # no zlib header: an uncompressed COSE message
        return data
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as e:
        raise Invalid(Reason.DCC_BAD_COMPRESSION, "zlib stream is corrupt") from e
    if inflater.unconsumed_tail or not inflater.eof:
        raise Invalid(Reason.DCC_BAD_COMPRESSION, "zlib stream is truncated or too large")
    if inflater.unused_data:  # bytes nobody signed could otherwise ride along
        raise Invalid(Reason.DCC_BAD_COMPRESSION, f"{len(inflater.unused_data)} bytes after the zlib stream")
    return out


def _check_signer(sign1: Sign1, trust: TrustList, now: datetime) -> x509.Certificate:
    candidates = trust.certificates_for(sign1.kid) if sign1.kid is not None else ()
    if not candidates:
        raise Invalid(Reason.DCC_UNKNOWN_KID, f"kid {sign1.kid.hex() if sign1.kid else 'missing'}")
    signer = next((c for c in candidates if signature_valid(sign1, c.public_key())), None)
    if signer is None:
        raise Invalid(Reason.DCC_BAD_SIGNATURE, f"kid {sign1.kid.hex() if sign1.kid else ''}")
    if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
        raise Invalid(Reason.DCC_SIGNER_NOT_VALID, "document-signer certificate outside its validity")
    return signer


def _check_key_usage(signer: x509.Certificate, kind: str) -> None:
    try:
        oids = key_usages(signer)
    except ValueError as e:  # an extended key usage that cannot be read cannot grant a usage
        raise Invalid(Reason.DCC_KEY_USAGE_MISMATCH, "signer extended key usage unreadable") from e
    # A signer without any DCC usage OID (or with none at all) may sign every type, as the specification says.
    if oids and oids & ALL_KEY_USAGE_OIDS and not oids & KEY_USAGE_OIDS[kind]:
        raise Invalid(Reason.DCC_KEY_USAGE_MISMATCH, f"signer may not sign type {kind}")


def _schema_error(e: ValidationError) -> Invalid:
    return Invalid(Reason.DCC_SCHEMA_VIOLATION, describe_errors(e.errors()))


def _timestamp(claims: Mapping[Any, Any], key: int, name: str) -> datetime:
    value = claims.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Invalid(Reason.DCC_SCHEMA_VIOLATION, f"claim {name} missing or not a number")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise Invalid(Reason.DCC_SCHEMA_VIOLATION, f"claim {name} out of range") from e


def _claims(payload: bytes) -> Mapping[Any, Any]:
    claims = loads_exact(payload, "payload")
    if not isinstance(claims, Mapping):
        raise Invalid(Reason.DCC_BAD_COSE, "payload is not a CWT claims map")
    return claims


def _certificate(claims: Mapping[Any, Any]) -> HealthCertificate:
    hcert = claims.get(CLAIM_HCERT)
    body = hcert.get(HCERT_EU_DCC) if isinstance(hcert, Mapping) else None
    if not isinstance(body, Mapping):
        raise Invalid(Reason.DCC_SCHEMA_VIOLATION, "claim -260/1 missing")
    try:
        return HealthCertificate.model_validate(dict(body))
    except ValidationError as e:
        raise _schema_error(e) from e


def _issuer(claims: Mapping[Any, Any]) -> str:
    issuer = claims.get(CLAIM_ISSUER)
    if not isinstance(issuer, str):
        return ""
    if issuer and not is_plain_text(issuer):
        raise Invalid(Reason.DCC_SCHEMA_VIOLATION, "claim iss too long or has control characters")
    return issuer


def _check_times(issued_at: datetime, expires_at: datetime, now: datetime) -> None:
    # As the reference verifiers: valid up to and including the expiry second; an issue time
    # ahead of the kiosk's clock is forgiven within the skew, since that clock may lag.
    if now > expires_at:
        raise Invalid(Reason.DCC_EXPIRED, "exp: the CWT expiry has passed")
    if issued_at > now + CLOCK_SKEW:
        raise Invalid(Reason.DCC_NOT_YET_VALID, "iat: the CWT was issued more than 5 minutes in the future")


def parse_dcc(text: str, *, trust: TrustList | None, now: datetime) -> DccCard:
    """Decode and (with a trust list) verify a vaccine passport; raises Invalid with the first failure."""
    if not text.startswith(PREFIX):
        raise Invalid(Reason.DCC_BAD_PREFIX, "missing HC1: prefix")
    sign1 = decode_sign1(_inflate(_unbase45(text[len(PREFIX) :])))
    signer = _check_signer(sign1, trust, now) if trust is not None else None
    claims = _claims(sign1.payload)
    certificate = _certificate(claims)
    issuer = _issuer(claims)
    if signer is not None:
        _check_key_usage(signer, certificate.kind)
    issued_at = _timestamp(claims, CLAIM_ISSUED_AT, "iat")
    expires_at = _timestamp(claims, CLAIM_EXPIRY, "exp")
    _check_times(issued_at, expires_at, now)
    return DccCard(
        certificate=certificate,
        issuer=issuer,
        issued_at=issued_at,
        expires_at=expires_at,
        verified=signer is not None,
        kid=sign1.kid,
    )
