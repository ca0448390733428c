"""The tests' PostgreSQL: a start counts only when our own server answers, not another on its port."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.support import postgres as postgres_support
from tests.support.postgres import PostgresServer

postgres_server = postgres_support.postgres_server


def test_a_start_is_not_fooled_by_another_postgresql_on_its_port(postgres_server: PostgresServer) -> None:
    # The session's server already answers on the port picked for the new one (as if it took it first).
    server = PostgresServer()
    server.port = postgres_server.port
    with server:
        assert server.port != postgres_server.port
        with psycopg.connect(server.url()) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None and Path(row[0]) == server.datadir
