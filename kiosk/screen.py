"""The status screen (pygame): idle, pass, fail, hint, fault, inspection, street and no-QR states.

Each state is a frozen value object carrying ready-made text. `Painter` draws a
state onto any surface, with sizes relative to the surface so an 800x480 panel
and a 1920x1080 monitor both look right; it caches rendered text and each
state's static layer, so a redraw is a blit plus the clock. `Screen` owns the
display (KMS/DRM full screen on the Pi, a window on a desktop, or an off-screen
surface) and is driven from the main thread: `show(state)` only records the
state, `pump()` handles window events and redraws when something changed; it
also counts presses of `n` ("a person without a QR code") on a desktop keyboard.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

# pygame greets on stdout at import unless told not to; the daemon's stdout is a log.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

from kiosk.cards.masking import mask_name
from kiosk.errors import FeedbackError
from kiosk.imaging import MIN_SHARPNESS
from kiosk.reasons import Reason, message

if TYPE_CHECKING:
    import numpy as np

    from kiosk.config import FeedbackConfig
    from kiosk.street_check import StreetFinding
    from kiosk.venue_check import InspectionFigures

Lang = Literal["vi", "en"]
RGB = tuple[int, int, int]

FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu, Raspberry Pi OS
    Path("/usr/share/fonts/TTF"),  # Arch
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)
# The layout is designed on an 800x480 panel; everything scales from it.
DESIGN_SIZE = (800, 480)

WHITE: RGB = (255, 255, 255)
INK: RGB = (20, 20, 20)
NAVY: RGB = (14, 27, 46)
NAVY_BAR: RGB = (28, 45, 70)
MUTED: RGB = (176, 190, 210)
GREEN: RGB = (0, 122, 51)
RED: RGB = (192, 20, 30)
AMBER: RGB = (255, 176, 0)
YELLOW: RGB = (255, 214, 90)
ONLINE: RGB = (60, 200, 110)
SLATE: RGB = (38, 40, 48)
# The inspection screen: calm paper and blues, nothing a visitor could take for a result.
PAPER: RGB = (236, 241, 248)
INSPECT_BLUE: RGB = (18, 52, 110)
BAR_BLUE: RGB = (46, 104, 196)
BAR_TEAL: RGB = (0, 128, 128)
SOFT_INK: RGB = (92, 102, 118)
RULE: RGB = (200, 208, 220)
WARN_INK: RGB = (176, 70, 0)
TEAL: RGB = (0, 92, 110)
INSPECTION_TITLE = "KIỂM TRA / INSPECTION"

LABELS: dict[Lang, dict[str, str]] = {
    "vi": {
        "prompt": "Vui lòng quét mã QR",
        "welcome": "MỜI VÀO",
        "goodbye": "TẠM BIỆT",
        "refused": "KHÔNG ĐƯỢC VÀO",
        "fault": "THIẾT BỊ GẶP SỰ CỐ",
        "in": "Vào",
        "out": "Ra",
        "today": "Hôm nay",
        "online": "Đã kết nối",
        "offline": "Mất kết nối",
        "backlog": "chờ gửi",
        "staff": "Nhân viên:",
        "today_by_hour": "Hôm nay, theo giờ",
        "week_by_hour": "7 ngày, theo giờ",
        "scans": "lượt",
        "peak": "cao nhất",
        "violation": "VI PHẠM",
        "no_violation": "KHÔNG VI PHẠM",
        "not_valid": "MÃ KHÔNG HỢP LỆ",
    },
    "en": {
        "prompt": "Please show your QR code",
        "welcome": "WELCOME",
        "goodbye": "GOODBYE",
        "refused": "NOT ADMITTED",
        "fault": "KIOSK FAULT",
        "in": "In",
        "out": "Out",
        "today": "Today",
        "online": "Online",
        "offline": "Offline",
        "backlog": "waiting to send",
        "staff": "Staff:",
        "today_by_hour": "Today, by hour",
        "week_by_hour": "7 days, by hour",
        "scans": "scans",
        "peak": "peak",
        "violation": "VIOLATION",
        "no_violation": "NO VIOLATION",
        "not_valid": "CODE NOT VALID",
    },
}


# Hints the daemon can name instead of writing text: (Vietnamese, English).
HINTS: dict[str, tuple[str, str]] = {
    "closer": ("Đưa mã lại gần hơn", "Bring the code closer"),
    "still": ("Giữ yên mã QR", "Hold the code still"),
    "glare": ("Nghiêng điện thoại cho đỡ lóa", "Tilt the phone to avoid glare"),
}
# Faults the daemon can name: (problem, what staff should do) in Vietnamese, then English.
FAULTS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "camera": (
        (
            "Không nhận được hình từ camera",
            "Kiểm tra cáp camera rồi khởi động lại kiosk. Nếu vẫn lỗi, gọi kỹ thuật.",
        ),
        (
            "No picture from the camera",
            "Check the camera cable, then restart the kiosk. If it persists, call the technician.",
        ),
    ),
    "broker": (
        (
            "Mất kết nối máy chủ đã lâu",
            "Kiosk vẫn quét và lưu lại. Kiểm tra mạng (Wi-Fi, cáp) hoặc gọi kỹ thuật.",
        ),
        (
            "Server unreachable for a long time",
            "Scans are still recorded. Check the network (Wi-Fi, cable) or call the technician.",
        ),
    ),
    "spool": (
        ("Bộ nhớ sự kiện sắp đầy", "Kiểm tra mạng để dữ liệu được gửi đi, hoặc gọi kỹ thuật."),
        ("Event storage almost full", "Check the network so events can be sent, or call the technician."),
    ),
}


def _require_text(**fields: str) -> None:
    for name, value in fields.items():
        if not value.strip():
            raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True)
class IdleState:
    """Waiting for a code: venue, today's counts, uplink health."""

    venue: str = ""
    count_in: int = 0
    count_out: int = 0
    online: bool = True
    backlog: int = 0

    def __post_init__(self) -> None:
        if min(self.count_in, self.count_out, self.backlog) < 0:
            raise ValueError("counts and backlog cannot be negative")


