"""A throwaway mosquitto on a free loopback port, for `kiosk demo` (and anything else local)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from kiosk.errors import UplinkError

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_accepts(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def find_mosquitto() -> str | None:
    """The mosquitto program, if installed (Debian puts it in /usr/sbin)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class LocalBroker:
    """mosquitto listening on 127.0.0.1 only, anonymous, its config and log in `workdir`."""

    def __init__(self, workdir: Path, *, program: str | None = None) -> None:
        self.workdir = workdir
        self.program = program or find_mosquitto()
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's mqtt:// URL."""
        return f"mqtt://{HOST}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> LocalBroker:
        """Start mosquitto and wait until it accepts connections; UplinkError if it cannot."""
        if self.program is None:
            raise UplinkError("mosquitto is not installed (apt-get install mosquitto)")
        conf = self._write_conf()
        log = (self.workdir / "mosquitto.log").open("wb")
        self._process = subprocess.Popen([self.program, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not port_accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UplinkError(f"mosquitto did not start; see {self.workdir / 'mosquitto.log'}")
            time.sleep(0.05)
        return self

    def _write_conf(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} {HOST}", "allow_anonymous true", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto would otherwise drop to a user that cannot read workdir
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def stop(self) -> None:
        """Stop mosquitto (idempotent)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
