"""Test devices that sign real scan events and states, and a store fixture run on SQLite and PostgreSQL.

from tests.support import central as central_support
store_url = central_support.store_url  # parametrized: sqlite, postgresql
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kiosk import keys, sealing
from kiosk.central.identities import IdentityOpener
from kiosk.events import EventDraft, ScanEvent, build_event, sign_event
from kiosk.sealing import Sealer
from kiosk.state import sign_state

IDENTITY_KEY = bytes(range(32))  # schema v1's shared key, for the events of old kiosks
SEALING_KEY = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))  # the authority's, at central
HASH_KEY = bytes(range(64, 96))  # central's own
SEALER = Sealer(SEALING_KEY.public_key(), destination_key=bytes(range(96, 128)))
OPENER = IdentityOpener(SEALING_KEY, HASH_KEY)


def write_kiosk_keys(state: Path) -> None:
    """What provisioning gives a kiosk for identities: its venue's key and the authority's sealing key."""
    state.mkdir(parents=True, exist_ok=True)
    keys.write_secret(state / "destination.key", SEALER.destination_key, overwrite=True)
    (state / "authority-seal.pem").write_text(sealing.public_pem(SEALING_KEY.public_key()))


@dataclass(frozen=True)
class TestDevice:
    """A provisioned kiosk: an id, a destination, an Ed25519 key."""

    __test__ = False  # not a test class, despite the name

    device: str
    destination: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    epoch: int = 1_700_000_000_000
    mode: str = "kiosk"  # "inspector": a street inspector's handheld

    def registration(self) -> dict[str, Any]:
        """The record `kiosk provision` prints for this device."""
        public = self.key.public_key()
        return {
            "device": self.device,
            "destination": self.destination,
            "public_key": keys.public_pem(public),
            "jwk": keys.public_jwk(public),
            "fingerprint": keys.thumbprint(public),
            "software": "0.1.0",
            "created": "2026-11-01T00:00:00Z",
            "mode": self.mode,
        }

    def write_registration(self, folder: Path) -> Path:
        """The registration record as a file."""
        path = folder / f"{self.device}.json"
        path.write_text(json.dumps(self.registration()))
        return path

    def event(self, seq: int, ts: int = 1_780_000_000_000, **draft: Any) -> ScanEvent:
        """A scan event (pass, national card, no identity unless given)."""
        card = draft.pop("card", None)
        values = {"verdict": "pass", "reason": "ok", "format": "national", "direction": "in", **draft}
        values.setdefault("card_identity", card)
        overrides = {k: values.pop(k) for k in ("destination", "epoch") if k in values}
        return build_event(
            EventDraft(ts=ts, **values),
            device=self.device,
            destination=overrides.get("destination", self.destination),
            epoch=overrides.get("epoch", self.epoch),
            seq=seq,
            sealer=SEALER,
        )

    def token(self, seq: int, ts: int = 1_780_000_000_000, **draft: Any) -> bytes:
        """A signed event token."""
        return sign_event(self.event(seq, ts, **draft), self.key)

    def state(self, status: str = "online", ts: int | None = 1_780_000_000_000, **fields: Any) -> bytes:
        """A signed state token, as the kiosk publishes it (no `ts` given: like the will)."""
        data: dict[str, Any] = {"status": status, "device": self.device, "destination": self.destination}
        data |= ({} if ts is None else {"ts": ts}) | fields
        return sign_state(json.dumps(data, separators=(",", ":")).encode(), self.key, device=self.device)

    def topic(self, leaf: str = "event", prefix: str = "kiosk/v1") -> str:
        """This device's topic."""
        return f"{prefix}/{self.destination}/{self.device}/{leaf}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a SQLite file, or an empty database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'central.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