@dataclass(frozen=True)
class PassState:
    """A person may pass; `name` comes masked from kiosk.cards (`Card.masked_name`) and shows as given.

    The screen applies the cards' own rule again (it leaves a masked name as
    it is), so a caller that forgets to mask still shows no whole name.
    """

    name: str
    direction: Literal["in", "out"]
    at: datetime

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {self.direction!r}")


@dataclass(frozen=True)
class FailState:
    """A person may not pass, and why (the reason's message)."""

    message: str

    def __post_init__(self) -> None:
        _require_text(message=self.message)


@dataclass(frozen=True)
class HintState:
    """Help with the scan: come closer, hold still; `detail` is an optional second line."""

    message: str
    detail: str = ""

    def __post_init__(self) -> None:
        _require_text(message=self.message)

    @classmethod
    def named(cls, key: str, lang: Lang = "vi") -> HintState:
        """A hint from HINTS ("closer", "still", "glare"): `lang` large, the other language below."""
        vi, en = HINTS[key]
        return cls(vi, en) if lang == "vi" else cls(en, vi)


@dataclass(frozen=True)
class FaultState:
    """The kiosk cannot do its job: what is wrong, and what staff should do."""

    problem: str
    action: str

    def __post_init__(self) -> None:
        _require_text(problem=self.problem, action=self.action)

    @classmethod
    def named(cls, key: str, lang: Lang = "vi") -> FaultState:
        """A fault from FAULTS ("camera", "broker", "spool") in `lang`."""
        vi, en = FAULTS[key]
        return cls(*(vi if lang == "vi" else en))


@dataclass(frozen=True)
class InspectionState:
    """The venue inspection: the device, its scans by hour, uplink, camera and clock."""

    figures: InspectionFigures


@dataclass(frozen=True)
class StreetState:
    """A street inspector's check of one card: its lines under a green (pass) or red (fail) band."""

    finding: StreetFinding


@dataclass(frozen=True)
class NoQrState:
    """Confirms that a person without any QR code was recorded."""


