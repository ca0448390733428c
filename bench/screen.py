"""Screen drawing cost per state, against a bare fill + one blit measured in the same run.

Run by hand: `.venv/bin/python bench/screen.py [--size 800x480] [--repeat 300]`.
Prints a Markdown table (median milliseconds and the ratio to the baseline) for:
- redraw: the same state again (its layer is cached: a blit, plus the clock when idle);
- new: a state with new content each time (new name, time, counts) on a warm painter;
- cold: the first draw by a fresh painter (opens the fonts, renders everything);
and what the main loop pays per turn: `show()` and a `pump()` with nothing to redraw; and a redraw
after the process slept 100 ms, against a numpy copy of as many bytes after the same sleep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

from kiosk.config import FeedbackConfig
from kiosk.reasons import Reason, message
from kiosk.screen.display import Screen
from kiosk.screen.painting import Painter
from kiosk.screen.samples import STATE_KINDS, example_figures, example_finding, example_state
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

NOW = datetime(2026, 11, 29, 14, 32, 5)
FIGURES, FINDING = example_figures(), example_finding()  # built once, outside the timing
NAMES = ["Nguyễn Văn An", "Trần Thị Bích Ngọc", "Lê Hoàng Long", "Phạm Minh Châu", "Võ Thị Hạnh"]


def median_ms(action: Callable[[int], object], repeat: int) -> float:
    """Median wall time of `action(i)` over `repeat` runs, in milliseconds."""
    times = []
    for i in range(repeat):
        began = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def varied(kind: str, i: int) -> ScreenState:
    """A state of `kind` whose content differs with i, so no layer is cached."""
    reasons = list(Reason)
    builders: dict[str, Callable[[], ScreenState]] = {
        "idle": lambda: IdleState("Chợ Bến Thành – Cổng 1", count_in=i, count_out=i // 2),
        "pass": lambda: PassState(NAMES[i % len(NAMES)], "in", NOW + timedelta(seconds=i)),
        "fail": lambda: FailState(message(reasons[i % len(reasons)], "vi") + " " * (i // len(reasons))),
        "hint": lambda: HintState.named(("closer", "still", "glare")[i % 3]) if i < 3 else HintState(f"{i}"),
        "fault": lambda: FaultState(f"Sự cố số {i}", "Gọi kỹ thuật"),
        "inspection": lambda: InspectionState(replace(FIGURES, old_posters_today=i)),
        "street": lambda: StreetState(replace(FINDING, at=FINDING.at + timedelta(seconds=i))),
        "no-qr": NoQrState,  # it has one content only: always the cached layer
    }
    return builders[kind]()


def baseline(size: tuple[int, int], repeat: int) -> float:
    """A bare fill and one blit of a rendered line of text."""
    surface = pygame.Surface(size)
    pygame.font.init()
    text = pygame.font.Font(None, 48).render("Vui lòng quét mã QR", True, (255, 255, 255))
    return median_ms(lambda _: (surface.fill((14, 27, 46)), surface.blit(text, (100, 200))), repeat)


def measure(kind: str, size: tuple[int, int], repeat: int) -> tuple[float, float, float]:
    """(redraw, new, cold) median ms for one kind of state."""
    surface = pygame.Surface(size)
    painter = Painter(size)
    state = example_state(kind)
    painter.paint(surface, state, NOW)
    redraw = median_ms(lambda _: painter.paint(surface, state, NOW), repeat)
    new = median_ms(lambda i: painter.paint(surface, varied(kind, i + 1), NOW), repeat)
    cold = median_ms(lambda _: Painter(size).paint(surface, state, NOW), max(5, repeat // 20))
    return redraw, new, cold


def main_loop_cost(size: tuple[int, int], repeat: int) -> tuple[float, float]:
    """(show, pump with nothing to redraw) median ms on the dummy display."""
    config = FeedbackConfig(screen="window", screen_width=size[0], screen_height=size[1])
    with Screen(config, now=lambda: NOW) as screen:
        states = [example_state(kind) for kind in STATE_KINDS]
        show = median_ms(lambda i: screen.show(states[i % len(states)]), repeat)
        screen.show(states[0])
        screen.pump()
        pump = median_ms(lambda _: screen.pump(), repeat)
    return show, pump


def after_idle(size: tuple[int, int], rounds: int = 15) -> tuple[float, float]:
    """(redraw, copy of the same number of bytes with numpy) median ms, each after 100 ms asleep."""
    import numpy as np

    surface, painter, state = pygame.Surface(size), Painter(size), example_state("pass")
    painter.paint(surface, state, NOW)
    source = np.ones(size[0] * size[1], np.uint32)
    target = np.empty_like(source)

    def timed_after_rest(action: Callable[[], object]) -> float:
        times = []
        for _ in range(rounds):
            time.sleep(0.1)
            began = time.perf_counter()
            action()
            times.append(time.perf_counter() - began)
        return statistics.median(times) * 1000

    redraw = timed_after_rest(lambda: painter.paint(surface, state, NOW))
    copy = timed_after_rest(lambda: np.copyto(target, source))
    return redraw, copy


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="800x480", help="WxH (default 800x480)")
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    size = (width, height)
    base = baseline(size, args.repeat)
    print(f"Screen drawing at {args.size}, median of {args.repeat} runs")
    print(f"Baseline (fill + one blit): {base:.3f} ms\n")
    print("| State | redraw ms | ×base | new content ms | ×base | cold ms | ×base |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in STATE_KINDS:
        redraw, new, cold = measure(kind, size, args.repeat)
        print(
            f"| {kind} | {redraw:.3f} | {redraw / base:.1f} | {new:.3f} | {new / base:.1f} "
            f"| {cold:.2f} | {cold / base:.0f} |"
        )
    show, pump = main_loop_cost(size, args.repeat)
    print(f"\nMain loop per turn: show() {show * 1000:.1f} µs, ", end="")
    print(f"pump() with nothing to redraw {pump * 1000:.1f} µs")
    redraw, copy = after_idle(size)
    print(f"After 100 ms asleep: redraw {redraw:.2f} ms, numpy copy of as many bytes {copy:.2f} ms, ", end="")
    print(f"ratio {redraw / copy:.1f}")


if __name__ == "__main__":
    main()
