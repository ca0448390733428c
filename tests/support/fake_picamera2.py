"""A fake of the picamera2 calls kiosk.camera uses, as strict as picamera2 0.3 is.

It hands out YUV420 lores buffers laid out like libcamera's: each row is
`stride` bytes, wider than the image, with the padding filled with a marker
value so a test can see whether the source cropped it off. The buffers are
real memory maps, reused round-robin like the camera's DMA buffers: a request
must be released before its buffer is filled again, mapped arrays must be
unmapped before their request is released, and closing the camera unmaps them
(failing, as picamera2 does, while a numpy view of one is still alive).

What it takes from picamera2's own source (picamera2.py, controls.py, job.py):
- Controls are checked against the camera's advertised ones (`camera_controls`,
  from libcamera) when configured or set: an unknown one raises
  `RuntimeError("Control AfMode is not advertised by libcamera")`.
- `capture_request(wait=t)` queues a job for the camera's event loop; on a
  timeout the job stays at the head of the queue. `stop()` is itself a job
  queued behind it (the NullPreview event loop runs while the camera is
  started), so it waits forever until `cancel_all_and_flush()` empties the
  queue. Here it waits `hang_limit_s` and then raises `WouldHangError`, so a test
  fails instead of hanging. `close()` stops the event loop first and then stops
  the camera directly, so it does not wait. A job left queued takes the next
  frame when the camera recovers, and nobody ever releases that request.
- The modelled cameras (`MODELS`) are the Camera Module 2 (imx219, fixed
  focus), the Camera Module 3 (imx708, autofocus) and the HQ camera (imx477,
  manual lens): their controls and sensor modes as picamera2 lists them.
"""

from __future__ import annotations

import copy
import mmap
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
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


class WouldHangError(AssertionError):
    """The real picamera2 would block here forever."""


@dataclass(frozen=True)
class CameraModel:
    """One Raspberry Pi camera module as picamera2 sees it."""

    sensor: str  # global_camera_info()[n]["Model"], and the tuning file's name
    name: str
    camera_controls: dict[str, tuple[Any, Any, Any]]  # name: (min, max, default), as picamera2 lists them
    sensor_modes: list[dict[str, Any]] = field(default_factory=list)


# What the Raspberry Pi pipeline handler advertises for every sensor (libcamera 0.3).
_COMMON_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "AeConstraintMode": (0, 3, 0),
    "AeEnable": (False, True, None),
    "AeExposureMode": (0, 3, 0),
    "AeFlickerMode": (0, 1, 0),
    "AeFlickerPeriod": (100, 1000000, None),
    "AeMeteringMode": (0, 3, 0),
    "AwbEnable": (False, True, None),
    "AwbMode": (0, 7, 0),
    "Brightness": (-1.0, 1.0, 0.0),
    "ColourGains": (0.0, 32.0, None),
    "Contrast": (0.0, 32.0, 1.0),
    "ExposureValue": (-8.0, 8.0, 0.0),
    "NoiseReductionMode": (0, 4, 0),
    "Saturation": (0.0, 32.0, 1.0),
    "Sharpness": (0.0, 16.0, 1.0),
    "StatsOutputEnable": (False, True, False),
}

# Only the imx708 has a lens the camera can move (Camera Module 3); its controls.
_AUTOFOCUS_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "AfMode": (0, 2, 0),
    "AfRange": (0, 2, 0),
    "AfSpeed": (0, 1, 0),
    "AfMetering": (0, 1, 0),
    "AfWindows": ((0, 0, 0, 0), (65535, 65535, 65535, 65535), (0, 0, 0, 0)),
    "AfTrigger": (0, 1, 0),
    "AfPause": (0, 2, 0),
    "LensPosition": (0.0, 15.0, 1.0),
}


def _mode(size: tuple[int, int], fps: float, bit_depth: int, fmt: str) -> dict[str, Any]:
    """One raw sensor mode, as `Picamera2.sensor_modes` lists it."""
    return {
        "format": fmt,
        "unpacked": fmt.replace("_CSI2P", ""),
        "bit_depth": bit_depth,
        "size": size,
        "fps": fps,
    }


def _sensor(
    full: tuple[int, int], gain: float, exposure: tuple[int, int], frame: tuple[int, int]
) -> dict[str, tuple[Any, Any, Any]]:
    """The controls whose ranges depend on the sensor."""
    return {
        "AnalogueGain": (1.0, gain, None),
        "ExposureTime": (exposure[0], exposure[1], None),
        "FrameDurationLimits": (frame[0], frame[1], None),
        "ScalerCrop": ((0, 0, 64, 64), (0, 0, *full), (0, 0, *full)),
    }


