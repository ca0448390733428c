"""Decode a QR code in a camera-like frame with the kiosk's own decoder.

Run: python examples/decode_a_frame.py
"""

from kiosk.config import DecoderConfig
from kiosk.decoder import open_decoder
from kiosk.scenes import Scene, render

# A national personal QR held up tilted and slightly out of focus, as the camera would see it.
payload = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"
frame = render(payload, Scene(width=1280, height=720, module_px=6, tilt=0.25, blur_sigma=1.0, seed=7))

decoder = open_decoder(DecoderConfig())  # zxing-cpp, the default backend
result = decoder.decode(frame)
for symbol in result.symbols:
    print(f"{symbol.format} at {symbol.corners}: {symbol.text}")
if not result.symbols:
    print("no code read" + (" (one was seen: hold still)" if result.located else ""))
