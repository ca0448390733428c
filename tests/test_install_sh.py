"""provisioning/: install.sh (dry run, and a real run into a temporary root), the test CA
script, and the authority's example broker configuration run by a real mosquitto."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from kiosk.config import load_config, parse_config
from kiosk.errors import UplinkError
from kiosk.selftest import publish_test_message
from tests.support.broker import HOST, MOSQUITTO, MOSQUITTO_PASSWD, free_port, port_accepts

ROOT = Path(__file__).resolve().parents[1]
PROVISIONING = ROOT / "provisioning"
INSTALL = PROVISIONING / "install.sh"


def sh(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a script, capturing its output, in an environment that does not point Python elsewhere."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(a) for a in argv]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_scripts_pass_shellcheck() -> None:
    scripts = sorted(PROVISIONING.glob("*.sh"))
    assert len(scripts) >= 2
    done = sh("shellcheck", *scripts)
    assert done.returncode == 0, done.stdout


def test_dry_run_prints_every_step_and_does_nothing(tmp_path: Path) -> None:
    done = sh("bash", INSTALL, "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "apt-get install -y -q --no-install-recommends python3-venv",
        "python3-pygame python3-numpy python3-pil python3-pyzbar libzbar0",
        "fonts-dejavu-core",
        "python3-picamera2 python3-libcamera python3-lgpio",
        "mosquitto-clients",
        "systemctl mask getty@tty1.service",
        "timedatectl set-ntp true",
        "python3 -m venv --system-site-packages --without-pip /opt/kiosk/venv",
        "python3 -m pip --python /opt/kiosk/venv/bin/python install -q --only-binary=:all: --upgrade "
        + f"-c {PROVISIONING / 'constraints.txt'} {ROOT}\\[device\\]",
        "install -m 0644 " + str(ROOT / "systemd" / "kiosk.service") + " /etc/systemd/system/kiosk.service",
        "systemctl enable kiosk.service",
        "chmod 0750 /etc/kiosk",
        "chmod 0700 /var/lib/kiosk",
        "timedatectl set-timezone Asia/Ho_Chi_Minh",
    ):
        assert expected in out, f"{expected!r} missing from the dry run:\n{out}"
    if shutil.which("useradd") and subprocess.run(["id", "kiosk"], capture_output=True).returncode != 0:
        assert "useradd --system --user-group" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_under_a_root_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "root"
    done = sh("bash", INSTALL, "--dry-run", "--root", target)
    assert done.returncode == 0, done.stderr
    assert "skipped under --root: apt" in done.stdout
    assert f"python3 -m venv --system-site-packages --without-pip {target}/opt/kiosk/venv" in done.stdout
    assert list(target.iterdir()) == []


def test_pip_installs_nothing_that_needs_compiling(tmp_path: Path) -> None:
    done = sh("bash", INSTALL, "--dry-run", cwd=tmp_path)
    pip = next(line for line in done.stdout.splitlines() if " -m pip --python " in line)
    assert "--only-binary=:all:" in pip and "[pi]" not in pip.replace("\\", "")
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    requirements = [setup["options"]["install_requires"], *setup["options.extras_require"].values()]
    assert not any("lgpio" in text for text in requirements), "PyPI has no aarch64 wheel of lgpio"


def test_console_blanking_is_turned_off_once(tmp_path: Path) -> None:
    cmdline = tmp_path / "root" / "boot" / "firmware" / "cmdline.txt"
    cmdline.parent.mkdir(parents=True)
    cmdline.write_text("console=serial0,115200 console=tty1 root=PARTUUID=abc rootwait\n")
    (cmdline.parent / "config.txt").write_text("dtparam=audio=on\n")
    for _ in range(2):
        done = sh("bash", INSTALL, "--root", tmp_path / "root", "--no-deps", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    assert cmdline.read_text().endswith(" rootwait consoleblank=0\n")
    assert "lacks camera_auto_detect=1" in done.stdout


# In the Raspberry Pi archive only (archive.raspberrypi.com), which Raspberry Pi OS has and
# Debian (and so this test's apt) has not: picamera2 and libcamera's Python bindings are
# Raspberry Pi's own, and Debian bookworm has no lgpio package.
RASPBERRY_PI_ARCHIVE_ONLY = {"python3-picamera2", "python3-libcamera", "python3-lgpio"}


def apt_packages() -> tuple[list[str], list[str]]:
    """install.sh's apt packages: Debian's, and the Raspberry Pi archive's."""
    done = sh("bash", INSTALL, "--list-packages")
    assert done.returncode == 0, done.stderr
    debian, rpi = done.stdout.splitlines()
    return debian.split(), rpi.split()


