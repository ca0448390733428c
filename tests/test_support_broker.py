"""The tests' mosquitto: a first start retries on new ports when its port is taken, then gives up loudly."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import broker as broker_support
from tests.support.broker import HOST, Mosquitto


def test_a_start_that_finds_its_port_taken_every_time_raises_with_mosquittos_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as foreign:
        foreign.bind((HOST, 0))
        foreign.listen()
        taken = foreign.getsockname()[1]
        monkeypatch.setattr(broker_support, "free_port", lambda: taken)  # every pick lands on it
        broker = Mosquitto(tmp_path)
        with pytest.raises(RuntimeError, match="Address already in use"):
            broker.start()
        assert not broker.running
        assert broker.log_text().count("Address already in use") == 1  # the log of the last start


def test_a_start_that_found_its_port_taken_once_runs_on_a_new_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as foreign:
        foreign.bind((HOST, 0))
        foreign.listen()
        taken = foreign.getsockname()[1]
        broker = Mosquitto(tmp_path)
        broker.port = taken
        broker._write_conf(*broker._conf_args)
        with broker:
            assert broker.running and broker.port != taken
