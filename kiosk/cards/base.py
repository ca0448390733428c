"""The value objects every card parser returns: a Card or a Rejection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from kiosk.reasons import Reason, message
from kiosk.text import Lang

CardFormat = Literal["national", "cccd", "dcc"]
FormatGuess = Literal["national", "cccd", "dcc", "poster", "inspector", "unknown"]


@dataclass(frozen=True, kw_only=True)
class Card:
    """A QR payload that was read and validated; each format adds its own fields."""

    format: ClassVar[CardFormat]

    @property
    def identity(self) -> str | None:
        """The identity used for de-duplication, presence and the status list."""
        raise NotImplementedError

    @property
    def identities(self) -> tuple[str, ...]:
        """Every identity the holder is known by here (status list, presence), `identity` first."""
        return () if self.identity is None else (self.identity,)

    @property
    def masked_name(self) -> str:
        """The holder's name masked for the screen (see kiosk.cards.masking)."""
        raise NotImplementedError

    def masked_fields(self) -> dict[str, str]:
        """The card's fields for display, id numbers masked; never phone, address or a full id."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """A payload that is not a valid card: why, a log detail without personal data, a format guess."""

    reason: Reason
    detail: str = ""
    format: FormatGuess = "unknown"

    def message(self, lang: Lang = "vi") -> str:
        """The screen message for this rejection."""
        return message(self.reason, lang)


class Invalid(Exception):  # noqa: N818 - internal control flow, never leaves kiosk.cards
    """Raised inside a parser to turn into a Rejection at its edge."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
