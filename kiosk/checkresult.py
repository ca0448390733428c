"""The outcome of one self-test check (kiosk.selftest), shared by every module of checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: status, what was found, and what to do if it failed."""

    name: str
    status: Status
    detail: str
    advice: str = ""
    figures: dict[str, float | str] = field(default_factory=dict)
