"""A throwaway PostgreSQL 15 for tests: initdb in a temp folder, a free loopback port, stopped after.

Use the fixtures in a test module::

    from tests.support import postgres as postgres_support

    postgres_server = postgres_support.postgres_server  # session-wide server
    postgres_url = postgres_support.postgres_url        # a fresh empty database per test

initdb and postgres refuse to run as root; as root they run as the `postgres` system
user in a folder that user owns. Tests are skipped (with the reason) only when the
PostgreSQL binaries are not installed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.ports import HOST, free_port, port_accepts

BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return argv


class PostgresServer:
    """One postgres process over its own data folder; a context manager."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        self.datadir = self.workdir / "data"
        self.log_file = self.workdir / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def start(self, timeout_s: float = 30.0) -> None:
        """initdb (the first time), start the server and wait until it accepts connections."""
        first = not self.datadir.exists()
        if first:
            self._initdb()
        for _ in range(3 if first else 1):  # a restart keeps its port: URLs were handed out
            logged_before = len(self.log_text())
            self._spawn()
            if self._wait(timeout_s):
                return
            if "Address already in use" not in self.log_text()[logged_before:]:
                break
            self.port = free_port()  # taken between its pick and the server's bind: pick again
        self.close()
        raise RuntimeError(f"postgres did not start:\n{self.log_text()[-2000:]}")

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, SUPERUSER, SUPERUSER)
        initdb = [str(BIN / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8"]
        subprocess.run(_as_server_user(initdb), check=True, capture_output=True)

    def _spawn(self) -> None:
        server = [str(BIN / "postgres"), "-D", str(self.datadir), "-p", str(self.port), "-h", HOST]
        # Sockets go in our folder, fsync off: a test database need not survive a power cut.
        server += ["-k", str(self.workdir), "-c", "fsync=off", "-c", "synchronous_commit=off"]
        # Started directly as the server user (not through runuser) so that our signal reaches it.
        user = SUPERUSER if os.geteuid() == 0 else None
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(server, stdout=log, stderr=log, user=user, group=user)

    def _wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._accepts_queries():
            if self._proc is None or self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                return False
            time.sleep(0.05)
        return True

    def _accepts_queries(self) -> bool:
        # The port opens before recovery ends ("the database system is starting up"), and another
        # PostgreSQL on the port would answer too while ours fails its bind: ours serves our folder.
        import psycopg

        if not port_accepts(self.port):
            return False
        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and Path(row[0]) == self.datadir

    def url(self, database: str = SUPERUSER) -> str:
        """A libpq URL for a database on this server."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def log_text(self) -> str:
        """What the server logged (for failure messages)."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected); `start()` brings it back."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: SIGTERM would wait for clients
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        """Stop the server and delete its folder; safe to call twice."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: list[PostgresServer] = []  # every test module imports the fixture; they share one server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the whole test session."""
    if not (BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL 15 is not installed ({BIN}/postgres missing; `make test` installs it)")
    if not _shared:
        _shared.append(PostgresServer())
        _shared[0].start()
    yield _shared[0]
    _shared[0].close()  # idempotent: the first module copy of this fixture to end stops it


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres_server.new_database()
