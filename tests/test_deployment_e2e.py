"""docs/deployment.md, step by step, with processes: bundle, provision, register, ingest, run, update.

The broker is provisioning/mosquitto.conf with acl.example and its password file (the fixture
lives in test_install_sh); the kiosk logs in as kiosk-0001 over TLS with the bundle's CA, and
central's ingest, `statuslist publish` and `trustlist publish` log in as `central` on loopback.
The replay camera loops over two vaccine passports: A signed by a document signer of the first
trust list, B by one that only the second trust list holds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import pytest

from kiosk import cardmaker, keys, scenes, statuslist
from kiosk.cli.status import status_of
from kiosk.config import load_config
from tests.support.broker import HOST
from tests.test_install_sh import example_broker

__all__ = ["example_broker"]  # the fixture, found by name

DEVICE = "kiosk-0001"  # the example broker's password file knows it (password pw1)
SHARE_GROUP = "central-3b9e51d07c22"
NOW = datetime.now(UTC)
KIOSK = [sys.executable, "-m", "kiosk"]
CENTRAL = [sys.executable, "-m", "kiosk.central.cli"]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def run(argv: list[str | Path]) -> str:
    """Run one command as a process; its standard output, or a failure showing its standard error."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=ENV,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, f"{argv[2:]} exited {done.returncode}: {done.stderr}"
    return done.stdout


class Paths:
    """The authority's folder, the technician's kiosk (etc and state) and central's database."""

    def __init__(self, root: Path) -> None:
        self.authority, self.etc, self.state = root / "authority", root / "etc", root / "state"
        for folder in (self.authority, self.etc, self.authority / "dsc"):
            folder.mkdir(parents=True)
        self.key = self.authority / "authority.key"
        self.public = self.authority / "authority.key.pub.pem"
        self.config = self.etc / "kiosk.toml"
        self.db = f"sqlite:///{root / 'central.sqlite3'}"
        self.central_password = self.authority / "central.password"


def signer(paths: Paths, name: str) -> cardmaker.DccSigner:
    """A document signer of the vaccine passports, its certificate saved as dsc/NAME.pem."""
    made = cardmaker.make_dcc_signer(not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365))
    cardmaker.save_signer(made, paths.authority / f"{name}.key", paths.authority / "dsc" / f"{name}.pem")
    return made


def passport(made: cardmaker.DccSigner, uvci: str) -> str:
    """A complete vaccination signed by `made`."""
    certificate = cardmaker.dcc_vaccination_complete(on=date(2021, 9, 1), uvci=uvci)
    return cardmaker.dcc_payload(certificate, signer=made, issued_at=NOW - timedelta(days=1),
                                 expires_at=NOW + timedelta(days=300))  # fmt: skip


def status_list(paths: Paths, version: int, identity: str, status: str) -> Path:
    """A signed status list with one entry, as `kiosk statuslist make` and `sign` write it."""
    entry = statuslist.Entry(identity, statuslist.Status(status))
    payload = statuslist.build_payload([entry], version=version, issued=NOW)
    signed = paths.authority / f"statuslist-{version}.jws"
    signed.write_bytes(statuslist.sign_payload(payload, keys.load_private_key(paths.key)))
    return signed


def trust_list(paths: Paths, version: int) -> Path:
    """`kiosk-central trustlist sign` over the document signers in dsc/ now."""
    signed = paths.authority / f"trustlist-{version}.jws"
    run([*CENTRAL, "trustlist", "sign", paths.authority / "dsc", "--version", str(version),
         "--authority-key", paths.key, "-o", signed])  # fmt: skip
    return signed


def write_frames(folder: Path, payloads: list[str]) -> None:
    """The replay camera's frames: each passport held up, then a pause (the camera loops over them)."""
    folder.mkdir()
    for number, frame in enumerate(scenes.demo_frames(payloads)):
        cv2.imwrite(str(folder / f"{number:05d}.png"), frame)


