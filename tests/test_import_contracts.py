"""The architecture's import rules (setup.cfg [importlinter]) hold, and the checker would see a break."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    return subprocess.run(
        [*command, "--no-cache", "--no-logo", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )


@pytest.mark.slow
def test_the_import_contracts_hold() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.slow
def test_a_broken_contract_fails_the_check(tmp_path: Path) -> None:
    config = tmp_path / "contracts.ini"
    config.write_text(BROKEN_ON_PURPOSE, encoding="utf-8")
    done = lint_imports(str(config))
    assert done.returncode != 0
    assert "kiosk.app is not allowed to import kiosk.daemon" in done.stdout
