"""The retained state message: one typed health value, one builder (docs/events.md, "State")."""

from __future__ import annotations

import json

from kiosk import __version__
from kiosk.health import Health, state_message
from kiosk.topics import DeviceTopics

TOPICS = DeviceTopics("kiosk/v1", "cho-ben-thanh", "kiosk-0001")


def test_the_online_state_has_the_documented_fields_in_order() -> None:
    health = Health(3, 0, {"in": 120, "out": 0, "pass": 120, "fail": 4}, fps=29.8, clock_synced=True)
    state = json.loads(state_message("online", TOPICS, ts_ms=1700000123456, health=health))
    assert list(state) == [
        "status", "device", "destination", "ts",
        "version", "spool_depth", "unsent", "counts_today", "inside", "fps", "clock_synced", "alarms",
    ]  # fmt: skip
    assert state["version"] == __version__ and state["alarms"] == []
    assert (state["device"], state["destination"], state["counts_today"]["fail"]) == (
        "kiosk-0001", "cho-ben-thanh", 4
    )  # fmt: skip


def test_stopped_and_offline_carry_no_health() -> None:
    health = Health(1, 1, {})
    stopped = json.loads(state_message("stopped", TOPICS, ts_ms=5, health=health))
    assert stopped == {"status": "stopped", "device": "kiosk-0001", "destination": "cho-ben-thanh", "ts": 5}
    offline = json.loads(state_message("offline", TOPICS))  # the will: written at connect, so no time
    assert offline == {"status": "offline", "device": "kiosk-0001", "destination": "cho-ben-thanh"}


def test_each_alarm_is_listed_once_in_order() -> None:
    health = Health(0, 0, {}, alarms=("disk", "fault: camera", "disk"))
    assert health.alarms == ("disk", "fault: camera")
    assert json.loads(state_message("online", TOPICS, ts_ms=1, health=health))["alarms"] == [
        "disk",
        "fault: camera",
    ]
