"""Free loopback ports for throwaway local servers: the demo's broker, the dashboard's screenshots, tests.

Binding port 0 lets the kernel pick from its ephemeral range, the same range every
outgoing connection takes its source port from: between the pick and the server's own
bind, a client socket may take the port ("Address already in use"). So ports are picked
below that range (or above it when nothing is left below), checked bindable, and chosen
at random so that processes picking at the same time rarely pick the same one. Within
one process a port is never handed out twice. A server that still finds its port taken
should pick again and retry its start; and a start counts only once the server itself runs
(its own "running" line, its own data folder), not when the port accepts connections:
another program listening on the port accepts them too.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

HOST = "127.0.0.1"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Linux's default range starts at 32768; BSD, macOS and Windows use 49152-65535.
DEFAULT_EPHEMERAL = (32768, 65535)
LOWEST = 10000  # below: the registered ports of services a machine may well run
TRIES = 200

_given: set[int] = set()
_lock = threading.Lock()
_random = random.SystemRandom()  # not the module's generator: forked processes would share its state


def ephemeral_range(path: Path = EPHEMERAL_RANGE) -> tuple[int, int]:
    """The kernel's ephemeral port range (low, high), or the usual defaults when it cannot be read."""
    try:
        low, high = (int(field) for field in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return (low, high) if 0 < low <= high <= 65535 else DEFAULT_EPHEMERAL


def candidates(ephemeral: tuple[int, int]) -> range:
    """The ports outside the ephemeral range that free_port picks from: the larger side of it."""
    low, high = ephemeral
    below, above = range(LOWEST, low), range(max(high + 1, LOWEST), 65536)
    return below if len(below) >= len(above) else above


def free_port(host: str = HOST, *, ephemeral: tuple[int, int] | None = None) -> int:
    """A TCP port on `host`, outside the ephemeral range, that is bindable now and new to this process."""
    low, high = ephemeral or ephemeral_range()
    pool = candidates((low, high))
    with _lock:
        for _ in range(TRIES if pool else 0):
            port = _random.choice(pool)
            if port not in _given and bindable(port, host):
                _given.add(port)
                return port
    raise OSError(f"no free TCP port on {host} outside the ephemeral range {low}-{high}")


def bindable(port: int, host: str = HOST) -> bool:
    """Whether a TCP socket could bind host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
