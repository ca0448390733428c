"""Decode benchmark: kiosk's decoder path against the raw zxing-cpp call, on camera-like frames.

Run by hand: `.venv/bin/python bench/decode.py` (about two minutes; `--quick` for a smoke run).
Pins itself to one core. For every resolution and condition it renders QR codes of real payload
lengths (national QR, CCCD with diacritics, an HC1 vaccine passport) through kiosk.scenes, then
times, on the same frames in the same run:

  raw zxing-cpp     zxingcpp.read_barcode with the same formats and effort options, nothing else
  kiosk zxingcpp    kiosk.decoder with the default configuration (what the daemon runs)
  kiosk, all_codes  the same with decoder.all_codes (zxingcpp.read_barcodes: every code in view)
  kiosk pyzbar      kiosk.decoder's pyzbar backend
  own invert pass   zxing-cpp without try_invert plus a second pass on an inverted copy when the
                    first finds nothing (the alternative to zxing-cpp's try_invert)

and prints a Markdown table: decode rate, median and p95 ms per condition, the cost of frames
with no code, false positives, and kiosk's time as a ratio of the raw call's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from kiosk.config import DecoderConfig
from kiosk.decoder import open_decoder
from kiosk.scenes import Scene, empty_frame, render

NATIONAL = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"
CCCD = (
    "001093029317|012345678|Nguyễn Văn Ánh|18011987|Nam|"
    "Số 1 Phố Huế, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội|01012021"
)
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
RESOLUTIONS = ((640, 480), (1280, 720))
CONDITIONS: dict[str, dict[str, object]] = {
    "plain": {},
    "small (2 px modules)": {"module_px": 2.0},
    "close (6 px modules)": {"module_px": 6.0},
    "rotated 35°": {"rotation_deg": 35.0},
    "tilted 0.35": {"tilt": 0.35},
    "defocus σ1.3": {"blur_sigma": 1.3},
    "motion 5 px": {"motion_px": 5},
    "noise σ14": {"noise_sigma": 14.0},
    "glare 0.7": {"glare": 0.7},
    "low contrast 0.25": {"contrast": 0.25},
    "phone screen": {"phone": True},
    "phone, dark mode": {"phone": True, "inverted": True},
}

Decode = Callable[[np.ndarray], list[bytes]]


def hc1_payload(seed: int) -> str:
    """An HC1 vaccine-passport-length string of random Base45 characters."""
    rng = np.random.default_rng(seed)
    return "HC1:" + "".join(BASE45[i] for i in rng.integers(0, 45, 560))


@dataclass
class Tally:
    """Times and hits of one decoder on one group of frames."""

    times: list[float] = field(default_factory=list)
    hits: int = 0

    def rate(self) -> float:
        """Fraction of frames decoded to exactly the encoded bytes."""
        return self.hits / len(self.times) if self.times else 0.0

    def median_ms(self) -> float:
        """Median decode time, milliseconds."""
        return statistics.median(self.times) * 1000

    def p95_ms(self) -> float:
        """95th percentile decode time, milliseconds."""
        return float(np.percentile(self.times, 95)) * 1000


def decoders() -> dict[str, Decode]:
    """The contenders, each returning the raw bytes it decoded."""
    import zxingcpp

    kiosk_zx = open_decoder(DecoderConfig())
    kiosk_all = open_decoder(DecoderConfig(all_codes=True))
    kiosk_zbar = open_decoder(DecoderConfig(backend="pyzbar"))
    never = open_decoder(DecoderConfig(inverted="never"))
    # The same formats and effort as kiosk's default, without kiosk's located-code report.
    raw_options = {key: value for key, value in kiosk_zx.options.items() if key != "return_errors"}  # type: ignore[attr-defined]

    def raw(pixels: np.ndarray) -> list[bytes]:
        found = zxingcpp.read_barcode(pixels, **raw_options)
        return [] if found is None else [bytes(found.bytes)]

    def own_invert(pixels: np.ndarray) -> list[bytes]:
        result = never.decode(pixels)
        if not result.symbols:
            result = never.decode(np.invert(pixels))
        return [s.raw for s in result.symbols]

    return {
        "raw zxing-cpp": raw,
        "kiosk zxingcpp": lambda p: [s.raw for s in kiosk_zx.decode(p).symbols],
        "kiosk, all_codes": lambda p: [s.raw for s in kiosk_all.decode(p).symbols],
        "kiosk pyzbar": lambda p: [s.raw for s in kiosk_zbar.decode(p).symbols],
        "own invert pass": own_invert,
    }


def frames_for(
    width: int, height: int, changes: dict[str, object], seeds: int
) -> list[tuple[np.ndarray, bytes]]:
    """Frames of every payload under one condition, each seed moving and turning the code a little."""
    frames = []
    base_module = 3.0 if width <= 640 else 4.5
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        for payload in (NATIONAL, CCCD, hc1_payload(seed)):
            module = base_module * (0.75 if len(payload) > 300 else 1.0)
            scene = Scene(
                width=width,
                height=height,
                module_px=module,
                center=(float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.42, 0.58))),
                rotation_deg=float(rng.uniform(-8, 8)),
                seed=seed,
            ).with_(**changes)
            if "module_px" in changes and len(payload) > 300:
                scene = scene.with_(module_px=float(changes["module_px"]) * 0.75)  # type: ignore[arg-type]
            frames.append((render(payload, scene), payload.encode("utf-8")))
    return frames


def measure(
    contenders: dict[str, Decode], frames: list[tuple[np.ndarray, bytes]], repeat: int
) -> dict[str, Tally]:
    """Time every contender on every frame, interleaved so machine noise hits them alike."""
    tallies = {name: Tally() for name in contenders}
    names = list(contenders)
    for index, (pixels, expected) in enumerate(frames):
        # Each frame starts with a different contender, so none always meets a cold cache.
        for name in names[index % len(names) :] + names[: index % len(names)]:
            decode = contenders[name]
            best, found = float("inf"), []
            for _ in range(repeat):
                start = time.perf_counter()
                found = decode(pixels)
                best = min(best, time.perf_counter() - start)
            tallies[name].times.append(best)
            tallies[name].hits += found == [expected] if expected else not found
    return tallies


def pin_to_one_core() -> str:
    """Run on the last CPU only; say which."""
    import cv2

    cv2.setNumThreads(1)
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main() -> None:
    """Render, measure, and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, one repeat: a smoke run")
    args = parser.parse_args()
    effort = (1, 1, 4) if args.quick else (5, 3, 30)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# {pin_to_one_core()}; {platform.machine()}; {when}")
    contenders = decoders()
    ratios = [resolution_table(contenders, width, height, *effort) for width, height in RESOLUTIONS]
    print("\n" + "\n".join(ratios))


