"""A real mosquitto for tests: its own config, a free loopback port, killable and restartable.

Use the fixtures in a test module::

    from tests.support import broker as broker_support
    from tests.support.broker import BrokerFactory, Mosquitto

    mosquitto = broker_support.mosquitto  # fixtures are found by module attribute name
    mosquitto_factory = broker_support.mosquitto_factory

    def test_something(mosquitto: Mosquitto) -> None:
        ...  # connect to mosquitto.host, mosquitto.port

    def test_with_acls(mosquitto_factory: BrokerFactory) -> None:
        broker = mosquitto_factory(users={"kiosk-1": "pw"}, acl="pattern write kiosk/v1/+/%u/event\\n")

Every broker a factory made is stopped at the test's teardown, even when the test fails.
`kill()` is SIGKILL (nothing saved), `stop()` is SIGTERM (persistence saved), `start()`
brings the broker back on the same port with the same persistence folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiosk.ports import HOST, free_port, port_accepts

__all__ = ["HOST", "MOSQUITTO", "MOSQUITTO_PASSWD", "BrokerFactory", "Mosquitto", "TlsListener", "free_port",
           "port_accepts"]  # fmt: skip

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
STARTS = 3  # a first start that finds its port taken picks new ports, this many times in all


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener's files; with `require_certificate` clients must present a certificate."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True


class Mosquitto:
    """One mosquitto process with a config written into `workdir`."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: TlsListener | None = None,
        persistence: bool = False,
        autosave_interval_s: int = 1,
        max_packet_size: int | None = None,
        extra_conf: str = "",
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.log_file = workdir / "mosquitto.log"
        self.conf_file = workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self._conf_args = (users, acl, tls, persistence, autosave_interval_s, max_packet_size, extra_conf)
        self._started_once = False
        self._write_conf(*self._conf_args)

    @property
    def url(self) -> str:
        """The plain listener as a kiosk config URL."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        """The TLS listener as a kiosk config URL."""
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _write_conf(
        self,
        users: dict[str, str] | None,
        acl: str | None,
        tls: TlsListener | None,
        persistence: bool,
        autosave_interval_s: int,
        max_packet_size: int | None,
        extra_conf: str,
    ) -> None:
        lines = ["per_listener_settings false", "log_dest stderr", "log_type all", "log_timestamp true"]
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto would otherwise drop to a user that cannot read tmp files
        lines += self._auth_lines(users, acl)
        if persistence:
            folder = self.workdir / "persist"
            folder.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {folder}/"]
            lines += [f"autosave_interval {autosave_interval_s}", "autosave_on_changes false"]
        if max_packet_size:
            lines.append(f"max_packet_size {max_packet_size}")
        lines += [f"listener {self.port} {HOST}"]
        if tls:
            lines += self._tls_lines(tls)
        self.conf_file.write_text("\n".join(lines) + "\n" + extra_conf)

    def _auth_lines(self, users: dict[str, str] | None, acl: str | None) -> list[str]:
        lines = []
        if users:
            password_file = self.workdir / "passwords"
            password_file.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(password_file), name, password], check=True)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        return lines

    def _tls_lines(self, tls: TlsListener) -> list[str]:
        return [
            f"listener {self.tls_port} {HOST}",
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            f"require_certificate {'true' if tls.require_certificate else 'false'}",
        ]

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker (again) and wait until its port accepts connections."""
        if self.running:
            return
        for start in range(STARTS, 0, -1):
            try:
                self._spawn_and_wait(timeout_s)
                break
            except RuntimeError:
                # Another program took our free port before mosquitto bound it: on the first
                # start only, pick new ports (a restart must keep its port). The last failure
                # raises, with mosquitto's own words.
                if start == 1 or self._started_once or "Address already in use" not in self.log_text():
                    raise
                self.log_file.unlink()
                self.port = free_port()
                self.tls_port = free_port() if self.tls_port else None
                self._write_conf(*self._conf_args)
        self._started_once = True

    def _spawn_and_wait(self, timeout_s: float) -> None:
        starts_before = self._running_lines()
        log = self.log_file.open("ab")
        try:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_file)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        self._wait_until_listening(timeout_s, starts_before)

    def _running_lines(self) -> int:
        # mosquitto logs "mosquitto version X running" once every listener is open.
        return self.log_text().count(" running")

    def _wait_until_listening(self, timeout_s: float, starts_before: int) -> None:
        deadline = time.monotonic() + timeout_s
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        while self._running_lines() <= starts_before or not all(port_accepts(p) for p in ports):
            if not self.running:
                raise RuntimeError(f"mosquitto exited at start-up:\n{self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mosquitto did not listen within {timeout_s}s:\n{self.log_text()[-2000:]}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the broker: nothing is saved, clients see the connection drop."""
        self._end(signal.SIGKILL)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the broker and wait: a clean stop that saves persistence."""
        self._end(signal.SIGTERM, timeout_s)

    def restart(self) -> None:
        """Stop cleanly and start again on the same ports and persistence folder."""
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the broker if it runs; safe to call twice."""
        self.kill()

    def log_text(self) -> str:
        """Everything the broker logged so far (for assertion messages)."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BrokerFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Make started brokers with `Mosquitto` options; all are killed at teardown."""
    made: list[Mosquitto] = []

    def make(*, start: bool = True, **options: object) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto-{len(made)}", **options)  # type: ignore[arg-type]
        made.append(broker)
        if start:
            broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in made:
            broker.close()


@pytest.fixture
def mosquitto(mosquitto_factory: BrokerFactory) -> Mosquitto:
    """A started broker: anonymous, plain listener on a free loopback port, no persistence."""
    return mosquitto_factory()