def test_raspberry_pi_archive_packages_are_listed_apart() -> None:
    debian, rpi = apt_packages()
    assert set(rpi) == RASPBERRY_PI_ARCHIVE_ONLY
    assert not set(debian) & RASPBERRY_PI_ARCHIVE_ONLY


@pytest.mark.slow
def test_debian_packages_resolve_for_arm64(tmp_path: Path) -> None:
    """A wrong package name fails here, not on site: apt resolves them for an empty arm64 system.

    apt runs with its own state (lists, cache, an empty dpkg status) and arm64 as the only
    architecture, as `dpkg --add-architecture arm64` would allow, without changing this machine.
    """
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available: install.sh's Debian packages cannot be resolved here")
    for folder in ("lists/partial", "cache/archives/partial"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "status").touch()
    options = [
        "-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
        "-o", f"Dir::State::Lists={tmp_path / 'lists'}", "-o", f"Dir::Cache={tmp_path / 'cache'}",
        "-o", f"Dir::State::status={tmp_path / 'status'}",
    ]  # fmt: skip
    update = sh("apt-get", "-q", *options, "update")
    assert update.returncode == 0, update.stdout + update.stderr
    debian, _ = apt_packages()
    simulate = sh("apt-get", "-q", *options, "install", "--simulate", "--no-install-recommends", *debian)
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr
    for package in debian:
        assert f"Inst {package} " in simulate.stdout, f"{package} is not installed for arm64"
    assert "[arm64]" in simulate.stdout


# The Python distributions install.sh takes from apt instead of pip (python3-venv and
# python3-pip are tools, not distributions the kiosk imports).
FROM_APT = {
    "python3-pygame": "pygame",
    "python3-numpy": "numpy",
    "python3-pil": "Pillow",
    "python3-pyzbar": "pyzbar",
}


def setup_requirements() -> dict[str, Requirement]:
    """setup.cfg's base and device requirements by distribution name."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = (setup["options"]["install_requires"] + setup["options.extras_require"]["device"]).splitlines()
    return {r.name: r for r in (Requirement(line) for line in lines if line.strip())}


def test_every_python_package_from_apt_is_a_requirement() -> None:
    debian, _ = apt_packages()
    from_apt = {p for p in debian if p.startswith("python3-")} - {"python3-venv", "python3-pip"}
    assert from_apt == set(FROM_APT)
    assert set(FROM_APT.values()) <= set(setup_requirements())


def test_bookworm_versions_of_apt_python_packages_satisfy_setup_cfg() -> None:
    """A raised minimum in setup.cfg that bookworm's package no longer meets fails here."""
    release = Path("/etc/os-release")
    if shutil.which("apt-cache") is None or "VERSION_CODENAME=bookworm" not in release.read_text():
        pytest.skip("needs Debian bookworm's apt (Raspberry Pi OS bookworm ships the same versions)")
    requirements = setup_requirements()
    for package, distribution in FROM_APT.items():
        shown = sh("apt-cache", "show", "--no-all-versions", package).stdout
        debian_version = next(line.split()[1] for line in shown.splitlines() if line.startswith("Version:"))
        upstream = debian_version.split(":")[-1].split("-")[0].split("+")[0]
        assert upstream in requirements[distribution].specifier, f"{package} {debian_version}"


def test_numpy_pin_is_a_constraint_so_an_upgrade_keeps_apts_numpy(tmp_path: Path) -> None:
    done = sh("bash", INSTALL, "--dry-run", cwd=tmp_path)
    pip = next(line for line in done.stdout.splitlines() if " -m pip --python " in line)
    assert "numpy" not in pip  # a named requirement would be upgraded into the venv by --upgrade
    constraints = (PROVISIONING / "constraints.txt").read_text().splitlines()
    assert "numpy<2" in constraints


