"""Making a blurred QR code readable again before zxing-cpp reads it a second time; numpy only.

The decoder runs on the Pi, where OpenCV is not installed (it is only the `usb` extra), so
everything here is plain numpy. The pieces, each measured in docs/performance.md ("Decoding"):

- `code_like_region`: a cheap look at a sparse sample of the frame for a patch that is busy
  in both directions everywhere, as a QR code is and shading, box edges and text are not;
- `smear_axis`, `undo_motion`: a code smeared by motion, restored by a Wiener deconvolution
  along the smear with a box kernel whose length is read from the smear's own spectrum;
- `undo_defocus`: a defocused code, restored by a Wiener deconvolution with a Gaussian (and, for
  a strong defocus, doubled in size by cubic interpolation);
- `sharpen`: a located code's region, a strong unsharp mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The gate: the frame sampled every STEP pixels across and down (each sample the mean of a 2×2
# patch, which halves sensor noise; 1/64 of a frame), a sample "busy" when it differs by more than
# BUSY_LEVEL grey levels from both its right and its lower neighbour; the samples are counted in
# blocks of 3×3, and a patch of 2×2 blocks (48×48 pixels) fires when FIRE of its samples are
# busy. Measured (docs/performance.md): the busiest patch of the benchmark's empty frames reaches
# 0.44 (0.56 with heavy sensor noise, σ14), of the codes zxing-cpp does not locate at least 0.67
# (defocus σ1.3, 5-7 px smears; 0.56 for defocus σ1.6, which zxing-cpp mostly locates).
STEP = 8
BUSY_LEVEL = 15
FIRE = 0.6
# Beside a code already read, a second code is looked for with a lower bar: a wrong guess costs
# one read of a small crop, not a restoration. Measured: a small poster smeared by 3 px reaches
# 0.47 (docs/performance.md).
FIRE_BESIDE = 0.4
_PATCH = 4 * 3 * 3
# uint8 differences wrap around: |a - b| > BUSY_LEVEL exactly when (a - b - BUSY_LEVEL - 1)
# mod 256 < 255 - 2 BUSY_LEVEL, which needs no widening of the sample.
_LOW, _SPAN = np.uint8(BUSY_LEVEL + 1), np.uint8(255 - 2 * BUSY_LEVEL)
# Patches this close to the busiest one, and at most _REACH blocks (24 px each) from it, belong to
# the same code (so the crop, and the cost of restoring it, stays bounded); a quiet zone is added.
_SPREAD = 0.8
_REACH = 7
_BLOCK_PX = 3 * STEP
_QUIET_PX = 24
# A smear makes differences along it smaller than across it: below this ratio the region is
# smeared (measured: 0.49-0.68 for 5-7 px smears, 0.82-1.06 for defocus or a 3 px smear).
SMEAR_RATIO = 0.75
# Smear lengths considered, in pixels; shorter ones zxing-cpp reads unaided.
MIN_SMEAR, MAX_SMEAR = 4, 12
# Noise-to-signal ratios of the Wiener filters: small, since the blur is the main loss.
_MOTION_NSR = 0.01
_DEFOCUS_NSR = 0.003


Box = tuple[int, int, int, int]  # left, top, right, bottom, in frame pixels


def code_like_region(
    pixels: np.ndarray, *, away_from: Sequence[Box] = (), fire: float = FIRE
) -> tuple[slice, slice] | None:
    """Rows and columns of the one patch of the frame that looks like a QR code, or None.

    A QR code is dense texture in both directions over its whole square; its modules stay
    apart by more than BUSY_LEVEL even when blurred past what zxing-cpp can locate. Patches
    touching a box of `away_from` (codes already read) are not considered; a patch fires when
    a share `fire` of its samples are busy.
    """
    patches = _busy_patches(pixels)
    for box in away_from:
        _quiet(patches, box)
    if patches.size == 0 or patches.max() < fire * _PATCH:
        return None
    y, x = np.unravel_index(int(patches.argmax()), patches.shape)
    near = patches[max(0, y - _REACH) : y + _REACH + 1, max(0, x - _REACH) : x + _REACH + 1]
    ys, xs = np.nonzero(near >= _SPREAD * fire * _PATCH)
    top, left = (max(0, y - _REACH) + ys.min()) * _BLOCK_PX, (max(0, x - _REACH) + xs.min()) * _BLOCK_PX
    bottom = (max(0, y - _REACH) + ys.max() + 2) * _BLOCK_PX
    right = (max(0, x - _REACH) + xs.max() + 2) * _BLOCK_PX
    height, width = pixels.shape
    return (
        slice(max(0, int(top) - _QUIET_PX), min(height, int(bottom) + _QUIET_PX)),
        slice(max(0, int(left) - _QUIET_PX), min(width, int(right) + _QUIET_PX)),
    )


def _quiet(patches: np.ndarray, box: Box) -> None:
    """Zero every patch that touches the box (a patch covers 2×2 blocks from its own)."""
    left, top, right, bottom = box
    first_x, first_y = max(0, left // _BLOCK_PX - 1), max(0, top // _BLOCK_PX - 1)
    last_x, last_y = max(0, right // _BLOCK_PX + 1), max(0, bottom // _BLOCK_PX + 1)  # no wrapping round
    patches[first_y:last_y, first_x:last_x] = 0


def _busy_patches(pixels: np.ndarray) -> np.ndarray:
    """How many busy samples each patch of 2×2 blocks holds (patches overlap by a block)."""
    # Few numpy calls on small arrays: at 1/64 of a frame each call's overhead is its cost.
    height, width = pixels.shape
    pixels = pixels[: height - height % STEP, : width - width % STEP]  # whole samples only
    total = pixels[0::STEP, 0::STEP].astype(np.uint16)
    total += pixels[1::STEP, 0::STEP]
    total += pixels[0::STEP, 1::STEP]
    total += pixels[1::STEP, 1::STEP]
    sample = (total >> 2).astype(np.uint8)
    across = sample[:-1, 1:] - sample[:-1, :-1] - _LOW < _SPAN
    down = sample[1:, :-1] - sample[:-1, :-1] - _LOW < _SPAN
    busy = (across & down).view(np.uint8)
    height, width = (busy.shape[0] // 3) * 3, (busy.shape[1] // 3) * 3
    rows = busy[0:height:3] + busy[1:height:3] + busy[2:height:3]
    blocks = rows[:, 0:width:3] + rows[:, 1:width:3] + rows[:, 2:width:3]
    return blocks[:-1, :-1] + blocks[1:, :-1] + blocks[:-1, 1:] + blocks[1:, 1:]


def smear_axis(crop: np.ndarray) -> int | None:
    """The axis a motion smear runs along (1 across rows, 0 down columns), or None if not smeared."""
    grey = crop.astype(np.int16)
    along_rows = float(np.abs(np.diff(grey, axis=1)).mean())
    along_columns = float(np.abs(np.diff(grey, axis=0)).mean())
    if along_rows < SMEAR_RATIO * along_columns:
        return 1
    if along_columns < SMEAR_RATIO * along_rows:
        return 0
    return None


def motion_length(lines: np.ndarray) -> int:
    """The length of a box smear along each row of `lines`, read from the zeros of its spectrum.

    A box of length L averages away every frequency k/L and lets through some of those half
    way between; the length whose zeros hold the least of the rows' mean spectrum, against
    what lies half way between them, is the smear's. (Against the mean of the whole spectrum
    instead, a long smear's dim high frequencies pass for the zeros of a short one.)
    """
    size = 256
    spectrum = np.abs(np.fft.rfft(lines - lines.mean(axis=1, keepdims=True), size, axis=1)).mean(axis=0)

    bins = np.arange(spectrum.size)

    def depth(length: int) -> float:
        period = size / length
        # Between bins, interpolated: a long smear's zeros fall between them.
        zeros = np.interp(np.arange(period, size // 2, period), bins, spectrum)
        between = np.interp(np.arange(1.5 * period, size // 2, period), bins, spectrum)
        return float(zeros.mean()) / (float(between.mean()) or 1.0)

    return min(range(MIN_SMEAR, MAX_SMEAR + 1), key=depth)


def undo_motion(crop: np.ndarray, axis: int) -> np.ndarray:
    """The crop with a box smear along `axis` taken out (Wiener deconvolution, numpy FFT)."""
    lines = (crop if axis == 1 else crop.T).astype(np.float32)
    length = motion_length(lines)
    count = lines.shape[1]
    size = 1 << (count + length).bit_length()
    kernel = np.zeros(size, np.float32)
    # Centred as the smear is (a camera's smear has no start), so the code does not move.
    kernel[np.arange(length) - length // 2] = 1.0 / length
    response = np.fft.rfft(kernel)
    wiener = np.conj(response) / (np.abs(response) ** 2 + _MOTION_NSR)
    mean = float(lines.mean())
    # Padding with the mean grey instead of zeros keeps the crop's edges from ringing into it.
    restored = np.fft.irfft(np.fft.rfft(lines - mean, size, axis=1) * wiener, size, axis=1)[:, :count]
    out = _to_uint8(restored + mean)
    return out if axis == 1 else np.ascontiguousarray(out.T)


def undo_defocus(crop: np.ndarray, sigma: float, *, doubled: bool = False) -> np.ndarray:
    """The crop with a Gaussian blur of `sigma` pixels taken out (Wiener deconvolution, numpy FFT).

    `doubled`: twice the size too, by cubic interpolation of the restored levels (linear
    interpolation, cheaper, read none of the strongly defocused codes cubic read).
    """
    grey = crop.astype(np.float32)
    height, width = grey.shape
    # Room for the blur to spread past the crop's edge, in sizes numpy's FFT handles quickly.
    rows, columns = -(-(height + 16) // 32) * 32, -(-(width + 16) // 32) * 32
    fy = np.fft.fftfreq(rows).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(columns).astype(np.float32)[None, :]
    response = np.exp(-2 * np.pi**2 * sigma**2 * (fx**2 + fy**2))
    wiener = response / (response**2 + _DEFOCUS_NSR)
    mean = float(grey.mean())
    padded = np.full((rows, columns), mean, np.float32)
    padded[:height, :width] = grey
    restored = np.fft.irfft2(np.fft.rfft2(padded - mean) * wiener, (rows, columns))[:height, :width] + mean
    if doubled:
        restored = _cubic_rows(_cubic_rows(restored.astype(np.float32)).T).T
    return _to_uint8(restored)


# Cubic convolution (a = -0.75, as OpenCV's INTER_CUBIC) at the two output positions of a 2×
# upscale, a quarter pixel either side of each source: the weights of the sources at -2..+1.
_CUBIC_QUARTER = (-0.03515625, 0.26171875, 0.87890625, -0.10546875)


def _cubic_rows(image: np.ndarray) -> np.ndarray:
    """Twice the rows, each interpolated cubically from the four nearest sources (float32)."""
    count = image.shape[0]
    padded = np.empty((count + 4, image.shape[1]), np.float32)
    padded[2:-2], padded[:2], padded[-2:] = image, image[0], image[-1]
    taps = [padded[i : i + count] for i in range(5)]  # sources -2..+2
    w0, w1, w2, w3 = _CUBIC_QUARTER
    out = np.empty((2 * count, image.shape[1]), np.float32)
    out[0::2] = w0 * taps[0] + w1 * taps[1] + w2 * taps[2] + w3 * taps[3]
    out[1::2] = w3 * taps[1] + w2 * taps[2] + w1 * taps[3] + w0 * taps[4]
    return out


# The unsharp mask for a located code's region: out = g + a (g - the 3×3 mean) with a = 4.5, i.e.
# (44 g - 4 × the 3×3 sum) / 8 (a shift). Measured on located defocused codes: amounts 2.8-5.6, with
# and without a 2× upscale after it; 4.5 and up read the most, and the upscale read none more.
# 44 × 255 and 4 × 9 × 255 stay well within int16.
_SHARPEN_SELF, _SHARPEN_SUM, _SHARPEN_SHIFT = 44, 4, 3


def sharpen(crop: np.ndarray) -> np.ndarray:
    """A strong unsharp mask (3×3) in int16: blurred module edges come back apart."""
    grey = crop.astype(np.int16)
    padded = _edge_pad(grey)
    rows = padded[:, :-2] + padded[:, 1:-1]
    rows += padded[:, 2:]
    box = rows[:-2] + rows[1:-1]
    box += rows[2:]
    sharp = grey * _SHARPEN_SELF
    sharp -= box * _SHARPEN_SUM
    sharp += 1 << (_SHARPEN_SHIFT - 1)
    sharp >>= _SHARPEN_SHIFT
    return np.clip(sharp, 0, 255).astype(np.uint8)


def _edge_pad(image: np.ndarray) -> np.ndarray:
    """The image with a one-pixel border repeating its edge (np.pad costs more at this size)."""
    height, width = image.shape
    padded = np.empty((height + 2, width + 2), image.dtype)
    padded[1:-1, 1:-1] = image
    padded[0, 1:-1], padded[-1, 1:-1] = image[0], image[-1]
    padded[:, 0], padded[:, -1] = padded[:, 1], padded[:, -2]
    return padded


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
