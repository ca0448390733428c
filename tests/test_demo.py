"""`kiosk demo` end to end: every person gets the expected decision, screens saved, events published."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device

from kiosk.cli import main
from kiosk.localbroker import find_mosquitto


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")
def test_demo_runs_the_whole_kiosk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["demo", "--out", str(tmp_path / "demo")])
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.close()
        Device.pin_factory = None
    out = capsys.readouterr().out
    assert code == 0, out
    assert "every person got the expected decision" in out
    assert "events signed and spooled: 9; acknowledged by the broker: 9" in out
    screens = sorted(p.name for p in (tmp_path / "demo" / "screens").glob("*.png"))
    assert any(name.endswith("-pass.png") for name in screens)
    assert any(name.endswith("-fail.png") for name in screens)
    assert "GPIO  green ●" in out, "the LED line shows the green LED lit"
