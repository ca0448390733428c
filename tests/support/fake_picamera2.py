"""A fake of the picamera2 calls kiosk.camera uses, that records what happened.

It hands out YUV420 lores buffers laid out like libcamera's: each row is
`stride` bytes, wider than the image, with the padding filled with a marker
value so a test can see whether the source cropped it off. The buffers are
real memory maps, reused round-robin like the camera's DMA buffers: a request
must be released before its buffer is filled again, mapped arrays must be
unmapped before their request is released, and closing the camera unmaps them
(failing, as picamera2 does, while a numpy view of one is still alive).
"""

from __future__ import annotations

import copy
import mmap
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PADDING = 0xEE  # bytes right of the image in each row, and where U/V would be
STRIDE_ALIGN = 64  # libcamera aligns the lores Y stride like this on a Pi


class FakeRequest:
    """A completed request: one lores buffer and its metadata."""

    def __init__(self, camera: FakeCamera, buffer: int, sensor_ns: int) -> None:
        self.camera = camera
        self.config = camera.camera_config
        self.buffer = buffer  # index into the camera's mapped buffers
        self.metadata = {"SensorTimestamp": sensor_ns, "ExposureTime": 8000}
        self.released = False
        self.mapped = 0

    def get_metadata(self) -> dict[str, Any]:
        """Per-frame metadata, as libcamera reports it."""
        return dict(self.metadata)

    def make_array(self, name: str) -> np.ndarray:
        """A copy of the stream as a 2-D array (rows of stride bytes)."""
        return self._shaped(name).copy()

    def _shaped(self, name: str) -> np.ndarray:
        if self.released:
            raise RuntimeError("request used after release")
        assert name == "lores", f"the fake only has a lores stream, not {name!r}"
        return self.camera.plane_view(self.buffer)

    def release(self) -> None:
        """Give the buffer back to the camera."""
        if self.released:
            raise RuntimeError("request released twice")
        if self.mapped:
            raise RuntimeError("request released while a MappedArray is still open")
        self.released = True
        self.camera.outstanding.discard(self)


class MappedArray:
    """Maps a request's stream as a numpy array without copying (like picamera2's)."""

    def __init__(self, request: FakeRequest, stream: str, reshape: bool = True, write: bool = True) -> None:
        self.request = request
        self.stream = stream
        self.write = write
        self.array: np.ndarray | None = None

    def __enter__(self) -> MappedArray:
        self.array = self.request._shaped(self.stream)
        self.array.flags.writeable = self.write
        self.request.mapped += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.request.mapped -= 1
        self.array = None


