"""The device install's footprint: the venv's size beyond the apt packages, and `kiosk run`'s memory.

Run by hand (needs the package index; takes a minute or two):
`.venv/bin/python bench/footprint.py [--python /usr/bin/python3] [--seconds 20]`.

It builds a fresh venv the way provisioning/install.sh does (`--system-site-packages
--without-pip`, then the outer python's pip: `pip --python VENV install --only-binary=:all:
-c provisioning/constraints.txt .[device]`), sums each installed distribution from its RECORD,
and runs `kiosk run` on a replay of the demo scene's frames (rendered to PNG files here, since the
device install has no OpenCV to draw them; off-screen, uplink off) for a while, reading its peak
resident memory (VmHWM). The baseline, measured in the same run and the same venv, is a bare
`python -c 'import numpy, pygame'`.

On the Pi, pygame, numpy, Pillow and pyzbar are Raspberry Pi OS's (install.sh's python3-* apt
packages) and the venv only sees them; on a machine without those apt packages pip puts them in
the venv. Their sizes are therefore reported apart and left out of "beyond apt". Targets: ≤ 60 MB
beyond apt, RSS ≤ 100 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What Raspberry Pi OS ships as apt packages (install.sh installs them; the venv sees them).
FROM_APT = {"pygame", "numpy", "pillow", "pyzbar"}
VENV_TARGET_MB = 60.0
RSS_TARGET_MB = 100.0


def build_venv(python: str, where: Path) -> Path:
    """A venv like install.sh's, with the kiosk and its device extra; its python."""
    subprocess.run([python, "-m", "venv", "--system-site-packages", "--without-pip", str(where)], check=True)
    venv_python = where / "bin" / "python"
    pip = [python, "-m", "pip", "--python", str(venv_python), "install", "-q", "--only-binary=:all:"]
    constraints = ROOT / "provisioning" / "constraints.txt"
    subprocess.run([*pip, "--upgrade", "-c", str(constraints), f"{ROOT}[device]"], check=True)
    return venv_python


def distribution_sizes(venv: Path) -> dict[str, int]:
    """Bytes on disk of each distribution installed in the venv, from its RECORD."""
    sizes: dict[str, int] = {}
    for site in venv.glob("lib/python3*/site-packages"):
        for record in site.glob("*.dist-info/RECORD"):
            name = record.parent.name.split("-")[0].lower().replace("_", "-")
            total = 0
            for line in record.read_text().splitlines():
                path = site / line.split(",")[0]
                if path.is_file():
                    total += path.stat().st_size
            sizes[name] = total
    return sizes


def peak_rss_mb(command: list[str], *, seconds: float, env: dict[str, str]) -> float:
    """The peak resident memory (VmHWM) of a process that runs for `seconds`, then gets SIGTERM."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, stderr=errors, stdout=subprocess.DEVNULL)
        status = Path(f"/proc/{process.pid}/status")
        peak = 0.0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and process.poll() is None:
                peak = max(peak, _vm_hwm_kb(status) / 1024)
                time.sleep(0.2)
        finally:
            ended_early = process.poll() is not None
            process.terminate()
            process.wait(timeout=15)
        if ended_early:  # a crash's peak is no measurement of a running kiosk
            errors.seek(0)
            message = errors.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"{command[0]} exited ({process.returncode}) before {seconds} s:\n{message}")
    return peak


def _vm_hwm_kb(status: Path) -> float:
    try:
        lines = status.read_text().splitlines()
    except OSError:
        return 0.0
    return next((float(line.split()[1]) for line in lines if line.startswith("VmHWM:")), 0.0)


def demo_frames(folder: Path) -> Path:
    """The built-in demo scene's frames as PNG files (drawn here: the device venv has no OpenCV)."""
    sys.path.insert(0, str(ROOT))
    import cv2

    from kiosk.camera import DEMO_PAYLOADS
    from kiosk.scenes import demo_frames as render

    folder.mkdir()
    for index, frame in enumerate(render(list(DEMO_PAYLOADS))):
        cv2.imwrite(str(folder / f"frame{index:03d}.png"), frame)
    return folder


def kiosk_config(state: Path, python: Path, frames: Path) -> Path:
    """A laptop kiosk: a looping replay of the demo frames, off-screen, uplink off, keys made."""
    code = (
        "import sys; from pathlib import Path; from kiosk import keys; d = Path(sys.argv[1]); "
        "keys.generate_device_key(d / 'device.key'); keys.generate_identity_key(d / 'identity.key')"
    )
    subprocess.run([str(python), "-c", code, str(state)], check=True, cwd=state.parent)
    config = state.parent / "kiosk.toml"
    config.write_text(
        f'[camera]\nsource = "{frames}"\nreplay_loop = true\n'
        f'[feedback]\nscreen = "offscreen"\n[uplink]\nenabled = false\n[paths]\nstate_dir = "{state}"\n'
    )
    return config


def main() -> int:
    """Build, measure, print a Markdown table with the ratio to the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", default="/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    with tempfile.TemporaryDirectory(prefix="kiosk-footprint-") as tmp:
        venv = Path(tmp) / "venv"
        python = build_venv(args.python, venv)
        sizes = distribution_sizes(venv)
        state = Path(tmp) / "state"
        state.mkdir()
        config = kiosk_config(state, python, demo_frames(Path(tmp) / "frames"))
        baseline = peak_rss_mb(
            [str(python), "-c", "import numpy, pygame, time; time.sleep(60)"], seconds=5, env=env
        )
        kiosk = peak_rss_mb(
            [str(venv / "bin" / "kiosk"), "run", "--config", str(config)], seconds=args.seconds, env=env
        )
    report(sizes, baseline, kiosk, args.python)
    return 0


def report(sizes: dict[str, int], baseline: float, kiosk: float, python: str) -> None:
    """The figures as Markdown, with the machine they were measured on."""
    mb = 1024 * 1024
    apt_in_venv = {name: size for name, size in sizes.items() if name in FROM_APT}
    beyond = sum(size for name, size in sizes.items() if name not in FROM_APT) / mb
    print(f"machine: {platform.machine()}, {platform.platform()}, {os.cpu_count()} cores; venv from {python}")
    print("\n| distribution | MB |\n| --- | ---: |")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1])[:12]:
        print(f"| {name}{' (apt on the Pi)' if name in FROM_APT else ''} | {size / mb:.1f} |")
    print(f"\nvenv beyond apt: {beyond:.1f} MB (target ≤ {VENV_TARGET_MB:g} MB)")
    shown = ", ".join(f"{n} {s / mb:.1f} MB" for n, s in apt_in_venv.items()) or "none (seen from apt)"
    print(f"left out as apt's on the Pi, installed here by pip: {shown}")
    print(f"RSS: kiosk run {kiosk:.1f} MB (target ≤ {RSS_TARGET_MB:g} MB), baseline "
          f"`import numpy, pygame` {baseline:.1f} MB, ratio {kiosk / baseline:.2f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
