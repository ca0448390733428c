"""`kiosk status`: backlog, last ack, trust material and faults of a provisioned kiosk."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from kiosk import keys
from kiosk.cli import main
from kiosk.config import load_config
from kiosk.sealing import open_sealer
from kiosk.spool import Spool
from tests.test_bundle import authority, make, provision
from tests.test_uplink import draft

__all__ = ["authority"]  # the fixture, found by name


def _local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def status(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    """Run `kiosk status` on the kiosk provisioned in tmp_path."""
    code = main(["status", "--config", str(tmp_path / "etc" / "kiosk.toml"), *extra])
    return code, capsys.readouterr().out


def test_backlog_last_ack_and_trust_of_a_working_kiosk(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    make(authority, capsys)
    assert provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))[0] == 0
    settings = load_config(tmp_path / "etc" / "kiosk.toml")
    key, sealer = keys.load_private_key(settings.paths.key_file), open_sealer(settings)
    with Spool.from_settings(settings, signing_key=key, sealer=sealer) as spool:
        events = [spool.record(draft(n)) for n in range(5)]
        spool.mark_sent([e.key for e in events[:3]])
        spool.apply_ack(settings.device.id, {spool.epoch: 2})
        scanned = events[1].event().ts
    code, out = status(tmp_path, capsys, "--json")
    report = json.loads(out)
    assert code == 0, report
    assert (report["unsent"], report["unacked"]) == (2, 3)
    assert report["last_ack"] == {"seq": 2, "scanned": _local(scanned)}
    assert report["trust"]["status list"]["detail"].count("version 7") == 1
    assert report["faults"] == []
    code, text = status(tmp_path, capsys)
    assert "2 not yet taken by the broker, 3 not yet stored by central" in text
    assert "central has stored up to seq 2" in text and "fault        none" in text


def test_a_lab_kiosk_shows_its_faults(tmp_path: Path, capsys) -> None:
    code, _out, err = provision(tmp_path, capsys, "--destination", "lab", "--venue", "Lab",
                                "--broker", "mqtt://127.0.0.1:1883")  # fmt: skip
    assert code == 0, err
    code, text = status(tmp_path, capsys)
    assert code == 1
    assert "none yet (the kiosk has not run)" in text and "none from central yet" in text
    assert "fault        authority keys: none" in text and "fault        trust list: none" in text