MODELS: dict[str, CameraModel] = {
    "imx219": CameraModel(
        "imx219",
        "Camera Module 2",
        _COMMON_CONTROLS | _sensor((3280, 2464), 10.666667, (75, 11766829), (47183, 11767556)),
        [
            _mode((640, 480), 103.33, 10, "SRGGB10_CSI2P"),
            _mode((1640, 1232), 41.85, 10, "SRGGB10_CSI2P"),
            _mode((1920, 1080), 47.57, 10, "SRGGB10_CSI2P"),
            _mode((3280, 2464), 21.19, 10, "SRGGB10_CSI2P"),
        ],
    ),
    "imx708": CameraModel(
        "imx708",
        "Camera Module 3",
        _COMMON_CONTROLS
        | _AUTOFOCUS_CONTROLS
        | {"HdrMode": (0, 4, 0)}
        | _sensor((4608, 2592), 16.0, (26, 112015443), (8324, 112016132)),
        [
            _mode((1536, 864), 120.13, 10, "SRGGB10_CSI2P"),
            _mode((2304, 1296), 56.03, 10, "SRGGB10_CSI2P"),
            _mode((4608, 2592), 14.35, 10, "SRGGB10_CSI2P"),
        ],
    ),
    "imx477": CameraModel(
        "imx477",
        "HQ Camera",
        _COMMON_CONTROLS | _sensor((4056, 3040), 22.2608, (31, 667234896), (8333, 667244877)),
        [
            _mode((1332, 990), 120.05, 10, "SRGGB10_CSI2P"),
            _mode((2028, 1080), 50.03, 12, "SRGGB12_CSI2P"),
            _mode((2028, 1520), 40.01, 12, "SRGGB12_CSI2P"),
            _mode((4056, 3040), 10.0, 12, "SRGGB12_CSI2P"),
        ],
    ),
}


class FakeJob:
    """A job on the camera's event loop: a future that completes with a request (job.py)."""

    def __init__(self) -> None:
        self.future: Future[FakeRequest] = Future()
        self.future.set_running_or_notify_cancel()
        self.abandoned = False  # its caller timed out: a request it gets is never released

    def cancel(self) -> None:
        """Mark it cancelled, as Job.cancel does (it stays queued unless the queue is flushed)."""
        self.future.set_exception(CancelledError())


