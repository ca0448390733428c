"""Which SDL video drivers pygame really has: Debian's python3-pygame (system SDL) has kmsdrm,
PyPI's wheel (the venv's pygame) does not, and the self-test and the screen say so.

"kmsdrm not available" from display.init() proves nothing here (no DRM device on this machine,
whichever SDL): the tests read SDL's own list of compiled-in drivers. python3-pygame is installed
by `make test` (the Makefile's APT_PACKAGES).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kiosk.config import parse_config
from kiosk.errors import FeedbackError
from kiosk.screen.sdl import SdlBuild, loaded_sdl, sdl_build, wanted_drivers
from kiosk.selftest import Probes, check_video_driver

SDL_MODULE = Path(__file__).resolve().parents[1] / "kiosk" / "screen" / "sdl.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Our own module run by Debian's Python: it needs only the standard library and pygame.
ASK_SYSTEM_SDL = (
    "import json, runpy, sys; sdl = runpy.run_path(sys.argv[1]); b = sdl['sdl_build']();"
    "print(json.dumps([b.library, b.version, b.drivers]))"
)


def system_sdl() -> SdlBuild:
    """The SDL build Debian's python3-pygame loads, as our own code reads it in that Python."""
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-c", ASK_SYSTEM_SDL, str(SDL_MODULE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYGAME_HIDE_SUPPORT_PROMPT": "1"},
    )
    assert probe.returncode == 0, f"Debian's python3-pygame is missing? run `make apt`:\n{probe.stderr}"
    library, version, drivers = json.loads(probe.stdout)
    return SdlBuild(library, version, tuple(drivers))


def test_debians_pygame_has_kmsdrm_compiled_in() -> None:
    build = system_sdl()
    assert build.library.startswith("/usr/lib/") and "pygame" not in build.library
    assert build.has("kmsdrm"), build.drivers
    assert build.has("dummy") and build.has("offscreen")


def test_the_pip_wheels_sdl_lacks_kmsdrm() -> None:
    build = sdl_build()
    assert build is not None
    assert "pygame.libs" in build.library  # the wheel's own bundled copy, not the system's
    assert build.has("dummy") and build.has("x11")
    assert not build.has("kmsdrm"), build.drivers


def test_loaded_sdl_reads_the_kernels_list_of_mappings(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 42 /usr/lib/aarch64-linux-gnu/libSDL2_ttf-2.0.so.0.2000.1\n"
        "7f01-7f02 r-xp 00000000 08:01 43 /usr/lib/aarch64-linux-gnu/libSDL2-2.0.so.0.2600.5\n"
        "7f03-7f04 rw-p 00000000 00:00 0 \n"
    )
    assert loaded_sdl(maps) == "/usr/lib/aarch64-linux-gnu/libSDL2-2.0.so.0.2600.5"
    assert loaded_sdl(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("mode", "environ", "wanted"),
    [
        ("fullscreen", {}, ("kmsdrm",)),  # a bare Pi: display.py asks for kmsdrm
        ("fullscreen", {"SDL_VIDEODRIVER": "kmsdrm"}, ("kmsdrm",)),  # the unit's setting
        ("fullscreen", {"DISPLAY": ":0"}, ()),  # a desktop: SDL chooses
        ("window", {"SDL_VIDEODRIVER": "wayland, x11"}, ("wayland", "x11")),
        ("offscreen", {"SDL_VIDEODRIVER": "kmsdrm"}, ()),
        ("none", {}, ()),
    ],
)
def test_the_driver_the_screen_will_ask_for(
    mode: str, environ: dict[str, str], wanted: tuple[str, ...]
) -> None:
    assert wanted_drivers(mode, environ) == wanted


def test_selftest_fails_when_the_units_driver_is_missing() -> None:
    settings = parse_config({"feedback": {"screen": "fullscreen"}})
    result = check_video_driver(settings, Probes(environ={"SDL_VIDEODRIVER": "kmsdrm"}))
    assert result.status == "fail"
    assert result.detail.startswith("kmsdrm missing: SDL 2.") and "dummy" in result.detail
    assert "sudo apt install python3-pygame" in result.advice and "--system-site-packages" in result.advice


def test_selftest_passes_with_a_driver_this_sdl_has() -> None:
    settings = parse_config({"feedback": {"screen": "window"}})
    result = check_video_driver(settings, Probes(environ={"SDL_VIDEODRIVER": "dummy"}))
    assert result.status == "pass" and result.detail.startswith("dummy present")
    assert "kmsdrm" not in str(result.figures["drivers"]).lower()


def test_selftest_needs_no_driver_without_a_screen() -> None:
    settings = parse_config({"feedback": {"screen": "none"}})
    assert check_video_driver(settings, Probes(environ={"SDL_VIDEODRIVER": "kmsdrm"})).status == "pass"


def test_the_screen_blames_the_missing_driver_not_the_cable(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.screen.display import Screen

    monkeypatch.setenv("SDL_VIDEODRIVER", "kmsdrm")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(FeedbackError, match="no kmsdrm video driver") as caught:
        Screen(parse_config({"feedback": {"screen": "fullscreen"}}).feedback)
    assert "python3-pygame" in str(caught.value) and "cable" not in str(caught.value)