ScreenState = (
    IdleState | PassState | FailState | HintState | FaultState | InspectionState | StreetState | NoQrState
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
class Box:
    """Where text goes, in design units (800x480), and how it is aligned."""

    x: float
    y: float
    w: float
    h: float
    align: Literal["left", "centre", "right"] = "left"


class Canvas:
    """Draws text and shapes in design units on one surface."""

    def __init__(self, surface: pygame.Surface, fonts: Fonts, text_cache: TextCache) -> None:
        self.surface = surface
        width, height = surface.get_size()
        self.unit = min(width / DESIGN_SIZE[0], height / DESIGN_SIZE[1])
        # Centre the 800x480 design on surfaces of another aspect ratio.
        self.origin = ((width - DESIGN_SIZE[0] * self.unit) / 2, (height - DESIGN_SIZE[1] * self.unit) / 2)
        self._fonts = fonts
        self._cache = text_cache

    def px(self, x: float, y: float) -> tuple[int, int]:
        """Design units to surface pixels."""
        return round(self.origin[0] + x * self.unit), round(self.origin[1] + y * self.unit)

    def rect(self, box: Box) -> pygame.Rect:
        """A design-unit box as a pixel rectangle."""
        return pygame.Rect(*self.px(box.x, box.y), round(box.w * self.unit), round(box.h * self.unit))

    def fill(self, colour: RGB, box: Box | None = None) -> None:
        """Fill the whole surface, or one box."""
        self.surface.fill(colour, None if box is None else self.rect(box))

    def band(self, colour: RGB, y: float, h: float) -> None:
        """A full-width band."""
        top = self.px(0, y)[1]
        self.surface.fill(colour, pygame.Rect(0, top, self.surface.get_width(), round(h * self.unit)))

    def text(
        self, text: str, box: Box, size: float, colour: RGB, *, bold: bool = False, lines: int = 1
    ) -> None:
        """Draw `text` in `box`, wrapped to at most `lines`, shrunk until it fits, centred vertically."""
        area = self.rect(box)
        style = TextStyle(round(size * self.unit), colour, bold, lines, box.align)
        rendered = self._cache.block(text, area.size, style)
        slack = area.width - rendered.get_width()
        x = area.left + {"left": 0, "centre": slack // 2, "right": slack}[box.align]
        self.surface.blit(rendered, (x, area.centery - rendered.get_height() // 2))

    def circle(self, colour: RGB, centre: tuple[float, float], radius: float, width: float = 0) -> None:
        """A circle (filled when width is 0)."""
        thickness = 0 if width == 0 else max(1, round(width * self.unit))
        pygame.draw.circle(self.surface, colour, self.px(*centre), round(radius * self.unit), thickness)

    def polyline(self, colour: RGB, points: Sequence[tuple[float, float]], width: float) -> None:
        """Thick connected lines with round joints."""
        pixels = [pygame.Vector2(self.px(x, y)) for x, y in points]
        half = max(1.0, width * self.unit / 2)
        # pygame's own thick lines are measured along an axis, so diagonals come out thin;
        # a quadrilateral offset along the segment's normal keeps the stroke even.
        for start, end in itertools.pairwise(pixels):
            normal = (end - start).rotate(90).normalize() * half
            quad = [start + normal, end + normal, end - normal, start - normal]
            pygame.draw.polygon(self.surface, colour, quad)
        for point in pixels:
            pygame.draw.circle(self.surface, colour, point, half)

    def frame(self, colour: RGB, box: Box, width: float) -> None:
        """A rectangle outline."""
        pygame.draw.rect(self.surface, colour, self.rect(box), max(1, round(width * self.unit)))


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


class Painter:
    """Draws screen states onto surfaces of one size, caching each state's static layer."""

    def __init__(self, size: tuple[int, int], *, lang: Lang = "vi", layers: int = 8) -> None:
        self.size = size
        self.lang = lang
        self.labels = LABELS[lang]
        self._fonts = Fonts()
        self._text = TextCache(self._fonts)
        self._layers: OrderedDict[ScreenState, pygame.Surface] = OrderedDict()
        self._capacity = layers

    def warm_up(self) -> None:
        """Draw an example of every state once, so the first real one finds its fonts open."""
        scratch = pygame.Surface(self.size)
        for kind in STATE_KINDS:
            self.paint(scratch, example_state(kind, self.lang), EXAMPLE_TIME)
        self._layers.clear()

    def paint(self, surface: pygame.Surface, state: ScreenState, now: datetime) -> None:
        """Draw `state` at time `now` (the idle clock) onto `surface`."""
        if not isinstance(state, IdleState):
            surface.blit(self._layer(state), (0, 0))
            return
        # Counts and health change with every scan; only the venue's layer is worth caching.
        surface.blit(self._layer(IdleState(state.venue)), (0, 0))
        canvas = Canvas(surface, self._fonts, self._text)
        self._status_bar(canvas, state)
        canvas.text(now.strftime("%H:%M"), Box(620, 8, 160, 56, "right"), 38, WHITE, bold=True)

    def _layer(self, state: ScreenState) -> pygame.Surface:
        if state in self._layers:
            self._layers.move_to_end(state)
            return self._layers[state]
        layer = pygame.Surface(self.size)
        DRAWERS[type(state)](self, Canvas(layer, self._fonts, self._text), state)
        if pygame.display.get_surface() is not None:
            layer = layer.convert()  # the display's pixel format blits several times faster
        self._layers[state] = layer
        if len(self._layers) > self._capacity:
            self._layers.popitem(last=False)
        return layer

    def draw_idle(self, canvas: Canvas, state: IdleState) -> None:
        """Venue and the bilingual prompt under a viewfinder (`paint` adds the status bar and clock)."""
        canvas.fill(NAVY)
        canvas.text(state.venue, Box(24, 8, 580, 56), 30, WHITE, bold=True)
        _viewfinder(canvas, (400, 175), 92, WHITE)
        other: Lang = "en" if self.lang == "vi" else "vi"
        canvas.text(self.labels["prompt"], Box(20, 280, 760, 64, "centre"), 46, WHITE, bold=True)
        canvas.text(LABELS[other]["prompt"], Box(20, 344, 760, 40, "centre"), 28, MUTED)

    def _status_bar(self, canvas: Canvas, state: IdleState) -> None:
        canvas.band(NAVY_BAR, 416, 64)
        labels = self.labels
        counts = f"{labels['today']}:  {labels['in']} {state.count_in}  ·  {labels['out']} {state.count_out}"
        canvas.text(counts, Box(24, 416, 400, 64), 24, WHITE)
        health = labels["online"] if state.online else labels["offline"]
        if state.backlog:
            health += f"  ·  {state.backlog} {labels['backlog']}"
        colour = ONLINE if state.online else AMBER
        canvas.circle(colour, (432, 448), 9)
        canvas.text(health, Box(450, 416, 330, 64), 22, colour if not state.online else WHITE)

    def draw_pass(self, canvas: Canvas, state: PassState) -> None:
        """Large green, a tick, the welcome, the masked name, direction and time."""
        canvas.fill(GREEN)
        canvas.circle(WHITE, (150, 240), 110, 12)
        canvas.polyline(WHITE, [(95, 245), (135, 290), (210, 190)], 22)
        title = self.labels["welcome" if state.direction == "in" else "goodbye"]
        canvas.text(title, Box(290, 80, 490, 110), 84, WHITE, bold=True)
        canvas.text(mask_name(state.name), Box(290, 200, 490, 90), 54, WHITE, bold=True, lines=2)
        when = f"{self.labels[state.direction]}  ·  {local(state.at).strftime('%H:%M:%S')}"
        canvas.text(when, Box(290, 310, 490, 60), 36, WHITE)

    def draw_fail(self, canvas: Canvas, state: FailState) -> None:
        """Large red, a cross, the refusal and the reason."""
        canvas.fill(RED)
        canvas.circle(WHITE, (150, 240), 110, 12)
        canvas.polyline(WHITE, [(105, 195), (195, 285)], 22)
        canvas.polyline(WHITE, [(195, 195), (105, 285)], 22)
        canvas.text(self.labels["refused"], Box(290, 50, 490, 90), 64, WHITE, bold=True)
        # Messages say what is wrong, then what to do: the first sentence is the headline.
        head, _, advice = state.message.partition(". ")
        if not advice:
            canvas.text(head, Box(290, 160, 490, 260), 42, WHITE, bold=True, lines=4)
            return
        canvas.text(head, Box(290, 150, 490, 150), 42, WHITE, bold=True, lines=3)
        canvas.text(advice, Box(290, 310, 490, 110), 32, WHITE, lines=3)

    def draw_hint(self, canvas: Canvas, state: HintState) -> None:
        """Amber, a viewfinder, and what to do."""
        canvas.fill(AMBER)
        _viewfinder(canvas, (150, 240), 95, INK)
        canvas.text(state.message, Box(290, 110, 490, 180), 64, INK, bold=True, lines=2)
        if state.detail:
            canvas.text(state.detail, Box(290, 300, 490, 80), 34, INK, lines=2)

    def draw_fault(self, canvas: Canvas, state: FaultState) -> None:
        """A red title band, what is wrong, and what staff should do."""
        canvas.fill(SLATE)
        canvas.band(RED, 0, 110)
        canvas.text("⚠  " + self.labels["fault"], Box(20, 0, 760, 110, "centre"), 50, WHITE, bold=True)
        canvas.text(state.problem, Box(40, 135, 720, 140), 44, WHITE, bold=True, lines=2)
        canvas.text(self.labels["staff"], Box(40, 290, 720, 44), 28, YELLOW)
        canvas.text(state.action, Box(40, 334, 720, 120), 34, YELLOW, bold=True, lines=3)

    def draw_inspection(self, canvas: Canvas, state: InspectionState) -> None:
        """A blue title band, the device line, today's and the week's hourly bars, then the figures."""
        figures, labels = state.figures, self.labels
        canvas.fill(PAPER)
        canvas.band(INSPECT_BLUE, 0, 56)
        canvas.text(INSPECTION_TITLE, Box(20, 0, 500, 56), 30, WHITE, bold=True)
        canvas.text(local(figures.at).strftime("%H:%M  %d/%m/%Y"), Box(520, 0, 260, 56, "right"), 22, WHITE)
        lines = figures.lines(self.lang)
        canvas.text(lines[0], Box(20, 60, 760, 30), 18, SOFT_INK)
        today = f"{labels['today_by_hour']} · {figures.today.total} {labels['scans']}"
        week = f"{labels['week_by_hour']} · {figures.week_total} {labels['scans']}"
        self._histogram(canvas, Box(20, 96, 370, 172), figures.today.by_hour, BAR_BLUE, today)
        self._histogram(canvas, Box(410, 96, 370, 172), figures.week_by_hour, BAR_TEAL, week)
        for i, (line, warn) in enumerate(zip(lines[1:], _inspection_warnings(figures), strict=True)):
            y = 278 + i * 33
            canvas.circle(AMBER if warn else ONLINE, (30, y + 16.5), 6)
            canvas.text(line, Box(46, y, 734, 33), 20, WARN_INK if warn else INK, bold=warn)

    def _histogram(self, canvas: Canvas, box: Box, counts: Sequence[int], colour: RGB, caption: str) -> None:
        """Scans by hour of the day as bars, scaled to the busiest hour, with 0 6 12 18 marks."""
        peak = max(max(counts, default=0), 1)
        canvas.text(caption, Box(box.x, box.y, box.w - 90, 26), 18, INK, bold=True)
        canvas.text(
            f"{self.labels['peak']} {peak}", Box(box.x + box.w - 90, box.y, 90, 26, "right"), 14, SOFT_INK
        )
        top, bottom = box.y + 32, box.y + box.h - 20
        step = box.w / len(counts)
        canvas.fill(RULE, Box(box.x, top, box.w, 1))
        for hour, n in enumerate(counts):
            if n:
                height = max(1.5, (bottom - top) * n / peak)
                canvas.fill(
                    colour, Box(box.x + hour * step + step * 0.15, bottom - height, step * 0.7, height)
                )
        canvas.fill(SOFT_INK, Box(box.x, bottom, box.w, 1.5))
        for hour in range(0, len(counts), 6):
            mark = Box(box.x + (hour - 0.5) * step, bottom + 2, 2 * step, 18, "centre")
            canvas.text(str(hour), mark, 13, SOFT_INK)

    def draw_street(self, canvas: Canvas, state: StreetState) -> None:
        """A green (pass) or red (fail) band with the verdict, then the finding's lines as a table."""
        finding = state.finding
        passed = finding.verdict == "pass"
        canvas.fill(WHITE)
        canvas.band(GREEN if passed else RED, 0, 100)
        (_tick if passed else _cross)(canvas, (62, 50), 36)
        canvas.text(self.labels[_street_title(finding)], Box(116, 0, 500, 100), 46, WHITE, bold=True)
        canvas.text(local(finding.at).strftime("%H:%M:%S"), Box(620, 0, 160, 100, "right"), 28, WHITE)
        lines = finding.lines(self.lang)
        row = min(64.0, 360 / max(1, len(lines)))
        for i, line in enumerate(lines):
            alert = not passed and i == len(lines) - 1
            _table_row(canvas, line, 110 + i * row, row, RED if alert else INK)

    def draw_no_qr(self, canvas: Canvas, state: NoQrState) -> None:
        """A crossed-out viewfinder and "recorded: a person without a QR code" in both languages."""
        canvas.fill(TEAL)
        _viewfinder(canvas, (150, 240), 80, WHITE)
        canvas.polyline(TEAL, [(60, 330), (240, 150)], 30)  # a gap around the slash keeps it legible
        canvas.polyline(WHITE, [(60, 330), (240, 150)], 14)
        other: Lang = "en" if self.lang == "vi" else "vi"
        canvas.text(message(Reason.NO_QR, self.lang), Box(290, 110, 490, 190), 50, WHITE, bold=True, lines=3)
        canvas.text(message(Reason.NO_QR, other), Box(290, 310, 490, 80), 28, MUTED, lines=2)


DRAWERS: dict[type, Callable[[Painter, Canvas, ScreenState], None]] = {
    IdleState: Painter.draw_idle,  # type: ignore[dict-item]
    PassState: Painter.draw_pass,  # type: ignore[dict-item]
    FailState: Painter.draw_fail,  # type: ignore[dict-item]
    HintState: Painter.draw_hint,  # type: ignore[dict-item]
    FaultState: Painter.draw_fault,  # type: ignore[dict-item]
    InspectionState: Painter.draw_inspection,  # type: ignore[dict-item]
    StreetState: Painter.draw_street,  # type: ignore[dict-item]
    NoQrState: Painter.draw_no_qr,  # type: ignore[dict-item]
}


def _inspection_warnings(figures: InspectionFigures) -> tuple[bool, ...]:
    """Which of `figures.lines()` after the device line call for attention, in their order:
    today, 7 days, old posters, central's ack, camera, clock."""
    sharpness = figures.device.sharpness
    return (
        False,
        False,
        figures.old_posters_today > 0,
        figures.device.last_ack is None,
        sharpness is not None and sharpness < MIN_SHARPNESS,
        not figures.device.clock_synced,
    )


def _street_title(finding: StreetFinding) -> str:
    """The band's word: no violation, a violation (a status in force), or a code that is not valid."""
    if finding.verdict == "pass":
        return "no_violation"
    return "violation" if finding.reason == Reason.STATUS_BLOCKED else "not_valid"


def _table_row(canvas: Canvas, line: str, y: float, height: float, colour: RGB) -> None:
    """`Label: value` as a muted label and a bold value; a line without a short label spans the row."""
    label, sep, value = line.partition(": ")
    if sep and len(label) <= 24:
        canvas.text(label, Box(24, y, 196, height), 22, SOFT_INK)
        canvas.text(value, Box(228, y, 552, height), 28, colour, bold=True, lines=2)
    else:
        canvas.text(line, Box(24, y, 756, height), 28, colour, bold=True, lines=2)
    canvas.fill(RULE, Box(24, y + height - 1, 756, 1))


def _tick(canvas: Canvas, centre: tuple[float, float], radius: float) -> None:
    """A white tick in a white ring."""
    cx, cy, k = *centre, radius / 110
    canvas.circle(WHITE, centre, radius, max(2.0, 12 * k))
    canvas.polyline(
        WHITE, [(cx - 55 * k, cy + 5 * k), (cx - 15 * k, cy + 50 * k), (cx + 60 * k, cy - 50 * k)], 22 * k
    )


def _cross(canvas: Canvas, centre: tuple[float, float], radius: float) -> None:
    """A white cross in a white ring."""
    cx, cy, k = *centre, radius / 110
    canvas.circle(WHITE, centre, radius, max(2.0, 12 * k))
    canvas.polyline(WHITE, [(cx - 45 * k, cy - 45 * k), (cx + 45 * k, cy + 45 * k)], 22 * k)
    canvas.polyline(WHITE, [(cx + 45 * k, cy - 45 * k), (cx - 45 * k, cy + 45 * k)], 22 * k)


def _viewfinder(canvas: Canvas, centre: tuple[float, float], half: float, colour: RGB) -> None:
    """Four corner brackets around three QR finder patterns: "put your code here"."""
    cx, cy = centre
    arm, width = half * 0.45, half * 0.12
    for sx in (-1, 1):
        for sy in (-1, 1):
            corner = (cx + sx * half, cy + sy * half)
            points = [(corner[0], corner[1] - sy * arm), corner, (corner[0] - sx * arm, corner[1])]
            canvas.polyline(colour, points, width)
    module = half * 0.11
    for fx, fy in ((-1, -1), (1, -1), (-1, 1)):
        _finder(canvas, (cx + fx * half * 0.42, cy + fy * half * 0.42), module, colour)


def _finder(canvas: Canvas, centre: tuple[float, float], module: float, colour: RGB) -> None:
    x, y = centre[0] - 3.5 * module, centre[1] - 3.5 * module
    canvas.frame(colour, Box(x, y, 7 * module, 7 * module), module)
    canvas.fill(colour, Box(x + 2 * module, y + 2 * module, 3 * module, 3 * module))


ScreenMode = Literal["window", "fullscreen", "offscreen"]


def resolve_mode(configured: str, environ: dict[str, str] | None = None) -> ScreenMode:
    """What `screen = "auto"` means here: a window on a desktop, full screen on a bare Pi."""
    env = os.environ if environ is None else environ
    if configured != "auto":
        return configured  # type: ignore[return-value]
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("SDL_VIDEODRIVER") == "dummy":
        return "window"
    if env.get("SDL_VIDEODRIVER") or any(Path("/dev/dri").glob("card*")):
        return "fullscreen"
    return "offscreen"


class Screen:
    """The status screen; call `show` and `pump` from the main thread only."""

    def __init__(
        self,
        config: FeedbackConfig,
        *,
        lang: Lang = "vi",
        now: Callable[[], datetime] = datetime.now,
        mode: ScreenMode | None = None,
    ) -> None:
        self.mode = mode or resolve_mode(config.screen)
        self._display = self.mode != "offscreen"
        self.surface = _open_surface(self.mode, (config.screen_width, config.screen_height))
        self.painter = Painter(self.surface.get_size(), lang=lang)
        self.painter.warm_up()  # tens of milliseconds now rather than on the first scan
        self._now = now
        self._state: ScreenState = IdleState()
        self._drawn: tuple[ScreenState, str] | None = None
        self._preview: Preview | None = Preview(self.surface.get_size()) if config.preview else None
        self._closed = False
        self._no_qr_keys = 0

    @property
    def state(self) -> ScreenState:
        """The state shown (or about to be, at the next pump)."""
        return self._state

    def take_no_qr_keys(self) -> int:
        """How often `n` ("no QR code") was pressed in the window since the last call; resets."""
        presses, self._no_qr_keys = self._no_qr_keys, 0
        return presses

    def show(self, state: ScreenState) -> None:
        """Show `state` from the next `pump()`; cheap, never draws."""
        self._state = state

    def preview(self, frame: np.ndarray, outline: Sequence[tuple[float, float]] | None = None) -> None:
        """Hand the latest camera frame (gray) and a found code's corners to the preview, if enabled."""
        if self._preview is not None:
            self._preview.update(frame, outline)

    def pump(self) -> bool:
        """Handle window events and redraw if needed; False once the window was closed or Esc pressed."""
        if self._closed:
            return False
        running = self._events()
        now = self._now()
        stamp = now.strftime("%H:%M") if isinstance(self._state, IdleState) else ""
        fresh = self._preview is not None and self._preview.fresh
        if (self._state, stamp) != self._drawn or fresh:
            self.redraw(now)
            self._drawn = (self._state, stamp)
        return running

    def redraw(self, now: datetime | None = None) -> None:
        """Draw the current state now."""
        self.painter.paint(self.surface, self._state, now or self._now())
        if self._preview is not None and isinstance(self._state, IdleState | HintState):
            self._preview.draw(self.surface)
        if self._display:
            pygame.display.flip()

    def _events(self) -> bool:
        if not self._display:
            return True
        running = True
        for event in pygame.event.get():
            # A kiosk's own screen never quits on a key: a visitor's keyboard must not stop the scanner.
            if _is_quit(event) and self.mode == "window":
                running = False
            elif event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
                self._drawn = None
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_n:
                self._no_qr_keys += 1  # pump() runs on the main thread, as does take_no_qr_keys()
        return running

    def save(self, path: Path) -> None:
        """Write what the screen shows to a PNG file."""
        save_png(self.surface, path)

    def close(self) -> None:
        """Close the display (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._display:
            pygame.display.quit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def local(moment: datetime) -> datetime:
    """A time as the venue reads it: the kiosk's local time (decisions are stamped in UTC)."""
    return moment.astimezone() if moment.tzinfo is not None else moment


def _is_quit(event: pygame.event.Event) -> bool:
    """The window was closed, or Esc / q pressed (honoured only in a desktop window)."""
    return event.type == pygame.QUIT or (
        event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
    )


def _open_surface(mode: ScreenMode, size: tuple[int, int]) -> pygame.Surface:
    if mode == "offscreen":
        return pygame.Surface(size)
    if mode == "fullscreen" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "kmsdrm")  # a Pi without a desktop
    try:
        pygame.display.init()
        if mode == "fullscreen":
            surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
        else:
            surface = pygame.display.set_mode(size)
    except pygame.error as e:
        pygame.display.quit()
        raise FeedbackError(
            f"cannot open the screen ({mode}: {e}): is the display connected and the kiosk user in "
            'the video and render groups? set feedback.screen = "offscreen" to run without one'
        ) from e
    pygame.display.set_caption("kiosk")
    pygame.mouse.set_visible(mode != "fullscreen")
    return surface


class Preview:
    """A small live camera picture in the corner, with a found code outlined."""

    def __init__(self, screen_size: tuple[int, int], *, fraction: float = 0.25) -> None:
        self._width = max(40, round(screen_size[0] * fraction))
        self._place = (screen_size[0] - self._width - 8, 8)
        self._image: pygame.Surface | None = None
        self.fresh = False

    def update(self, frame: np.ndarray, outline: Sequence[tuple[float, float]] | None) -> None:
        """Keep a scaled-down copy of `frame` (gray uint8, H x W) with `outline` drawn on it."""
        import numpy as np

        step = max(1, frame.shape[1] // self._width)  # plain decimation: cheap on the main loop
        small = np.ascontiguousarray(frame[::step, ::step])
        rgb = np.repeat(small[:, :, None], 3, axis=2)
        image = pygame.image.frombuffer(rgb.tobytes(), (rgb.shape[1], rgb.shape[0]), "RGB").copy()
        if outline:
            corners = [(x / step, y / step) for x, y in outline]
            pygame.draw.polygon(image, ONLINE, corners, 3)
        self._image = image
        self.fresh = True

    def draw(self, surface: pygame.Surface) -> None:
        """Blit the latest picture, framed."""
        if self._image is None:
            return
        surface.blit(self._image, self._place)
        pygame.draw.rect(surface, WHITE, self._image.get_rect(topleft=self._place), 2)
        self.fresh = False


STATE_KINDS = ("idle", "pass", "fail", "hint", "fault", "inspection", "street", "no-qr")
EXAMPLE_TIME = datetime(2026, 11, 29, 14, 32, 5)
# A market gate's scans by hour: the morning market, a lunch lull, the evening market.
EXAMPLE_HOURS = (0, 0, 0, 0, 0, 3, 11, 26, 33, 21, 14, 12, 15, 12, 10, 11, 17, 29, 24, 13, 7, 2, 0, 0)
EXAMPLE_QR = b"001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"


def example_state(kind: str, lang: Lang = "vi") -> ScreenState:
    """A plausible state of each kind, for screenshots, tests and benchmarks."""
    from kiosk.reasons import Reason, message

    examples: dict[str, Callable[[], ScreenState]] = {
        "idle": lambda: IdleState("Chợ Bến Thành – Cổng 1", count_in=128, count_out=97, backlog=3),
        "pass": lambda: PassState("Nguyễn Văn An", "in", EXAMPLE_TIME),
        "fail": lambda: FailState(message(Reason.OLD_VENUE_QR, lang)),
        "hint": lambda: HintState.named("closer", lang),
        "fault": lambda: FaultState.named("camera", lang),
        "inspection": lambda: InspectionState(example_figures()),
        "street": lambda: StreetState(example_finding()),
        "no-qr": NoQrState,
    }
    return examples[kind]()


def example_figures() -> InspectionFigures:
    """A market gate's inspection figures at EXAMPLE_TIME (Vietnam time), for examples and tests."""
    from datetime import timedelta

    from kiosk.statuslist import VIETNAM
    from kiosk.venue_check import WEEK_DAYS, DayCounts, DeviceReadings, InspectionFigures

    at = EXAMPLE_TIME.replace(tzinfo=VIETNAM)
    week = []
    for back in range(WEEK_DAYS - 1, -1, -1):
        scale = 0.7 + 0.05 * ((back * 3) % 7)
        hours = tuple(
            round(n * scale) if back or hour <= at.hour else 0 for hour, n in enumerate(EXAMPLE_HOURS)
        )
        failed = sum(hours) // 25
        day = at.date() - timedelta(days=back)
        week.append(DayCounts(day, hours, passed=sum(hours) - failed, failed=failed))
    device = DeviceReadings(
        device_id="kiosk-0007",
        destination_id="cho-ben-thanh-1",
        version="1.0.0",
        fps=14.8,
        sharpness=212.0,
        clock_synced=True,
        last_ack=at - timedelta(seconds=40),
    )
    return InspectionFigures(
        device=device, at=at, week=tuple(week), old_posters_today=2, inspections_today=1, unsent=3, unacked=14
    )


def example_finding(status: str | None = "quarantine") -> StreetFinding:
    """A street check of a national QR at EXAMPLE_TIME: under quarantine (a violation), or unlisted."""
    from kiosk.cards import parse_card
    from kiosk.statuslist import VIETNAM, Status, parse_until
    from kiosk.street_check import street_finding

    now = EXAMPLE_TIME.replace(tzinfo=VIETNAM)
    entry = None if status is None else Status(status, parse_until("2026-12-05"))
    return street_finding(parse_card(EXAMPLE_QR, trust=None, now=now), status=entry, now=now)


def render(
    state: ScreenState, size: tuple[int, int], *, lang: Lang = "vi", now: datetime = EXAMPLE_TIME
) -> pygame.Surface:
    """`state` drawn on a new off-screen surface (no display needed)."""
    surface = pygame.Surface(size)
    Painter(size, lang=lang).paint(surface, state, now)
    return surface


def save_png(surface: pygame.Surface, path: Path) -> None:
    """Write `surface` to a PNG file; raise FeedbackError when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(surface, str(path))
    except (OSError, pygame.error) as e:
        raise FeedbackError(f"cannot write {path}: {e}; check the folder exists and is writable") from e