def base_config(paths: Paths, frames: Path) -> None:
    """What install.sh leaves in /etc/kiosk/kiosk.toml, set here for a replay camera without a screen."""
    paths.config.write_text(f"""
[camera]
source = "{frames}"
fps = 15
replay_loop = true
[policy]
repeat_window_s = 1
[feedback]
screen = "offscreen"
[paths]
state_dir = "{paths.state}"
""")


def secret(path: Path, text: str) -> Path:
    """A file readable only by its owner, like the passwords in the guide."""
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start long-running processes; each is stopped (SIGTERM, then SIGKILL) at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str | Path], log: Path) -> subprocess.Popen[str]:
        with log.open("w") as out:
            argv_text = [str(a) for a in argv]
            started.append(subprocess.Popen(argv_text, env=ENV, stdout=out, stderr=out, text=True))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stored(paths: Paths) -> list[tuple[int, str, str, str]]:
    """(seq, verdict, reason, format) of kiosk-0001's events central has stored, in seq order."""
    with sqlite3.connect(paths.db.removeprefix("sqlite:///")) as db:
        try:
            rows = db.execute(
                "SELECT seq, verdict, reason, format FROM events WHERE device = ? ORDER BY seq", (DEVICE,)
            ).fetchall()
        except sqlite3.OperationalError:  # the ingest has not made its tables yet
            return []
    return [tuple(row) for row in rows]


