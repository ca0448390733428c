"""A scan event as the kiosk publishes it: built, signed (JWS, EdDSA), verified and opened by central.

Run: python examples/sign_and_verify_an_event.py
"""

import secrets
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kiosk.events import EventDraft, build_event, sign_event, verify_event
from kiosk.sealing import Sealer, open_sealed

device_key = Ed25519PrivateKey.generate()  # on a kiosk: made by `kiosk provision`, stored 0600
authority_key = X25519PrivateKey.generate()  # only central holds it; kiosks get the public half
sealer = Sealer(authority_key.public_key(), destination_key=secrets.token_bytes(32))

draft = EventDraft(
    verdict="pass",
    reason="ok",
    format="cccd",
    direction="in",
    card_identity="001093012345",
    ts=int(time.time() * 1000),
)
event = build_event(draft, device="kiosk-0001", destination="cho-ben-thanh", epoch=1, seq=1, sealer=sealer)
token = sign_event(event, device_key)
print("token sent on kiosk/v1/cho-ben-thanh/kiosk-0001/event:")
print(token.decode())

# A subscriber checks the signature against the registered public key BEFORE it parses anything.
received = verify_event(token, device_key.public_key())
print(f"\nverified: seq {received.seq}, {received.verdict}, identity {received.identity[:20]}...")
# Only the authority's private key opens the sealed identity; no kiosk can.
print(f"opened at central: {open_sealed(authority_key, received.device, received.identities[0])}")
