"""The status screen: states, layout pixels, golden images, fonts, the display lifecycle.

Golden images live in tests/golden/. After a deliberate change of the layout,
regenerate them and look at them before committing:

    KIOSK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_screen.py -k golden
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pygame
import pytest

from kiosk.cli import main
from kiosk.config import FeedbackConfig
from kiosk.errors import FeedbackError
from kiosk.reasons import Reason, message, template
from kiosk.screen.display import Screen, resolve_mode
from kiosk.screen.painting import (
    AMBER,
    BAR_BLUE,
    BAR_TEAL,
    GREEN,
    INK,
    INSPECT_BLUE,
    MUTED,
    NAVY,
    NAVY_BAR,
    ONLINE,
    PAPER,
    RED,
    SLATE,
    TEAL,
    WARN_INK,
    WHITE,
    local,
    render,
)
from kiosk.screen.samples import EXAMPLE_TIME, STATE_KINDS, example_figures, example_finding, example_state
from kiosk.screen.states import (
    FailState,
    FaultState,
    HintState,
    IdleState,
    InspectionState,
    NoQrState,
    PassState,
    StreetState,
)
from kiosk.screen.texts import FAULTS, HINTS, INSPECTION_TITLE, LABELS
from kiosk.screen.typesetting import find_font, missing_glyphs
from kiosk.text import Lang

GOLDEN = Path(__file__).parent / "golden"
NOON = datetime(2026, 11, 29, 12, 0, 0)
# Golden comparison: a pixel counts as different beyond this per-channel difference,
# and at most this fraction of pixels may differ (antialiasing across FreeType builds).
PIXEL_TOLERANCE = 24
DIFFERENT_FRACTION = 0.002


def pixels(surface: pygame.Surface) -> np.ndarray:
    """The surface as an H x W x 3 array."""
    return pygame.surfarray.array3d(surface).transpose(1, 0, 2)


def colour_at(surface: pygame.Surface, x: int, y: int) -> tuple[int, int, int]:
    """The RGB colour of one pixel."""
    return tuple(surface.get_at((x, y)))[:3]  # type: ignore[return-value]


def region(surface: pygame.Surface, x: int, y: int, w: int, h: int) -> np.ndarray:
    """A rectangle of pixels, H x W x 3."""
    return pixels(surface)[y : y + h, x : x + w]


def has_text(surface: pygame.Surface, box: tuple[int, int, int, int], ink: tuple[int, int, int]) -> bool:
    """Something is drawn in `box`: it is not uniform and holds pixels of the text colour."""
    area = region(surface, *box).reshape(-1, 3)
    drawn = np.all(np.abs(area.astype(int) - ink) < 8, axis=1)
    return len(np.unique(area, axis=0)) > 2 and 0.01 < drawn.mean() < 0.8


@pytest.fixture(scope="module")
def shots() -> dict[str, pygame.Surface]:
    return {kind: render(example_state(kind), (800, 480), now=EXAMPLE_TIME) for kind in STATE_KINDS}


# --- states ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: FailState(" "),
        lambda: HintState(""),
        lambda: FaultState("camera", ""),
        lambda: IdleState(count_in=-1),
        lambda: PassState("A", "sideways", NOON),  # type: ignore[arg-type]
    ],
)
def test_states_are_validated_when_built(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_states_are_frozen_values() -> None:
    state = IdleState("Chợ", count_in=1)
    assert state == IdleState("Chợ", count_in=1) and hash(state) == hash(IdleState("Chợ", count_in=1))
    with pytest.raises(AttributeError):
        state.count_in = 2  # type: ignore[misc]


def name_box(name: str) -> np.ndarray:
    """The pixels of the pass screen's name box for `name`."""
    return region(render(PassState(name, "in", NOON), (800, 480)), 290, 200, 490, 90)


def test_pass_shows_a_cards_masked_name_as_given() -> None:
    assert not np.array_equal(name_box("NGUYEN V** A"), name_box("N. V. A")), "not re-masked to initials"
    assert not np.array_equal(name_box("NGUYEN V** A"), name_box("NGUYEN V** B"))
    assert np.array_equal(name_box("NGUYEN V** A"), name_box("NGUYEN VAN A")), "the cards' own rule"


