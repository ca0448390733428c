"""The decision log line through the real loop: no name by default, the masked name when configured."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kiosk.config import parse_config
from kiosk.errors import ConfigError
from tests.support import pins
from tests.test_daemon import CCCD, NATIONAL, POSTER, frames_for, make_settings, run_loop

# Everything personal on the two cards: names, identities, birth dates, the phone, the address.
PERSONAL = (
    "NGUYEN VAN A",
    "Nguyễn Văn An",
    "162979388586171100",
    "001093029317",
    "029317",
    "001093012345",
    "012345",
    "1987-01-18",
    "18011993",
    "0123232422",
    "Tràng Tiền",
)


_release_pins = pins.release_pins  # an autouse fixture, found by this name


def _run_and_log(tmp_path: Path, caplog: pytest.LogCaptureFixture, **log: str) -> list[str]:
    """Run the loop over a national QR, a CCCD and a poster; every record logged, any logger."""
    settings = make_settings(tmp_path, log=log) if log else make_settings(tmp_path)
    caplog.set_level(logging.DEBUG)
    run_loop(settings, frames_for(NATIONAL, CCCD, POSTER))
    return [r.getMessage() for r in caplog.records]


def _decision_lines(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("decision ")]


def test_by_default_the_logs_carry_no_name_and_no_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    messages = _run_and_log(tmp_path, caplog)
    lines = _decision_lines(messages)
    assert [line.split()[1:4] for line in lines] == [
        ["verdict=pass", "reason=ok", "format=national"],
        ["verdict=pass", "reason=ok", "format=cccd"],
        ["verdict=fail", "reason=old_venue_qr", "format=poster"],
    ]
    assert all("name=" not in line and "**" not in line for line in lines)
    text = "\n".join(messages)
    assert [datum for datum in PERSONAL if datum in text] == []


def test_the_masked_name_is_logged_only_when_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    messages = _run_and_log(tmp_path, caplog, decision_name="masked")
    names = [line.rsplit(" name=", 1)[1] for line in _decision_lines(messages)]
    assert names == ["'NGUYEN V** A'", "'Nguyễn V** An'", "''"]
    text = "\n".join(messages)
    assert [datum for datum in PERSONAL if datum in text] == []


@pytest.mark.parametrize("value", ["full", "", "MASKED", 1, True, ["masked"]])
def test_a_decision_name_other_than_none_or_masked_is_refused(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"log": {"decision_name": value}})
    (problem,) = caught.value.problems
    assert problem.startswith("log.decision_name = ")
    assert "'none'" in problem and "'masked'" in problem


def test_the_log_section_knows_no_other_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"log": {"decision_names": "masked"}})
    assert caught.value.problems == [
        "log.decision_names = 'masked': unknown key (misspelt? see provisioning/kiosk.toml.example)"
    ]
