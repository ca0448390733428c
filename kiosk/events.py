"""Scan events (schema v2; v1 still read): the value objects, signing and verifying.

An event is the UTF-8 JSON (compact separators, fields in schema order) of a
`ScanEvent`, signed by the device's Ed25519 key as a compact JWS with header
{"alg":"EdDSA","kid":<device id>,"typ":"kiosk-event"}. docs/events.md documents
every field and carries a worked example that any JOSE library can check.

Privacy: a v2 event carries every identity of the card sealed to the authority
(kiosk.sealing: HPKE, a fresh ciphertext each time) unless plain text is
configured; names, addresses and phone numbers are never part of it. Schema v1
(one identity, HMAC-SHA256 under a key every kiosk held) is still accepted by
central while kiosks are upgraded; kiosks write only v2.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Annotated, Literal, Self, TypeGuard

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kiosk import __version__, jws, keys, safejson
from kiosk.errors import EventError, SignatureError, UnsafeJSONError
from kiosk.eventkinds import no_qr_error, pair_error
from kiosk.sealing import Sealer
from kiosk.topics import ID_PATTERN

SCHEMA_VERSION: Literal[2] = 2
ACK_VERSION: Literal[1] = 1
MAX_IDENTITIES = 2  # the cards read today carry at most two: a QID and an id number, or a CCCD's two
EVENT_TYP = "kiosk-event"

Kind = Literal["scan", "inspection", "no_qr"]
Direction = Literal["in", "out"]
Verdict = Literal["pass", "fail"]
CardFormat = Literal["national", "cccd", "dcc", "poster", "inspector", "unknown"]

UUID4_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
IDENTITY_PATTERN = r"^(hmac:[0-9a-f]{64}|plain:[^\x00-\x1f\x7f]{1,128})$"
# "hpke:" + base64url of enc (32) || ciphertext (1 to 512 bytes of identity + 16 of tag)
SEALED_IDENTITY_PATTERN = r"^(hpke:[A-Za-z0-9_-]{66,747}|plain:[^\x00-\x1f\x7f]{1,128})$"
EventIdentity = Annotated[str, Field(pattern=SEALED_IDENTITY_PATTERN)]
SW_PATTERN = r"^[\x21-\x7e]{1,32}$"

# Every integer of the wire protocol lies in [0, 2**53 - 1]: exact in any JSON parser
# (RFC 7493, I-JSON) and in a signed 64-bit database column.
MAX_INT = 2**53 - 1
MAX_EVENT_PAYLOAD_BYTES = 3072  # the largest possible v2 event is about 2,600 bytes
MAX_EVENT_TOKEN_BYTES = 4400  # base64url of the largest payload, header and signature
MAX_ACK_BYTES = 256 * 1024
WireInt = Annotated[int, Field(ge=0, le=MAX_INT)]

# The fields both schema versions carry, each declared once; a version's class lists them in its
# own order, which is the order of its signed JSON.
EventId = Annotated[str, Field(pattern=UUID4_PATTERN, description="Random event id (UUID 4).")]
EventKind = Annotated[Kind, Field(description="A card scan, an inspector's check, or a person without a QR.")]
DeviceId = Annotated[str, Field(pattern=ID_PATTERN, description="Device id; also the signature's kid.")]
DestinationId = Annotated[str, Field(pattern=ID_PATTERN, description="Destination (venue) id.")]
Epoch = Annotated[int, Field(ge=0, le=MAX_INT, description="UTC ms at which the spool or key was created.")]
Seq = Annotated[int, Field(ge=1, le=MAX_INT, description="Per-device sequence number within the epoch.")]
DecisionTime = Annotated[int, Field(ge=0, le=MAX_INT, description="Time of the decision, UTC ms since 1970.")]
ClockSynced = Annotated[bool, Field(description="Whether the clock was synchronised when `ts` was read.")]
EventDirection = Annotated[Direction | None, Field(description="Entry, exit, or none (e.g. a refused card).")]
EventVerdict = Annotated[Verdict, Field(description="Whether the person was let through.")]
ReasonCode = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$", description="Reason code of the decision.")]
EventFormat = Annotated[CardFormat, Field(description="Which kind of card was read.")]
Software = Annotated[
    str, Field(pattern=SW_PATTERN, description="Software version of the kiosk (printable ASCII).")
]
DecodeMs = Annotated[float, Field(ge=0, le=3_600_000, description="Time to decode the QR, milliseconds.")]


class _SignedEvent(BaseModel):
    """What every schema version of an event shares: the kind/format rules, the signed bytes, the key.

    It declares no fields (each version's own order is the signed JSON's), only what uses them.
    """

    if TYPE_CHECKING:
        kind: Kind
        direction: Direction | None
        format: CardFormat
        verdict: Verdict
        reason: str
        device: str
        epoch: int
        seq: int

        @property
        def identity(self) -> str | None: ...

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        # Only a visitor's scan has a direction; the kinds and formats that exist are one table.
        if self.kind != "scan" and self.direction is not None:
            raise ValueError(f"a {self.kind} event has no direction")
        error = pair_error(self.kind, self.format, self.verdict, self.identity) or no_qr_error(
            self.kind, self.reason, self.format, self.verdict, self.direction, self.identity
        )
        if error is not None:
            raise ValueError(error)
        return self

    def to_json(self) -> bytes:
        """The exact payload bytes that are signed: compact UTF-8 JSON in schema order."""
        data = self.model_dump(mode="json")
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @property
    def key(self) -> tuple[str, int, int]:
        """The de-duplication key (device, epoch, seq)."""
        return (self.device, self.epoch, self.seq)


class ScanEvent(_SignedEvent):
    """One decision of one kiosk, as published (schema v2); frozen and validated when built."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[2] = Field(SCHEMA_VERSION, description="Schema version.")
    id: EventId
    kind: EventKind
    device: DeviceId
    destination: DestinationId
    epoch: Epoch
    seq: Seq
    ts: DecisionTime
    clock_synced: ClockSynced
    direction: EventDirection
    verdict: EventVerdict
    reason: ReasonCode
    format: EventFormat
    identities: tuple[EventIdentity, ...] = Field(
        max_length=MAX_IDENTITIES,
        description='Every identity of the card, primary first: "hpke:"+sealed or "plain:"+id.',
    )
    sw: Software
    decode_ms: DecodeMs

    @property
    def identity(self) -> str | None:
        """The primary identity as carried (sealed or plain), or None."""
        return self.identities[0] if self.identities else None