def test_unknown_option_exits_2() -> None:
    done = sh("bash", INSTALL, "--frobnicate")
    assert done.returncode == 2
    assert "unknown argument --frobnicate" in done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real install into a temporary root: venv, package (without its dependencies), files."""
    target = tmp_path_factory.mktemp("root")
    done = sh("bash", INSTALL, "--root", target, "--no-deps", cwd=target)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@pytest.mark.slow
def test_install_makes_a_venv_seeing_system_packages(installed: Path) -> None:
    venv = installed / "opt" / "kiosk" / "venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert not list(venv.glob("lib/python3*/site-packages/pip")), "pip runs from outside the venv"
    found = sh(venv / "bin" / "python", "-c", "import kiosk; print(kiosk.__file__)", cwd=installed)
    assert found.stdout.startswith(str(venv)), found
    assert os.readlink(installed / "usr" / "local" / "bin" / "kiosk") == str(venv / "bin" / "kiosk")
    assert (installed / "opt" / "kiosk" / "docs" / "deployment.md").is_file()


@pytest.mark.slow
def test_install_writes_config_state_and_unit(installed: Path) -> None:
    unit = installed / "etc" / "systemd" / "system" / "kiosk.service"
    assert unit.read_text() == (ROOT / "systemd" / "kiosk.service").read_text()
    etc = installed / "etc" / "kiosk"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert stat.S_IMODE((installed / "var" / "lib" / "kiosk").stat().st_mode) == 0o700
    settings = load_config(etc / "kiosk.toml")
    assert settings.camera.backend == "picamera2"
    assert settings.feedback.gpio == "native"
    assert settings.paths.state_dir == Path("/var/lib/kiosk")
    assert (etc / "kiosk.toml.example").read_text() == (PROVISIONING / "kiosk.toml.example").read_text()


@pytest.mark.slow
def test_running_again_keeps_the_config(installed: Path) -> None:
    config = installed / "etc" / "kiosk" / "kiosk.toml"
    config.write_text(config.read_text() + '\n[destination]\nid = "cho-ben-thanh"\n')
    edited = config.read_text()
    done = sh("bash", INSTALL, "--root", installed, "--no-deps", cwd=installed)
    assert done.returncode == 0, done.stderr
    assert "keeping the existing" in done.stdout
    assert config.read_text() == edited


# --- the test CA ------------------------------------------------------------------------------


def test_test_ca_chain_verifies(tmp_path: Path) -> None:
    done = sh("bash", PROVISIONING / "make-test-ca.sh", "--out", tmp_path, "kiosk-0001")
    assert done.returncode == 0, done.stderr
    certs = [tmp_path / "server.crt", tmp_path / "kiosk-0001.crt"]
    verified = sh("openssl", "verify", "-CAfile", tmp_path / "ca.crt", *certs)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    subject = sh("openssl", "x509", "-in", tmp_path / "kiosk-0001.crt", "-noout", "-subject").stdout
    assert "CN = kiosk-0001" in subject
    san = sh("openssl", "x509", "-in", tmp_path / "server.crt", "-noout", "-ext", "subjectAltName").stdout
    assert "IP Address:127.0.0.1" in san
    assert stat.S_IMODE((tmp_path / "kiosk-0001.key").stat().st_mode) == 0o600


def test_test_ca_is_reused_for_more_devices(tmp_path: Path) -> None:
    sh("bash", PROVISIONING / "make-test-ca.sh", "--out", tmp_path)
    ca = (tmp_path / "ca.crt").read_bytes()
    assert sh("bash", PROVISIONING / "make-test-ca.sh", "--out", tmp_path, "kiosk-0002").returncode == 0
    assert (tmp_path / "ca.crt").read_bytes() == ca
    assert (
        sh("openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "kiosk-0002.crt").returncode == 0
    )


def test_test_ca_refuses_a_bad_device_id(tmp_path: Path) -> None:
    done = sh("bash", PROVISIONING / "make-test-ca.sh", "--out", tmp_path, "Kiosk One")
    assert done.returncode == 2
    assert "not a device id" in done.stderr


# --- the example broker configuration --------------------------------------------------------


@pytest.fixture
def example_broker(tmp_path: Path) -> Iterator[dict[str, object]]:
    """mosquitto running provisioning/mosquitto.conf and acl.example, on loopback ports."""
    ca = tmp_path / "ca"
    assert sh("bash", PROVISIONING / "make-test-ca.sh", "--out", ca, "kiosk-0002").returncode == 0
    passwords = tmp_path / "kiosk.passwd"
    passwords.touch(mode=0o600)
    for user, password in {"kiosk-0001": "pw1", "central": "pwc"}.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), user, password], check=True)
    proc, ports = _start_example_broker(tmp_path, ca, passwords)
    try:
        yield {"ca": ca, "ports": ports}
    finally:
        proc.kill()
        proc.wait()


def _start_example_broker(
    tmp_path: Path, ca: Path, passwords: Path
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    for _ in range(3):
        ports = {"8883": free_port(), "8884": free_port(), "1883": free_port()}
        conf = _example_conf(tmp_path, ca, passwords, ports)
        log = tmp_path / "mosquitto.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=out)
        failure = _wait_for(list(ports.values()), proc, log)
        if failure is None:
            return proc, ports
        # A port taken between its pick and mosquitto's bind: pick new ones; any other failure is real.
        assert "Address already in use" in failure, failure
    raise AssertionError(f"mosquitto found its ports taken three times:\n{failure}")


def _example_conf(tmp_path: Path, ca: Path, passwords: Path, ports: dict[str, int]) -> Path:
    text = (PROVISIONING / "mosquitto.conf").read_text()
    for name in ("ca.crt", "server.crt", "server.key"):
        text = text.replace(f"/etc/mosquitto/certs/{name}", str(ca / name))
    text = text.replace("/etc/mosquitto/kiosk.passwd", str(passwords))
    text = text.replace("/etc/mosquitto/kiosk.acl", str(PROVISIONING / "acl.example"))
    text = text.replace("listener 1883 127.0.0.1", f"listener {ports['1883']} {HOST}")
    for port in ("8883", "8884"):
        text = text.replace(f"listener {port}\n", f"listener {ports[port]} {HOST}\n")
    if os.geteuid() == 0:
        text = "user root\n" + text  # mosquitto would drop to a user that cannot read tmp files
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    return conf


def _wait_for(ports: list[int], proc: subprocess.Popen[bytes], log: Path) -> str | None:
    """None once our mosquitto runs and listens on all ports; what it said if it exited first."""
    deadline = time.monotonic() + 10
    # Another program listening on one of the ports accepts too: only mosquitto's "running" line says
    # that it opened every listener itself.
    while " running" not in log.read_text(errors="replace") or not all(port_accepts(p) for p in ports):
        if proc.poll() is not None:
            return log.read_text(errors="replace") or "mosquitto exited"
        if time.monotonic() > deadline:
            proc.kill()  # not left running past the failed test
            proc.wait()
            raise AssertionError("mosquitto did not listen within 10 s")
        time.sleep(0.05)
    if proc.poll() is not None:
        return log.read_text(errors="replace")
    return None


def _device(broker: dict[str, object], device: str, *, listener: str = "8883", **uplink: object) -> object:
    ports = broker["ports"]
    assert isinstance(ports, dict)
    data = {
        "device": {"id": device},
        "destination": {"id": "cho-ben-thanh"},
        "uplink": {"broker": f"mqtts://{HOST}:{ports[listener]}", **uplink},
    }
    return parse_config(data)


@pytest.mark.broker
def test_a_broker_start_is_not_fooled_by_another_server_on_its_port(tmp_path: Path) -> None:
    # The foreign server accepts connections on the port while our mosquitto fails to bind it.
    with socket.socket() as foreign:
        foreign.bind((HOST, 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(
            f"listener {port} {HOST}\nallow_anonymous true\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        log = tmp_path / "mosquitto.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=out)
        try:
            failure = _wait_for([port], proc, log)
        finally:
            proc.kill()
            proc.wait()
    assert failure is not None and "Address already in use" in failure


def test_example_broker_lets_a_device_write_only_its_own_topics(
    example_broker: dict[str, object], tmp_path: Path
) -> None:
    password = tmp_path / "pw"
    password.write_text("pw1\n")
    password.chmod(0o600)
    ca = example_broker["ca"]
    assert isinstance(ca, Path)
    settings = _device(
        example_broker, "kiosk-0001", password_file=str(password), tls={"ca_file": str(ca / "ca.crt")}
    )
    publish_test_message(settings, "kiosk/v1/cho-ben-thanh/kiosk-0001/event", timeout_s=5)  # type: ignore[arg-type]
    publish_test_message(settings, "kiosk/v1/cho-ben-thanh/kiosk-0001/state", timeout_s=5)  # type: ignore[arg-type]
    for topic in (
        "kiosk/v1/cho-ben-thanh/kiosk-0002/event",
        "kiosk/v1/statuslist",
        "kiosk/v1/x/kiosk-0001/ack",
    ):
        with pytest.raises(UplinkError, match="not accepted"):
            publish_test_message(settings, topic, timeout_s=5)  # type: ignore[arg-type]


@pytest.mark.broker
def test_example_broker_takes_client_certificates(example_broker: dict[str, object]) -> None:
    ca = example_broker["ca"]
    assert isinstance(ca, Path)
    tls = {
        "ca_file": str(ca / "ca.crt"),
        "cert_file": str(ca / "kiosk-0002.crt"),
        "key_file": str(ca / "kiosk-0002.key"),
    }
    settings = _device(example_broker, "kiosk-0002", listener="8884", tls=tls)
    publish_test_message(settings, "kiosk/v1/cho-ben-thanh/kiosk-0002/event", timeout_s=5)  # type: ignore[arg-type]
    with pytest.raises(UplinkError, match="not accepted"):
        publish_test_message(settings, "kiosk/v1/cho-ben-thanh/kiosk-0001/event", timeout_s=5)  # type: ignore[arg-type]


@pytest.mark.broker
def test_example_broker_refuses_anonymous_devices(example_broker: dict[str, object]) -> None:
    ca = example_broker["ca"]
    assert isinstance(ca, Path)
    settings = _device(example_broker, "kiosk-0001", tls={"ca_file": str(ca / "ca.crt")})
    with pytest.raises(UplinkError, match="refused"):
        publish_test_message(settings, "kiosk/v1/cho-ben-thanh/kiosk-0001/event", timeout_s=5)  # type: ignore[arg-type]