def test_named_hints_and_faults_follow_the_language() -> None:
    assert HintState.named("closer", "vi") == HintState(HINTS["closer"].vi, HINTS["closer"].en)
    assert HintState.named("closer", "en").message == "Bring the code closer"
    assert FaultState.named("broker", "en").problem.startswith("Server unreachable")


# --- layout: colours in the right regions, text present -------------------------------------


def test_idle_layout(shots: dict[str, pygame.Surface]) -> None:
    idle = shots["idle"]
    assert colour_at(idle, 5, 100) == NAVY
    assert colour_at(idle, 5, 470) == NAVY_BAR
    assert colour_at(idle, 432, 448) == ONLINE
    assert has_text(idle, (24, 8, 560, 56), WHITE), "venue name"
    assert has_text(idle, (620, 8, 160, 56), WHITE), "clock"
    assert has_text(idle, (20, 280, 760, 64), WHITE), "prompt"
    assert has_text(idle, (24, 420, 400, 56), WHITE), "today's counts"


def test_idle_offline_shows_an_amber_indicator() -> None:
    offline = render(IdleState("Chợ", online=False, backlog=12), (800, 480))
    assert colour_at(offline, 432, 448) == AMBER
    assert has_text(offline, (450, 420, 330, 56), AMBER)


def test_idle_clock_follows_the_time() -> None:
    state = IdleState("Chợ")
    noon = region(render(state, (800, 480), now=NOON), 620, 8, 160, 56)
    later = region(render(state, (800, 480), now=NOON.replace(hour=17, minute=45)), 620, 8, 160, 56)
    assert not np.array_equal(noon, later)


def test_idle_shows_the_venues_count_clear_of_the_clock() -> None:
    counted = render(IdleState("Chợ", inside=37), (800, 480), now=NOON)
    alone = render(IdleState("Chợ"), (800, 480), now=NOON)
    assert has_text(counted, (24, 60, 260, 40), WHITE), "people inside, under the venue's name"
    assert not has_text(alone, (24, 60, 260, 40), WHITE), "a lane that does not count shows none"
    assert np.array_equal(region(counted, 620, 8, 160, 56), region(alone, 620, 8, 160, 56)), "the clock"


def test_pass_layout(shots: dict[str, pygame.Surface]) -> None:
    passed = shots["pass"]
    for corner in ((2, 2), (797, 2), (2, 477), (797, 477)):
        assert colour_at(passed, *corner) == GREEN
    assert colour_at(passed, 150, 130 + 6) == WHITE, "the tick's circle"
    assert has_text(passed, (290, 80, 490, 110), WHITE), "welcome"
    assert has_text(passed, (290, 200, 490, 90), WHITE), "masked name"
    assert has_text(passed, (290, 310, 490, 60), WHITE), "direction and time"


def test_pass_never_shows_the_full_name() -> None:
    full = render(PassState("Nguyễn Văn An", "in", NOON), (800, 480))
    masked = render(PassState("Nguyễn V** An", "in", NOON), (800, 480))
    assert np.array_equal(pixels(full), pixels(masked))


def test_fail_layout(shots: dict[str, pygame.Surface]) -> None:
    failed = shots["fail"]
    assert colour_at(failed, 2, 2) == RED and colour_at(failed, 797, 477) == RED
    assert colour_at(failed, 150, 240) == WHITE, "the cross"
    assert has_text(failed, (290, 50, 490, 90), WHITE), "refusal"
    assert has_text(failed, (290, 150, 490, 150), WHITE), "what is wrong"
    assert has_text(failed, (290, 310, 490, 110), WHITE), "what to do"


def test_hint_layout(shots: dict[str, pygame.Surface]) -> None:
    hint = shots["hint"]
    assert colour_at(hint, 2, 2) == AMBER and colour_at(hint, 797, 477) == AMBER
    assert has_text(hint, (290, 110, 490, 180), INK)
    assert has_text(hint, (290, 300, 490, 80), INK)


