"""The daemon's run-status file: written on change at most every few seconds, atomically; read safely."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.runstatus import RunStatus, RunStatusFile, read_run_status

ACK = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
ACK_MS = int(ACK.timestamp() * 1000)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _writer(path: Path, clock: Clock) -> RunStatusFile:
    return RunStatusFile(path, min_interval_s=5, refresh_s=60, monotonic=clock,
                         wall_ms=lambda: int(clock.now * 1000))  # fmt: skip


def test_changes_are_written_at_most_every_interval_and_refreshed(tmp_path: Path) -> None:
    path, clock = tmp_path / "run-status.json", Clock()
    writer = _writer(path, clock)
    assert writer.offer(None, None)  # the first status is written at once
    assert read_run_status(path) == RunStatus(fault=None, last_ack_ms=None, written_ms=100_000)
    clock.now += 1
    assert not writer.offer("camera", None)  # a change within the interval waits...
    clock.now += 4
    assert writer.offer("camera", ACK)  # ...until the interval has passed
    assert read_run_status(path) == RunStatus(fault="camera", last_ack_ms=ACK_MS, written_ms=105_000)
    clock.now += 30
    assert not writer.offer("camera", ACK)  # nothing new: not rewritten...
    clock.now += 30
    assert writer.offer("camera", ACK)  # ...until the refresh, which shows the daemon still runs
    assert isinstance(found := read_run_status(path), RunStatus) and found.written_ms == 165_000
    assert [p.name for p in tmp_path.iterdir()] == ["run-status.json"]  # no temporary file left behind


def test_a_missing_or_unwritable_folder_never_stops_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "run-status.json"
    assert _writer(path, Clock()).offer("spool", None)  # advisory: the loop goes on
    assert "none (the kiosk daemon has not run" in str(read_run_status(path))


VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                   st.lists(st.integers(), max_size=2))  # fmt: skip
FIELDS = st.dictionaries(st.sampled_from(["fault", "last_ack_ms", "written_ms", "x"]), VALUES)


@given(st.one_of(st.binary(max_size=200), st.builds(json.dumps, FIELDS).map(str.encode)))
def test_a_damaged_file_is_reported_never_raised(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("hostile") / "run-status.json"
    path.write_bytes(data)
    found = read_run_status(path)
    if isinstance(found, RunStatus):
        assert type(found.written_ms) is int
        assert found.fault is None or isinstance(found.fault, str)
        assert found.last_ack_ms is None or type(found.last_ack_ms) is int
    else:
        assert "unreadable" in found
