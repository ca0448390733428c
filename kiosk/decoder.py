"""QR decoding behind one small interface: a grayscale frame in, symbols out.

Backends are chosen by name (`open_decoder(config)`): zxing-cpp (the default;
see docs/performance.md) and pyzbar. Each library is imported inside its
backend. Every backend returns the payload's bytes exactly as encoded in the
code; text is filled in only when those bytes are valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kiosk import restore
from kiosk.config import DecoderConfig
from kiosk.errors import DecoderError

Point = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Symbol:
    """One decoded code: its exact bytes, their UTF-8 text if any, corners and format."""

    raw: bytes
    text: str | None
    corners: tuple[Point, ...]  # top-left, top-right, bottom-right, bottom-left, in frame pixels
    format: str  # "QRCode" or "MicroQRCode"

    @classmethod
    def from_bytes(cls, raw: bytes, corners: tuple[Point, ...], format: str) -> Symbol:
        """Build a symbol, decoding the text only when the bytes are valid UTF-8."""
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(raw=raw, text=text, corners=corners, format=format)


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What one frame held: decoded symbols, and whether a code was seen at all."""

    symbols: tuple[Symbol, ...] = ()
    located: bool = False  # true when a code was found, decoded or not ("hold still")

    @property
    def undecoded(self) -> bool:
        """A code is in view but could not be read (blurred, covered, too small)."""
        return self.located and not self.symbols


class Decoder(Protocol):
    """A QR decoding backend."""

    name: str

    def decode(self, pixels: np.ndarray, *, every: bool = False) -> DecodeResult:
        """Decode the QR codes in a grayscale uint8 frame (H×W, any row stride).

        A backend may stop at the first code it reads; `every=True` asks for every
        code in view, the first one read first.
        """
        ...


def _check_frame(pixels: np.ndarray) -> None:
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise DecoderError(
            f"decoder needs a grayscale uint8 frame (H×W), got {pixels.dtype} {pixels.shape}: "
            "convert it before decoding"
        )