def resolution_table(
    contenders: dict[str, Decode], width: int, height: int, seeds: int, repeat: int, empties: int
) -> str:
    """Print one resolution's table; return its kiosk/raw ratios as a line of text."""
    print(f"\n### {width}×{height}: decode rate, median ms, p95 ms\n")
    print("| condition | " + " | ".join(contenders) + " |")
    print("|---|" + "---|" * len(contenders))
    kiosk_s = raw_s = 0.0
    for condition, changes in CONDITIONS.items():
        tallies = measure(contenders, frames_for(width, height, changes, seeds), repeat)
        print(_row(condition, tallies))
        kiosk_s += sum(tallies["kiosk zxingcpp"].times)
        raw_s += sum(tallies["raw zxing-cpp"].times)
    scenes = [Scene(width=width, height=height, seed=seed, noise_sigma=3) for seed in range(empties)]
    tallies = measure(contenders, [(empty_frame(scene), b"") for scene in scenes], repeat)
    print(_row("no code (rate = no false positive)", tallies))
    empty_ratio = tallies["kiosk zxingcpp"].median_ms() / tallies["raw zxing-cpp"].median_ms()
    return (
        f"{width}×{height}: kiosk/raw time, frames with codes {kiosk_s / raw_s:.3f}×, "
        f"empty frames (median) {empty_ratio:.3f}×"
    )


def _row(condition: str, tallies: dict[str, Tally]) -> str:
    cells = [f"{t.rate():.0%} {t.median_ms():.2f} / {t.p95_ms():.2f}" for t in tallies.values()]
    return f"| {condition} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
