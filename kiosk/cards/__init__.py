"""What the kiosk reads: QR payload bytes in, a Card or a Rejection out, never an exception.

Formats: the national personal QR (`national`), the citizen identity card QR
(`cccd`) and the vaccine passport (`dcc`); old venue posters and anything else
are rejected with their own reason codes. `read_payload` is the one entry for
the scan loop: it also reads the authority's inspector cards (`inspector`,
kiosk.cards.inspector), whose rejections carry the format `inspector`.
See docs/cards.md.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kiosk.cards.base import Card, CardFormat, FormatGuess, Invalid, Rejection
from kiosk.cards.cccd import CccdCard, parse_cccd
from kiosk.cards.dcc import PREFIX as DCC_PREFIX
from kiosk.cards.dcc import DccCard, parse_dcc
from kiosk.cards.dcc_schema import DiagnosticTest, HealthCertificate, Recovery, Vaccination
from kiosk.cards.inspector import InspectorCard, is_inspector_payload, parse_inspector_card
from kiosk.cards.national import NationalCard, parse_national
from kiosk.cards.poster import is_venue_poster
from kiosk.reasons import Reason

if TYPE_CHECKING:
    from kiosk.statuslist import KeySource
    from kiosk.trustlist import TrustList

__all__ = [
    "MAX_ALPHANUMERIC",
    "MAX_BYTES",
    "Card",
    "CardFormat",
    "CccdCard",
    "DccCard",
    "DiagnosticTest",
    "HealthCertificate",
    "InspectorCard",
    "NationalCard",
    "Recovery",
    "Rejection",
    "Vaccination",
    "parse_card",
    "read_payload",
]

log = logging.getLogger(__name__)

# The most a version-40 QR code holds at error-correction level L.
MAX_BYTES = 2953
MAX_ALPHANUMERIC = 4296
_ALPHANUMERIC = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
_NATIONAL_BIRTH = re.compile(r"[0-9*]{4}-")
_CCCD_ID = re.compile(r"[0-9]{12}")
_CCCD_DATE = re.compile(r"[0-9]{8}")
# Something that means to be a health certificate but has the wrong context prefix.
_DCC_LOOKALIKE = re.compile(r"HC[0-9]+:", re.IGNORECASE)


def _too_long(data: bytes) -> bool:
    if len(data) > MAX_ALPHANUMERIC:
        return True
    return len(data) > MAX_BYTES and not _ALPHANUMERIC.issuperset(data)


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(Reason.UNRECOGNISED, "not UTF-8 text") from e
    # Some decoders hand back a byte-order mark or the line end of a printed code.
    return text.removeprefix("\ufeff").rstrip("\r\n")


def _looks_cccd(fields: list[str]) -> bool:
    return bool(_CCCD_ID.fullmatch(fields[0]) or (len(fields) == 7 and _CCCD_DATE.fullmatch(fields[3])))


def _parse_fields(text: str, now: datetime) -> Card:
    fields = text.split("|")
    # The national birth date is the only field of either format written with dashes.
    if len(fields) > 2 and (_NATIONAL_BIRTH.match(fields[2]) or (len(fields) == 6 and "-" in fields[2])):
        return parse_national(text, now=now)
    if _looks_cccd(fields):
        return parse_cccd(text, now=now)
    if len(fields) == 6:
        return parse_national(text, now=now)
    raise Invalid(Reason.UNRECOGNISED, f"{len(fields)} '|'-separated fields")


def _parse(data: bytes, trust: TrustList | None, now: datetime) -> Card:
    if _too_long(data):
        raise Invalid(Reason.TOO_LONG, f"{len(data)} bytes")
    text = _text(data)
    if text.startswith(DCC_PREFIX):
        return parse_dcc(text, trust=trust, now=now)
    if _DCC_LOOKALIKE.match(text):
        raise Invalid(Reason.DCC_BAD_PREFIX, f"prefix {text.split(':', 1)[0][:8]!r}")
    if is_venue_poster(text):
        raise Invalid(Reason.OLD_VENUE_QR, "URL or venue code")
    if "|" in text:
        return _parse_fields(text, now)
    raise Invalid(Reason.UNRECOGNISED, "no known shape")


def _guess(reason: Reason) -> FormatGuess:
    for prefix, guess in (("national", "national"), ("cccd", "cccd"), ("dcc", "dcc")):
        if reason.value.startswith(prefix):
            return guess  # type: ignore[return-value]
    return "poster" if reason is Reason.OLD_VENUE_QR else "unknown"


def parse_card(data: bytes, *, trust: TrustList | None, now: datetime) -> Card | Rejection:
    """Read one QR payload: a validated Card, or a Rejection with its reason code; never raises."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        return _parse(bytes(data), trust, now)
    except Invalid as e:
        return Rejection(reason=e.reason, detail=e.detail, format=_guess(e.reason))
    except Exception as e:
        log.exception("card parser failed on a %d-byte payload", len(data))
        return Rejection(reason=Reason.INTERNAL_ERROR, detail=type(e).__name__)


def read_payload(
    data: bytes,
    *,
    trust: TrustList | None,
    authority_keys: KeySource | None,
    now: datetime,
    clock_synced: bool = True,
) -> Card | InspectorCard | Rejection:
    """Read any QR payload a kiosk meets: a person's card or an inspector card; never raises.

    Inspector cards are verified with `authority_keys` (None: refused as signed by an unknown key).
    """
    if is_inspector_payload(data):
        keys = authority_keys if authority_keys is not None else {}
        return parse_inspector_card(data, keys=keys, now=now, clock_synced=clock_synced)
    return parse_card(data, trust=trust, now=now)