class ZxingDecoder:
    """zxing-cpp, restricted to QR (and Micro QR if configured), with kiosk's own extra passes.

    Each frame: zxing-cpp at full resolution (and, when every code is asked for, a second
    full-resolution pass with a fixed threshold); when that locates nothing, a cheap look for
    a code-like patch, and only if there is one: a half-resolution pass with a fixed threshold
    (kiosk's stand-in for zxing-cpp's own downscaled pass: it costs less and reads
    motion-smeared codes) and, if that reads nothing either, the patch deblurred and read
    again; when a code was located but not read, a retry on that region only, sharpened; when a
    code was read, a cheap look away from it for a second code (a poster behind a card), read
    only where one looks likely (docs/performance.md, "Decoding"). Image work is numpy only: the
    Pi has no OpenCV.
    """

    name = "zxingcpp"

    def __init__(self, config: DecoderConfig) -> None:
        try:
            import zxingcpp
        except ImportError as e:
            raise DecoderError("zxing-cpp is not installed: pip install zxing-cpp") from e
        self._zx = zxingcpp
        self._all_codes = config.all_codes
        self._half_pass = config.try_downscale
        formats = [zxingcpp.BarcodeFormat.QRCodeModel2, zxingcpp.BarcodeFormat.QRCodeModel1]
        if config.micro_qr:
            formats.append(zxingcpp.BarcodeFormat.MicroQRCode)
        self._invert_first = config.inverted == "always"
        # zxing-cpp's own try_invert (tried only when the normal pass finds nothing)
        # costs less on an empty frame than our own second pass on an inverted
        # copy: see the "Decoding" section of docs/performance.md.
        # What every full-resolution zxing-cpp call is given. zxing-cpp's own downscaled pass is
        # never used: `try_downscale` turns on kiosk's half-resolution pass instead.
        self.options: dict[str, Any] = {
            "formats": tuple(formats),
            "try_rotate": config.try_rotate,
            "try_downscale": False,
            "try_invert": config.inverted == "auto",
            "binarizer": zxingcpp.Binarizer.LocalAverage,
            "return_errors": True,
        }
        self._full = self.options
        self._fixed = {**self._full, "binarizer": zxingcpp.Binarizer.FixedThreshold}
        self._half = self._fixed

    def decode(self, pixels: np.ndarray, *, every: bool = False) -> DecodeResult:
        """Decode the first code read (every code with `every` or `all_codes`), retrying located ones."""
        _check_frame(pixels)
        if self._invert_first:
            pixels = np.invert(pixels)
        every = every or self._all_codes
        found, region = self._locate(pixels, every=every)
        symbols = tuple(f.symbol for f in found if f.valid)
        unread = [f for f in found if not f.valid]
        if unread and (every or not symbols):
            symbols += self._retry(pixels, unread, every=every)
        if not symbols and region is not None:
            # The full-resolution pass located nothing, yet something looks like a code.
            symbols = self._restore(pixels, region)
        elif unread and not symbols and not every:
            # Nothing rescued: a readable code may be elsewhere in the frame.
            others = self._read(pixels, self._full, every=True)
            symbols = tuple(_Found.of(b).symbol for b in others if b.valid)
        if symbols and not every:
            symbols += self._read_elsewhere(pixels, symbols)
        return DecodeResult(symbols=_distinct(symbols), located=bool(found or symbols))

    def _locate(self, pixels: np.ndarray, *, every: bool) -> tuple[list[_Found], tuple[slice, slice] | None]:
        """Every code zxing-cpp locates (read or not), and, when it locates none, a code-like region.

        Past the full-resolution pass, the passes run only where something looks like a code,
        so an empty frame pays for that cheap look alone (docs/performance.md, "Decoding").
        """
        found = [_Found.of(b) for b in self._read(pixels, self._full, every=every)]
        if every:
            found += self._read_fixed(pixels)
        if found:
            return found, None
        region = restore.code_like_region(pixels)
        if region is not None and self._half_pass:
            found = self._read_half(pixels, every=every)
        return found, region

    def _read(self, pixels: np.ndarray, options: dict[str, Any], *, every: bool) -> list[Any]:
        if every:
            return list(self._zx.read_barcodes(pixels, **options))
        # read_barcode stops at the first code and skips the inverted pass once the
        # normal one has read a code (bench/decode.py: about half the time of
        # read_barcodes on noisy frames).
        first = self._zx.read_barcode(pixels, **options)
        return [] if first is None else [first]

    def _read_fixed(self, pixels: np.ndarray) -> list[_Found]:
        """Every code a fixed threshold reads at full resolution: only when every code is asked for.

        Past a poster a card smeared by motion is often not even located by the local-average
        binarizer, while a fixed threshold reads it. The loop asks for every code only past a
        poster, so an empty frame never pays for this pass (docs/performance.md, "Decoding").
        """
        # Only what it reads: what it merely locates is mostly clutter, not worth a retry.
        return [found for b in self._read(pixels, self._fixed, every=True) if (found := _Found.of(b)).valid]

    def _read_half(self, pixels: np.ndarray, *, every: bool) -> list[_Found]:
        half = np.ascontiguousarray(pixels[::2, ::2])
        return [_Found.of(b, scale=2.0) for b in self._read(half, self._half, every=every)]

    def _retry(self, pixels: np.ndarray, unread: list[_Found], *, every: bool) -> tuple[Symbol, ...]:
        """Read located but unread codes again from their region alone, sharpened."""
        rescued: list[Symbol] = []
        for found in unread[:_MAX_RETRIES]:
            crop, origin = _region(pixels, found.corners)
            if crop is None:
                continue
            read = self._zx.read_barcode(restore.sharpen(crop), **self._full)
            if read is not None and read.valid:
                rescued.append(_Found.of(read, offset=origin).symbol)
                if not every:
                    break
        return tuple(rescued)

    def _read_elsewhere(self, pixels: np.ndarray, read: tuple[Symbol, ...]) -> tuple[Symbol, ...]:
        """The codes of another code-like patch, away from those read (a poster behind a card).

        zxing-cpp stopped at the first code; a frame with nothing else costs the cheap look
        alone. The patch is read with both binarizers: a smeared code is often read only by
        the fixed threshold (docs/performance.md, "Decoding").
        """
        boxes = [_box(s.corners) for s in read]
        region = restore.code_like_region(pixels, away_from=boxes, fire=restore.FIRE_BESIDE)
        if region is None:
            return ()
        rows, columns = region
        crop = np.ascontiguousarray(pixels[rows, columns])
        for options in (self._full, self._fixed):
            found = [b for b in self._read(crop, options, every=True) if b.valid]
            if found:
                return tuple(_Found.of(b, offset=(columns.start, rows.start)).symbol for b in found)
        return ()

    def _restore(self, pixels: np.ndarray, region: tuple[slice, slice]) -> tuple[Symbol, ...]:
        """Nothing read: deblur the code-like region (undo a smear, else a defocus) and read it.

        A code blurred past what zxing-cpp locates (a smear longer than two modules, defocus
        of about half a module) still looks like dense texture, which `_locate` found.
        """
        rows, columns = region
        for image, scale in _restorations(pixels[rows, columns]):
            read = self._zx.read_barcode(image, **self._full)
            if read is not None and read.valid:
                return (_Found.of(read, scale=scale, offset=(columns.start, rows.start)).symbol,)
        return ()


