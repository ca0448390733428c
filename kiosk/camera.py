"""Frame sources: the Pi camera module (picamera2), a USB webcam (V4L2 through
OpenCV), and replay of images, video or in-memory frames.

Every source gives grayscale uint8 `Frame`s from `read()`, reports its measured
frame rate and the frames it dropped, and is a context manager whose `close()`
may be called any number of times. A camera that is missing raises CameraError
when opened; one that stops delivering raises CameraError from `read()` within
`camera.stall_timeout_s`. A replay source that runs out raises CameraEnded (a
CameraError), so a loop that only handles CameraError still stops cleanly.

`Frame.pixels` may be a view into a camera buffer (picamera2): it is valid until
the next `read()` of its source; copy it to keep it longer.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from kiosk.config import CameraConfig
from kiosk.errors import CameraEnded, CameraError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpeg", ".mjpg", ".h264"})
SELFTEST_HINT = "run `kiosk selftest`"


@dataclass(frozen=True, slots=True)
class Frame:
    """One grayscale frame: H×W uint8 pixels (maybe a strided view), monotonic time, number."""

    pixels: np.ndarray
    timestamp: float  # time.monotonic() seconds when the frame was delivered
    number: int  # 0, 1, 2, ... in delivery order


class RateMeter:
    """Frames per second over the last few frames, and frames lost between them."""

    def __init__(self, *, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)
        self.dropped = 0

    def tick(self, timestamp: float) -> None:
        """Record a delivered frame."""
        self._times.append(timestamp)

    def gap(self, interval: float, period: float) -> None:
        """Count frames the camera made but we never saw, from the time between two we did."""
        if period > 0 and interval > 1.5 * period:
            self.dropped += round(interval / period) - 1

    @property
    def fps(self) -> float:
        """Measured delivery rate; 0.0 until two frames have been seen."""
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


class FrameSource(ABC):
    """Base of every frame source: numbering, rate, and an idempotent close."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._meter = RateMeter()
        self._count = 0
        self._closed = False

    def read(self) -> Frame:
        """The next frame; raises CameraError (CameraEnded at the end of a replay)."""
        if self._closed:
            raise CameraError("the camera was closed: open it again")
        pixels = self._next_pixels()
        now = self._clock()
        self._meter.tick(now)
        frame = Frame(pixels=pixels, timestamp=now, number=self._count)
        self._count += 1
        return frame

    @property
    def fps(self) -> float:
        """Measured frames per second delivered by `read()`."""
        return self._meter.fps

    @property
    def dropped(self) -> int:
        """Frames the camera produced that `read()` never returned."""
        return self._meter.dropped

    def close(self) -> None:
        """Release the device; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abstractmethod
    def _next_pixels(self) -> np.ndarray:
        """Block for the next grayscale image."""

    @abstractmethod
    def _release(self) -> None:
        """Free the device (called once)."""


def _gray(image: np.ndarray, what: str) -> np.ndarray:
    """A grayscale uint8 view or conversion of an image (one conversion at most)."""
    if image.dtype != np.uint8:
        raise CameraError(f"{what}: pixels are {image.dtype}, expected 8-bit images")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        import cv2

        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(image, code)
    raise CameraError(f"{what}: cannot use an image of shape {image.shape} as a camera frame")


# --- replay ---------------------------------------------------------------------------------

Reel = Callable[[], Iterator[np.ndarray]]


class ReplaySource(FrameSource):
    """Recorded frames played back like a camera, paced at `fps` or as fast as read."""

    def __init__(
        self,
        reel: Reel,
        *,
        name: str = "frames",
        fps: float | None = None,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(clock=clock)
        self.name = name
        self._reel = reel
        self._period = 1.0 / fps if fps else 0.0
        self._loop = loop
        self._sleep = sleep
        self._frames: Iterator[np.ndarray] = reel()
        self._due: float | None = None

    @classmethod
    def from_frames(cls, frames: Sequence[np.ndarray], **options: Any) -> ReplaySource:
        """Replay in-memory frames (tests, the demo)."""
        if not frames:
            raise CameraError("replay: no frames given")
        return cls(lambda: iter(frames), name="in-memory frames", **options)

    def _next_pixels(self) -> np.ndarray:
        image = self._next_image()
        self._pace()
        return _gray(image, self.name)

    def _next_image(self) -> np.ndarray:
        image = next(self._frames, None)
        if image is None and self._loop:
            self._frames = self._reel()
            image = next(self._frames, None)
        if image is None:
            raise CameraEnded(f"replay of {self.name} ended")
        return image

    def _pace(self) -> None:
        if not self._period:
            return
        now = self._clock()
        if self._due is not None and self._due > now:
            self._sleep(self._due - now)
        # A reader that falls behind gets the next frame at once; the pace does not burst to catch up.
        self._due = max(self._due or now, now) + self._period

    def _release(self) -> None:
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


def read_image(path: Path) -> np.ndarray:
    """A grayscale image from a file; raises CameraError if it cannot be read."""
    try:
        import cv2
    except ImportError:  # the device install: OpenCV is only the `usb` extra
        return _read_image_with_pillow(path)
    try:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    except cv2.error as e:
        raise CameraError(f"cannot decode image {path}: {e}") from e
    if image is None:
        raise CameraError(f"cannot read image {path}: missing, unreadable or not an image file")
    return image


def _read_image_with_pillow(path: Path) -> np.ndarray:
    """A grayscale image read by Pillow (the device's libraries), for installs without OpenCV."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise CameraError(f"cannot read image {path}: missing, unreadable or not an image file ({e})") from e


def image_paths(source: str) -> list[Path]:
    """The image files named by a file, a folder (sorted) or a glob pattern (sorted)."""
    path = Path(source).expanduser()
    if any(ch in source for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        paths = [path]
    else:
        raise CameraError(f"replay source {source!r} does not exist: check camera.source")
    if not paths:
        raise CameraError(f"replay source {source!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise CameraError(f"cannot open video {path}: missing or not a video OpenCV can read")
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


def open_replay(config: CameraConfig, frames: Sequence[np.ndarray] | None = None) -> ReplaySource:
    """A replay source from in-memory frames, or `config.source` (file, folder, glob, video)."""
    options: dict[str, Any] = {
        "fps": config.fps if config.replay_realtime else None,
        "loop": config.replay_loop,
    }
    if frames is not None:
        return ReplaySource.from_frames(frames, **options)
    if not config.source:
        from kiosk import scenes

        if importlib.util.find_spec("cv2") is None:
            raise CameraError(
                "the built-in demo scene is drawn with OpenCV, which this install lacks: "
                "set camera.source to a folder of images, or install the `usb` extra"
            )
        demo = scenes.demo_frames(list(DEMO_PAYLOADS), width=config.width, height=config.height)
        return ReplaySource.from_frames(demo, **options)
    path = Path(config.source).expanduser()
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise CameraError(f"replay video {path} does not exist: check camera.source")
        return ReplaySource(lambda: _video_frames(path), name=str(path), **options)
    paths = image_paths(config.source)
    return ReplaySource(lambda: (read_image(p) for p in paths), name=config.source, **options)


# A national QR and a CCCD QR, as the built-in demo scene shows them.
DEMO_PAYLOADS = (
    "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422",
    "001087029317|012345678|Nguyễn Văn Ánh|18011987|Nam|Số 1 Phố Huế, Phường Hàng Bài, "
    "Quận Hoàn Kiếm, Hà Nội|01012021",
)


# --- V4L2 (USB webcam) ------------------------------------------------------------------------


def is_device_index(source: str) -> bool:
    """Whether a v4l2 source names a device by number ("0" = /dev/video0): ASCII digits only.

    str.isdigit() and int() also take other scripts' digits ("٣", "３"), which no
    device is named with: such a source stays a path, and fails as one.
    """
    return source.isascii() and source.isdigit()


class V4l2Source(FrameSource):
    """A USB webcam (or anything cv2.VideoCapture opens), converted to gray once per frame."""

    def __init__(self, config: CameraConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        import cv2

        self._device: int | str = int(config.source) if is_device_index(config.source) else config.source or 0
        self._stall = config.stall_timeout_s
        self._period = 1.0 / config.fps
        self._capture = cv2.VideoCapture(self._device, *self._api(cv2))
        if not self._capture.isOpened():
            self._capture.release()
            raise CameraError(
                f"USB camera {self._device!r} not found: is it plugged in, and is camera.source right "
                f"(an index like 0 or a path like /dev/video0)? {SELFTEST_HINT}"
            )
        self._tune(cv2, config)
        self._last: float | None = None

    def _api(self, cv2: Any) -> tuple[int, ...]:
        # A device index or /dev path goes straight to V4L2; a file path lets OpenCV choose.
        is_device = isinstance(self._device, int) or str(self._device).startswith("/dev/")
        return (cv2.CAP_V4L2,) if is_device else ()

    def _tune(self, cv2: Any, config: CameraConfig) -> None:
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        self._capture.set(cv2.CAP_PROP_FPS, config.fps)
        # One buffer: frames are fresh, not a queue of old ones.
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, config.stall_timeout_s * 1000)

    def _next_pixels(self) -> np.ndarray:
        deadline = self._clock() + self._stall
        while True:
            ok, image = self._capture.read()
            if ok and image is not None:
                self._count_gap()
                return _gray(image, f"USB camera {self._device!r}")
            if self._clock() >= deadline:
                raise CameraError(
                    f"USB camera {self._device!r} delivered no frame for {self._stall:g} s: "
                    f"check its cable and power; {SELFTEST_HINT}"
                )
            time.sleep(min(0.01, self._period))

    def _count_gap(self) -> None:
        now = self._clock()
        if self._last is not None:
            self._meter.gap(now - self._last, self._period)
        self._last = now

    def _release(self) -> None:
        self._capture.release()


# --- picamera2 (Pi camera module) ------------------------------------------------------------

# libcamera control values (control_ids.yaml), so this module needs no libcamera import.
AF_MODE_MANUAL, AF_MODE_CONTINUOUS = 0, 2
AF_RANGE_MACRO = 1
AE_METERING = {"centre": 0, "spot": 1, "matrix": 2}
AE_CONSTRAINT_NORMAL, AE_CONSTRAINT_HIGHLIGHT = 0, 1


def picamera2_controls(config: CameraConfig, advertised: Mapping[str, Any]) -> dict[str, Any]:
    """The libcamera controls the configuration asks for that this camera advertises.

    picamera2 refuses a control libcamera does not advertise for the attached sensor
    (`RuntimeError: Control AfMode is not advertised by libcamera`), so autofocus is
    asked only of a camera that has it (Camera Module 3) and the rest is filtered.
    """
    wanted = _exposure_controls(config) | _focus_controls(config, advertised)
    missing = sorted(set(wanted) - set(advertised))
    if missing:
        log.warning("the camera does not advertise %s: left at the camera's defaults", ", ".join(missing))
    return {name: value for name, value in wanted.items() if name in advertised}


def _exposure_controls(config: CameraConfig) -> dict[str, Any]:
    frame_us = int(1_000_000 / config.fps)
    return {
        # A fixed frame time keeps the rate steady; AE may not stretch frames in dim light.
        "FrameDurationLimits": (frame_us, frame_us),
        "AeMeteringMode": AE_METERING[config.metering],
        # Spot metering is for phone screens: expose for the bright screen, not the room.
        "AeConstraintMode": AE_CONSTRAINT_HIGHLIGHT if config.metering == "spot" else AE_CONSTRAINT_NORMAL,
    }


def _focus_controls(config: CameraConfig, advertised: Mapping[str, Any]) -> dict[str, Any]:
    """Autofocus where the camera has a movable lens, nothing (fixed focus) otherwise; logs which."""
    if config.autofocus == "none":
        log.info("focus: left as the camera sets it (camera.autofocus = none)")
        return {}
    if "AfMode" not in advertised:
        log.info(
            "focus: fixed (this camera has no autofocus; camera.autofocus = %s does not apply)",
            config.autofocus,
        )
        return {}
    if config.autofocus == "continuous":
        log.info("focus: continuous autofocus, macro range")
        return {"AfMode": AF_MODE_CONTINUOUS, "AfRange": AF_RANGE_MACRO}
    low, high, _ = advertised.get("LensPosition", (0.0, config.lens_position, None))
    position = min(max(config.lens_position, low), high)
    log.info("focus: manual, lens position %g dioptres (the lens allows %g to %g)", position, low, high)
    return {"AfMode": AF_MODE_MANUAL, "LensPosition": position}


class Picamera2Source(FrameSource):
    """The Pi camera module: decode from the Y plane of the lores YUV420 stream, without a copy.

    The request behind the current frame is held until the next `read()` or
    `close()`, so `Frame.pixels` is a view into the camera's own buffer.
    """

    def __init__(
        self, config: CameraConfig, *, picamera2: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(clock=clock)
        module = picamera2 if picamera2 is not None else _import_picamera2()
        self._mapped_array = module.MappedArray
        self._config = config
        self._size = (config.width, config.height)
        self._held: tuple[Any, Any] | None = None
        self._last_sensor_ns: int | None = None
        self._camera = _open_picamera2(module, config)
        try:
            self._start()
        except Exception as e:
            self._camera.close()
            raise CameraError(f"Pi camera could not start: {e}; {SELFTEST_HINT}") from e

    def _start(self) -> None:
        config = self._camera.create_video_configuration(
            # The main stream no larger than lores keeps the sensor in a fast binned mode
            # (a larger one can make libcamera pick a full-resolution mode at a third of the rate).
            main={"size": self._size, "format": "YUV420"},
            lores={"size": self._size, "format": "YUV420"},
            controls=picamera2_controls(self._config, self._camera.camera_controls),
            buffer_count=4,
            queue=False,  # never hand out a frame that waited in a queue: people move
        )
        self._camera.configure(config)
        self._camera.start()
        self._frame_ns = int(1e9 / self._config.fps)

    def _next_pixels(self) -> np.ndarray:
        self._release_held()
        request = self._capture()
        mapped = self._mapped_array(request, "lores", write=False)
        try:
            array = mapped.__enter__().array
        except Exception:
            request.release()
            raise
        self._held = (request, mapped)
        self._count_gap(request)
        width, height = self._size
        # The YUV420 buffer is (height * 3/2) rows of `stride` bytes: Y plane first, then U, V.
        return array[:height, :width]

    def _capture(self) -> Any:
        try:
            return self._camera.capture_request(wait=self._config.stall_timeout_s)
        except TimeoutError as e:
            # The timed-out job stays first in picamera2's queue: a later stop() would wait
            # behind it forever, and a late frame would go to it and never be released.
            self._camera.cancel_all_and_flush()
            raise CameraError(
                f"Pi camera delivered no frame for {self._config.stall_timeout_s:g} s: "
                f"is the ribbon cable seated? {SELFTEST_HINT}"
            ) from e
        except RuntimeError as e:
            raise CameraError(f"Pi camera failed: {e}; {SELFTEST_HINT}") from e

    def _count_gap(self, request: Any) -> None:
        sensor_ns = request.get_metadata().get("SensorTimestamp")
        if sensor_ns is None:
            return
        if self._last_sensor_ns is not None:
            self._meter.gap((sensor_ns - self._last_sensor_ns) / 1e9, self._frame_ns / 1e9)
        self._last_sensor_ns = sensor_ns

    def _release_held(self) -> None:
        if self._held is not None:
            request, mapped = self._held
            self._held = None
            mapped.__exit__(None, None, None)
            request.release()

    def _release(self) -> None:
        try:
            self._release_held()
            self._camera.stop()
        finally:
            self._close_camera()

    def _close_camera(self) -> None:
        try:
            self._camera.close()
        except BufferError:
            # A frame the caller still holds keeps its buffer mapped; Python refuses to
            # unmap it, so that memory is freed when the frame is, or at exit.
            log.warning("camera closed while a frame was still in use; keep copies, not frames")


def _import_picamera2() -> Any:
    try:
        import picamera2
    except ImportError as e:
        raise CameraError(
            "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
            "and create the venv with --system-site-packages"
        ) from e
    return picamera2


def capped_tuning(picamera2_class: Any, max_exposure_us: int) -> dict[str, Any] | None:
    """The sensor's tuning with every auto-exposure mode's shutter limited; None if it is not found.

    libcamera has no control for an exposure cap under auto-exposure: its AGC walks the
    tuning file's shutter/gain stages, so capping the shutter stages makes it raise gain
    instead of exposing longer (less motion blur, more noise).
    """
    try:
        model = picamera2_class.global_camera_info()[0]["Model"]
        tuning = picamera2_class.load_tuning_file(f"{model}.json")
        agc = picamera2_class.find_tuning_algo(tuning, "rpi.agc")
    except (IndexError, KeyError, RuntimeError, OSError, StopIteration) as e:
        log.warning("camera tuning not found (%s): exposure is not capped at %d us", e, max_exposure_us)
        return None
    for channel in agc.get("channels", [agc]):
        for mode in channel.get("exposure_modes", {}).values():
            mode["shutter"] = [min(shutter, max_exposure_us) for shutter in mode["shutter"]]
    return tuning


def _open_picamera2(module: Any, config: CameraConfig) -> Any:
    tuning = capped_tuning(module.Picamera2, config.max_exposure_us)
    try:
        return module.Picamera2(tuning=tuning)
    except (RuntimeError, IndexError, OSError) as e:
        raise CameraError(
            f"Pi camera not found ({e}): is the ribbon cable seated and the camera enabled? {SELFTEST_HINT}"
        ) from e


# --- factory ---------------------------------------------------------------------------------


def open_camera(
    config: CameraConfig, *, frames: Sequence[np.ndarray] | None = None, picamera2: Any = None
) -> FrameSource:
    """The frame source named by `config.backend`; `frames` replaces a replay's files."""
    if config.backend == "picamera2":
        return Picamera2Source(config, picamera2=picamera2)
    if config.backend == "v4l2":
        return V4l2Source(config)
    return open_replay(config, frames)