def wait_for(what: str, found: Callable[[], object], logs: list[Path], timeout_s: float = 25) -> object:
    """Poll until `found()` is true; on time-out fail with the processes' logs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = found()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(f"== {p.name}\n{p.read_text()}" for p in logs))


def kiosk_status(paths: Paths) -> dict:
    """`kiosk status --json`, as the technician would run it (exit 1 while a fault is on record)."""
    done = subprocess.run([*KIOSK, "status", "--config", str(paths.config), "--json"],
                          capture_output=True, text=True, env=ENV, timeout=60)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


@pytest.mark.broker
@pytest.mark.slow
def test_the_deployment_guide_with_processes(
    example_broker: dict[str, object], tmp_path: Path, processes: Callable[..., subprocess.Popen[str]]
) -> None:
    ports, ca = example_broker["ports"], example_broker["ca"]
    assert isinstance(ports, dict) and isinstance(ca, Path)
    paths = Paths(tmp_path)
    central_broker = ["--broker", f"mqtt://{HOST}:{ports['1883']}", "--username", "central",
                      "--password-file", secret(paths.central_password, "pwc")]  # fmt: skip

    # 5. The authority: its key, the trust list, the status list, the bundle.
    keys.generate_device_key(paths.key)  # `kiosk statuslist keygen --out-key authority.key`
    paths.public.write_text(keys.public_pem(keys.load_private_key(paths.key).public_key()))
    first, second = (
        signer(paths, "dsc-1"),
        cardmaker.make_dcc_signer(not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)),
    )
    trustlist_1 = trust_list(paths, 1)
    statuslist_1 = status_list(paths, 1, "URN:UVCI:01:VN:SOMEONEELSE", "F1")
    seal, hashes = paths.authority / "seal.key", paths.authority / "hash.key"
    run([*CENTRAL, "identity-keys", "--sealing-key", seal, "--hash-key", hashes,
         "--public", paths.authority / "seal.pem"])  # fmt: skip
    bundle = paths.authority / "cho-ben-thanh.bundle"
    fingerprint = run([
        *CENTRAL, "bundle", "--authority-key", paths.key, "--trust-list-token", trustlist_1,
        "--status-list", statuslist_1,
        "--broker", f"mqtts://{HOST}:{ports['8883']}", "--broker-ca", ca / "ca.crt",
        "--destination", "cho-ben-thanh", "--venue", "Chợ Bến Thành", "--district", "Quận 1",
        "--ward", "Phường Bến Thành", "--direction", "in", "--mode", "kiosk", "-o", bundle,
        "--sealing-key", paths.authority / "seal.pem", "--destination-keys", paths.authority / "venues",
    ]).split()[-1]  # fmt: skip

    # 5. The technician provisions the kiosk with it.
    uvci_a, uvci_b = "URN:UVCI:01:VN:PERSONA0000001", "URN:UVCI:01:VN:PERSONB0000002"
    write_frames(tmp_path / "frames", [passport(first, uvci_a), passport(second, uvci_b)])
    base_config(paths, tmp_path / "frames")
    record = run([
        *KIOSK, "provision", "--bundle", bundle, "--authority-fingerprint", fingerprint,
        "--device-id", DEVICE, "--password-file", secret(paths.etc / "broker.password", "pw1"),
        "--config", paths.config, "--state-dir", paths.state,
    ])  # fmt: skip
    (tmp_path / "registration.json").write_text(record)

    # 6. Registered with the authority; 7. central's ingest with its secret share group.
    run([*CENTRAL, "--db", paths.db, "devices", "add", tmp_path / "registration.json"])
    logs = [tmp_path / "ingest.log", tmp_path / "kiosk.log"]
    processes([*CENTRAL, "--db", paths.db, "ingest", *central_broker, "--key", paths.key,
               "--share-group", SHARE_GROUP, "--sealing-key", seal, "--hash-key", hashes],
              logs[0])  # fmt: skip

    # 8. The kiosk runs: A passes (its signer is in the bundle's trust list), B is refused.
    kiosk = processes([*KIOSK, "run", "--config", paths.config], logs[1])
    wait_for("A passing and B refused", lambda: {("pass", "ok"), ("fail", "dcc_unknown_kid")}
             <= {(v, r) for _, v, r, f in stored(paths) if f == "dcc"}, logs)  # fmt: skip

    # The spool clears: central's acks cover every event the kiosk has made.
    settings = load_config(paths.config)
    cleared = wait_for("an empty backlog", lambda: (s := status_of(settings))["unacked"] == 0 and s, logs)
    assert isinstance(cleared, dict) and cleared["last_ack"]["seq"] >= 2
    assert cleared["trust"]["trust list"]["status"] == "pass"
    # The running daemon's own file says when central's last ack arrived and that no fault is in force.
    daemon = wait_for("the ack's arrival in the daemon's status",
                      lambda: (d := status_of(settings)["daemon"])["ack_arrived"] and d, logs)  # fmt: skip
    assert isinstance(daemon, dict) and (daemon["fault"], daemon["stale"]) == (None, False)

    # A status list published later blocks A.
    statuslist_2 = status_list(paths, 2, uvci_a, "F0")
    run([*CENTRAL, "statuslist", "publish", statuslist_2, *central_broker, "--authority-keys", paths.public])
    refusals = lambda: [s for s, _, r, _ in stored(paths) if r == "status_blocked"]  # noqa: E731
    blocked = wait_for("A blocked by status list 2", refusals, logs)
    assert isinstance(blocked, list)

    # A new trust list published while the kiosk runs lets B in (A stays blocked, so a pass is B).
    assert all(v == "fail" for s, v, _, f in stored(paths) if s >= blocked[0] and f == "dcc")
    cardmaker.save_signer(second, paths.authority / "dsc-2.key", paths.authority / "dsc" / "dsc-2.pem")
    run([*CENTRAL, "trustlist", "publish", trust_list(paths, 2), *central_broker,
         "--authority-keys", paths.public])  # fmt: skip
    passes = lambda: [s for s, v, _, f in stored(paths) if s > blocked[0] and (v, f) == ("pass", "dcc")]  # noqa: E731
    wait_for("B passing under trust list 2", passes, logs)
    assert (paths.state / "trustlist.jws").read_bytes() == (paths.authority / "trustlist-2.jws").read_bytes()
    trust = kiosk_status(paths)["trust"]
    assert "version 2" in trust["status list"]["detail"], trust

    kiosk.send_signal(signal.SIGTERM)
    assert kiosk.wait(15) == 0, logs[1].read_text()
