"""The systemd notify protocol (sd_notify): READY, WATCHDOG, STATUS, STOPPING.

systemd passes a unix datagram socket in $NOTIFY_SOCKET (an abstract one when it
starts with `@`). Outside systemd the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Sends state lines to systemd; silent when not run under a notify unit."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self._socket is not None

    def send(self, **fields: str | int) -> None:
        """Send KEY=value lines, e.g. send(READY=1, STATUS="scanning")."""
        if self._socket is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        # systemd may be gone (e.g. during shutdown); there is nothing useful to do then.
        with contextlib.suppress(OSError):
            self._socket.sendto(message.encode(), self._address)

    def ready(self, status: str) -> None:
        """Tell systemd start-up is complete."""
        self.send(READY=1, STATUS=status)

    def watchdog(self) -> None:
        """Pet the watchdog: the loop is turning and frames are arriving."""
        self.send(WATCHDOG=1)

    def status(self, text: str) -> None:
        """Set the one-line status `systemctl status` shows."""
        self.send(STATUS=text)

    def stopping(self) -> None:
        """Tell systemd a clean stop has begun."""
        self.send(STOPPING=1)

    def close(self) -> None:
        """Close the socket; idempotent."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec (from $WATCHDOG_USEC), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
