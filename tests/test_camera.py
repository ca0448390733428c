"""Frame sources: replay (files, folders, globs, video, in-memory), picamera2 (fake), V4L2."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from kiosk.camera import Frame, RateMeter, ReplaySource, is_device_index, open_camera, picamera2_controls
from kiosk.config import CameraConfig
from kiosk.errors import CameraEnded, CameraError
from tests.support.fake_picamera2 import MODELS, PADDING, FakePicamera2Module, WouldHangError

W, H = 64, 48


def numbered(n: int, *, width: int = W, height: int = H) -> np.ndarray:
    """A frame whose every pixel is its number, so order can be checked after a round trip."""
    return np.full((height, width), n * 20 % 256, np.uint8)


def fast(**changes: object) -> CameraConfig:
    return CameraConfig(replay_realtime=False, **changes)  # type: ignore[arg-type]


def levels(source: ReplaySource | object, count: int) -> list[int]:
    return [int(source.read().pixels[0, 0]) for _ in range(count)]  # type: ignore[attr-defined]


# --- replay ---------------------------------------------------------------------------------


def test_in_memory_frames_come_out_in_order_then_end() -> None:
    with open_camera(fast(), frames=[numbered(i) for i in range(3)]) as source:
        frames = [source.read() for _ in range(3)]
        with pytest.raises(CameraEnded, match="ended"):
            source.read()
    assert [f.number for f in frames] == [0, 1, 2]
    assert [int(f.pixels[0, 0]) for f in frames] == [0, 20, 40]
    assert all(isinstance(f, Frame) and f.pixels.dtype == np.uint8 for f in frames)
    assert frames[0].timestamp <= frames[1].timestamp <= frames[2].timestamp


def test_camera_ended_is_a_camera_error() -> None:
    assert issubclass(CameraEnded, CameraError)


def test_looping_replay_starts_again() -> None:
    with open_camera(fast(replay_loop=True), frames=[numbered(1), numbered(2)]) as source:
        assert levels(source, 5) == [20, 40, 20, 40, 20]


def test_replay_is_paced_at_fps() -> None:
    with open_camera(CameraConfig(fps=50), frames=[numbered(i) for i in range(11)]) as source:
        start = time.monotonic()
        for _ in range(11):
            source.read()
        elapsed = time.monotonic() - start
    assert 0.18 <= elapsed < 0.6  # ten periods of 20 ms
    assert 30 < source.fps < 60


def test_fast_replay_does_not_wait() -> None:
    with open_camera(fast(fps=1), frames=[numbered(i) for i in range(20)]) as source:
        start = time.monotonic()
        levels(source, 20)
    assert time.monotonic() - start < 0.5
    assert source.dropped == 0


def test_colour_frames_are_converted_once_to_gray() -> None:
    colour = np.zeros((H, W, 3), np.uint8)
    colour[..., 2] = 255  # pure red in BGR
    with open_camera(fast(), frames=[colour]) as source:
        pixels = source.read().pixels
    assert pixels.shape == (H, W)
    assert 70 < int(pixels[0, 0]) < 82  # ITU-R 601 weight of red


def test_empty_in_memory_reel_is_refused() -> None:
    with pytest.raises(CameraError, match="no frames"):
        open_camera(fast(), frames=[])


def write_images(folder: Path, count: int, suffix: str = ".png") -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i in reversed(range(count)):  # written out of order: the source must sort
        path = folder / f"frame{i:02d}{suffix}"
        assert cv2.imwrite(str(path), numbered(i))
        paths.append(path)
    return paths


def test_folder_replays_images_sorted(tmp_path: Path) -> None:
    write_images(tmp_path / "shots", 3)
    (tmp_path / "shots" / "notes.txt").write_text("not an image")
    with open_camera(fast(source=str(tmp_path / "shots"))) as source:
        assert levels(source, 3) == [0, 20, 40]
        with pytest.raises(CameraEnded):
            source.read()


def test_single_image_file_and_glob(tmp_path: Path) -> None:
    write_images(tmp_path, 4, suffix=".jpg")
    with open_camera(fast(source=str(tmp_path / "frame02.jpg"))) as source:
        assert abs(levels(source, 1)[0] - 40) <= 2  # jpeg is lossy
    with open_camera(fast(source=str(tmp_path / "frame0[13].jpg"))) as source:
        assert [round(v / 20) for v in levels(source, 2)] == [1, 3]


def test_video_file_replays_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H), isColor=True)
    for i in range(5):
        writer.write(cv2.cvtColor(numbered(i), cv2.COLOR_GRAY2BGR))
    writer.release()
    with open_camera(fast(source=str(path), replay_loop=True)) as source:
        values = levels(source, 7)
    assert [round(v / 20) for v in values] == [0, 1, 2, 3, 4, 0, 1]
    assert source.read  # still usable until closed


@pytest.mark.parametrize("name", ["missing-folder", "missing.png", "nothing*.png", "missing.mp4"])
def test_missing_replay_source_is_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(CameraError, match=r"does not exist|holds no images"):
        open_camera(fast(source=str(tmp_path / name)))


def test_corrupt_image_in_replay_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with open_camera(fast(source=str(tmp_path))) as source, pytest.raises(CameraError, match=r"broken\.png"):
        source.read()


def test_default_replay_is_the_demo_scene() -> None:
    with open_camera(fast(width=320, height=240)) as source:
        frames = [source.read() for _ in range(30)]
        with pytest.raises(CameraEnded):
            source.read()
    assert all(f.pixels.shape == (240, 320) for f in frames)


@pytest.fixture
def without_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device install: OpenCV is the `usb` extra, so `import cv2` fails as it would there."""
    monkeypatch.setitem(sys.modules, "cv2", None)


