"""`kiosk status`: backlog, last ack, trust material and faults of a provisioned kiosk."""

from __future__ import annotations

import json
import re
import time
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


def _run_status(tmp_path: Path, fault: str | None, ack_ms: int | None, age_s: int) -> int:
    """The run-status file as the daemon writes it, `age_s` seconds ago; now in ms."""
    settings = load_config(tmp_path / "etc" / "kiosk.toml")
    now_ms = int(time.time() * 1000)
    path = settings.paths.state_dir / "run-status.json"
    path.write_text(json.dumps({"fault": fault, "last_ack_ms": ack_ms, "written_ms": now_ms - age_s * 1000}))
    return now_ms


def test_the_running_loops_fault_and_when_the_last_ack_arrived(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    make(authority, capsys)
    assert provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))[0] == 0
    now_ms = _run_status(tmp_path, "camera", int(time.time() * 1000) - 90_000, age_s=3)
    code, out = status(tmp_path, capsys, "--json")
    daemon = json.loads(out)["daemon"]
    assert code == 1 and json.loads(out)["faults"] == ["running loop: camera"]
    assert (daemon["fault"], daemon["stale"], daemon["age_s"]) == ("camera", False, 3)
    assert 89 <= daemon["ack_age_s"] <= 91 and daemon["written"] == _local(now_ms - 3000)
    code, text = status(tmp_path, capsys)
    assert "daemon       status written 3 s ago; fault in force: camera" in text
    assert re.search(r"ack arrived  \S+ \(9[01] s ago\)", text), text


def test_a_status_file_left_by_a_stopped_daemon_is_a_fault(
    authority: dict[str, Path], tmp_path: Path, capsys
) -> None:
    make(authority, capsys)
    assert provision(tmp_path, capsys, "--bundle", str(authority["bundle"]))[0] == 0
    code, text = status(tmp_path, capsys)  # never run: not known, not a fault
    assert code == 0 and "ack arrived  not known" in text and "daemon       " in text
    _run_status(tmp_path, "camera", None, age_s=3600)
    code, text = status(tmp_path, capsys)
    assert code == 1 and "NOT UPDATED: is the daemon running?" in text
    assert "fault        daemon: its status is 60 min old" in text
    assert "running loop: camera" not in text  # an old fault is no current one
    assert "ack arrived  none since the daemon started" in text
