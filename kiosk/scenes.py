"""Synthetic camera scenes: QR payloads rendered as a camera would see them.

Tests, the decode benchmark and the demo use these instead of a camera. A
scene is a frozen description (where the code is, how it is lit, blurred,
tilted, shown on paper or a phone); `render` turns a payload and a scene into
a grayscale uint8 frame. The same payload, scene and seed always give the same
pixels. OpenCV is imported inside the functions that draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import segno

# Grey levels of printed ink and paper, and of a phone's dark bezel.
INK, PAPER, BEZEL = 30, 225, 18
# Flat (unwarped) drawings use this many pixels per module before warping.
_SUPERSAMPLE = 1.5


@dataclass(frozen=True, slots=True)
class Scene:
    """How one frame is shot: geometry, optics, lighting and the medium shown."""

    width: int = 640
    height: int = 480
    module_px: float = 4.0  # frame pixels per QR module
    center: tuple[float, float] = (0.5, 0.5)  # code centre, as fractions of width and height
    rotation_deg: float = 0.0
    tilt: float = 0.0  # perspective: 0 flat, 0.3 = far edge 30 % shorter
    blur_sigma: float = 0.0  # defocus, Gaussian sigma in pixels
    motion_px: int = 0  # horizontal motion smear length in pixels
    noise_sigma: float = 0.0  # sensor noise, grey levels
    glare: float = 0.0  # 0..1 strength of a bright specular blob over the code
    contrast: float = 1.0  # 1 = ink on paper; 0.25 = washed out
    inverted: bool = False  # light modules on dark (phone dark mode)
    phone: bool = False  # shown on a phone: bright (or dark) screen with a dark bezel
    occlusion: float = 0.0  # fraction of the code's width hidden under a thumb, across its middle
    micro: bool = False  # encode as a Micro QR code
    seed: int = 0

    def with_(self, **changes: object) -> Scene:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def qr_modules(payload: bytes | str, *, micro: bool = False) -> np.ndarray:
    """The code's modules (True = dark), including the quiet zone.

    Text that is not ASCII is encoded as UTF-8 bytes, as the CCCD and phone apps do
    (segno would otherwise pick ISO-8859-1 when the text fits it).
    """
    if isinstance(payload, str) and not payload.isascii():
        payload = payload.encode("utf-8")
    code = segno.make(payload, micro=micro, boost_error=False)
    border = 2 if micro else 4
    return np.array(list(code.matrix_iter(border=border)), dtype=bool)


def render(payload: bytes | str, scene: Scene) -> np.ndarray:
    """A camera-like grayscale frame showing `payload` as a QR code."""
    return render_codes([(payload, scene)])


def render_codes(codes: Sequence[tuple[bytes | str, Scene]]) -> np.ndarray:
    """A frame showing several codes, e.g. a card held up in front of an old poster on the wall.

    Each code is placed, turned and shown (paper or phone) as its own scene says, later
    codes over earlier ones; the first scene gives the frame's size, background and optics
    (lighting, blur, noise), since one camera takes the whole frame.
    """
    if not codes:
        raise ValueError("render_codes needs at least one code")
    first = codes[0][1]
    rng = np.random.default_rng(first.seed)
    frame = background(first.width, first.height, rng=rng)
    for payload, scene in codes:
        flat, mask = _flat_object(qr_modules(payload, micro=scene.micro), scene)
        placed = scene.with_(width=first.width, height=first.height)
        _paste_warped(frame, flat, mask, _placement(flat.shape, placed))
    return _optics(frame, first, rng)


def empty_frame(scene: Scene) -> np.ndarray:
    """A frame with no code in it: textured background under the same optics."""
    rng = np.random.default_rng(scene.seed)
    return _optics(background(scene.width, scene.height, rng=rng), scene, rng)


def background(width: int, height: int, *, rng: np.random.Generator) -> np.ndarray:
    """A cluttered, text-like background: soft shading, boxes and printed letters."""
    import cv2

    coarse = rng.integers(60, 200, (max(2, height // 80), max(2, width // 80)), dtype=np.uint8)
    frame = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(20, width // 3)), int(rng.integers(20, height // 3))
        cv2.rectangle(frame, (x, y), (x + w, y + h), int(rng.integers(0, 255)), int(rng.integers(-1, 4)))
    for _ in range(8):
        text = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(4, 14))))
        org = (int(rng.integers(0, width)), int(rng.integers(10, height)))
        scale = float(rng.uniform(0.4, 1.2))
        cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, int(rng.integers(0, 80)), 1)
    return frame


def _flat_object(modules: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The code drawn flat (on a card or a phone), and the mask of where the object is."""
    k = max(2, math.ceil(scene.module_px * _SUPERSAMPLE))
    dark, light = (PAPER, INK) if scene.inverted else (INK, PAPER)
    code = np.where(np.kron(modules, np.ones((k, k), dtype=bool)), dark, light).astype(np.uint8)
    if scene.occlusion > 0:
        # A thumb across the middle leaves the finder patterns visible: located, not decodable.
        side = code.shape[1]
        start = int(side * (1 - scene.occlusion) / 2)
        code[:, start : start + int(side * scene.occlusion)] = 150
    if not scene.phone:
        return code, np.full(code.shape, 255, np.uint8)
    side = code.shape[0]
    screen_h, screen_w = int(side * 1.9), int(side * 1.25)
    bezel = int(side * 0.08)
    flat = np.full((screen_h + 2 * bezel, screen_w + 2 * bezel), BEZEL, np.uint8)
    flat[bezel:-bezel, bezel:-bezel] = light
    top, left = bezel + (screen_h - side) // 2, bezel + (screen_w - side) // 2
    flat[top : top + side, left : left + side] = code
    return flat, np.full(flat.shape, 255, np.uint8)


