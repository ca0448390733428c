"""The numpy restoration behind the decoder: the code-like gate, smear and defocus undone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kiosk import restore
from kiosk.scenes import Scene, empty_frame, render

NATIONAL = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"
# A vaccine-passport-length payload: its code has the most modules, so the smallest ones.
HC1 = "HC1:" + "".join("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"[(i * 7) % 45] for i in range(560))
# As bench/decode.py renders its 640×480 conditions: 3 px modules, 0.75 of that for the passport.
SMEARED = Scene(module_px=3.0, motion_px=7, center=(0.45, 0.55))
DEFOCUSED = Scene(module_px=2.25, blur_sigma=1.3, center=(0.55, 0.45))


def centre(scene: Scene) -> tuple[int, int]:
    return round(scene.center[1] * scene.height), round(scene.center[0] * scene.width)


@pytest.mark.parametrize(("payload", "scene"), [(NATIONAL, SMEARED), (HC1, DEFOCUSED)])
@pytest.mark.parametrize("seed", range(3))
def test_the_gate_finds_a_code_blurred_past_locating(payload: str, scene: Scene, seed: int) -> None:
    scene = scene.with_(seed=seed, rotation_deg=4.0 * seed)
    region = restore.code_like_region(render(payload, scene))
    assert region is not None
    rows, columns = region
    y, x = centre(scene)
    assert rows.start < y < rows.stop and columns.start < x < columns.stop
    # The crop holds the code and its quiet zone, not the whole frame.
    assert (rows.stop - rows.start) * (columns.stop - columns.start) < 0.5 * scene.width * scene.height


@pytest.mark.parametrize("noise", [3.0, 14.0])
@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_the_gate_stays_shut_on_empty_frames(noise: float, size: tuple[int, int]) -> None:
    width, height = size
    for seed in range(8):
        frame = empty_frame(Scene(width=width, height=height, seed=seed, noise_sigma=noise))
        assert restore.code_like_region(frame) is None


@given(arrays(np.uint8, st.tuples(st.integers(1, 120), st.integers(1, 160))))
def test_the_gate_takes_any_frame(frame: np.ndarray) -> None:
    region = restore.code_like_region(frame)
    if region is not None:
        rows, columns = region
        assert 0 <= rows.start < rows.stop <= frame.shape[0]
        assert 0 <= columns.start < columns.stop <= frame.shape[1]


def test_the_gate_looks_away_from_codes_already_read() -> None:
    frame = render(NATIONAL, SMEARED)
    rows, columns = restore.code_like_region(frame) or (slice(0), slice(0))
    box = (columns.start, rows.start, columns.stop, rows.stop)
    assert restore.code_like_region(frame, away_from=[box]) is None
    assert restore.code_like_region(frame, away_from=[box], fire=restore.FIRE_BESIDE) is None
    # A box elsewhere, even one off the frame, leaves the code found.
    for elsewhere in [(0, 0, 40, 40), (-900, -900, -100, -100), (5000, 5000, 6000, 6000)]:
        assert restore.code_like_region(frame, away_from=[elsewhere]) == (rows, columns)


@given(
    arrays(np.uint8, st.tuples(st.integers(1, 120), st.integers(1, 160))),
    st.lists(st.tuples(*[st.integers(-10_000, 10_000)] * 4), max_size=3),
)
def test_the_gate_takes_any_box_to_look_away_from(frame: np.ndarray, boxes: list[restore.Box]) -> None:
    region = restore.code_like_region(frame, away_from=boxes, fire=restore.FIRE_BESIDE)
    if region is not None:
        assert 0 <= region[0].start < region[0].stop <= frame.shape[0]


def crop_of(payload: str, scene: Scene) -> np.ndarray:
    frame = render(payload, scene)
    region = restore.code_like_region(frame)
    assert region is not None
    return frame[region]


def test_a_smear_is_told_by_its_direction() -> None:
    smeared = crop_of(NATIONAL, SMEARED)
    assert restore.smear_axis(smeared) == 1
    assert restore.smear_axis(np.ascontiguousarray(smeared.T)) == 0
    assert restore.smear_axis(crop_of(HC1, DEFOCUSED)) is None


def test_the_smear_length_is_read_from_its_spectrum() -> None:
    lengths = [(length, seed) for length in range(restore.MIN_SMEAR, 11) for seed in range(3)]
    scenes = {
        (length, seed): SMEARED.with_(motion_px=length, seed=seed, rotation_deg=3.0 * seed)
        for length, seed in lengths
    }
    found = {
        key: restore.motion_length(crop_of(NATIONAL, scene).astype(np.float32))
        for key, scene in scenes.items()
    }
    assert all(abs(found[key] - key[0]) <= 1 for key in lengths), found
    assert sum(found[key] == key[0] for key in lengths) >= len(lengths) - 1, found


@pytest.mark.parametrize(
    "undo",
    [
        lambda c: restore.undo_motion(c, 1),
        lambda c: restore.undo_motion(c, 0),
        lambda c: restore.undo_defocus(c, 1.2),
    ],
)
def test_deblurring_keeps_a_flat_grey_flat_and_the_size(undo) -> None:  # type: ignore[no-untyped-def]
    flat = np.full((37, 53), 140, np.uint8)
    out = undo(flat)
    assert out.dtype == np.uint8 and out.shape == flat.shape
    assert np.abs(out.astype(int) - 140).max() <= 1


def test_a_strong_defocus_is_undone_at_twice_the_size() -> None:
    flat = np.full((37, 53), 200, np.uint8)
    out = restore.undo_defocus(flat, 1.6, doubled=True)
    assert out.shape == (74, 106) and np.abs(out.astype(int) - 200).max() <= 1


def test_sharpening_keeps_a_flat_grey_and_the_size() -> None:
    out = restore.sharpen(np.full((20, 30), 90, np.uint8))
    assert out.shape == (20, 30) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 90).max() <= 1


def test_sharpening_steepens_an_edge() -> None:
    soft = np.tile(np.array([40, 40, 40, 100, 160, 220, 220, 220], np.uint8), (6, 1))
    out = restore.sharpen(soft).astype(int)
    # The ramp's ends overshoot the plateaus (clipped to 0-255), the plateaus stay.
    assert out[3, 2] < 40 and out[3, 5] > 220
    assert abs(out[3, 0] - 40) <= 1 and abs(out[3, -1] - 220) <= 1
