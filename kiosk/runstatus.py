"""The running daemon's own status, kept in a small JSON file for `kiosk status` to read.

What only the running loop knows (when central's last ack arrived, the fault in force)
lives in its memory; `RunStatusFile` writes it to `run-status.json` in the state folder,
atomically (a temporary file renamed over the old one), when it changes but at most every
`min_interval_s`, and again every `refresh_s` so that the file's age tells whether the
daemon is still running. The file is advisory: it is not fsynced (the loop must not wait
on the SD card), and a reader treats a missing or unreadable file as "not known".
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk import safejson
from kiosk.errors import UnsafeJSONError

RUN_STATUS_FILE = "run-status.json"
MIN_INTERVAL_S = 5.0
REFRESH_S = 60.0


@dataclass(frozen=True)
class RunStatus:
    """What the running loop reports: its fault in force and when central's last ack arrived."""

    fault: str | None = None  # camera, spool, broker or screen (None: all well)
    last_ack_ms: int | None = None  # wall clock, ms since the epoch
    written_ms: int = 0  # when the file was written (set by the writer)


def run_status_path(state_dir: Path) -> Path:
    """Where a kiosk with this state folder keeps its run status."""
    return state_dir / RUN_STATUS_FILE


class RunStatusFile:
    """Writes the run status when it changes (at most every `min_interval_s`) and every `refresh_s`."""

    def __init__(
        self,
        path: Path,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
        refresh_s: float = REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.path = path
        self._min_interval_s, self._refresh_s = min_interval_s, refresh_s
        self._monotonic, self._wall_ms = monotonic, wall_ms
        self._written: RunStatus | None = None
        self._written_at = 0.0

    def offer(self, fault: str | None, last_ack: datetime | None) -> bool:
        """Record the loop's current status if it is due; whether the file was written."""
        ack_ms = None if last_ack is None else int(last_ack.timestamp() * 1000)
        status = RunStatus(fault=fault, last_ack_ms=ack_ms)
        now = self._monotonic()
        since = now - self._written_at
        if self._written is not None and (since < self._min_interval_s or (
                status == self._written and since < self._refresh_s)):  # fmt: skip
            return False
        self._write(status)
        self._written, self._written_at = status, now
        return True

    def _write(self, status: RunStatus) -> None:
        data = json.dumps(asdict(status) | {"written_ms": self._wall_ms()}).encode()
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
        except OSError:
            pass  # advisory: a full or read-only disk shows as a stale file in `kiosk status`
        finally:
            tmp.unlink(missing_ok=True)


def read_run_status(path: Path) -> RunStatus | str:
    """The run status the daemon last wrote, or why there is none (missing, unreadable)."""
    try:
        data: Any = safejson.loads(path.read_bytes(), max_bytes=4096, max_depth=2)
        return RunStatus(
            fault=_optional(data, "fault", str),
            last_ack_ms=_optional(data, "last_ack_ms", int),
            written_ms=_optional(data, "written_ms", int) or 0,
        )
    except FileNotFoundError:
        return f"{path}: none (the kiosk daemon has not run since it was updated)"
    except (OSError, UnsafeJSONError, KeyError, TypeError, ValueError) as e:
        return f"{path}: unreadable ({e}); it is rewritten within a minute while the daemon runs"


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"{key} is not a {kind.__name__}")
    return value
