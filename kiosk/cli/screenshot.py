"""`kiosk screenshot`: render a screen state with example content to a PNG file."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from kiosk.screen.painting import render, save_png
from kiosk.screen.samples import EXAMPLE_TIME, STATE_KINDS, example_state


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `screenshot` command."""
    parser = subparsers.add_parser(
        "screenshot",
        help="render a screen state (with example content) to a PNG file",
        description="Draw one state of the status screen off-screen, as the kiosk would show it, "
        "and save it as a PNG. No display is needed.",
    )
    parser.add_argument("--state", choices=STATE_KINDS, default="idle", help="which state (default: idle)")
    parser.add_argument("--size", type=_size, default=(800, 480), metavar="WxH", help="default: 800x480")
    parser.add_argument("--lang", choices=("vi", "en"), default="vi", help="language (default: vi)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.png", help="where to write")
    parser.set_defaults(func=screenshot)


def screenshot(args: argparse.Namespace) -> int:
    """Render and save; raise FeedbackError when the file cannot be written."""
    save_png(
        render(example_state(args.state, args.lang), args.size, lang=args.lang, now=EXAMPLE_TIME), args.out
    )
    print(args.out)
    return 0


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]{2,5})[xX]([0-9]{2,5})", text)
    if not match or min(int(match[1]), int(match[2])) < 100:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 800x480 (each at least 100)")
    return int(match[1]), int(match[2])