def test_fault_layout(shots: dict[str, pygame.Surface]) -> None:
    fault = shots["fault"]
    assert colour_at(fault, 2, 2) == RED and colour_at(fault, 2, 200) == SLATE
    assert has_text(fault, (20, 0, 760, 110), WHITE), "title"
    assert has_text(fault, (40, 135, 720, 140), WHITE), "problem"
    assert has_text(fault, (40, 334, 720, 120), (255, 214, 90)), "what staff should do"


def test_layout_scales_to_a_full_hd_monitor() -> None:
    small = render(example_state("pass"), (800, 480))
    big = render(example_state("pass"), (1920, 1080))
    assert colour_at(big, 5, 5) == GREEN and colour_at(big, 1915, 1075) == GREEN
    # The design is scaled by 2.25 and centred: the name box lands where it should.
    scale, left = 1080 / 480, (1920 - 800 * 1080 / 480) / 2
    box = (round(left + 290 * scale), round(200 * scale), round(490 * scale), round(90 * scale))
    assert has_text(big, box, WHITE)
    ink_small = np.all(pixels(small) == WHITE, axis=2).mean()
    ink_big = np.all(pixels(big) == WHITE, axis=2).mean()
    assert ink_big == pytest.approx(ink_small, rel=0.25), "white covers the same share of the screen"


def test_long_messages_shrink_and_wrap_inside_their_box() -> None:
    long = "Không được vào (quarantine). " + "Vui lòng gặp nhân viên để được hướng dẫn thêm " * 4
    shot = render(FailState(long), (800, 480))
    assert colour_at(shot, 795, 240) == RED, "nothing spills past the right edge"
    assert np.all(region(shot, 0, 440, 800, 40) == RED), "nor below the bottom box"


def test_inspection_layout(shots: dict[str, pygame.Surface]) -> None:
    shot = shots["inspection"]
    assert colour_at(shot, 5, 5) == INSPECT_BLUE and colour_at(shot, 795, 50) == INSPECT_BLUE
    assert colour_at(shot, 5, 200) == PAPER and colour_at(shot, 795, 475) == PAPER
    assert has_text(shot, (20, 0, 480, 56), WHITE), "title"
    assert has_text(shot, (520, 0, 260, 56), WHITE), "time of the figures"
    assert np.all(region(shot, 20, 140, 370, 110) != BAR_TEAL), "today's bars are blue"
    assert np.any(np.all(region(shot, 20, 140, 370, 110) == BAR_BLUE, axis=2))
    assert np.any(np.all(region(shot, 410, 140, 370, 110) == BAR_TEAL, axis=2)), "the week's bars"
    for row in range(6):
        assert has_text(shot, (46, 280 + 33 * row, 734, 30), WARN_INK if row == 2 else INK), row
    assert colour_at(shot, 30, 278 + 2 * 33 + 16) == AMBER, "old posters today: a warning"
    assert colour_at(shot, 30, 278 + 16) == ONLINE


def bar_columns(
    shot: pygame.Surface, box: tuple[int, int, int, int], colour: tuple[int, int, int]
) -> list[int]:
    """The hours (of 24 equal columns of `box`) holding a bar of `colour`, and how tall each is."""
    area = np.all(region(shot, *box) == colour, axis=2)
    width = box[2] / 24
    return [int(area[:, round(h * width) : round((h + 1) * width)].any(axis=1).sum()) for h in range(24)]


def test_inspection_scales_to_a_full_hd_monitor() -> None:
    big = render(example_state("inspection"), (1920, 1080))
    scale, left = 1080 / 480, round((1920 - 800 * 1080 / 480) / 2)
    assert colour_at(big, 5, 5) == INSPECT_BLUE and colour_at(big, 1915, 120) == INSPECT_BLUE
    assert colour_at(big, 5, 1075) == PAPER and colour_at(big, 1915, 1075) == PAPER
    assert has_text(big, (left + round(46 * scale), round(278 * scale), round(734 * scale), 70), INK)
    week = (left + round(410 * scale), round(128 * scale), round(370 * scale), round(120 * scale))
    assert sum(1 for tall in bar_columns(big, week, BAR_TEAL) if tall) == 17, "hours 5 to 21"


