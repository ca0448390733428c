"""QR decoding behind one small interface: a grayscale frame in, symbols out.

Backends are chosen by name (`open_decoder(config)`): zxing-cpp (the default;
see docs/performance.md) and pyzbar. Each library is imported inside its
backend. Every backend returns the payload's bytes exactly as encoded in the
code; text is filled in only when those bytes are valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

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

    def decode(self, pixels: np.ndarray) -> DecodeResult:
        """Decode every QR code in a grayscale uint8 frame (H×W, any row stride)."""
        ...


def _check_frame(pixels: np.ndarray) -> None:
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise DecoderError(
            f"decoder needs a grayscale uint8 frame (H×W), got {pixels.dtype} {pixels.shape}: "
            "convert it before decoding"
        )


class ZxingDecoder:
    """zxing-cpp, restricted to QR (and Micro QR if configured)."""

    name = "zxingcpp"

    def __init__(self, config: DecoderConfig) -> None:
        try:
            import zxingcpp
        except ImportError as e:
            raise DecoderError("zxing-cpp is not installed: pip install zxing-cpp") from e
        self._read = zxingcpp.read_barcodes if config.all_codes else _first_code(zxingcpp)
        formats = [zxingcpp.BarcodeFormat.QRCodeModel2, zxingcpp.BarcodeFormat.QRCodeModel1]
        if config.micro_qr:
            formats.append(zxingcpp.BarcodeFormat.MicroQRCode)
        self._invert_first = config.inverted == "always"
        # zxing-cpp's own try_invert (tried only when the normal pass finds nothing)
        # costs less on an empty frame than our own second pass on an inverted
        # copy: see the "Decoding" section of docs/performance.md.
        self.options: dict[str, Any] = {
            "formats": tuple(formats),
            "try_rotate": config.try_rotate,
            "try_downscale": config.try_downscale,
            "try_invert": config.inverted == "auto",
            "binarizer": zxingcpp.Binarizer.LocalAverage,
            "return_errors": True,
        }

    def decode(self, pixels: np.ndarray) -> DecodeResult:
        """Decode every QR code in the frame."""
        _check_frame(pixels)
        if self._invert_first:
            pixels = np.invert(pixels)
        found = self._read(pixels, **self.options)
        symbols = tuple(_zxing_symbol(b) for b in found if b.valid)
        return DecodeResult(symbols=symbols, located=bool(found))


def _first_code(zxingcpp: Any) -> Callable[..., list[Any]]:
    """zxing-cpp's read_barcode as a list: it stops at the first code and skips the
    inverted pass once the normal one has read a code (bench/decode.py: about half
    the time of read_barcodes on noisy frames)."""

    def read(pixels: np.ndarray, **options: Any) -> list[Any]:
        found = zxingcpp.read_barcode(pixels, **options)
        if found is None or found.valid:
            return [] if found is None else [found]
        # The first code it met was unreadable; a readable one may be elsewhere in the frame.
        return list(zxingcpp.read_barcodes(pixels, **options)) or [found]

    return read


def _zxing_symbol(barcode: Any) -> Symbol:
    p = barcode.position
    corners = tuple((c.x, c.y) for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left))
    return Symbol.from_bytes(bytes(barcode.bytes), corners, barcode.format.name)


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

    def decode(self, pixels: np.ndarray) -> DecodeResult:
        """Decode every QR code in the frame; inverted codes as configured."""
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
