"""`v4l2:///dev/video0` and `csi://0`: live cameras through OpenCV (GStreamer for CSI on Jetson)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from firmware_app.errors import CameraMissingError, DeviceError
from firmware_app.frames import VideoFrame
from firmware_app.sources.base import VideoSource, fit_frame
from firmware_app.uri import Uri


def opencv_has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def csi_pipeline(sensor_id: int, size: tuple[int, int], fps: float) -> str:
    width, height = size
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
        f"framerate={round(fps)}/1 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! "
        "video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
    )


class CameraSource(VideoSource):
    live = True

    def __init__(self, uri: Uri, size: tuple[int, int], fps: float) -> None:
        self.uri = uri
        self.size = size
        self.fps = fps
        self._capture = None
        self._start = 0.0
        self._index = 0

    def open(self) -> None:
        if self.uri.scheme == "csi":
            if not opencv_has_gstreamer():
                raise DeviceError(
                    f"{self.uri.text} needs OpenCV with GStreamer, and this OpenCV has none",
                    "on a Jetson, create the virtualenv with --system-site-packages to use JetPack's OpenCV",
                )
            capture = cv2.VideoCapture(csi_pipeline(int(self.uri.location or 0), self.size, self.fps), cv2.CAP_GSTREAMER)
        else:
            device = Path(self.uri.location or "/dev/video0")
            if not device.exists():
                raise CameraMissingError(f"no camera at {device}", "plug in the camera, or set sources.camera to another device")
            capture = cv2.VideoCapture(str(device), cv2.CAP_V4L2)
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        if not capture.isOpened():
            raise CameraMissingError(
                f"cannot open camera {self.uri.text}", "check the cable and that no other program uses it"
            )
        self._capture = capture
        self._start = time.monotonic()

    def read(self) -> VideoFrame | None:
        ok, image = self._capture.read()
        if not ok:
            return None
        frame = VideoFrame(fit_frame(image, self.size), time.monotonic() - self._start, self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