def test_inspection_bars_follow_the_hours() -> None:
    figures = example_figures()
    today = replace(figures.today, by_hour=tuple(10 if h == 8 else 5 if h == 17 else 0 for h in range(24)))
    shot = render(InspectionState(replace(figures, week=(*figures.week[:-1], today))), (800, 480))
    heights = bar_columns(shot, (20, 128, 370, 122), BAR_BLUE)
    assert [h for h, tall in enumerate(heights) if tall] == [8, 17]
    assert heights[8] == pytest.approx(2 * heights[17], abs=2), "scaled to the busiest hour"


def test_inspection_warns_of_an_unsynchronised_clock_and_a_blurry_camera() -> None:
    figures = example_figures()
    device = replace(figures.device, clock_synced=False, sharpness=3.0)
    shot = render(InspectionState(replace(figures, device=device, old_posters_today=0)), (800, 480))
    dots = [colour_at(shot, 30, 278 + 33 * row + 16) for row in range(6)]
    assert dots == [ONLINE, ONLINE, ONLINE, ONLINE, AMBER, AMBER]


def test_street_violation_is_a_red_band_and_the_findings(shots: dict[str, pygame.Surface]) -> None:
    shot = shots["street"]
    assert colour_at(shot, 5, 5) == RED and colour_at(shot, 795, 95) == RED
    assert colour_at(shot, 5, 200) == WHITE
    assert has_text(shot, (116, 0, 500, 100), WHITE), "VI PHẠM"
    assert has_text(shot, (228, 110, 552, 64), INK), "the card's format"
    assert has_text(shot, (24, 302, 196, 64), (92, 102, 118)), "the status label"
    assert has_text(shot, (228, 366, 552, 64), RED), "the violation"


def test_street_pass_is_a_green_band() -> None:
    shot = render(StreetState(example_finding(status=None)), (800, 480), lang="en")
    assert colour_at(shot, 5, 5) == GREEN and colour_at(shot, 5, 200) == WHITE
    assert not np.any(np.all(region(shot, 0, 100, 800, 380) == RED, axis=2)), "no line in red"
    assert has_text(shot, (228, 110 + 3 * 64, 552, 64), INK), "Status: not listed"


def test_no_qr_confirms_in_both_languages(shots: dict[str, pygame.Surface]) -> None:
    shot = shots["no-qr"]
    assert colour_at(shot, 2, 2) == TEAL and colour_at(shot, 797, 477) == TEAL
    assert has_text(shot, (290, 110, 490, 190), WHITE)
    assert has_text(shot, (290, 310, 490, 80), MUTED)
    assert colour_at(shot, 150, 240) == WHITE, "the slash across the viewfinder"
    assert NoQrState() == NoQrState()


def test_inspection_title_and_new_labels_have_glyphs() -> None:
    assert missing_glyphs(INSPECTION_TITLE, bold=True) == ""


# --- golden images --------------------------------------------------------------------------


GOLDEN_CASES = [(kind, "vi", (800, 480)) for kind in STATE_KINDS] + [
    ("idle", "en", (1920, 1080)),
    ("fail", "en", (1920, 1080)),
    ("inspection", "en", (1920, 1080)),
    ("street", "en", (800, 480)),
]


@pytest.mark.parametrize(("kind", "lang", "size"), GOLDEN_CASES)
def test_golden(kind: str, lang: str, size: tuple[int, int]) -> None:
    shot = render(example_state(kind, lang), size, lang=lang, now=EXAMPLE_TIME)  # type: ignore[arg-type]
    path = GOLDEN / f"{kind}-{lang}-{size[0]}x{size[1]}.png"
    if os.environ.get("KIOSK_UPDATE_GOLDEN"):
        pygame.image.save(shot, str(path))
    golden = pixels(pygame.image.load(str(path)))
    assert golden.shape == pixels(shot).shape
    differs = np.any(np.abs(golden.astype(int) - pixels(shot)) > PIXEL_TOLERANCE, axis=2)
    assert differs.mean() <= DIFFERENT_FRACTION, f"{differs.sum()} pixels differ from {path.name}"


