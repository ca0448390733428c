"""docs/architecture.md names real code: every dotted `kiosk.…` name in it resolves by import."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import kiosk

DOC = Path(kiosk.__file__).parent.parent / "docs" / "architecture.md"
# A dotted name in backticks: `kiosk.daemon.read_codes`, `kiosk.policy.Policy.evaluate`, `kiosk.central`.
NAME = re.compile(r"`(kiosk(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")
# The walk's stations (the brief of the page): each must be named, so the page cannot lose one quietly.
WALK = (
    "kiosk.camera.FrameSource.read",
    "kiosk.daemon.read_codes",
    "kiosk.cards.read_payload",
    "kiosk.policy.Policy.evaluate",
    "kiosk.spool.Spool.record",
    "kiosk.policy.Policy.commit",
    "kiosk.feedback.Feedback.passed",
    "kiosk.uplink.Uplink.wake",
    "kiosk.inflight.InFlightWindow.next",
    "kiosk.central.ingest.Processor.handle",
    "kiosk.events.sign_ack",
    "kiosk.spool.Spool.apply_ack",
)


def resolve(dotted: str) -> object:
    """The object a dotted name stands for: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError as e:
            if e.name is None or not dotted.startswith(e.name):
                raise  # a module that exists but imports something missing: a real failure
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(dotted)


def named() -> list[str]:
    return sorted(set(NAME.findall(DOC.read_text(encoding="utf-8"))))


def test_the_page_names_every_station_of_the_walk() -> None:
    names = named()
    assert len(names) > 40, names
    assert [station for station in WALK if station not in names] == []


@pytest.mark.parametrize("dotted", named())
def test_each_name_on_the_page_exists(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as e:
        pytest.fail(f"docs/architecture.md names {dotted}, which does not resolve ({e}): update the page")


def test_a_name_that_moved_is_caught() -> None:
    with pytest.raises(AttributeError):
        resolve("kiosk.feedback.LedPair")  # moved to kiosk.signals
    with pytest.raises(AttributeError):
        resolve("kiosk.nowhere.thing")
    assert resolve("kiosk.signals.LedPair.blink") is importlib.import_module("kiosk.signals").LedPair.blink