class ScanEventV1(_SignedEvent):
    """A schema-v1 event (one identity, hashed under a key every kiosk held): read during the change."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = Field(1, description="Schema version.")
    id: EventId
    kind: EventKind
    device: DeviceId
    destination: DestinationId
    epoch: Epoch
    seq: Seq
    ts: DecisionTime
    clock_synced: ClockSynced
    direction: EventDirection
    verdict: EventVerdict
    reason: ReasonCode
    format: EventFormat
    identity: str | None = Field(
        pattern=IDENTITY_PATTERN, description='"hmac:"+64 hex, "plain:"+id, or none.'
    )
    sw: Software
    decode_ms: DecodeMs


class EventDraft(BaseModel):
    """The decision-dependent part of an event, before the spool gives it a seq and signs it.

    `card_identities` are the card's plain identities (QID, id number, UVCI), primary
    first; `card_identity` alone stands for one. They are sealed (or marked plain)
    when the event is built and never stored as given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind = "scan"
    verdict: Verdict
    reason: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    format: CardFormat = "unknown"
    direction: Direction | None = None
    card_identity: str | None = Field(None, min_length=1, max_length=128, repr=False)
    card_identities: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = Field(
        (), max_length=MAX_IDENTITIES, repr=False
    )
    ts: int = Field(ge=0, le=MAX_INT, description="UTC ms since 1970.")
    clock_synced: bool = True
    decode_ms: float = Field(0.0, ge=0, le=3_600_000)
    # A person without a card: their anonymous presence key, kept by the spool (to rebuild who is
    # inside after a restart) and never part of the event.
    presence_key: str | None = Field(None, pattern=r"^anon:[0-9a-f]{32}$", repr=False)

    def all_identities(self) -> tuple[str, ...]:
        """The card's identities, primary first, each once."""
        given = self.card_identities or ((self.card_identity,) if self.card_identity else ())
        return tuple(dict.fromkeys(given))


def hash_identity(identity_key: bytes, card_format: str, card_identity: str) -> str:
    """Schema v1's identity: `"hmac:"` + hex HMAC-SHA256(identity key, UTF-8 of f"{format}:{identity}")."""
    message = f"{card_format}:{card_identity}".encode()
    return "hmac:" + hmac.new(identity_key, message, hashlib.sha256).hexdigest()


def build_event(
    draft: EventDraft,
    *,
    device: str,
    destination: str,
    epoch: int,
    seq: int,
    sealer: Sealer,
    event_id: str | None = None,
    sw: str = __version__,
) -> ScanEvent:
    """Make the full event from a draft and the numbers the spool allocated; identities are sealed here."""
    return ScanEvent(
        id=event_id or str(uuid.uuid4()),
        kind=draft.kind,
        device=device,
        destination=destination,
        epoch=epoch,
        seq=seq,
        ts=draft.ts,
        clock_synced=draft.clock_synced,
        direction=draft.direction,
        verdict=draft.verdict,
        reason=draft.reason,
        format=draft.format,
        identities=tuple(sealer.event_identity(device, i) for i in draft.all_identities()),
        sw=sw,
        decode_ms=round(float(draft.decode_ms), 3),
    )


def sign_event(event: ScanEvent, key: Ed25519PrivateKey) -> bytes:
    """The event as a compact JWS (ASCII bytes), signed by the device key, kid = device id."""
    return jws.sign(event.to_json(), key, kid=event.device, typ=EVENT_TYP)


AnyEvent = ScanEvent | ScanEventV1


