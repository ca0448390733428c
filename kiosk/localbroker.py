"""A throwaway mosquitto on a free loopback port, for `kiosk demo` (and anything else local)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from kiosk.errors import UplinkError
from kiosk.ports import HOST, free_port, port_accepts

STARTS = 3  # a port taken after it was picked costs one more start, not a failed demo


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
        """Start mosquitto and wait until it runs and accepts connections; UplinkError if it cannot."""
        if self.program is None:
            raise UplinkError("mosquitto is not installed (apt-get install mosquitto)")
        for _ in range(STARTS):
            if self._spawn_and_wait(self.program, timeout_s):
                return self
            if "Address already in use" not in self.log_path.read_text(errors="replace"):
                break
            self.port = free_port()  # another program took the port between our pick and mosquitto's bind
        raise UplinkError(f"mosquitto did not start; see {self.log_path}")

    @property
    def log_path(self) -> Path:
        """Where mosquitto logs."""
        return self.workdir / "mosquitto.log"

    def _spawn_and_wait(self, program: str, timeout_s: float) -> bool:
        conf = self._write_conf()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen([program, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                return False
            time.sleep(0.05)
        return True

    def _ready(self) -> bool:
        # The port accepting is not enough: another program listening on it accepts too, while
        # our mosquitto fails its bind. It logs "mosquitto version X running" once it listens.
        alive = self._process is not None and self._process.poll() is None
        return alive and " running" in self.log_path.read_text(errors="replace") and port_accepts(self.port)

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
