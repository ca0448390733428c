"""The screen's font (DejaVu Sans: every Vietnamese letter) and text blocks set to fit a box."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pygame

from kiosk.errors import FeedbackError

RGB = tuple[int, int, int]

FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu, Raspberry Pi OS
    Path("/usr/share/fonts/TTF"),  # Arch
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)


def find_font(bold: bool = False) -> Path:
    """DejaVu Sans (it has every Vietnamese letter); raise FeedbackError when it is missing."""
    name = FONT_FILES[bold]
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    found = _fc_match("DejaVu Sans:bold" if bold else "DejaVu Sans")
    if found is not None and found.name == name:
        return found
    raise FeedbackError(
        f"font {name} not found: install it (apt install fonts-dejavu-core) so Vietnamese text shows"
    )


def _fc_match(pattern: str) -> Path | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        result = subprocess.run(
            ["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(result.stdout.strip())
    return path if path.is_file() else None


def missing_glyphs(text: str, *, bold: bool = False) -> str:
    """The characters of `text` that the screen's font cannot draw (empty when all are there)."""
    import pygame.freetype

    pygame.freetype.init()
    # pygame.freetype reports a missing glyph as None; pygame.font's metrics
    # would return the placeholder box's metrics instead.
    font = pygame.freetype.Font(str(find_font(bold)), 24)
    drawable = unicodedata.normalize("NFC", text).replace("\n", "")
    metrics = font.get_metrics(drawable)
    return "".join(sorted({ch for ch, m in zip(drawable, metrics, strict=True) if m is None}))


class Fonts:
    """DejaVu Sans faces by (bold, pixel size), opened once each."""

    def __init__(self) -> None:
        pygame.font.init()
        self._paths = {bold: str(find_font(bold)) for bold in (False, True)}
        self._faces: dict[tuple[bool, int], pygame.font.Font] = {}

    def get(self, size: int, *, bold: bool = False) -> pygame.font.Font:
        """The face at `size` pixels."""
        key = (bold, max(6, size))
        if key not in self._faces:
            self._faces[key] = pygame.font.Font(self._paths[bold], key[1])
        return self._faces[key]


@dataclass(frozen=True)
class TextStyle:
    """How a block of text is set: pixel size, colour, weight, most lines, alignment of its lines."""

    size: int
    colour: RGB
    bold: bool = False
    lines: int = 1
    align: Literal["left", "centre", "right"] = "left"


class TextCache:
    """Rendered text blocks, least recently used dropped first."""

    def __init__(self, fonts: Fonts, capacity: int = 256) -> None:
        self._fonts = fonts
        self._capacity = capacity
        self._blocks: OrderedDict[tuple[object, ...], pygame.Surface] = OrderedDict()

    def block(self, text: str, area: tuple[int, int], style: TextStyle) -> pygame.Surface:
        """`text` wrapped into `area` (at most `style.lines` lines), at `style.size` or smaller to fit."""
        key = (text, area, style)
        if key in self._blocks:
            self._blocks.move_to_end(key)
            return self._blocks[key]
        surface = self._render(unicodedata.normalize("NFC", text), area, style)
        self._blocks[key] = surface
        if len(self._blocks) > self._capacity:
            self._blocks.popitem(last=False)
        return surface

    def _render(self, text: str, area: tuple[int, int], style: TextStyle) -> pygame.Surface:
        font, wrapped = self._fit(text, area, style)
        rows = [font.render(line, True, style.colour) for line in wrapped]
        step = font.get_linesize()
        width = max(r.get_width() for r in rows)
        block = pygame.Surface((width, step * len(rows)), pygame.SRCALPHA)
        for i, row in enumerate(rows):
            slack = width - row.get_width()
            x = {"left": 0, "centre": slack // 2, "right": slack}[style.align]
            block.blit(row, (x, i * step))
        return block

    def _fit(self, text: str, area: tuple[int, int], style: TextStyle) -> tuple[pygame.font.Font, list[str]]:
        """The largest size up to `style.size` at which the wrapped text fits the area."""
        width, height = area
        for size in range(style.size, 5, -max(1, style.size // 24)):
            font = self._fonts.get(size, bold=style.bold)
            wrapped = wrap(font, text, width)
            fits = len(wrapped) <= style.lines and len(wrapped) * font.get_linesize() <= max(height, 1)
            if fits and all(font.size(line)[0] <= width for line in wrapped):
                return font, balanced(font, text, width, len(wrapped))
        font = self._fonts.get(6, bold=style.bold)
        return font, wrap(font, text, width)[: style.lines]


def wrap(font: pygame.font.Font, text: str, width: int) -> list[str]:
    """Greedy word wrap of `text` to `width` pixels (a word longer than a line stays whole)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}" if line else word
            if line and font.size(trial)[0] > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def balanced(font: pygame.font.Font, text: str, width: int, lines: int) -> list[str]:
    """Wrap into `lines` lines as even as possible (no lonely last word), found by bisecting the width."""
    low, high = width // 2, width
    while high - low > 4:
        middle = (low + high) // 2
        if len(wrap(font, text, middle)) <= lines:
            high = middle
        else:
            low = middle
    return wrap(font, text, high)
