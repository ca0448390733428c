"""A scan event as the kiosk publishes it: built, signed (JWS, EdDSA), and verified by a subscriber.

Run: python examples/sign_and_verify_an_event.py
"""

import secrets
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.events import EventDraft, build_event, sign_event, verify_event

device_key = Ed25519PrivateKey.generate()  # on a kiosk: made by `kiosk provision`, stored 0600
identity_key = secrets.token_bytes(32)  # the authority's key for hashing card identities

draft = EventDraft(
    verdict="pass",
    reason="ok",
    format="cccd",
    direction="in",
    card_identity="001093012345",
    ts=int(time.time() * 1000),
)
event = build_event(
    draft, device="kiosk-0001", destination="cho-ben-thanh", epoch=1, seq=1, identity_key=identity_key
)
token = sign_event(event, device_key)
print("token sent on kiosk/v1/cho-ben-thanh/kiosk-0001/event:")
print(token.decode())

# A subscriber checks the signature against the registered public key BEFORE it parses anything.
received = verify_event(token, device_key.public_key())
print(f"\nverified: seq {received.seq}, {received.verdict}, identity {received.identity[:20]}...")
