"""Figures of a camera frame (gray uint8, H x W): sharpness, mean level, clipped pixels; numpy only."""

from __future__ import annotations

import numpy as np

# Below this variance of the Laplacian a QR code's edges are too soft to read reliably.
MIN_SHARPNESS = 50.0
# Levels this close to either end of 0..255 count as clipped (blown out or crushed).
CLIP_MARGIN = 2


def sharpness(pixels: np.ndarray) -> float:
    """The variance of the frame's Laplacian: high for crisp edges, near 0 for a blurred or covered lens."""
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise ValueError(f"expected a gray frame of at least 2x2 pixels, not shape {pixels.shape}")
    # Mirrored borders without repeating the edge (OpenCV's default, BORDER_REFLECT_101),
    # so the figure matches the one the limit above was chosen with.
    padded = np.pad(pixels.astype(np.float64), 1, mode="reflect")
    laplacian = (
        padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * padded[1:-1, 1:-1]
    )
    return float(laplacian.var())


def mean_level(pixels: np.ndarray) -> float:
    """The mean gray level (0..255)."""
    return float(pixels.mean())


def clipped_fraction(pixels: np.ndarray) -> float:
    """The share of pixels at either end of the range: over 5 % means the exposure is wrong."""
    low, high = CLIP_MARGIN, 255 - CLIP_MARGIN
    return float(np.count_nonzero((pixels <= low) | (pixels >= high))) / pixels.size
