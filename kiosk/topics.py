"""MQTT topic names of the wire protocol (docs/events.md), built and parsed in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DEFAULT_PREFIX = "kiosk/v1"
Leaf = Literal["event", "state", "ack"]
LEAVES: tuple[Leaf, ...] = ("event", "state", "ack")
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""A device or destination id: lower-case letters, digits, `.`, `_` and `-`, at most 64 characters."""
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class DeviceTopics:
    """The topics of one device at one destination."""

    prefix: str
    destination: str
    device: str

    def __post_init__(self) -> None:
        for name in ("destination", "device"):
            if not _ID.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a valid id for a topic level")

    @property
    def base(self) -> str:
        """`{prefix}/{destination}/{device}`."""
        return f"{self.prefix}/{self.destination}/{self.device}"

    @property
    def event(self) -> str:
        """Where scan events are published (QoS 1, not retained)."""
        return f"{self.base}/event"

    @property
    def state(self) -> str:
        """The retained online/stopped/offline state with health."""
        return f"{self.base}/state"

    @property
    def ack(self) -> str:
        """The retained ack central writes for this device."""
        return f"{self.base}/ack"

    @property
    def presence(self) -> str:
        """This kiosk's presence messages for its destination's lanes (moves; a retained snapshot)."""
        return f"{self.base}/presence"

    @property
    def lanes(self) -> str:
        """The filter of every presence topic of this destination (its lanes, this one included)."""
        return f"{self.prefix}/{self.destination}/+/presence"


def statuslist_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """The retained, authority-signed status list."""
    return f"{prefix}/statuslist"


def trustlist_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """The retained, authority-signed trust list of the vaccine passports' document signers."""
    return f"{prefix}/trustlist"


def subscription(prefix: str = DEFAULT_PREFIX, leaf: Leaf | Literal["#"] = "#") -> str:
    """A wildcard filter for one leaf of every device (central's side), e.g. `kiosk/v1/+/+/event`."""
    return f"{prefix}/#" if leaf == "#" else f"{prefix}/+/+/{leaf}"


def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> tuple[DeviceTopics, Leaf] | None:
    """Split a device topic into its device topics and leaf; None for any other topic."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 3 or parts[2] not in LEAVES:
        return None
    try:
        topics = DeviceTopics(prefix, parts[0], parts[1])
    except ValueError:
        return None
    leaf: Leaf = parts[2]
    return topics, leaf
