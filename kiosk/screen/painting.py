"""Painting screen states: `Painter` draws each state on any surface, sized relative to it.

The layout is designed on an 800x480 panel and scales, so a 1920x1080 monitor
looks right too. The painter caches rendered text and each state's static
layer, so a redraw is a blit plus the clock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pygame

from kiosk.cards.masking import mask_name
from kiosk.errors import FeedbackError
from kiosk.imaging import MIN_SHARPNESS
from kiosk.reasons import Reason, message
from kiosk.screen.states import (
    FailState,
    FaultState,
    HintState,
    IdleState,
    InspectionState,
    NoQrState,
    PassState,
    ScreenState,
    StreetState,
)
from kiosk.screen.texts import FAULTS, HINTS, INSPECTION_TITLE, LABELS
from kiosk.screen.typesetting import RGB, Fonts, TextCache, TextStyle
from kiosk.text import Lang

if TYPE_CHECKING:
    from kiosk.street_check import StreetFinding
    from kiosk.venue_check import InspectionFigures

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


class Painter:
    """Draws screen states onto surfaces of one size, caching each state's static layer."""

    def __init__(self, size: tuple[int, int], *, lang: Lang = "vi", layers: int = 8) -> None:
        self.size = size
        self.lang = lang
        self.labels = {key: text.of(lang) for key, text in LABELS.items()}
        self._fonts = Fonts()
        self._text = TextCache(self._fonts)
        self._layers: OrderedDict[ScreenState, pygame.Surface] = OrderedDict()
        self._capacity = layers

    def warm_up(self, now: datetime) -> None:
        """Draw the states whose words are fixed once, so the first scan finds the fonts open.

        Only the product's own texts (the prompt, named hints and faults, the no-QR
        confirmation): nothing that could pass for a real person or real figures.
        """
        scratch = pygame.Surface(self.size)
        for state in fixed_states(self.lang, now):
            self.paint(scratch, state, now)
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
        if state.inside is not None:  # the venue's count, whichever lane people used, under its name
            inside = f"{self.labels['inside']}: {state.inside}"
            canvas.text(inside, Box(24, 60, 260, 40), 28, WHITE, bold=True)
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
        """Venue and the bilingual prompt under a viewfinder (`paint` adds the counts, bar and clock)."""
        canvas.fill(NAVY)
        canvas.text(state.venue, Box(24, 8, 580, 56), 30, WHITE, bold=True)
        _viewfinder(canvas, (400, 175), 92, WHITE)
        prompt, other = LABELS["prompt"].both(self.lang)
        canvas.text(prompt, Box(20, 280, 760, 64, "centre"), 46, WHITE, bold=True)
        canvas.text(other, Box(20, 344, 760, 40, "centre"), 28, MUTED)

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


def local(moment: datetime) -> datetime:
    """A time as the venue reads it: the kiosk's local time (decisions are stamped in UTC)."""
    return moment.astimezone() if moment.tzinfo is not None else moment


def fixed_states(lang: Lang, now: datetime) -> list[ScreenState]:
    """States made of the product's own words: idle without a venue, pass without a name, a refusal,
    each named hint and fault, the no-QR confirmation (no person's data, no figures)."""
    refusal = FailState(message(Reason.UNRECOGNISED, lang))
    results: list[ScreenState] = [PassState("", "in", now), PassState("", "out", now), refusal]
    hints = [HintState.named(key, lang) for key in HINTS]
    faults = [FaultState.named(key, lang) for key in FAULTS]
    return [IdleState(), *results, *hints, *faults, NoQrState()]


def render(
    state: ScreenState, size: tuple[int, int], *, lang: Lang = "vi", now: datetime | None = None
) -> pygame.Surface:
    """`state` drawn on a new off-screen surface (no display needed); the idle clock shows `now`."""
    surface = pygame.Surface(size)
    Painter(size, lang=lang).paint(surface, state, now or datetime.now())
    return surface


def save_png(surface: pygame.Surface, path: Path) -> None:
    """Write `surface` to a PNG file; raise FeedbackError when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(surface, str(path))
    except (OSError, pygame.error) as e:
        raise FeedbackError(f"cannot write {path}: {e}; check the folder exists and is writable") from e