class FakeCamera:
    """One camera: records configuration, controls and lifecycle calls."""

    def __init__(
        self,
        frames: Callable[[int], np.ndarray],
        *,
        frame_ns: int,
        skip: Sequence[int],
        model: CameraModel,
        hang_limit_s: float = 1.0,
    ) -> None:
        self.frames = frames
        self.frame_ns = frame_ns
        self.skip = set(skip)  # frame numbers the sensor makes but nobody gets
        self.model = model
        self.hang_limit_s = hang_limit_s  # how long stop() waits before saying it would hang
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
        self.jobs: list[FakeJob] = []  # the event loop's queue (Picamera2._job_list)
        self.leaked: list[FakeRequest] = []  # requests given to jobs nobody waits for any more
        self._lock = threading.Condition()

    @property
    def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
        """What libcamera advertises for this camera: name -> (min, max, default)."""
        return dict(self.model.camera_controls)

    @property
    def sensor_modes(self) -> list[dict[str, Any]]:
        """The sensor's raw modes."""
        return [dict(mode) for mode in self.model.sensor_modes]

    def _check_controls(self, controls: dict[str, Any]) -> None:
        """Controls.__setattr__: a control the camera does not advertise is refused."""
        for name in controls:
            if name not in self.model.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        *,
        controls: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Fill in the strides libcamera would choose, and picamera2's default video controls."""
        config: dict[str, Any] = {"buffer_count": 6, "queue": True} | options
        for name, stream in (("main", main or {}), ("lores", lores)):
            if stream is None:
                config[name] = None
                continue
            bad = set(stream) - {"format", "size", "stride", "preserve_ar"}
            if bad:
                raise ValueError(f"Bad key {sorted(bad)[0]!r}: valid stream configuration keys are ...")
            config[name] = dict(stream)
            width = config[name]["size"][0]
            config[name]["stride"] = -(-(width + 1) // STRIDE_ALIGN) * STRIDE_ALIGN
        defaults: dict[str, Any] = {}
        if {"NoiseReductionMode", "FrameDurationLimits"} <= set(self.model.camera_controls):
            defaults = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)}
        config["controls"] = defaults | (controls or {})
        return config

    def configure(self, config: dict[str, Any]) -> None:
        """Take the configuration (and its controls); map the buffers, as picamera2's DMA allocator does."""
        self.calls.append("configure")
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self._check_controls(config.get("controls", {}))
        self.camera_config = config
        self.controls = dict(config.get("controls", {}))
        height, stride = config["lores"]["size"][1], config["lores"]["stride"]
        self.buffers = [mmap.mmap(-1, height * 3 // 2 * stride) for _ in range(config["buffer_count"])]

    def set_controls(self, controls: dict[str, Any]) -> None:
        """Change controls while running."""
        self.calls.append("set_controls")
        self._check_controls(controls)
        self.controls.update(controls)

    def start(self) -> None:
        """Start streaming."""
        self.calls.append("start")
        self.started = True

    def capture_request(self, wait: Any = None, flush: Any = None) -> FakeRequest:
        """The next frame; after `wait` seconds of a stall, TimeoutError with the job left queued."""
        assert self.started, "capture_request before start"
        assert isinstance(wait, int | float) and wait > 0, "capture_request without a timeout can hang"
        with self._lock:
            if self.failure is not None:
                raise RuntimeError(self.failure)
            job = FakeJob()
            self.jobs.append(job)
            self._serve_jobs()
        try:
            # Job.get_result: concurrent.futures' TimeoutError is the built-in one.
            return job.future.result(timeout=wait)
        except TimeoutError:
            job.abandoned = True  # but still queued, as in picamera2
            raise

    def resume(self) -> None:
        """End a stall: frames flow again, and queued jobs take them in order."""
        with self._lock:
            self.stalled.clear()
            self._serve_jobs()

    def _serve_jobs(self) -> None:
        """process_requests: each queued job, oldest first, takes the next frame (while not stalled)."""
        while self.jobs and not self.stalled.is_set():
            job = self.jobs.pop(0)
            request = self._next_request()
            if job.abandoned or job.future.done():  # nobody will ever release this request
                self.leaked.append(request)
            if not job.future.done():
                job.future.set_result(request)
        self._lock.notify_all()

    def _next_request(self) -> FakeRequest:
        while self.sensor_frame in self.skip:
            self.sensor_frame += 1
        request = FakeRequest(self, self._fill(self.frames(self.issued)), self.sensor_frame * self.frame_ns)
        self.sensor_frame += 1
        self.issued += 1
        self.outstanding.add(request)
        return request

    def cancel_all_and_flush(self) -> None:
        """Cancel every queued job and empty the queue."""
        self.calls.append("cancel_all_and_flush")
        with self._lock:
            for job in self.jobs:
                if not job.future.done():
                    job.cancel()
            self.jobs = []
            self._lock.notify_all()

    def plane_view(self, buffer: int) -> np.ndarray:
        """The lores buffer as (height * 3/2) rows of stride bytes, sharing the mapped memory."""
        height = self.camera_config["lores"]["size"][1]
        stride = self.camera_config["lores"]["stride"]
        return np.frombuffer(self.buffers[buffer], np.uint8).reshape((height * 3 // 2, stride))

    def _fill(self, image: np.ndarray) -> int:
        """Write the next frame into a free buffer, as the ISP would; return its index."""
        busy = {request.buffer for request in self.outstanding}
        free = [i for i in range(len(self.buffers)) if i not in busy]
        assert free, "every buffer is held by a request nobody released: the camera pipeline stalls"
        width, height = self.camera_config["lores"]["size"]
        assert image.shape == (height, width), f"fake frame is {image.shape}, lores is {(height, width)}"
        planes = self.plane_view(free[0])
        planes[:] = PADDING
        planes[:height, :width] = image
        return free[0]

    def stop(self) -> None:
        """Stop streaming: a job queued behind any other on the event loop (harmless when stopped)."""
        self.calls.append("stop")
        if not self.started:
            return
        with self._lock:
            if not self._lock.wait_for(lambda: not self.jobs, timeout=self.hang_limit_s):
                raise WouldHangError(
                    "Picamera2.stop() waits forever behind a timed-out capture job: "
                    "call cancel_all_and_flush() first"
                )
        self.started = False

    def close(self) -> None:
        """Close the camera and unmap its buffers; BufferError if a view of one is still alive."""
        self.calls.append("close")
        # picamera2 stops its event loop first, then the camera directly: no waiting on jobs.
        self.started = False
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
        if tuning_file not in {f"{sensor}.json" for sensor in MODELS}:
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
        hang_limit_s: float = 1.0,
    ) -> None:
        self.missing = missing
        self.model = model
        # A sensor not modelled stands for a third-party one: the common controls, no tuning file.
        camera_model = MODELS.get(model) or CameraModel(
            model,
            "third-party camera",
            _COMMON_CONTROLS | _sensor((4656, 3496), 16.0, (1, 66666), (33333, 66666)),
        )
        self.cameras: list[FakeCamera] = []
        self.make_camera = lambda: FakeCamera(
            frames, frame_ns=int(1e9 / fps), skip=skip, model=camera_model, hang_limit_s=hang_limit_s
        )
        self.Picamera2 = FakePicamera2Class(self)