class FakeCamera:
    """One camera: records configuration, controls and lifecycle calls."""

    def __init__(self, frames: Callable[[int], np.ndarray], *, frame_ns: int, skip: Sequence[int]) -> None:
        self.frames = frames
        self.frame_ns = frame_ns
        self.skip = set(skip)  # frame numbers the sensor makes but nobody gets
        self.calls: list[str] = []
        self.camera_config: dict[str, Any] = {}
        self.controls: dict[str, Any] = {}
        self.outstanding: set[FakeRequest] = set()
        self.issued = 0
        self.sensor_frame = 0
        self.stalled = threading.Event()
        self.started = False
        self.tuning: dict[str, Any] | None = None
        self.failure: str | None = None  # set to make capture_request fail as libcamera can
        self.buffers: list[mmap.mmap] = []

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        """Fill in the strides libcamera would choose."""
        config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in kwargs.items()}
        for stream in ("main", "lores"):
            if config.get(stream):
                width = config[stream]["size"][0]
                config[stream]["stride"] = -(-(width + 1) // STRIDE_ALIGN) * STRIDE_ALIGN
        return config

    def configure(self, config: dict[str, Any]) -> None:
        """Take the configuration (and its controls); map the buffers, as picamera2's DMA allocator does."""
        self.calls.append("configure")
        self.camera_config = config
        self.controls.update(config.get("controls", {}))
        height, stride = config["lores"]["size"][1], config["lores"]["stride"]
        self.buffers = [mmap.mmap(-1, height * 3 // 2 * stride) for _ in range(config["buffer_count"])]

    def set_controls(self, controls: dict[str, Any]) -> None:
        """Change controls while running."""
        self.calls.append("set_controls")
        self.controls.update(controls)

    def start(self) -> None:
        """Start streaming."""
        self.calls.append("start")
        self.started = True

    def capture_request(self, wait: Any = None, flush: Any = None) -> FakeRequest:
        """The next frame; raises TimeoutError after `wait` seconds when stalled (like picamera2)."""
        assert self.started, "capture_request before start"
        assert isinstance(wait, int | float) and wait > 0, "capture_request without a timeout can hang"
        if self.stalled.is_set():
            threading.Event().wait(wait)
            raise TimeoutError("fake camera stalled")
        if self.failure is not None:
            raise RuntimeError(self.failure)
        while self.sensor_frame in self.skip:
            self.sensor_frame += 1
        request = FakeRequest(self, self._fill(self.frames(self.issued)), self.sensor_frame * self.frame_ns)
        self.sensor_frame += 1
        self.issued += 1
        self.outstanding.add(request)
        return request

    def plane_view(self, buffer: int) -> np.ndarray:
        """The lores buffer as (height * 3/2) rows of stride bytes, sharing the mapped memory."""
        height = self.camera_config["lores"]["size"][1]
        stride = self.camera_config["lores"]["stride"]
        return np.frombuffer(self.buffers[buffer], np.uint8).reshape((height * 3 // 2, stride))

    def _fill(self, image: np.ndarray) -> int:
        """Write the next frame into a free buffer, as the ISP would; return its index."""
        busy = {request.buffer for request in self.outstanding}
        buffer = next(i for i in range(len(self.buffers)) if i not in busy)  # none free = a stalled pipeline
        width, height = self.camera_config["lores"]["size"]
        assert image.shape == (height, width), f"fake frame is {image.shape}, lores is {(height, width)}"
        planes = self.plane_view(buffer)
        planes[:] = PADDING
        planes[:height, :width] = image
        return buffer

    def stop(self) -> None:
        """Stop streaming (harmless when stopped)."""
        self.calls.append("stop")
        self.started = False

    def close(self) -> None:
        """Close the camera and unmap its buffers; BufferError if a view of one is still alive."""
        self.calls.append("close")
        for buffer in self.buffers:
            buffer.close()  # raises BufferError while numpy still exports it, as picamera2's does


# The shape of a Raspberry Pi camera tuning file, as far as kiosk reads it.
TUNING: dict[str, Any] = {
    "version": 2.0,
    "algorithms": [
        {"rpi.black_level": {"black_level": 4096}},
        {
            "rpi.agc": {
                "channels": [
                    {
                        "exposure_modes": {
                            "normal": {"shutter": [100, 10000, 30000, 60000, 66666], "gain": [1, 2, 4, 6, 8]},
                            "short": {"shutter": [100, 5000, 10000, 20000, 60000], "gain": [1, 2, 4, 6, 8]},
                        }
                    }
                ]
            }
        },
    ],
}


class FakePicamera2Class:
    """Stands in for the Picamera2 class: calling it opens a camera; static helpers read tuning."""

    def __init__(self, module: FakePicamera2Module) -> None:
        self.module = module

    def __call__(self, camera_num: int = 0, tuning: dict[str, Any] | None = None) -> FakeCamera:
        """Open a camera, or fail as picamera2 does when none is connected."""
        if self.module.missing:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        camera = self.module.make_camera()
        camera.tuning = tuning
        self.module.cameras.append(camera)
        return camera

    def global_camera_info(self) -> list[dict[str, Any]]:
        """The attached cameras."""
        return [] if self.module.missing else [{"Model": self.module.model, "Id": "/base/fake@1a"}]

    def load_tuning_file(self, tuning_file: str, dir: str | None = None) -> dict[str, Any]:
        """A fresh copy of the sensor's tuning, if the file name is the sensor's."""
        if tuning_file != "imx708.json":
            raise RuntimeError("Tuning file not found")
        return copy.deepcopy(TUNING)

    def find_tuning_algo(self, tuning: dict[str, Any], name: str) -> dict[str, Any]:
        """One algorithm's parameters from a version 2 tuning."""
        return next(algo for algo in tuning["algorithms"] if name in algo)[name]


class FakePicamera2Module:
    """Stands in for the `picamera2` module: `Picamera2` and `MappedArray`."""

    MappedArray = MappedArray

    def __init__(
        self,
        frames: Callable[[int], np.ndarray],
        *,
        fps: float = 30.0,
        skip: Sequence[int] = (),
        missing: bool = False,
        model: str = "imx708",
    ) -> None:
        self.missing = missing
        self.model = model
        self.cameras: list[FakeCamera] = []
        self.make_camera = lambda: FakeCamera(frames, frame_ns=int(1e9 / fps), skip=skip)
        self.Picamera2 = FakePicamera2Class(self)
