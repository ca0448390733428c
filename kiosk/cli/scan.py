"""`kiosk scan-image PATH...`: decode image files with the daemon's decoder, one JSON line each."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.camera import IMAGE_SUFFIXES
from kiosk.cards.masking import mask_text
from kiosk.cli.common import add_config_argument, settings_from
from kiosk.config import Settings
from kiosk.decoder import Decoder, Symbol, open_decoder
from kiosk.errors import ImageError

SymbolRecord = Callable[[Symbol], dict[str, Any]]
# A 50-megapixel photo is read; an image claiming more is refused before decoding (a decompression bomb).
MAX_PIXELS = 50_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `scan-image` command."""
    # No abbreviations: `--show-identities` is asked for by its whole name, never by a prefix.
    parser = subparsers.add_parser(
        "scan-image",
        allow_abbrev=False,
        help="decode QR codes in image files or folders; print one JSON object per image",
        description="Decode every QR code in each image (png, jpg, webp, ...) or in every image of a "
        "folder, with the decoder the kiosk is configured to use. Exit 0 when every image was read "
        "(found codes or not), 2 when some could not be read (damaged, not an image, or claiming more than "
        "50 megapixels); the files after an unreadable one are still read. Each code's text and the "
        "card's identities are masked unless --show-identities is given.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image file or folder")
    parser.add_argument(
        "--show-identities",
        action="store_true",
        help="print each code's text and bytes and the card's identities in full, not masked; "
        "names stay masked",
    )
    add_config_argument(parser)
    parser.set_defaults(func=scan_images)


def scan_images(args: argparse.Namespace) -> int:
    """Print one JSON line per readable image; report the unreadable ones and exit 2 at the end."""
    settings = settings_from(args)
    decoder = open_decoder(settings.decoder)
    describe = deciding(settings, show_identities=args.show_identities)
    if args.show_identities:
        print("kiosk: codes and identities are shown in full (--show-identities): keep this output private",
              file=sys.stderr)  # fmt: skip
    failed = 0
    for path in _expand(args.paths):
        try:
            record = scan_file(path, decoder, describe=describe)
        except ImageError as e:
            print(f"kiosk: {e}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return 2 if failed else 0


def scan_file(path: Path, decoder: Decoder, *, describe: SymbolRecord | None = None) -> dict[str, Any]:
    """Decode one image file into its JSON record; raises ImageError if it cannot be read."""
    pixels = load_gray_image(path)
    start = time.perf_counter()
    result = decoder.decode(pixels)
    elapsed_ms = (time.perf_counter() - start) * 1000
    describe = describe or symbol_record
    return {
        "file": str(path),
        "symbols": [describe(symbol) for symbol in result.symbols],
        "located": result.located,
        "decode_ms": round(elapsed_ms, 3),
    }


def symbol_record(symbol: Symbol) -> dict[str, Any]:
    """The JSON form of one decoded symbol (extend this to add, e.g., a decision)."""
    return {
        "text": symbol.text,
        "bytes_b64": base64.b64encode(symbol.raw).decode("ascii"),
        "format": symbol.format,
        "corners": [list(point) for point in symbol.corners],
    }


def masked_record(symbol: Symbol) -> dict[str, Any]:
    """symbol_record with the text masked and without the bytes, which would give the text back."""
    text = mask_text(symbol.text) if symbol.text is not None else None
    return symbol_record(symbol) | {"text": text, "bytes_b64": None}


def deciding(settings: Settings, *, show_identities: bool = False) -> SymbolRecord:
    """A symbol_record that adds the decision the kiosk would make, masked as `kiosk card check` masks."""
    from kiosk.cli.card import check_one, masked
    from kiosk.statuslist import StatusListStore
    from kiosk.trustlist import TrustList

    trust = TrustList.load(settings.policy.trust_list) if settings.policy.trust_list else None
    listed = StatusListStore.from_config(
        settings.policy.authority_keys, settings.paths.statuslist_file
    ).current
    lang = settings.destination.language

    def describe(symbol: Symbol) -> dict[str, Any]:
        now = datetime.now(UTC)
        decision = check_one(symbol.raw, settings, trust=trust, statuslist=listed, now=now, lang=lang)
        if show_identities:
            return {**symbol_record(symbol), "decision": decision}
        return {**masked_record(symbol), "decision": masked(decision)}

    return describe


def load_gray_image(path: Path) -> np.ndarray:
    """An image file as a grayscale uint8 array; raises ImageError when it is unreadable or damaged."""
    from PIL import Image, UnidentifiedImageError

    try:
        return _decode(path)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: refused, too many pixels to decode safely ({e})") from e
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise ImageError(f"{path}: a folder with no images ({', '.join(sorted(IMAGE_SUFFIXES))})") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not an image file kiosk can read (png, jpg, webp, ...)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: damaged or unreadable image ({e})") from e


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    # Pillow only warns between its limit and twice it; a warning is a refusal here.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:  # checked on the header, before a byte is decoded
                raise ImageError(
                    f"{path}: refused, its header claims {width}x{height} pixels "
                    f"(at most {MAX_PIXELS:,} are decoded)"
                )
            image.load()  # decodes every byte, so a truncated file is caught here
            return np.asarray(image.convert("L"))


def _expand(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders as their images, sorted by name (an empty folder as itself)."""
    for path in paths:
        images = _images_in(path) if path.is_dir() else []
        yield from images or [path]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
