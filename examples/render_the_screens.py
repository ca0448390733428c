"""Draw every state of the kiosk's screen into PNG files, off-screen.

Run: python examples/render_the_screens.py [OUT_DIR]
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from kiosk.cli import main
from kiosk.screen.samples import STATE_KINDS

out = Path(sys.argv[1] if len(sys.argv) > 1 else "screens")
out.mkdir(exist_ok=True)
for state in STATE_KINDS:  # idle, pass, fail, hint, fault, inspection, street, no-qr
    main(["screenshot", "--state", state, "--size", "800x480", "--out", str(out / f"{state}.png")])
print(f"screens written to {out}/")
