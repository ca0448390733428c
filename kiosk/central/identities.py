"""Central's side of card identities: open the sealed ones, store only central's keyed hash.

A schema-v2 event carries each identity of the card sealed to the authority
(kiosk.sealing). Central opens them with the sealing private key and stores
`"hmac:" + hex(HMAC-SHA256(hash key, UTF-8 identity))` under a hash key that
exists only at central, so the same person hashes the same whatever the venue
or card format, and nobody without that key can test guesses against the store.

Schema-v1 events (one identity hashed under the key every kiosk held) are
stored as they came during the change. `plain:` identities are refused unless
the event's destination is configured for them (and are then hashed like the
sealed ones).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kiosk import keys, sealing
from kiosk.errors import SignatureError
from kiosk.events import AnyEvent, ScanEventV1

HASH_KEY_BYTES = 32


class IdentityRefusedError(ValueError):
    """An event's identity that central will not store: `reason` is the reject's reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def central_hash(hash_key: bytes, identity: str) -> str:
    """Central's keyed hash of a card identity (format-independent)."""
    return "hmac:" + hmac.new(hash_key, identity.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class IdentityOpener:
    """Central's keys for identities: the sealing private key and its own hash key."""

    sealing_key: X25519PrivateKey = field(repr=False)
    hash_key: bytes = field(repr=False)
    plain_destinations: frozenset[str] = frozenset()

    @classmethod
    def from_files(
        cls, sealing_key: Path, hash_key: Path, plain_destinations: Iterable[str] = ()
    ) -> IdentityOpener:
        """Load both keys (each a 0600 file at central)."""
        return cls(
            sealing.load_authority_private_key(sealing_key),
            keys.load_identity_key(hash_key),
            frozenset(plain_destinations),
        )

    def stored(self, event: AnyEvent) -> tuple[str, ...]:
        """The identities to store for `event`, primary first; IdentityRefusedError if any is refused."""
        if isinstance(event, ScanEventV1):
            return self._v1(event)
        return tuple(self._one(event.device, event.destination, carried) for carried in event.identities)

    def hash(self, identity: str) -> str:
        """Central's keyed hash of a plain identity (for tracing a person)."""
        return central_hash(self.hash_key, identity)

    def _v1(self, event: ScanEventV1) -> tuple[str, ...]:
        if event.identity is None:
            return ()
        if event.identity.startswith(sealing.PLAIN_PREFIX):
            self._allow_plain(event.destination)
        return (event.identity,)

    def _one(self, device: str, destination: str, carried: str) -> str:
        if carried.startswith(sealing.PLAIN_PREFIX):
            self._allow_plain(destination)
            return self.hash(carried[len(sealing.PLAIN_PREFIX) :])
        try:
            return self.hash(sealing.open_sealed(self.sealing_key, device, carried))
        except SignatureError as e:
            raise IdentityRefusedError("unopenable_identity", str(e)) from e

    def _allow_plain(self, destination: str) -> None:
        if destination not in self.plain_destinations:
            raise IdentityRefusedError(
                "plain_identity",
                f"{destination} is not configured for plain identities (ingest --plain-destination)",
            )


def without_opener(event: AnyEvent) -> tuple[str, ...]:
    """The identities of an event when central has no sealing key: none may be sealed or plain."""
    if isinstance(event, ScanEventV1):
        if event.identity is not None and event.identity.startswith(sealing.PLAIN_PREFIX):
            raise IdentityRefusedError(
                "plain_identity", f"{event.destination} is not configured for plain identities"
            )
        return () if event.identity is None else (event.identity,)
    if event.identities:
        raise IdentityRefusedError(
            "unopenable_identity",
            "central has no sealing key: start the ingest with --sealing-key and --hash-key",
        )
    return ()
