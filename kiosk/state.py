"""The retained state message on the wire (docs/events.md, "State"): signed by the device, verified first.

Protocol core, shared by both sides: the kiosk builds the state's JSON
(`kiosk.health.state_message`) and signs it here before the uplink publishes it;
central verifies it here against its registry before it reads a field. A state is
the compact UTF-8 JSON `{"status","device","destination","ts",...health}` signed as
a compact JWS (`kiosk.jws`) with header {"alg":"EdDSA","kid":<device id>,
"typ":"kiosk-state"}. The broker's will `offline` is fixed (and signed) when the
kiosk connects, so it alone carries no `ts`: central stamps it with the time it
arrives. A state that names a time-less `online` or `stopped` is refused, since
whoever kept a copy could replay it as "now" for ever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeGuard

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import jws, safejson
from kiosk.errors import SignatureError, StateError, UnsafeJSONError
from kiosk.events import MAX_INT
from kiosk.topics import ID_PATTERN

Status = Literal["online", "stopped", "offline"]
STATUSES: tuple[Status, ...] = ("online", "stopped", "offline")
STATE_TYP = "kiosk-state"
MAX_STATE_BYTES = 64 * 1024  # the payload's JSON
MAX_STATE_DEPTH = 4
ED25519_SIGNATURE_BYTES = 64
_ID = re.compile(ID_PATTERN)


def _b64_length(size: int) -> int:
    """Characters of unpadded base64url for `size` bytes."""
    return (size * 4 + 2) // 3


MAX_PAYLOAD_SEGMENT = _b64_length(MAX_STATE_BYTES)
# The largest token a valid state can be: the header segment jws accepts, the payload and signature
# segments, and two dots.
MAX_STATE_TOKEN_BYTES = jws.MAX_HEADER_BYTES + MAX_PAYLOAD_SEGMENT + _b64_length(ED25519_SIGNATURE_BYTES) + 2


@dataclass(frozen=True)
class SignedState:
    """A state whose device signature verified: its fields, and its JSON exactly as signed."""

    status: Status
    device: str
    destination: str
    ts: int | None  # None only for the will `offline`
    payload: bytes

    @property
    def text(self) -> str:
        """The state's JSON as text (it is UTF-8: the parser checked)."""
        return self.payload.decode("utf-8")


def sign_state(payload: bytes, key: Ed25519PrivateKey, *, device: str) -> bytes:
    """The state's JSON as a compact JWS (ASCII bytes), signed by the device key, kid = device id."""
    return jws.sign(payload, key, kid=device, typ=STATE_TYP)


def verify_state(token: bytes, keys: jws.KeyLookup | Ed25519PublicKey) -> SignedState:
    """Check a state token's bounds, then its signature, then parse its payload.

    The cheap bounds (size, ASCII, the three segments' lengths) come before any
    key is looked up or signature checked. Raises StateError (a bound broken, or a
    signed payload that is not a valid state) or SignatureError (not a JWS, unknown
    or revoked key, a bad signature, wrong typ, or signed by another device than it names).
    """
    _check_bounds(token)
    verified = jws.verify(token, keys)
    if verified.header.get("typ") != STATE_TYP:
        raise SignatureError(f"token typ must be {STATE_TYP!r}, not {verified.header.get('typ')!r}")
    state = parse_state(verified.payload)
    if state.device != verified.kid:
        raise SignatureError(f"state names device {state.device!r} but was signed by {verified.kid!r}")
    return state


def _check_bounds(token: bytes) -> None:
    if len(token) > MAX_STATE_TOKEN_BYTES:
        raise StateError(f"state of {len(token)} bytes is larger than {MAX_STATE_TOKEN_BYTES}")
    if not token.isascii():
        raise StateError("state is not a signed token: it holds bytes other than ASCII")
    parts = token.split(b".")
    if len(parts) == 3 and len(parts[1]) > MAX_PAYLOAD_SEGMENT:
        raise StateError(f"state payload is larger than {MAX_STATE_BYTES} bytes")


def parse_state(payload: bytes) -> SignedState:
    """Parse a verified state payload; raise StateError on anything but a valid state.

    UTF-8 JSON of at most 64 KiB, nested at most 4 deep, no repeated key; an object
    with a known `status`, a `device` and `destination` id, and a `ts` in [0, 2**53 - 1]
    (UTC ms) that only the will `offline` may leave out.
    """
    try:
        data = safejson.loads(payload, max_bytes=MAX_STATE_BYTES, max_depth=MAX_STATE_DEPTH)
    except UnsafeJSONError as e:
        raise StateError(f"state is not acceptable JSON: {e}") from e
    if not isinstance(data, dict) or not _status(data.get("status")):
        raise StateError(f"state must be a JSON object with status one of {STATUSES}")
    device, destination, ts = data.get("device"), data.get("destination"), data.get("ts")
    if not (_id(device) and _id(destination)):
        raise StateError("state must name its device and destination (ids of the topic's form)")
    if ts is None and data["status"] != "offline":
        raise StateError(f"a {data['status']} state must carry its ts (only the will offline has none)")
    if ts is not None and not _wire_int(ts):
        raise StateError(f"state ts must be an integer in [0, {MAX_INT}] (UTC ms)")
    return SignedState(data["status"], device, destination, ts, payload)


def _status(value: object) -> TypeGuard[Status]:
    return isinstance(value, str) and value in STATUSES


def _id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _wire_int(value: object) -> TypeGuard[int]:
    return type(value) is int and 0 <= value <= MAX_INT
