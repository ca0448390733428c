"""What the screen shows: one frozen value object per state, with its text ready-made.

Pure: no pygame here, so the scan loop can build states on a machine without a display.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from kiosk.screen.texts import FAULTS, HINTS
from kiosk.text import Lang

if TYPE_CHECKING:
    from kiosk.street_check import StreetFinding
    from kiosk.venue_check import InspectionFigures


def _require_text(**fields: str) -> None:
    for name, value in fields.items():
        if not value.strip():
            raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True)
class IdleState:
    """Waiting for a code: venue, today's counts, uplink health."""

    venue: str = ""
    count_in: int = 0
    count_out: int = 0
    online: bool = True
    backlog: int = 0
    inside: int | None = None  # people inside the venue, all lanes together; None: not counted here

    def __post_init__(self) -> None:
        if min(self.count_in, self.count_out, self.backlog, self.inside or 0) < 0:
            raise ValueError("counts and backlog cannot be negative")


@dataclass(frozen=True)
class PassState:
    """A person may pass; `name` comes masked from kiosk.cards (`Card.masked_name`) and shows as given.

    The screen applies the cards' own rule again (it leaves a masked name as
    it is), so a caller that forgets to mask still shows no whole name.
    """

    name: str
    direction: Literal["in", "out"]
    at: datetime

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {self.direction!r}")


@dataclass(frozen=True)
class FailState:
    """A person may not pass, and why (the reason's message)."""

    message: str

    def __post_init__(self) -> None:
        _require_text(message=self.message)


@dataclass(frozen=True)
class HintState:
    """Help with the scan: come closer, hold still; `detail` is an optional second line."""

    message: str
    detail: str = ""

    def __post_init__(self) -> None:
        _require_text(message=self.message)

    @classmethod
    def named(cls, key: str, lang: Lang = "vi") -> HintState:
        """A hint from HINTS ("closer", "still", "glare"): `lang` large, the other language below."""
        return cls(*HINTS[key].both(lang))


@dataclass(frozen=True)
class FaultState:
    """The kiosk cannot do its job: what is wrong, and what staff should do."""

    problem: str
    action: str

    def __post_init__(self) -> None:
        _require_text(problem=self.problem, action=self.action)

    @classmethod
    def named(cls, key: str, lang: Lang = "vi") -> FaultState:
        """A fault from FAULTS ("camera", "broker", "spool") in `lang`."""
        problem, action = FAULTS[key]
        return cls(problem.of(lang), action.of(lang))


@dataclass(frozen=True)
class InspectionState:
    """The venue inspection: the device, its scans by hour, uplink, camera and clock."""

    figures: InspectionFigures


@dataclass(frozen=True)
class StreetState:
    """A street inspector's check of one card: its lines under a green (pass) or red (fail) band."""

    finding: StreetFinding


@dataclass(frozen=True)
class NoQrState:
    """Confirms that a person without any QR code was recorded."""


ScreenState = (
    IdleState | PassState | FailState | HintState | FaultState | InspectionState | StreetState | NoQrState
)
