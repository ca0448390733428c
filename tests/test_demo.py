"""`kiosk demo` end to end: an entry and an exit lane, every person gets the expected decision, screens
saved, events published, and both lanes count the same people inside."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero import Device

from kiosk import cardmaker
from kiosk.cli import main
from kiosk.config import DecoderConfig
from kiosk.daemon import read_codes
from kiosk.decoder import open_decoder
from kiosk.localbroker import find_mosquitto
from kiosk.scenes import Scene


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
    assert "events signed and spooled: 12; acknowledged by the broker: 12" in out
    # Four people came in at the entry; the exit lane saw the first leave (a known exit, so it heard
    # of the entry through the broker) and someone it never saw come in; both end counting three.
    assert "inside the venue: 3 at the entry lane, 3 at the exit lane (both lanes agree)" in out
    entry_counts, exit_counts = re.findall(r"inside, as its idle screen showed it: (.*)", out)
    shown = [int(n) for n in entry_counts.split(" → ")]
    assert any(b < a for a, b in itertools.pairwise(shown)), f"the exit shown: {shown}"
    assert exit_counts.split(" → ")[-1] == "3", "the exit lane's screen counted the entries"
    for lane, results in (("entry", ("-pass.png", "-fail.png")), ("exit", ("-pass.png",))):
        screens = sorted(p.name for p in (tmp_path / "demo" / "screens" / lane).glob("*.png"))
        assert all(any(name.endswith(end) for name in screens) for end in (*results, "-idle.png")), screens
    assert "GPIO  green ●" in out, "the LED line shows the green LED lit"


def test_a_person_stands_in_front_of_an_old_poster() -> None:
    # Imported here: kiosk.demo binds sys.stdout when imported, and the test above reads capsys.
    from kiosk.demo import _card_frames, demo_cards, expected_reasons

    now = datetime.now(UTC)
    signer = cardmaker.make_dcc_signer(not_before=now - timedelta(days=1), not_after=now + timedelta(days=1))
    cards = demo_cards(signer, now)
    (person,) = [card for card in cards if card.poster]
    held = _card_frames(person, Scene(module_px=480 / 75, seed=7, **person.look))[10]
    symbols = read_codes(open_decoder(DecoderConfig()), held).symbols
    assert [s.text for s in symbols] == [person.poster, person.payload], "both read, the card last"
    assert expected_reasons(cards)["old_venue_qr"] == 2  # the poster card, and the poster behind a person