# --- fonts ----------------------------------------------------------------------------------


def screen_texts() -> list[str]:
    """Every text the screen can show: labels, hints, faults, every reason message."""
    bilingual = [*LABELS.values(), *HINTS.values(), *(text for pair in FAULTS.values() for text in pair)]
    langs: tuple[Lang, ...] = ("vi", "en")
    texts = [text.of(lang) for text in bilingual for lang in langs]
    for reason in Reason:
        for lang in langs:
            texts += [template(reason, lang), message(reason, lang)]
    return texts


@pytest.mark.parametrize("bold", [False, True])
def test_font_has_every_character_of_every_message(bold: bool) -> None:
    assert missing_glyphs("".join(screen_texts()) + "⚠·–", bold=bold) == ""


def test_missing_glyphs_are_found() -> None:
    assert missing_glyphs("Xin chào 你好") == "你好"


def test_font_found_by_fontconfig_when_not_in_known_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.screen.typesetting.FONT_DIRS", ())
    assert find_font(bold=True).name == "DejaVuSans-Bold.ttf"


def test_missing_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("kiosk.screen.typesetting.FONT_DIRS", (tmp_path,))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FeedbackError, match="fonts-dejavu-core"):
        find_font()


# --- the display ----------------------------------------------------------------------------


class Now:
    """A wall clock the test sets."""

    def __init__(self, value: datetime) -> None:
        self.value = value

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def window() -> Iterator[Screen]:
    with Screen(FeedbackConfig(screen="window"), now=Now(NOON)) as screen:
        yield screen
    assert not pygame.display.get_init()


def test_window_on_the_dummy_driver(window: Screen) -> None:
    assert window.mode == "window" and pygame.display.get_init()
    assert window.surface.get_size() == (800, 480)
    window.show(example_state("fail"))
    assert colour_at(window.surface, 2, 2) == (0, 0, 0), "show() does not draw"
    assert window.pump()
    assert colour_at(window.surface, 2, 2) == RED


def test_pump_redraws_only_when_something_changed(window: Screen) -> None:
    window.show(IdleState("Chợ"))
    window.pump()
    window.surface.set_at((5, 100), (255, 0, 255))
    window.pump()
    assert colour_at(window.surface, 5, 100) == (255, 0, 255), "nothing changed: no redraw"
    window._now.value = NOON.replace(minute=1)  # type: ignore[attr-defined]
    window.pump()
    assert colour_at(window.surface, 5, 100) == NAVY, "the clock's minute changed"
    window.surface.set_at((5, 100), (255, 0, 255))
    window.show(IdleState("Chợ", count_in=1))
    window.pump()
    assert colour_at(window.surface, 5, 100) == NAVY, "new state"


@pytest.mark.parametrize(
    "event",
    [
        pygame.event.Event(pygame.QUIT),
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode="", scancode=41),
    ],
)
def test_closing_the_window_or_escape_asks_to_quit(window: Screen, event: pygame.event.Event) -> None:
    assert window.pump()
    pygame.event.post(event)
    assert not window.pump()


def test_start_up_warms_the_fonts_with_the_products_own_words_only() -> None:
    with Screen(FeedbackConfig(screen="offscreen"), now=Now(NOON)) as screen:
        drawn = " | ".join(str(key[0]) for key in screen.painter._text._blocks)
    assert HINTS["closer"].vi in drawn and FAULTS["camera"][0].vi in drawn, "warmed up"
    for example in ("Chợ Bến Thành", "Nguyễn", "kiosk-0007", "cho-ben-thanh"):
        assert example not in drawn, "an example state was drawn at start-up"


