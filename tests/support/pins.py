"""gpiozero's pin factory released after each test that builds the kiosk's GPIO devices.

Use it in a test module (fixtures are found by module attribute name)::

    from tests.support import pins

    _release_pins = pins.release_pins
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import Device


@pytest.fixture(autouse=True)
def release_pins() -> Iterator[None]:
    """Close and forget the pin factory a test left, so the next test's MockFactory starts clean."""
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = None
