"""Synthetic scenes: deterministic, camera-like, each condition doing what it says."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.config import DecoderConfig
from kiosk.decoder import open_decoder
from kiosk.scenes import INK, PAPER, Scene, demo_frames, empty_frame, qr_modules, render, render_codes

PAYLOAD = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"


def centre(frame: np.ndarray, half: int = 40) -> np.ndarray:
    h, w = frame.shape
    return frame[h // 2 - half : h // 2 + half, w // 2 - half : w // 2 + half]


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    scene = Scene(noise_sigma=8, glare=0.3, seed=3)
    assert np.array_equal(render(PAYLOAD, scene), render(PAYLOAD, scene))
    assert not np.array_equal(render(PAYLOAD, scene), render(PAYLOAD, scene.with_(seed=4)))


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_frames_are_gray_uint8_of_the_asked_size(size: tuple[int, int]) -> None:
    frame = render(PAYLOAD, Scene(width=size[0], height=size[1]))
    assert frame.shape == (size[1], size[0]) and frame.dtype == np.uint8


def test_modules_include_the_quiet_zone() -> None:
    modules = qr_modules(PAYLOAD)
    assert modules.dtype == bool and modules.shape[0] == modules.shape[1]
    assert not modules[:4].any() and not modules[:, -4:].any()
    assert modules[4, 4]  # the top-left finder pattern starts right inside it


def test_code_is_where_the_scene_puts_it() -> None:
    left = render(PAYLOAD, Scene(center=(0.25, 0.5), module_px=3))
    # The code's modules make the region around its centre busy; the other side stays background.
    assert left[:, :320].std() > left[:, 320:].std() * 0.8
    assert np.abs(np.diff(centre(left).astype(int), axis=1)).mean() < 60  # no code at the frame centre
    assert np.abs(np.diff(left[200:280, 120:200].astype(int), axis=1)).mean() > 20


def test_contrast_and_inversion_change_levels() -> None:
    normal = centre(render(PAYLOAD, Scene()))
    assert normal.min() <= INK + 5 and normal.max() >= PAPER - 5
    low = centre(render(PAYLOAD, Scene(contrast=0.3)))
    assert int(low.max()) - int(low.min()) < 0.4 * (PAPER - INK)
    inverted = centre(render(PAYLOAD, Scene(inverted=True))).ravel()
    assert np.corrcoef(normal.ravel(), inverted)[0, 1] < -0.95  # dark modules became light


def test_blur_and_motion_soften_edges() -> None:
    def sharpness(scene: Scene) -> float:
        return float(np.abs(np.diff(centre(render(PAYLOAD, scene)).astype(int), axis=1)).mean())

    sharp = sharpness(Scene())
    assert sharpness(Scene(blur_sigma=2)) < sharp * 0.7
    assert sharpness(Scene(motion_px=8)) < sharp * 0.7


def test_glare_brightens_and_noise_varies() -> None:
    brighter = render(PAYLOAD, Scene(glare=0.8)).astype(int) - render(PAYLOAD, Scene()).astype(int)
    assert brighter.min() >= 0 and brighter.max() > 100
    flat = render(PAYLOAD, Scene(noise_sigma=10)).astype(int) - render(PAYLOAD, Scene()).astype(int)
    assert 7 < flat.std() < 13


def test_phone_has_a_dark_bezel_around_a_screen() -> None:
    frame = render(PAYLOAD, Scene(phone=True, module_px=3))
    column = frame[:, 320]
    dark_rows = np.flatnonzero(column < 25)
    assert len(dark_rows) > 0  # the bezel crosses the centre column above and below the code


def test_rotation_and_tilt_move_the_corners() -> None:
    flat, turned = render(PAYLOAD, Scene()), render(PAYLOAD, Scene(rotation_deg=30))
    tilted = render(PAYLOAD, Scene(tilt=0.3))
    assert not np.array_equal(flat, turned) and not np.array_equal(flat, tilted)


def test_empty_frames_are_textured_and_differ_by_seed() -> None:
    a, b = empty_frame(Scene(seed=1)), empty_frame(Scene(seed=2))
    assert a.std() > 20 and not np.array_equal(a, b)


def test_bytes_payload_and_micro_qr() -> None:
    assert render(b"\x00\xff", Scene()).shape == (480, 640)
    assert qr_modules("12345", micro=True).shape[0] < qr_modules("12345").shape[0]


def test_demo_frames_alternate_empty_and_code() -> None:
    frames = demo_frames([PAYLOAD, "second"], width=320, height=240)
    assert len(frames) == 30 and all(f.shape == (240, 320) for f in frames)
    decoder = open_decoder(DecoderConfig())
    texts = [[s.text for s in decoder.decode(f).symbols] for f in frames]
    assert texts == ([[]] * 10 + [[PAYLOAD]] * 5 + [[]] * 10 + [["second"]] * 5)


def test_render_codes_places_each_code_by_its_own_scene() -> None:
    left, right = Scene(center=(0.25, 0.5), module_px=3), Scene(center=(0.75, 0.5), module_px=3)
    frame = render_codes([(PAYLOAD, left), ("second", right.with_(width=10, height=10))])
    assert frame.shape == (480, 640), "the first scene sets the frame"
    texts = {s.text for s in open_decoder(DecoderConfig()).decode(frame, every=True).symbols}
    assert texts == {PAYLOAD, "second"}
    assert np.array_equal(render_codes([(PAYLOAD, left)]), render(PAYLOAD, left))
    with pytest.raises(ValueError, match="at least one code"):
        render_codes([])