@pytest.mark.usefixtures("without_opencv")
def test_replay_reads_images_without_opencv(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in reversed(range(3)):
        Image.fromarray(numbered(i)).save(shots / f"frame{i:02d}.png")
    Image.fromarray(np.full((H, W, 3), (200, 10, 10), np.uint8)).save(shots / "frame03.png")
    with open_camera(fast(source=str(shots))) as source:
        assert levels(source, 3) == [0, 20, 40]
        assert abs(levels(source, 1)[0] - 66) <= 1  # luma of a red frame, as OpenCV gives it


@pytest.mark.usefixtures("without_opencv")
def test_corrupt_image_without_opencv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with open_camera(fast(source=str(tmp_path))) as source, pytest.raises(CameraError, match=r"broken\.png"):
        source.read()


@pytest.mark.usefixtures("without_opencv")
def test_demo_scene_without_opencv_says_what_to_do() -> None:
    with pytest.raises(CameraError, match=r"demo scene.*OpenCV.*camera\.source"):
        open_camera(fast())


def test_close_is_idempotent_and_read_after_close_fails() -> None:
    source = open_camera(fast(), frames=[numbered(0)])
    source.close()
    source.close()
    with pytest.raises(CameraError, match="closed"):
        source.read()


def test_rate_meter_counts_missing_frames_from_gaps() -> None:
    meter = RateMeter()
    for interval in (0.033, 0.034, 0.1, 0.033, 0.2):
        meter.gap(interval, 1 / 30)
    assert meter.dropped == 2 + 5
    for t in (0.0, 0.5, 1.0):
        meter.tick(t)
    assert meter.fps == pytest.approx(2.0)


# --- picamera2 (fake) -------------------------------------------------------------------------


def pi_config(**changes: object) -> CameraConfig:
    return CameraConfig(backend="picamera2", width=W * 10, height=H * 10, **changes)  # type: ignore[arg-type]


def pi_frame(n: int) -> np.ndarray:
    return numbered(n, width=W * 10, height=H * 10)


def test_picamera2_gives_the_lores_y_plane_cropped_to_width_without_copying() -> None:
    fake = FakePicamera2Module(pi_frame)
    with open_camera(pi_config(), picamera2=fake) as source:
        frames = [source.read() for _ in range(3)]
        camera = fake.cameras[0]
        stride = camera.camera_config["lores"]["stride"]
        assert stride > W * 10
        last = frames[-1].pixels
        assert last.shape == (H * 10, W * 10)
        assert last.strides == (stride, 1)  # a view into the mapped buffer, not a copy
        assert not last.flags.writeable
        assert PADDING not in last
        assert int(last[0, 0]) == 40
        assert len(camera.outstanding) == 1  # only the request behind the current frame is held
    assert camera.outstanding == set()
    assert camera.calls == ["configure", "start", "stop", "close"]


def test_picamera2_frame_held_across_close_stays_readable(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakePicamera2Module(pi_frame)
    source = open_camera(pi_config(), picamera2=fake)
    frame = source.read()
    source.close()
    source.close()
    assert int(frame.pixels[0, 0]) == 0 and PADDING not in frame.pixels
    assert "frame was still in use" in caplog.text
    assert fake.cameras[0].calls == ["configure", "start", "stop", "close"]


def test_picamera2_configuration_and_controls_follow_config() -> None:
    fake = FakePicamera2Module(pi_frame)
    config = pi_config(fps=25, metering="spot", autofocus="continuous")
    with open_camera(config, picamera2=fake):
        camera = fake.cameras[0]
    assert camera.camera_config["lores"]["size"] == (W * 10, H * 10)
    assert camera.camera_config["lores"]["format"] == "YUV420"
    assert camera.camera_config["queue"] is False
    assert camera.controls["AfMode"] == 2 and camera.controls["AfRange"] == 1
    assert camera.controls["FrameDurationLimits"] == (40000, 40000)
    assert camera.controls["AeMeteringMode"] == 1


@pytest.mark.parametrize("autofocus", ["continuous", "manual"])
@pytest.mark.parametrize("model", ["imx219", "imx477"])
def test_picamera2_fixed_focus_cameras_start_without_focus_controls(
    model: str, autofocus: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.camera")
    fake = FakePicamera2Module(pi_frame, model=model)
    with open_camera(pi_config(autofocus=autofocus), picamera2=fake) as source:
        assert int(source.read().pixels[0, 0]) == 0
    controls = fake.cameras[0].controls
    assert not {"AfMode", "AfRange", "LensPosition"} & set(controls)
    assert controls["AeMeteringMode"] == 1, "the controls the camera has are still set"
    assert f"focus: fixed (this camera has no autofocus; camera.autofocus = {autofocus}" in caplog.text


def test_picamera2_camera_module_3_gets_manual_focus_within_its_lens_range(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.camera")
    fake = FakePicamera2Module(pi_frame, model="imx708")
    with open_camera(pi_config(autofocus="manual", lens_position=7.5, metering="matrix"), picamera2=fake):
        controls = fake.cameras[0].controls
    assert controls["AfMode"] == 0 and controls["LensPosition"] == 7.5 and controls["AeMeteringMode"] == 2
    assert "focus: manual, lens position 7.5 dioptres" in caplog.text
    far = picamera2_controls(
        pi_config(autofocus="manual", lens_position=30), MODELS["imx708"].camera_controls
    )
    assert far["LensPosition"] == 15.0, "clamped to what the imx708 lens advertises"
    assert "AfMode" not in picamera2_controls(pi_config(autofocus="none"), MODELS["imx708"].camera_controls)


def test_picamera2_controls_leave_out_what_the_camera_does_not_advertise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    advertised = {"AeMeteringMode": (0, 3, 0)}
    controls = picamera2_controls(pi_config(), advertised)
    assert controls == {"AeMeteringMode": 1}
    assert "does not advertise AeConstraintMode, FrameDurationLimits" in caplog.text


@pytest.mark.parametrize("model", sorted(MODELS))
def test_fake_refuses_controls_its_camera_does_not_advertise(model: str) -> None:
    camera = FakePicamera2Module(pi_frame, model=model).Picamera2()
    unknown = "AfMode" if "AfMode" not in camera.camera_controls else "NoSuchControl"
    config = camera.create_video_configuration(
        main={"size": (W * 10, H * 10), "format": "YUV420"},
        lores={"size": (W * 10, H * 10), "format": "YUV420"},
        controls={unknown: 0},
    )
    with pytest.raises(RuntimeError, match=f"Control {unknown} is not advertised by libcamera"):
        camera.configure(config)
    with pytest.raises(RuntimeError, match="is not advertised by libcamera"):
        camera.set_controls({unknown: 0})


def test_picamera2_caps_exposure_through_the_sensor_tuning() -> None:
    fake = FakePicamera2Module(pi_frame)
    with open_camera(pi_config(max_exposure_us=8000), picamera2=fake):
        tuning = fake.cameras[0].tuning
    assert tuning is not None
    modes = tuning["algorithms"][1]["rpi.agc"]["channels"][0]["exposure_modes"]
    assert modes["normal"]["shutter"] == [100, 8000, 8000, 8000, 8000]
    assert modes["short"]["shutter"] == [100, 5000, 8000, 8000, 8000]
    assert modes["normal"]["gain"] == [1, 2, 4, 6, 8]


def test_picamera2_without_a_tuning_file_runs_uncapped(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakePicamera2Module(pi_frame, model="imx999")
    with open_camera(pi_config(), picamera2=fake) as source:
        source.read()
    assert fake.cameras[0].tuning is None
    assert "exposure is not capped" in caplog.text


def test_picamera2_counts_dropped_frames_from_sensor_timestamps() -> None:
    fake = FakePicamera2Module(pi_frame, skip=[2, 3, 7])
    with open_camera(pi_config(), picamera2=fake) as source:
        for _ in range(6):
            source.read()
        assert source.dropped == 3


def test_picamera2_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(CameraError, match="ribbon cable"):
        open_camera(pi_config(), picamera2=FakePicamera2Module(pi_frame, missing=True))


def test_picamera2_stall_raises_within_the_timeout_and_the_camera_still_closes() -> None:
    fake = FakePicamera2Module(pi_frame, hang_limit_s=0.5)
    with open_camera(pi_config(stall_timeout_s=0.3), picamera2=fake) as source:
        source.read()
        fake.cameras[0].stalled.set()
        start = time.monotonic()
        with pytest.raises(CameraError, match=r"no frame for 0.3 s.*selftest"):
            source.read()
        assert time.monotonic() - start < 1.0
    camera = fake.cameras[0]
    # Without the flush, stop() would wait forever behind the timed-out capture (WouldHangError here).
    assert camera.calls == ["configure", "start", "cancel_all_and_flush", "stop", "close"]
    assert camera.outstanding == set()


def test_picamera2_frame_after_a_stall_is_not_lost_to_the_timed_out_job() -> None:
    fake = FakePicamera2Module(pi_frame)
    with open_camera(pi_config(stall_timeout_s=0.2), picamera2=fake) as source:
        source.read()
        camera = fake.cameras[0]
        camera.stalled.set()
        with pytest.raises(CameraError):
            source.read()
        camera.resume()
        assert int(source.read().pixels[0, 0]) == 20, "the next frame comes to the next read"
        assert camera.leaked == [], "no request went to a job nobody waits for"


def test_fake_stop_waits_behind_a_timed_out_job_until_flushed() -> None:
    camera = FakePicamera2Module(pi_frame, hang_limit_s=0.2).Picamera2()
    size = {"size": (W * 10, H * 10), "format": "YUV420"}
    camera.configure(camera.create_video_configuration(main=size, lores=size))
    camera.start()
    camera.stalled.set()
    with pytest.raises(TimeoutError):
        camera.capture_request(wait=0.1)
    with pytest.raises(WouldHangError):
        camera.stop()
    camera.cancel_all_and_flush()
    camera.stop()
    assert not camera.started
    camera.close()


def test_picamera2_failure_is_a_camera_error() -> None:
    fake = FakePicamera2Module(pi_frame)
    with open_camera(pi_config(), picamera2=fake) as source:
        source.read()
        fake.cameras[0].failure = "Camera frontend has timed out!"
        with pytest.raises(CameraError, match=r"Pi camera failed: Camera frontend.*selftest"):
            source.read()
    assert fake.cameras[0].outstanding == set()


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 is installed")
def test_picamera2_without_the_library_says_how_to_install_it() -> None:
    with pytest.raises(CameraError, match="python3-picamera2"):
        open_camera(pi_config())


# --- V4L2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["7", "/dev/video-missing"])
def test_v4l2_missing_device_fails_fast(device: str) -> None:
    start = time.monotonic()
    with pytest.raises(CameraError, match=r"not found.*selftest"):
        open_camera(CameraConfig(backend="v4l2", source=device))
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("source", ["0", "7", "12"])
def test_ascii_digits_name_a_device_index(source: str) -> None:
    assert is_device_index(source)


# Arabic-Indic three, fullwidth three, superscript two, Devanagari seven: isdigit() and int() take them.
@pytest.mark.parametrize("source", ["\u0663", "\uff13", "\u00b2", "\u096d", "1\u0663", "", "/dev/video0"])
def test_other_digits_are_not_a_device_index(source: str) -> None:
    assert not is_device_index(source)


@given(st.text(max_size=6))
def test_only_ascii_digits_are_a_device_index(source: str) -> None:
    assert is_device_index(source) == (source != "" and all(c in "0123456789" for c in source))


def test_v4l2_look_alike_digits_are_a_path_not_a_device() -> None:
    """An Arabic-Indic three must not open /dev/video3: it names no device, and fails as a path."""
    with pytest.raises(CameraError, match=r"\u0663.*not found"):
        open_camera(CameraConfig(backend="v4l2", source="\u0663"))


def test_v4l2_reads_a_video_then_reports_the_stall(tmp_path: Path) -> None:
    path = tmp_path / "webcam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H), isColor=True)
    for i in range(3):
        writer.write(cv2.cvtColor(numbered(i), cv2.COLOR_GRAY2BGR))
    writer.release()
    with open_camera(CameraConfig(backend="v4l2", source=str(path), stall_timeout_s=0.3)) as source:
        assert [round(v / 20) for v in levels(source, 3)] == [0, 1, 2]
        start = time.monotonic()
        with pytest.raises(CameraError, match=r"no frame for 0\.3 s"):
            source.read()
        assert time.monotonic() - start < 1.5


def test_the_built_in_demo_scene_shows_valid_cards() -> None:
    from datetime import UTC, datetime

    from kiosk.camera import DEMO_PAYLOADS
    from kiosk.cards import Card, parse_card

    for payload in DEMO_PAYLOADS:
        assert isinstance(parse_card(payload.encode(), trust=None, now=datetime.now(UTC)), Card), payload