def _placement(flat_shape: tuple[int, ...], scene: Scene) -> np.ndarray:
    """Where the flat object's four corners land in the frame (tl, tr, br, bl)."""
    h, w = flat_shape[:2]
    scale = scene.module_px / max(2, math.ceil(scene.module_px * _SUPERSAMPLE))
    half_w, half_h = w * scale / 2, h * scale / 2
    # Tilting away from the camera shortens the far (top) edge and the height.
    top = 1.0 - scene.tilt
    corners = np.array(
        [[-half_w * top, -half_h], [half_w * top, -half_h], [half_w, half_h], [-half_w, half_h]]
    )
    corners[:, 1] *= 1.0 - scene.tilt / 2
    angle = math.radians(scene.rotation_deg)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([scene.center[0] * scene.width, scene.center[1] * scene.height])
    return (corners @ rot.T + centre).astype(np.float32)


def _paste_warped(frame: np.ndarray, flat: np.ndarray, mask: np.ndarray, corners: np.ndarray) -> None:
    """Warp the flat object onto the frame in place, anti-aliased at its edges."""
    import cv2

    h, w = flat.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, corners)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpPerspective(flat, matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(mask, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    frame[:] = (warped * alpha + frame * (1 - alpha)).astype(np.uint8)


def _optics(frame: np.ndarray, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Apply lighting, then lens and sensor effects, in the order light meets them."""
    import cv2

    image: np.ndarray = frame.astype(np.float32)
    image = 128 + (image - 128) * scene.contrast
    if scene.glare > 0:
        image += _glare(scene, rng) * scene.glare * 255
    if scene.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), scene.blur_sigma)
    if scene.motion_px > 1:
        kernel = np.full((1, scene.motion_px), 1.0 / scene.motion_px, np.float32)
        image = cv2.filter2D(image, -1, kernel)
    if scene.noise_sigma > 0:
        image += rng.normal(0, scene.noise_sigma, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _glare(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """A soft bright blob near the code, as a lamp reflected in glossy plastic or glass."""
    radius = scene.module_px * 6
    cx = scene.center[0] * scene.width + rng.uniform(-2, 2) * radius
    cy = scene.center[1] * scene.height + rng.uniform(-2, 2) * radius
    ys, xs = np.ogrid[: scene.height, : scene.width]
    distance2 = (xs - cx) ** 2 + (ys - cy) ** 2
    return np.exp(-distance2 / (2 * radius**2)).astype(np.float32)


def demo_frames(payloads: list[bytes | str], *, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """A short looping show: each payload held up for a moment, with empty frames between."""
    frames: list[np.ndarray] = []
    for index, payload in enumerate(payloads):
        base = Scene(width=width, height=height, module_px=min(width, height) / 90, seed=index)
        frames += [empty_frame(base.with_(seed=index * 100 + i)) for i in range(10)]
        frames += [render(payload, base.with_(rotation_deg=5 * i, seed=i)) for i in range(5)]
    return frames
