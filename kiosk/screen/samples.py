"""Example screen states (a market gate at a fixed time) for `kiosk screenshot`, tests and benchmarks.

A running kiosk never shows these: nothing on the scan loop's side imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from kiosk.cards import parse_card
from kiosk.reasons import Reason, message
from kiosk.screen.states import (
    FailState,
    FaultState,
    HintState,
    IdleState,
    InspectionState,
    NoQrState,
    PassState,
    ScreenState,
    StreetState,
)
from kiosk.statuslist import VIETNAM, Status, parse_until
from kiosk.street_check import StreetFinding, street_finding
from kiosk.text import Lang
from kiosk.venue_check import WEEK_DAYS, DayCounts, DeviceReadings, InspectionFigures

STATE_KINDS = ("idle", "pass", "fail", "hint", "fault", "inspection", "street", "no-qr")
EXAMPLE_TIME = datetime(2026, 11, 29, 14, 32, 5)
# A market gate's scans by hour: the morning market, a lunch lull, the evening market.
EXAMPLE_HOURS = (0, 0, 0, 0, 0, 3, 11, 26, 33, 21, 14, 12, 15, 12, 10, 11, 17, 29, 24, 13, 7, 2, 0, 0)
EXAMPLE_QR = b"001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"


def example_state(kind: str, lang: Lang = "vi") -> ScreenState:
    """A plausible state of each kind, for screenshots, tests and benchmarks."""
    examples: dict[str, Callable[[], ScreenState]] = {
        "idle": lambda: IdleState("Chợ Bến Thành – Cổng 1", count_in=128, count_out=97, backlog=3),
        "pass": lambda: PassState("Nguyễn Văn An", "in", EXAMPLE_TIME),
        "fail": lambda: FailState(message(Reason.OLD_VENUE_QR, lang)),
        "hint": lambda: HintState.named("closer", lang),
        "fault": lambda: FaultState.named("camera", lang),
        "inspection": lambda: InspectionState(example_figures()),
        "street": lambda: StreetState(example_finding()),
        "no-qr": NoQrState,
    }
    return examples[kind]()


def example_figures() -> InspectionFigures:
    """A market gate's inspection figures at EXAMPLE_TIME (Vietnam time), for examples and tests."""
    at = EXAMPLE_TIME.replace(tzinfo=VIETNAM)
    week = []
    for back in range(WEEK_DAYS - 1, -1, -1):
        scale = 0.7 + 0.05 * ((back * 3) % 7)
        hours = tuple(
            round(n * scale) if back or hour <= at.hour else 0 for hour, n in enumerate(EXAMPLE_HOURS)
        )
        failed = sum(hours) // 25
        day = at.date() - timedelta(days=back)
        week.append(DayCounts(day, hours, passed=sum(hours) - failed, failed=failed))
    device = DeviceReadings(
        device_id="kiosk-0007",
        destination_id="cho-ben-thanh-1",
        version="1.0.0",
        fps=14.8,
        sharpness=212.0,
        clock_synced=True,
        last_ack=at - timedelta(seconds=40),
    )
    return InspectionFigures(
        device=device, at=at, week=tuple(week), old_posters_today=2, inspections_today=1, unsent=3, unacked=14
    )


def example_finding(status: str | None = "quarantine") -> StreetFinding:
    """A street check of a national QR at EXAMPLE_TIME: under quarantine (a violation), or unlisted."""
    now = EXAMPLE_TIME.replace(tzinfo=VIETNAM)
    entry = None if status is None else Status(status, parse_until("2026-12-05"))
    return street_finding(parse_card(EXAMPLE_QR, trust=None, now=now), status=entry, now=now)
