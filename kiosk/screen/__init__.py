"""The status screen, in layers that import only what they need.

- `states`: what the screen shows, as frozen value objects (pure: the scan loop imports only these);
- `texts`: the screen's own words in Vietnamese and English;
- `typesetting`: the font, and text wrapped and shrunk to fit a box (pygame);
- `painting`: `Painter` draws a state on any surface, sized relative to it (pygame);
- `preview`: the optional live camera picture in a corner (pygame);
- `display`: `Screen` opens the display (or an off-screen surface) and drives it from the main thread;
- `samples`: example states for `kiosk screenshot`, tests and benchmarks, never shown by a running kiosk.
"""

import os

# pygame greets on stdout at import unless told not to; the daemon's stdout is a log.
# Set here, before any module of this package imports pygame (setting it imports nothing).
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
