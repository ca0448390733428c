"""Inspector cards: an inspector's identity, signed by the authority, that opens a venue check.

QR text: `KIOSK-INSPECTOR:` + a compact JWS (kiosk.jws, typ `kiosk-inspector`,
kid = the authority key's RFC 7638 thumbprint) over compact UTF-8 JSON
`{"v":1,"inspector":ID,"name":NAME,"nbf":SECONDS,"exp":SECONDS}` (`name` may be
left out). A card is about 250 characters: a QR code a phone camera reads at
arm's length. docs/cards.md documents the format.

`parse_inspector_card` is total like the card parsers: any bytes give an
`InspectorCard` or a `Rejection` with an `inspector_card_*` reason, never an
exception. The signature is checked before the payload is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kiosk import jws, safejson
from kiosk.cards.base import Rejection
from kiosk.cards.masking import mask_name
from kiosk.errors import InspectorCardError, SignatureError, UnsafeJSONError
from kiosk.keys import thumbprint
from kiosk.reasons import Reason
from kiosk.statuslist import KeySource

log = logging.getLogger(__name__)

PREFIX = "KIOSK-INSPECTOR:"
TYP = "kiosk-inspector"
FORMAT_VERSION = 1
# A real card is ~250 bytes; the cap keeps hostile input away from the JSON parser.
MAX_BYTES = 1024
# A card made "from now" must open a kiosk whose clock runs a little behind the authority's.
CLOCK_SKEW = timedelta(minutes=5)
INSPECTOR_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_MAX_CHARS = 64
_MAX_SECONDS = 1 << 40  # far beyond any real date, well inside datetime's range


class _Claims(BaseModel):
    """The signed JSON of a card."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = 1
    inspector: str = Field(pattern=INSPECTOR_ID_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$")
    nbf: int = Field(ge=0, lt=_MAX_SECONDS)
    exp: int = Field(ge=0, lt=_MAX_SECONDS)

    @model_validator(mode="after")
    def _ordered(self) -> _Claims:
        if self.exp <= self.nbf:
            raise ValueError("exp must be after nbf")
        return self


@dataclass(frozen=True, kw_only=True)
class InspectorCard:
    """A verified inspector card: who, from when until when, and which authority key signed it."""

    format: ClassVar[Literal["inspector"]] = "inspector"
    inspector: str
    name: str | None
    valid_from: datetime
    valid_until: datetime
    kid: str

    @property
    def identity(self) -> str:
        """The inspector id (what the inspection event records, hashed like any identity)."""
        return self.inspector

    @property
    def display_name(self) -> str:
        """What the inspection screen shows: the name the authority gave, else the inspector id."""
        return f"{self.name} ({self.inspector})" if self.name else self.inspector

    @property
    def masked_name(self) -> str:
        """The name masked as a person's would be, for logs."""
        return mask_name(self.name or "")

    def masked_fields(self) -> dict[str, str]:
        """Fields for display (an inspector id is an official's badge number, not private)."""
        return {
            "format": self.format,
            "inspector": self.inspector,
            "name": self.masked_name,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "kid": self.kid,
        }


class _Refused(Exception):  # noqa: N818 - internal control flow, becomes a Rejection at the edge
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- making a card


def make_inspector_payload(
    key: Ed25519PrivateKey,
    *,
    inspector: str,
    valid_from: datetime,
    valid_until: datetime,
    name: str | None = None,
) -> str:
    """The QR text of a card signed by the authority `key`; raises InspectorCardError."""
    for moment in (valid_from, valid_until):
        if moment.tzinfo is None:
            raise InspectorCardError(f"{moment.isoformat()} needs a time zone, e.g. +07:00")
    if valid_until <= valid_from:
        raise InspectorCardError(
            f"the card would end ({valid_until.isoformat()}) before it starts ({valid_from.isoformat()})"
        )
    name = " ".join(name.split()) if name else None
    try:
        claims = _Claims(
            inspector=inspector,
            name=name or None,
            nbf=int(valid_from.timestamp()),
            exp=int(valid_until.timestamp()),
        )
    except ValidationError as e:
        raise InspectorCardError(f"cannot make the inspector card: {_first_error(e)}") from e
    payload = json.dumps(claims.model_dump(exclude_none=True), separators=(",", ":"), ensure_ascii=False)
    token = jws.sign(payload.encode("utf-8"), key, kid=thumbprint(key.public_key()), typ=TYP)
    return PREFIX + token.decode("ascii")


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "payload"
    hints = {
        "inspector": " (1-64 letters, digits, '.', '_' or '-')",
        "name": f" (1-{NAME_MAX_CHARS} characters, none of them control characters)",
    }
    return f"{where}: {err['msg']}{hints.get(where, '')}"


# ---------------------------------------------------------------- reading a card


def _clean(data: bytes) -> bytes:
    # Some decoders hand back a byte-order mark or the line end of a printed code.
    return data.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")


def is_inspector_payload(data: bytes) -> bool:
    """Whether a QR payload claims to be an inspector card (its prefix; nothing is verified)."""
    return _clean(bytes(data)).startswith(PREFIX.encode("ascii"))


def parse_inspector_card(
    data: bytes, *, keys: KeySource, now: datetime, clock_synced: bool = True
) -> InspectorCard | Rejection:
    """Verify an inspector card: an InspectorCard, or a Rejection with its reason; never raises.

    `keys` are the authority's public keys: a mapping thumbprint -> key, one key,
    or a lookup function. With `clock_synced=False` a card that seems not yet
    valid is accepted (the kiosk's clock is the likelier culprit); expiry still counts.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        return _parse(_clean(bytes(data)), keys, now, clock_synced)
    except _Refused as e:
        return Rejection(reason=e.reason, detail=e.detail, format="inspector")
    except Exception as e:
        log.exception("inspector card parser failed on a %d-byte payload", len(data))
        return Rejection(reason=Reason.INTERNAL_ERROR, detail=type(e).__name__, format="inspector")


def _parse(data: bytes, keys: KeySource, now: datetime, clock_synced: bool) -> InspectorCard:
    if not data.startswith(PREFIX.encode("ascii")):
        raise _Refused(Reason.INSPECTOR_CARD_INVALID, f"no {PREFIX} prefix")
    if len(data) > MAX_BYTES:
        raise _Refused(Reason.INSPECTOR_CARD_INVALID, f"{len(data)} bytes, more than {MAX_BYTES}")
    verified = _verify(data[len(PREFIX) :], keys)
    if verified.header.get("typ") != TYP:
        raise _Refused(Reason.INSPECTOR_CARD_INVALID, f"typ is not {TYP!r}")
    card = _card(verified)
    _check_time(card, now, clock_synced)
    return card


def _lookup(keys: KeySource) -> Callable[[str], Ed25519PublicKey | None]:
    if isinstance(keys, Ed25519PublicKey):
        # One key still has to be the one the card names: kid = its thumbprint.
        return {thumbprint(keys): keys}.get
    if isinstance(keys, Mapping):
        return keys.get
    return keys


def _verify(token: bytes, keys: KeySource) -> jws.Verified:
    lookup, unknown = _lookup(keys), []

    def find(kid: str) -> Ed25519PublicKey | None:
        key = lookup(kid)
        if key is None:
            unknown.append(kid)
        return key

    try:
        return jws.verify(token, find)
    except SignatureError as e:
        reason = Reason.INSPECTOR_CARD_UNKNOWN_KEY if unknown else Reason.INSPECTOR_CARD_INVALID
        raise _Refused(reason, str(e)) from e
    except (ValueError, TypeError, KeyError) as e:  # e.g. an odd header value
        raise _Refused(Reason.INSPECTOR_CARD_INVALID, f"not a JWS token ({type(e).__name__})") from e


def _card(verified: jws.Verified) -> InspectorCard:
    try:
        claims = safejson.validate(_Claims, verified.payload, max_bytes=16 * 1024, max_depth=2)
    except UnsafeJSONError as e:
        raise _Refused(Reason.INSPECTOR_CARD_INVALID, f"signed payload: {e}") from e
    except ValidationError as e:
        raise _Refused(Reason.INSPECTOR_CARD_INVALID, f"signed payload: {_first_error(e)}") from e
    return InspectorCard(
        inspector=claims.inspector,
        name=claims.name,
        valid_from=datetime.fromtimestamp(claims.nbf, UTC),
        valid_until=datetime.fromtimestamp(claims.exp, UTC),
        kid=verified.kid,
    )


def _check_time(card: InspectorCard, now: datetime, clock_synced: bool) -> None:
    if now >= card.valid_until:
        raise _Refused(Reason.INSPECTOR_CARD_EXPIRED, f"expired {card.valid_until.isoformat()}")
    if clock_synced and now < card.valid_from - CLOCK_SKEW:
        raise _Refused(Reason.INSPECTOR_CARD_EXPIRED, f"not valid before {card.valid_from.isoformat()}")