def test_offscreen_needs_no_display() -> None:
    screen = Screen(FeedbackConfig(screen="offscreen", screen_width=1024, screen_height=600))
    assert not pygame.display.get_init()
    screen.show(example_state("hint"))
    assert screen.pump()
    assert colour_at(screen.surface, 2, 2) == AMBER
    screen.close()
    screen.close()
    assert not screen.pump(), "a closed screen asks to stop"


def test_preview_shows_the_frame_and_the_outlined_code() -> None:
    screen = Screen(FeedbackConfig(screen="offscreen", preview=True), now=Now(NOON))
    frame = np.full((480, 640), 40, np.uint8)
    frame[100:300, 200:400] = 230
    screen.preview(frame, [(200, 100), (400, 100), (400, 300), (200, 300)])
    screen.pump()
    corner = region(screen.surface, 592, 8, 200, 150).reshape(-1, 3)
    assert np.any(np.all(corner == ONLINE, axis=1)), "outline drawn"
    assert np.any(np.all(corner == (230, 230, 230), axis=1)), "bright code area shown"
    screen.close()


def test_preview_is_off_by_default() -> None:
    screen = Screen(FeedbackConfig(screen="offscreen"), now=Now(NOON))
    screen.preview(np.full((480, 640), 230, np.uint8))
    screen.pump()
    assert colour_at(screen.surface, 700, 80) == NAVY
    screen.close()


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({"DISPLAY": ":0"}, "window"),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "window"),
        ({"SDL_VIDEODRIVER": "dummy"}, "window"),
        ({"SDL_VIDEODRIVER": "kmsdrm"}, "fullscreen"),
    ],
)
def test_auto_mode(environ: dict[str, str], mode: str) -> None:
    assert resolve_mode("auto", environ) == mode
    assert resolve_mode("offscreen", environ) == "offscreen"


def test_unusable_display_is_a_feedback_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "nosuchdriver")
    with pytest.raises(FeedbackError, match='screen = "offscreen"'):
        Screen(FeedbackConfig(screen="window"))
    assert not pygame.display.get_init()


# --- the screenshot command -----------------------------------------------------------------


def test_screenshot_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shots" / "fail.png"
    assert (
        main(["screenshot", "--state", "fail", "--size", "1024x600", "--lang", "en", "--out", str(out)]) == 0
    )
    saved = pygame.image.load(str(out))
    assert saved.get_size() == (1024, 600)
    assert colour_at(saved, 2, 2) == RED
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(("kind", "corner"), [("inspection", INSPECT_BLUE), ("street", RED), ("no-qr", TEAL)])
def test_screenshot_of_the_inspector_states(kind: str, corner: tuple[int, int, int], tmp_path: Path) -> None:
    out = tmp_path / f"{kind}.png"
    assert main(["screenshot", "--state", kind, "--out", str(out)]) == 0
    assert colour_at(pygame.image.load(str(out)), 2, 2) == corner


@pytest.mark.parametrize("size", ["big", "\uff18\uff10\uff10x480", "800x\u0664\u0668\u0660"])
def test_screenshot_rejects_a_bad_size(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Other scripts' digits (fullwidth, Arabic-Indic) are not a size, though int() would take them."""
    with pytest.raises(SystemExit):
        main(["screenshot", "--size", size, "--out", "x.png"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_fullscreen_kiosk_ignores_quit_keys() -> None:
    """A visitor's keyboard must not stop the scanner: only a desktop window quits on Esc."""
    with Screen(FeedbackConfig(screen="fullscreen"), now=Now(NOON)) as screen:
        assert screen.pump()
        pygame.event.post(
            pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode="", scancode=41)
        )
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q, mod=0, unicode="q", scancode=20))
        assert screen.pump()


def test_times_are_shown_in_the_kiosks_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    try:
        assert local(datetime(2026, 11, 29, 1, 30, tzinfo=UTC)).strftime("%H:%M") == "08:30"
        assert local(datetime(2026, 11, 29, 1, 30)).strftime("%H:%M") == "01:30", "naive: local already"
    finally:
        monkeypatch.undo()
        time.tzset()
