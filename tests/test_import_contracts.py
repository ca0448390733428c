"""The architecture's import rules (setup.cfg [importlinter]) hold, and the checker would see a break."""

from __future__ import annotations

import configparser
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import kiosk

ROOT = Path(kiosk.__file__).parent.parent

BROKEN_ON_PURPOSE = """
[importlinter]
root_package = kiosk
include_external_packages = True

[importlinter:contract:app-without-loop]
name = The composition root without the loop (false: it assembles it)
type = forbidden
source_modules =
    kiosk.app
forbidden_modules =
    kiosk.daemon
"""


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """Run import-linter from the project's root, as `make lint` does."""
    entry = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    command = [sys.executable, "-c", entry]
    return subprocess.run(
        [*command, "--no-cache", "--no-logo", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )


@pytest.mark.slow
def test_the_import_contracts_hold() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.slow
def test_a_broken_contract_fails_the_check(tmp_path: Path) -> None:
    config = tmp_path / "contracts.ini"
    config.write_text(BROKEN_ON_PURPOSE, encoding="utf-8")
    done = lint_imports(str(config))
    assert done.returncode != 0
    assert "kiosk.app is not allowed to import kiosk.daemon" in done.stdout


CENTRAL_WITHOUT_DEVICE_LIBRARIES = """
import sys
device = ("pygame", "gpiozero", "zxingcpp", "pyzbar", "cv2", "PIL", "segno", "cbor2", "base45", "picamera2")
for name in device:
    sys.modules[name] = None  # any import of it now raises ImportError
from kiosk.central.cli import main
try:
    main(["--help"])
except SystemExit as e:
    print("exit", e.code)
"""


def test_central_runs_without_the_device_libraries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CENTRAL_WITHOUT_DEVICE_LIBRARIES], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 0")


def requirement_names(requirements: list[str]) -> set[str]:
    """Normalised names of the requirements that apply here (markers evaluated, no extra asked)."""
    parsed = (Requirement(line) for line in requirements)
    wanted = (r for r in parsed if r.marker is None or r.marker.evaluate({"extra": ""}))
    return {canonicalize_name(r.name) for r in wanted}


def closure(names: set[str]) -> set[str]:
    """The installed distributions `names` pull in, with theirs."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(requirement_names(metadata.requires(name) or []))
    return seen


def setup_requirements() -> tuple[list[str], dict[str, list[str]]]:
    """install_requires and extras_require as setup.cfg states them."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = lambda text: [line for line in text.splitlines() if line.strip() and not line.startswith("#")]  # noqa: E731
    extras = {name: lines(text) for name, text in parser["options.extras_require"].items()}
    return lines(parser["options"]["install_requires"]), extras


def test_a_central_install_pulls_no_device_library() -> None:
    base, extras = setup_requirements()
    pulled = closure(requirement_names(base + extras["central"]))
    assert {"paho-mqtt", "cryptography", "pydantic", "psycopg"} <= pulled
    device = {"pygame", "gpiozero", "zxing-cpp", "pyzbar", "opencv-python-headless", "pillow", "lgpio"}
    assert not pulled & device


def test_opencv_is_only_the_usb_cameras_extra() -> None:
    base, extras = setup_requirements()
    holding = {name for name, reqs in extras.items() if "opencv-python-headless" in requirement_names(reqs)}
    assert "opencv-python-headless" not in requirement_names(base + extras["device"])
    assert holding == {"usb"}


# What `kiosk run` must not keep resident: the other commands' libraries. Each is made
# unimportable in the kiosk's process; the run still scans a card.
NOT_ON_THE_RUN_PATH = (
    "kiosk.cardmaker", "kiosk.selftest", "kiosk.screen.samples", "kiosk.bundle", "kiosk.provision",
    "segno", "pyasn1", "pyasn1_modules", "hypothesis",
)  # fmt: skip
RUN_WITHOUT = """
import sys
for name in sys.argv[2:]:
    sys.modules[name] = None
from kiosk.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""


@pytest.mark.slow
def test_kiosk_run_imports_none_of_the_other_commands_libraries(tmp_path: Path) -> None:
    import signal
    import time

    from PIL import Image

    from kiosk import keys, scenes
    from tests.support.central import write_kiosk_keys
    from tests.test_daemon import NATIONAL

    keys.generate_device_key(tmp_path / "device.key")
    write_kiosk_keys(tmp_path)
    Image.fromarray(scenes.render(NATIONAL, scenes.Scene(width=320, height=240))).save(tmp_path / "card.png")
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[camera]\nsource = "{tmp_path / "card.png"}"\n[paths]\nstate_dir = "{tmp_path}"\n'
        '[uplink]\nenabled = false\n[feedback]\nscreen = "offscreen"\n'
    )
    env = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONPATH": str(ROOT), "PATH": ""}
    argv = [sys.executable, "-c", RUN_WITHOUT, str(config), *NOT_ON_THE_RUN_PATH]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env) as process:
        assert process.stderr is not None
        try:
            deadline = time.monotonic() + 60
            lines = []
            while time.monotonic() < deadline and not any("decision verdict=" in line for line in lines):
                line = process.stderr.readline()
                if not line:
                    break
                lines.append(line)
            process.send_signal(signal.SIGTERM)
            rest = process.communicate(timeout=30)[1]
        finally:
            process.kill()  # a no-op once it has exited; never left running past the test
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "decision verdict=pass" in log and "Traceback" not in log


def test_each_command_is_registered_by_the_module_it_is_keyed_to() -> None:
    from kiosk.cli import COMMANDS, build_parser

    for command in COMMANDS:
        parser = build_parser([command])
        choices = next(a.choices for a in parser._actions if a.dest == "command")
        assert choices is not None and list(choices) == [command]
