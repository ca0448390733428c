"""The province's venue lines, held by the dashboard process and rebuilt in the background.

The venue lists and /visit need every venue's figures and flags (its name, district,
ward and opening hours come from the destinations file, not the database), which
takes a province's database a few hundred ms to give. One thread builds them every
`refresh_seconds` and requests only filter, sum and page what it built: the pages
say the time their figures are "as of". A refresh that fails (the database down)
keeps the last snapshot, which the pages go on showing with its time and the time
of the failure; the first request waits for the first build.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.central.reports import ReportSettings
from kiosk.central.store import open_store
from kiosk.central.web.queries import Dashboard, Province
from kiosk.errors import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The last province built, and when a later refresh failed (None: the last one succeeded)."""

    province: Province
    failed_ms: int | None = None
    problem: str = ""


class Snapshots:
    """Builds the province's snapshot: once on demand, then every `every_s` seconds in a named thread."""

    def __init__(
        self, db: str, report: ReportSettings, *, clock: Callable[[], float], every_s: float
    ) -> None:
        self.db, self.report, self.clock, self.every_s = db, report, clock, every_s
        self._snapshot: Snapshot | None = None
        self._building = threading.Lock()  # one build at a time; readers never wait for a refresh
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0  # builds that succeeded (the tests wait on it)

    def current(self) -> Snapshot:
        """The last snapshot; built now (in this thread) when there is none yet."""
        found = self._snapshot
        if found is not None:
            return found
        with self._building:
            if self._snapshot is None:
                try:
                    self._snapshot = Snapshot(self._build())
                except StoreError:
                    raise
                except Exception as e:  # a query refused: the page says so (app.py), no snapshot is kept
                    raise StoreError(f"the dashboard's figures cannot be read: {e}") from e
                self.refreshes += 1
            return self._snapshot

    def refresh(self) -> bool:
        """Build a new snapshot; on failure keep the last one and say when it failed (the thread's step)."""
        with self._building:
            now_ms = self._now_ms()
            try:
                province = self._build()
            except Exception as e:  # any database error: the thread must live on and the pages go on
                log.warning("dashboard figures not refreshed (kept those of the last refresh): %s", e)
                if self._snapshot is not None:
                    self._snapshot = Snapshot(self._snapshot.province, now_ms, type(e).__name__)
                return False
            self._snapshot = Snapshot(province)
            self.refreshes += 1
            return True

    def _build(self) -> Province:
        with open_store(self.db, schema=False) as store:
            return Dashboard(store, self.report, now_ms=self._now_ms()).province()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> None:
        """Build now and every `every_s` seconds, in a thread, until `close()`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dashboard-refresh", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        self.refresh()
        while not self._stop.wait(self.every_s):
            self.refresh()

    def close(self) -> None:
        """Stop the thread (after the build it is in, if any); safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Snapshots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