def verify_event(token: bytes | str, public_keys: jws.KeyLookup | Ed25519PublicKey) -> AnyEvent:
    """Check a token's signature, then parse its payload as a schema-v2 (or v1) event.

    `public_keys` is the device's public key or a function from device id to key.
    Raises SignatureError (bad token or signature) or EventError (a signed
    payload that is not a valid event, or whose device is not the signer).
    """
    if len(token) > MAX_EVENT_TOKEN_BYTES:
        raise SignatureError(f"event token of {len(token)} bytes is larger than {MAX_EVENT_TOKEN_BYTES}")
    verified = jws.verify(token, public_keys)
    if verified.header.get("typ") != EVENT_TYP:
        raise SignatureError(f"token typ must be {EVENT_TYP!r}, not {verified.header.get('typ')!r}")
    try:
        event = parse_event(verified.payload)
    except EventError as e:
        raise EventError(str(e), signed=_signed_place(verified)) from e
    if event.device != verified.kid:
        raise EventError(
            f"event names device {event.device!r} but was signed by {verified.kid!r}",
            signed=_signed_place(verified),
        )
    return event


def _signed_place(verified: jws.Verified) -> tuple[str, int, int] | None:
    """(signer, epoch, seq) of a signed payload that is not a valid event, when it names them in bounds."""
    try:
        data = safejson.loads(verified.payload, max_bytes=MAX_EVENT_PAYLOAD_BYTES, max_depth=2)
    except UnsafeJSONError:
        return None
    if not isinstance(data, dict):
        return None
    epoch, seq = data.get("epoch"), data.get("seq")
    if not (_wire_int(epoch) and _wire_int(seq) and seq >= 1):
        return None
    return (verified.kid, epoch, seq)


def _wire_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT


def parse_event(payload: bytes) -> AnyEvent:
    """Parse payload bytes (already verified) as a schema-v2 or v1 event (by `v`); raise EventError.

    Every field is required, `v` included; unknown fields, repeated keys and
    integers outside [0, 2**53 - 1] are refused.
    """
    try:
        data = safejson.loads(payload, max_bytes=MAX_EVENT_PAYLOAD_BYTES, max_depth=2)
    except UnsafeJSONError as e:
        raise EventError(f"signed payload is not a valid event: {e}") from e
    version = data.get("v") if isinstance(data, dict) else None
    model: type[AnyEvent] = ScanEventV1 if version == 1 and type(version) is int else ScanEvent
    name = f"schema-v{1 if model is ScanEventV1 else SCHEMA_VERSION} event"
    missing = [field for field in model.model_fields if not isinstance(data, dict) or field not in data]
    if missing:
        raise EventError(f"signed payload is not a valid {name}: missing {', '.join(missing)}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'payload'}: {err['msg']}" for err in e.errors()
        )
        raise EventError(f"signed payload is not a valid {name}: {problems}") from e


ACK_TYP = "kiosk-ack"
MAX_RESEND_RANGES = 1000


class Ack(BaseModel):
    """Central's receipt for one device: per epoch, the highest seq up to which it stores every event."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = Field(ACK_VERSION, description="Schema version.")
    device: str = Field(pattern=ID_PATTERN, description="The device this ack is for.")
    epochs: dict[Annotated[str, Field(pattern=r"^[0-9]{1,16}$")], WireInt] = Field(
        description='"<epoch>" -> highest seq such that every seq <= it is stored.',
    )
    resend: list[tuple[WireInt, WireInt, WireInt]] = Field(
        default_factory=list,
        max_length=MAX_RESEND_RANGES,
        description="[epoch, first_seq, last_seq] ranges central asks to be sent again.",
    )
    ts: int = Field(ge=0, le=MAX_INT, description="When central wrote the ack, UTC ms.")

    def acked(self) -> dict[int, int]:
        """The epochs as integers; raises EventError on a key that is not one."""
        try:
            return {int(epoch): seq for epoch, seq in self.epochs.items()}
        except ValueError as e:
            raise EventError(f"ack epochs must be integers: {e}") from e

    def to_json(self) -> bytes:
        """The exact payload bytes that are signed (compact JSON)."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":")).encode()


def sign_ack(ack: Ack, key: Ed25519PrivateKey) -> bytes:
    """The ack as a compact JWS signed by an authority key (kid = the key's thumbprint)."""
    return jws.sign(ack.to_json(), key, kid=keys.thumbprint(key.public_key()), typ=ACK_TYP)


def verify_ack(token: bytes | str, authority_keys: jws.KeyLookup | Ed25519PublicKey) -> Ack:
    """Check an ack's signature (authority keys), then parse it; raise SignatureError/EventError."""
    verified = jws.verify(token, authority_keys)
    if verified.header.get("typ") != ACK_TYP:
        raise SignatureError(f"token typ must be {ACK_TYP!r}, not {verified.header.get('typ')!r}")
    try:
        ack = safejson.validate(Ack, verified.payload, max_bytes=MAX_ACK_BYTES, max_depth=3)
    except UnsafeJSONError as e:
        raise EventError(f"signed payload is not a valid ack: {e}") from e
    except ValidationError as e:
        raise EventError(f"signed payload is not a valid ack: {e.error_count()} problem(s): {e}") from e
    ack.acked()
    return ack