def _restorations(crop: np.ndarray) -> Iterator[tuple[np.ndarray, float]]:
    """The crop deblurred, likeliest first, each with its scale back to frame pixels (made lazily)."""
    axis = restore.smear_axis(crop)
    if axis is not None:
        yield restore.undo_motion(crop, axis), 1.0
        return
    # A slight defocus is undone best at the crop's own size, a stronger one with the result
    # doubled too (modules of 2-3 px): measured on the benchmark's defocused codes.
    yield restore.undo_defocus(crop, _DEFOCUS_SIGMAS[0]), 1.0
    yield restore.undo_defocus(crop, _DEFOCUS_SIGMAS[1], doubled=True), 1 / _UPSCALE


# How many located-but-unread codes one frame retries: a frame rarely holds more than two codes.
_MAX_RETRIES = 2
# The restoration of a strong defocus doubles the region's size.
_UPSCALE = 2
# Gaussian widths (pixels) the restoration undoes when nothing was located: a slight and a strong defocus.
_DEFOCUS_SIGMAS = (1.2, 1.6)
# The region around a located code: its bounding box grown by this fraction of its size on each side.
_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class _Found:
    """One zxing-cpp result mapped back to frame pixels."""

    valid: bool
    corners: tuple[Point, ...]
    raw: bytes
    format: str

    @classmethod
    def of(cls, barcode: Any, *, scale: float = 1.0, offset: Point = (0, 0)) -> _Found:
        p = barcode.position
        corners = tuple(
            (round(c.x * scale) + offset[0], round(c.y * scale) + offset[1])
            for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
        )
        return cls(bool(barcode.valid), corners, bytes(barcode.bytes), barcode.format.name)

    @property
    def symbol(self) -> Symbol:
        """The decoded symbol (only meaningful when valid)."""
        return Symbol.from_bytes(self.raw, self.corners, self.format)


def _region(pixels: np.ndarray, corners: tuple[Point, ...]) -> tuple[np.ndarray | None, Point]:
    """The frame around a located code, and where that crop starts; None when it is degenerate."""
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    size = max(max(xs) - min(xs), max(ys) - min(ys), 8)
    margin = int(size * _MARGIN) + 4
    height, width = pixels.shape
    x0, y0 = max(0, min(xs) - margin), max(0, min(ys) - margin)
    x1, y1 = min(width, max(xs) + margin), min(height, max(ys) + margin)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None, (0, 0)
    return pixels[y0:y1, x0:x1], (x0, y0)


def _box(corners: tuple[Point, ...]) -> restore.Box:
    """A read code's bounding box grown by its quiet zone (about a tenth of its size, at least 8 px)."""
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    margin = int(max(max(xs) - min(xs), max(ys) - min(ys)) * _MARGIN) + 8
    return min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin


def _distinct(symbols: tuple[Symbol, ...]) -> tuple[Symbol, ...]:
    """Each payload once, in the order first read (two passes may read the same code)."""
    seen: set[bytes] = set()
    return tuple(s for s in symbols if not (s.raw in seen or seen.add(s.raw)))  # type: ignore[func-returns-value]


class PyzbarDecoder:
    """ZBar through pyzbar, QR only.

    ZBar converts a byte segment it recognises as Shift-JIS or ISO-8859-1 to
    UTF-8, so only UTF-8 and ASCII payloads (every format kiosk reads) keep their
    exact bytes. It cannot tell a located code from no code.
    """

    name = "pyzbar"

    def __init__(self, config: DecoderConfig) -> None:
        try:
            from pyzbar import pyzbar
        except (ImportError, OSError) as e:
            raise DecoderError("pyzbar or libzbar0 is missing: apt install libzbar0") from e
        self._zbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]
        self._inverted = config.inverted

    def decode(self, pixels: np.ndarray, *, every: bool = False) -> DecodeResult:
        """Decode every QR code in the frame (ZBar always reads them all); inverted codes as configured."""
        _check_frame(pixels)
        first = np.invert(pixels) if self._inverted == "always" else pixels
        symbols = self._scan(first)
        if not symbols and self._inverted == "auto":
            symbols = self._scan(np.invert(pixels))
        return DecodeResult(symbols=symbols, located=bool(symbols))

    def _scan(self, pixels: np.ndarray) -> tuple[Symbol, ...]:
        found = self._zbar.decode(pixels, symbols=self._symbols)
        return tuple(Symbol.from_bytes(s.data, _zbar_corners(s.polygon), "QRCode") for s in found)


def _zbar_corners(polygon: list[Any]) -> tuple[Point, ...]:
    points = tuple((int(p.x), int(p.y)) for p in polygon)
    # ZBar goes round a QR code anticlockwise from its top-left; kiosk goes clockwise.
    return points[:1] + points[:0:-1] if len(points) == 4 else points


BACKENDS: dict[str, type[ZxingDecoder] | type[PyzbarDecoder]] = {
    "zxingcpp": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
}


def open_decoder(config: DecoderConfig) -> Decoder:
    """The decoder named by `config.backend`; raises DecoderError if its library is missing."""
    return BACKENDS[config.backend](config)
