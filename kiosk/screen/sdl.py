"""Which video drivers the SDL that pygame loaded was built with, asked of SDL itself.

"kmsdrm not available" from `pygame.display.init()` proves nothing: an SDL built
with the driver says so too on a machine without a DRM device. SDL's own list
(`SDL_GetNumVideoDrivers`/`SDL_GetVideoDriver`, needing no init) tells what is
compiled in. pygame exposes only the driver in use, so the list is read through
ctypes from the very library pygame loaded (pip's wheel bundles its own SDL,
Debian's python3-pygame links the system one). Only the standard library and
pygame are imported: a system Python without the kiosk's dependencies can run it.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The SDL 2 library's file name: pip's wheel renames it (libSDL2-2-1667c208.0.so...), Debian does not.
_SDL_FILE = re.compile(r"/libSDL2-2[.-][^/]*\.so[^/]*$")
MAPS = Path("/proc/self/maps")


@dataclass(frozen=True, slots=True)
class SdlBuild:
    """The SDL library pygame uses: its file, version and the video drivers compiled into it."""

    library: str
    version: str
    drivers: tuple[str, ...]

    def has(self, driver: str) -> bool:
        """Whether `driver` is compiled in (SDL compares driver names without case)."""
        return driver.lower() in {d.lower() for d in self.drivers}


def sdl_build(maps: Path = MAPS) -> SdlBuild | None:
    """The SDL pygame loaded, or None where it cannot be told (no /proc, or no SDL 2 mapped)."""
    import pygame.base  # loads pygame's SDL into this process
    import pygame.version

    library = loaded_sdl(maps)
    if library is None:
        return None
    return SdlBuild(library, str(pygame.version.SDL), video_drivers(library))


def loaded_sdl(maps: Path = MAPS) -> str | None:
    """The path of the SDL 2 library mapped into this process, from the kernel's list of mappings."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return None
    paths = (line.split(maxsplit=5)[-1] for line in lines if line.count(" ") >= 5)
    return next((p for p in paths if _SDL_FILE.search(p)), None)


def video_drivers(library: str) -> tuple[str, ...]:
    """SDL's compiled-in video drivers, in its order of preference."""
    sdl = ctypes.CDLL(library)  # already loaded: the same handle, no second copy
    sdl.SDL_GetNumVideoDrivers.restype = ctypes.c_int
    sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p
    sdl.SDL_GetVideoDriver.argtypes = (ctypes.c_int,)
    count = sdl.SDL_GetNumVideoDrivers()
    return tuple(sdl.SDL_GetVideoDriver(i).decode() for i in range(max(0, count)))


def wanted_drivers(mode: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The drivers SDL will be asked for: $SDL_VIDEODRIVER (a comma list), else kmsdrm on a bare Pi.

    Empty when SDL chooses for itself (a desktop window) or no display is opened.
    """
    if mode in ("offscreen", "none"):
        return ()
    named = tuple(d.strip() for d in environ.get("SDL_VIDEODRIVER", "").split(",") if d.strip())
    if named:
        return named
    desktop = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    return ("kmsdrm",) if mode == "fullscreen" and not desktop else ()


def missing_driver_advice(build: SdlBuild, wanted: tuple[str, ...]) -> str:
    """What to tell the technician when none of the wanted drivers is compiled into this SDL."""
    lacks = (
        f"pygame's SDL {build.version} ({build.library}) has no {' or '.join(wanted)} video driver, "
        f"only {', '.join(build.drivers) or 'none'}"
    )
    if "kmsdrm" not in {d.lower() for d in wanted}:
        return f'{lacks}: set SDL_VIDEODRIVER to one of those, or feedback.screen = "offscreen"'
    return (
        f"{lacks}: PyPI's pygame wheels lack kmsdrm; install Raspberry Pi OS's pygame "
        "(sudo apt install python3-pygame), make the venv with --system-site-packages and "
        "remove pip's copy from it (pip uninstall pygame), as provisioning/install.sh does"
    )
