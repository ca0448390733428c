"""The retained state message of a kiosk (docs/events.md, "State"): one typed health value, one builder.

The daemon reports its `Health` (spool figures, frame rate, clock, alarms); the
uplink signs `state_message()` of it with the device key (`kiosk.state`) and
publishes the token. Without a daemon (a bare uplink) the health is the spool's
alone, with `fps` and `clock_synced` unknown (null).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kiosk import __version__
from kiosk.state import STATUSES, Status
from kiosk.topics import DeviceTopics

if TYPE_CHECKING:
    from kiosk.spool import Spool

__all__ = ["STATUSES", "Health", "Status", "state_message"]


@dataclass(frozen=True)
class Health:
    """What a running kiosk says about itself in its `online` state; alarms are kept once each, in order."""

    spool_depth: int  # events not yet covered by central's ack
    unsent: int  # this device id's events the broker has not accepted yet
    counts_today: Mapping[str, int]
    fps: float | None = None
    clock_synced: bool | None = None
    alarms: tuple[str, ...] = ()
    version: str = field(default=__version__)
    inside: int | None = None  # people inside the venue, every lane together (None: not counted)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alarms", tuple(dict.fromkeys(self.alarms)))

    @classmethod
    def of_spool(
        cls,
        spool: Spool,
        *,
        fps: float | None = None,
        clock_synced: bool | None = None,
        alarms: Iterable[str] = (),
        inside: int | None = None,
    ) -> Health:
        """The spool's figures and alarms, with what only the loop knows (frame rate, clock, faults)."""
        return cls(
            spool_depth=spool.depth(),
            unsent=spool.unsent_count(),
            counts_today=spool.counts_today(),
            fps=fps,
            clock_synced=clock_synced,
            alarms=(*spool.alarms(), *alarms),
            inside=inside,
        )

    def fields(self) -> dict[str, Any]:
        """The health part of the JSON state, in the documented order."""
        values = asdict(self)
        order = (
            "version",
            "spool_depth",
            "unsent",
            "counts_today",
            "inside",
            "fps",
            "clock_synced",
            "alarms",
        )
        return {key: list(values[key]) if key == "alarms" else values[key] for key in order}


def state_message(
    status: Status, topics: DeviceTopics, *, ts_ms: int | None = None, health: Health | None = None
) -> bytes:
    """The JSON of the retained state: who, when (not in the will: it is written at connect), how."""
    state: dict[str, Any] = {"status": status, "device": topics.device, "destination": topics.destination}
    if ts_ms is not None:
        state["ts"] = ts_ms
    if status == "online" and health is not None:
        state |= health.fields()
    return _json(state)


def _json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
