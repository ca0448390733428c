"""The requests' database connections: on PostgreSQL a few are kept between requests.

Opening a PostgreSQL connection costs a request several ms (a new server process,
authentication); while the application runs (its lifespan) the connections its
requests used are kept, up to `keep`, and handed to the next ones. A kept connection
is asked one `SELECT 1` before it is used again (its server may have restarted in
between) and its transaction is ended when a request is done, so it holds no rows
back from vacuum and the next request reads what is committed by then. A request
that fails closes its connection. SQLite opens a file: nothing is kept (a SQLite
connection also stays in the thread that opened it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from kiosk.central.store import Store, open_store

KEEP = 4  # about the requests a small dashboard serves at once


class Connections:
    """Where a request gets its store: a kept PostgreSQL connection, else a new one."""

    def __init__(self, db: str, *, keep: int = KEEP) -> None:
        self.db = db
        self.keep = keep if db.startswith(("postgresql://", "postgres://")) else 0
        self._idle: list[Store] = []
        self._lock = threading.Lock()
        self._running = False  # kept only between start() and close(): no connection outlives the app
        self.opened = 0  # connections opened (the tests count them)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A store for one request, given back (or closed) when it is done."""
        store = self._take() or self._open()
        try:
            yield store
        except BaseException:
            _close(store)  # in an unknown state: not handed to another request
            raise
        self._give_back(store)

    def _open(self) -> Store:
        store = open_store(self.db, schema=False)
        self.opened += 1
        return store

    def _take(self) -> Store | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                store = self._idle.pop()
            if _answers(store):
                return store
            _close(store)

    def _give_back(self, store: Store) -> None:
        kept = self._running and self.keep > 0 and _ended(store)
        with self._lock:
            kept = kept and self._running and len(self._idle) < self.keep
            if kept:
                self._idle.append(store)
        if not kept:
            _close(store)

    def start(self) -> None:
        """Keep connections from now on (the application's start)."""
        self._running = True

    def close(self) -> None:
        """Close the kept connections and keep none from now on; safe to call twice."""
        with self._lock:
            self._running = False
            idle, self._idle = self._idle, []
        for store in idle:
            _close(store)


def _errors() -> tuple[type[BaseException], ...]:
    import psycopg  # only kept connections, which are PostgreSQL's, come here

    return (psycopg.Error,)


def _answers(store: Store) -> bool:
    """Whether a kept connection still reaches its server."""
    try:
        store.query("SELECT 1")
    except _errors():
        return False
    return True


def _ended(store: Store) -> bool:
    """End the request's transaction; whether that worked (the connection is fit to keep)."""
    try:
        store.rollback()
    except _errors():
        return False
    return True


def _close(store: Store) -> None:
    errors: Any = _errors() if store.name == "postgresql" else ()
    with suppress(*errors):
        store.close()
