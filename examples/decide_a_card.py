"""What the kiosk decides for a QR payload: parse it into a card, then apply the destination's rules.

Run: python examples/decide_a_card.py
"""

from datetime import UTC, datetime

from kiosk.cardmaker import cccd_payload
from kiosk.cards import parse_card
from kiosk.config import Settings
from kiosk.policy import Policy

settings = Settings()  # the built-in defaults: every format accepted, direction "in"
policy = Policy(settings.policy, settings.destination)
now = datetime.now(UTC)

for payload in [cccd_payload(), "https://old-poster.example/venue/42", "something else"]:
    card = parse_card(payload.encode(), trust=None, now=now)
    decision = policy.decide(card, now=now)
    print(f"{decision.verdict:4}  {decision.reason:<14} {decision.message('en')}")
