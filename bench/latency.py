"""Frame-to-feedback latency of the whole loop, idle CPU at 30 fps, and peak memory.

From a frame's arrival (the camera's timestamp) to the feedback call (green or red
on): decode + parse + decide + seal the identities + sign + spool commit
(synchronous=FULL) + feedback. Baseline in the same run: the raw zxing-cpp call on
the same frames, so the ratio says what the kiosk adds around decoding. Sealing's
share: the seals of each event are timed in the loop, and at 1280×720 the loop runs
again with plain identities (`uplink.plain_identity`), the same path without HPKE.

Run: .venv/bin/python bench/latency.py [--frames N]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kiosk import cardmaker, keys, scenes, sealing
from kiosk.app import assemble, open_feedback
from kiosk.config import Settings, parse_config
from kiosk.feedback import Feedback
from kiosk.sealing import Sealer


class TimedFeedback(Feedback):
    """The real feedback, noting when each result is signalled."""

    signalled: list[float]

    def passed(self, name: str, direction: Any = "in", *, at: datetime | None = None) -> None:
        self.signalled.append(time.monotonic())
        super().passed(name, direction, at=at)


@dataclass(frozen=True)
class TimedSealer(Sealer):
    """The real sealer, noting how long each identity took to seal (ms)."""

    seals: list[float] = field(default_factory=list)

    def event_identity(self, device: str, identity: str) -> str:
        started = time.perf_counter()
        try:
            return super().event_identity(device, identity)
        finally:
            self.seals.append((time.perf_counter() - started) * 1000)


def provision(state: Path) -> None:
    """The keys a provisioned kiosk holds: its signing key, its venue's key, the authority's seal key."""
    keys.generate_device_key(state / "device.key")
    sealing.generate_destination_key(state / "destination.key")
    (state / "authority-seal.pem").write_text(sealing.public_pem(X25519PrivateKey.generate().public_key()))


def settings_for(state: Path, width: int, height: int, *, plain: bool = False) -> Settings:
    provision(state)
    return parse_config(
        {
            "paths": {"state_dir": str(state)},
            "uplink": {"enabled": False, "plain_identity": plain},
            "camera": {"width": width, "height": height, "fps": 30},
            "feedback": {"screen": "offscreen", "result_hold_s": 0.01},
            "policy": {"repeat_window_s": 0},
        }
    )


def people_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """One frame per person, each a different national QR, as a camera sees it."""
    base = scenes.Scene(
        width=width, height=height, module_px=min(width, height) / 90, tilt=0.15, noise_sigma=3
    )
    return [
        scenes.render(cardmaker.national_payload(qid=f"1629793885861{i:05d}"), base.with_(seed=i))
        for i in range(count)
    ]


def measure_latency(width: int, height: int, count: int, *, plain: bool = False) -> dict[str, float]:
    """p50/p99 frame-to-feedback, the spool commit and its seals, and the raw decode of the same frames."""
    frames = people_frames(count, width, height)
    raw = []
    for frame in frames:
        started = time.perf_counter()
        zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
        raw.append((time.perf_counter() - started) * 1000)
    with tempfile.TemporaryDirectory() as state:
        settings = settings_for(Path(state), width, height, plain=plain)
        feedback = open_feedback(settings.feedback, kind=TimedFeedback)
        feedback.signalled = []
        arrivals: list[float] = []
        commits: list[float] = []
        seals: list[float] = []
        with assemble(settings, frames=frames, feedback=feedback) as kiosk:
            source = kiosk.parts.open_camera
            kiosk.parts = _timed_camera(kiosk.parts, source, arrivals)
            _time_commits(kiosk.parts.spool, commits, seals)
            kiosk.run()
    latency = [(s - a) * 1000 for a, s in zip(arrivals, feedback.signalled, strict=False)]
    assert len(latency) == count, f"{len(latency)} of {count} people were signalled"
    return {
        "p50": _pct(latency, 50),
        "p99": _pct(latency, 99),
        "raw_p50": _pct(raw, 50),
        "raw_p99": _pct(raw, 99),
        "commit_p50": _pct(commits, 50),
        "seal_p50": _pct(seals, 50),
        "seal_p99": _pct(seals, 99),
    }


def _time_commits(spool: Any, commits: list[float], seals: list[float]) -> None:
    """Note how long each durable spool commit takes (seal + sign + insert + fsync), and its seals."""
    record = spool.record
    # The spool's own sealer, timed: the same keys, the same plain_identity setting.
    sealer = TimedSealer(spool._sealer.authority, spool._sealer.destination_key, spool._sealer.plain)
    spool._sealer = sealer

    def timed(draft: Any) -> Any:
        sealer.seals.clear()
        started = time.perf_counter()
        try:
            return record(draft)
        finally:
            commits.append((time.perf_counter() - started) * 1000)
            seals.append(sum(sealer.seals))

    spool.record = timed


def _timed_camera(parts: Any, open_camera: Any, arrivals: list[float]) -> Any:
    def opener() -> Any:
        source = open_camera()
        read = source.read

        def timed_read() -> Any:
            frame = read()
            arrivals.append(frame.timestamp)
            return frame

        source.read = timed_read
        return source

    return replace(parts, open_camera=opener)


def measure_idle_cpu(seconds: float) -> float:
    """CPU use of the loop on empty frames at 30 fps, in % of one core (all threads)."""
    empty = [scenes.empty_frame(scenes.Scene(width=1280, height=720, seed=i)) for i in range(30)]
    frames = empty * int(seconds)
    with tempfile.TemporaryDirectory() as state:
        settings = settings_for(Path(state), 1280, 720)
        with assemble(settings, frames=frames) as kiosk:
            from kiosk.camera import ReplaySource

            kiosk.parts = replace(kiosk.parts, open_camera=lambda: ReplaySource.from_frames(frames, fps=30.0))
            cpu, wall = time.process_time(), time.monotonic()
            kiosk.run()
            return 100 * (time.process_time() - cpu) / (time.monotonic() - wall)


def measure_daemon_rss(seconds: float) -> float:
    """Peak RSS in MB of `kiosk run` as its own process: 1280×720 replay from files, no broker."""
    import cv2

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "frames"
        folder.mkdir()
        for i, frame in enumerate(people_frames(30, 1280, 720)):
            cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
        state = Path(work) / "state"
        provision(state)
        config = Path(work) / "kiosk.toml"
        config.write_text(
            f'[camera]\nsource = "{folder}"\nreplay_loop = true\n[uplink]\nenabled = false\n'
            f'[feedback]\nscreen = "offscreen"\n[paths]\nstate_dir = "{state}"\n'
        )
        process = subprocess.Popen([sys.executable, "-m", "kiosk", "run", "--config", str(config)],
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(seconds)
        # VmHWM, not RUSAGE_CHILDREN: the latter counts the forked copy of this (large) process.
        status = Path(f"/proc/{process.pid}/status").read_text()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return peak_kb / 1024


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300, help="people per resolution")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, pinned to one;"
        f" Python {sys.version.split()[0]}"
    )
    print(
        "| frame | identities | frame→feedback p50 | p99 | of which spool commit p50 | of which sealing p50"
        " | p99 | raw zxing p50 | p99 | ratio p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for width, height, plain in ((640, 480, False), (1280, 720, False), (1280, 720, True)):
        r = measure_latency(width, height, args.frames, plain=plain)
        print(
            f"| {width}×{height} | {'plain' if plain else 'sealed'} | {r['p50']:.2f} ms | {r['p99']:.2f} ms"
            f" | {r['commit_p50']:.2f} ms | {r['seal_p50']:.3f} ms | {r['seal_p99']:.3f} ms"
            f" | {r['raw_p50']:.2f} ms | {r['raw_p99']:.2f} ms | {r['p50'] / r['raw_p50']:.2f}× |"
        )
    idle = measure_idle_cpu(args.idle_seconds)
    print(f"idle loop at 30 fps, 1280×720 empty frames: {idle:.1f} % of one core")
    print(f"peak RSS of `kiosk run` (1280×720 replay, screen off-screen): {measure_daemon_rss(8):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
