"""Loopback ports for local servers: outside the ephemeral range, bindable, never handed out twice."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import kiosk
from kiosk import ports
from kiosk.errors import UplinkError
from kiosk.localbroker import LocalBroker, find_mosquitto

ROOT = Path(kiosk.__file__).parent.parent


def test_a_port_is_below_the_ephemeral_range_and_bindable() -> None:
    low = ports.ephemeral_range()[0]
    for _ in range(50):
        port = ports.free_port()
        assert ports.LOWEST <= port < low
        with socket.socket() as s:
            s.bind((ports.HOST, port))  # raises if it was not free


def test_the_kernels_range_is_read_and_a_missing_or_odd_file_gives_the_defaults(tmp_path: Path) -> None:
    given = tmp_path / "ip_local_port_range"
    given.write_text("40000\t50000\n")
    assert ports.ephemeral_range(given) == (40000, 50000)
    assert ports.ephemeral_range(tmp_path / "missing") == ports.DEFAULT_EPHEMERAL
    for odd in ("", "40000", "a b", "50000 40000", "0 100", "1 70000"):
        given.write_text(odd)
        assert ports.ephemeral_range(given) == ports.DEFAULT_EPHEMERAL, odd


def test_with_no_room_below_the_range_ports_come_from_above_it() -> None:
    assert ports.candidates((32768, 60999)) == range(ports.LOWEST, 32768)
    assert ports.candidates((1024, 50000)) == range(50001, 65536)
    for _ in range(20):
        assert ports.free_port(ephemeral=(1024, 50000)) > 50000


def test_a_range_covering_every_port_is_a_clear_error() -> None:
    with pytest.raises(OSError, match="outside the ephemeral range 1024-65535"):
        ports.free_port(ephemeral=(1024, 65535))


def test_a_port_in_use_or_handed_out_before_is_not_handed_out() -> None:
    # An ephemeral range ending at 65530 leaves a pool of five: hold four; the fifth comes back, once.
    held = [socket.socket() for _ in range(4)]
    try:
        for s, port in zip(held, range(65531, 65535), strict=True):
            s.bind((ports.HOST, port))
        assert ports.free_port(ephemeral=(ports.LOWEST, 65530)) == 65535
        with pytest.raises(OSError, match="no free TCP port"):
            ports.free_port(ephemeral=(ports.LOWEST, 65530))
    finally:
        for s in held:
            s.close()


def test_concurrent_calls_in_one_process_never_collide() -> None:
    got: list[int] = []
    lock = threading.Lock()

    def pick() -> None:
        mine = [ports.free_port() for _ in range(25)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=pick, name=f"pick-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200 and len(set(got)) == 200


PICK = "import json; from kiosk.ports import free_port; print(json.dumps([free_port() for _ in range(20)]))"


def test_processes_picking_at_once_rarely_pick_the_same_ports() -> None:
    # Deterministic picks (the kernel's next port, or one seed in every process) would overlap entirely.
    argv = [sys.executable, "-c", PICK]
    runs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE) for _ in range(3)]
    picks = [set(json.loads(run.communicate(timeout=60)[0])) for run in runs]
    overlap = len(picks[0] & picks[1]) + len(picks[0] & picks[2]) + len(picks[1] & picks[2])
    assert overlap <= 2, picks  # 60 picks from ~22,000 ports: expected overlap about 0.2


@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")
def test_the_demo_broker_starts_on_another_port_when_its_port_was_taken(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path)
    taken = broker.port
    with socket.socket() as squatter:
        squatter.bind((ports.HOST, taken))  # bound, not listening: mosquitto's bind fails
        with broker:
            assert broker.port != taken
            assert ports.port_accepts(broker.port)


@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")
def test_the_demo_broker_is_not_fooled_by_another_server_listening_on_its_port(tmp_path: Path) -> None:
    # The foreign server accepts connections on the port; only our mosquitto running counts as started.
    broker = LocalBroker(tmp_path)
    taken = broker.port
    with socket.socket() as foreign:
        foreign.bind((ports.HOST, taken))
        foreign.listen()
        with broker:
            assert broker.port != taken
            assert broker._process is not None and broker._process.poll() is None
            assert f"listen socket on port {broker.port}" in broker.log_path.read_text()


def test_the_demo_broker_says_where_to_look_when_mosquitto_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(UplinkError, match=r"mosquitto did not start; see .*mosquitto\.log"):
        LocalBroker(tmp_path, program="/bin/false").start()
