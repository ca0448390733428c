"""Frame figures computed with numpy: the sharpness the camera check and the inspection screen judge by."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kiosk.imaging import MIN_SHARPNESS, clipped_fraction, mean_level, sharpness
from kiosk.scenes import Scene, render

PAYLOAD = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"


@given(arrays(np.uint8, st.tuples(st.integers(2, 40), st.integers(2, 40))))
def test_sharpness_is_opencvs_variance_of_the_laplacian(pixels: np.ndarray) -> None:
    # MIN_SHARPNESS was chosen with OpenCV's figure (3x3 kernel, mirrored borders): keep the same scale.
    assert sharpness(pixels) == pytest.approx(cv2.Laplacian(pixels, cv2.CV_64F).var(), rel=1e-9, abs=1e-9)


def test_a_crisp_code_is_sharp_and_a_blurred_one_is_not() -> None:
    crisp = render(PAYLOAD, Scene(blur_sigma=0, noise_sigma=0))
    blurred = render(PAYLOAD, Scene(blur_sigma=6, noise_sigma=0))
    assert sharpness(crisp) > MIN_SHARPNESS > sharpness(blurred)


def test_a_covered_lens_has_no_sharpness() -> None:
    assert sharpness(np.full((480, 640), 37, np.uint8)) == 0.0


def test_sharpness_refuses_what_is_not_a_gray_frame() -> None:
    with pytest.raises(ValueError, match="gray frame"):
        sharpness(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="gray frame"):
        sharpness(np.zeros((1, 640), np.uint8))


def test_exposure_figures() -> None:
    frame = np.array([[0, 2, 3, 128], [252, 253, 255, 100]], np.uint8)
    assert clipped_fraction(frame) == 4 / 8
    assert mean_level(frame) == pytest.approx(frame.mean())
