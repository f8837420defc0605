"""`v4l2:///dev/video0` through OpenCV, and `csi://0` through a GStreamer pipe.

CSI cameras on a Jetson (`nvarguscamerasrc`) are read outside OpenCV: pip's OpenCV has no
GStreamer, and JetPack's (which has) is built against numpy 1 and cannot be imported beside
numpy 2. So `gst-launch-1.0` runs the pipeline and writes raw BGR frames into a pipe we read.
`sources.csi_source` is the pipeline's source part; `videotestsrc` in its place runs the very same
code on any machine with GStreamer (tests do that).
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from firmware_app.config import SourcesSettings
from firmware_app.errors import CameraMissingError, ConfigError, DeviceError
from firmware_app.frames import VideoFrame
from firmware_app.sources.base import VideoSource, fit_frame
from firmware_app.uri import Uri

NVARGUS_SOURCE = SourcesSettings.model_fields["csi_source"].default  # the Jetson's CSI camera
# the newest frame wins: a slow reader gets dropped frames, never a growing delay
SINK = (
    "videoconvert ! video/x-raw, format=BGR, width={width}, height={height} ! queue leaky=downstream "
    "max-size-buffers=1 ! fdsink fd={fd} sync=false"
)
FIRST_FRAME_S = 10.0  # libargus takes a few seconds to start a sensor
STALL_S = 5.0  # no bytes for this long: the camera is reported lost (the camera thread reopens it)
STOP_S = 3.0  # after SIGINT (EOS), how long gst-launch gets to stop the sensor cleanly


def gstreamer_has(element: str) -> bool:
    """Whether GStreamer's tools are installed and know `element` (e.g. nvarguscamerasrc)."""
    if shutil.which("gst-inspect-1.0") is None:
        return False
    result = subprocess.run(["gst-inspect-1.0", "--exists", element], capture_output=True, timeout=30)
    return result.returncode == 0


def tegra_vi_sensor(node: str, sys: Path = Path("/sys")) -> int | None:
    """For `video0` that is a Tegra VI capture node (sysfs name `vi-output, <sensor> …`: a CSI
    sensor's raw Bayer output, which OpenCV cannot read; libargus must debayer it), the csi://
    sensor number to use instead; None for any other node (a USB camera)."""
    try:
        name = (sys / "class" / "video4linux" / node / "name").read_text(errors="replace")
    except OSError:
        return None
    if not name.startswith("vi-output") or not node.removeprefix("video").isdigit():
        return None
    return int(node.removeprefix("video"))


def csi_pipeline(source: str, sensor: int, size: tuple[int, int], fps: float, fd: int) -> str:
    """The whole gst-launch description: the configured source part, then conversion to BGR."""
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    fields = {
        "sensor": sensor,
        "width": width,
        "height": height,
        "fps": f"{rate.numerator}/{rate.denominator}",
        "fd": fd,
    }
    try:
        return f"{source.format(**fields)} ! {SINK.format(**fields)}"
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"sources.csi_source {source!r} is not a valid template ({exc})",
            "use only the fields {sensor}, {width}, {height} and {fps}, or remove the key for the default",
        ) from None


class GStreamerPipe:
    """A `gst-launch-1.0` child writing fixed-size frames into a pipe; stopped with EOS so libargus
    releases the sensor (a killed capture can leave nvargus-daemon unable to open it again)."""

    def __init__(self, description: str, read_fd: int, write_fd: int) -> None:
        if shutil.which("gst-launch-1.0") is None:
            os.close(read_fd)
            os.close(write_fd)
            raise DeviceError(
                "csi:// cameras need GStreamer's gst-launch-1.0, which is not installed",
                "sudo apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base (JetPack ships them)",
            )
        self._log = tempfile.TemporaryFile()  # GStreamer's messages, read only to explain a failure
        self._fd = read_fd
        self._lock = threading.Lock()
        self._closing = False
        self.process = subprocess.Popen(
            ["gst-launch-1.0", "-q", "-e", *shlex.split(description)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)  # only the child writes: its exit is our end of file

    def read_exactly(self, buffer: memoryview, timeout: float) -> bool:
        """Fill `buffer`; False at end of stream, on close, or after `timeout` s without a byte."""
        got, last_byte_at = 0, time.monotonic()
        while got < len(buffer):
            with self._lock:
                if self._closing:
                    return False
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                n = os.readv(self._fd, [buffer[got:]]) if ready else -1
            if n == 0:
                return False
            if n > 0:
                got, last_byte_at = got + n, time.monotonic()
            elif time.monotonic() - last_byte_at > timeout:
                return False
        return True

    def messages(self) -> str:
        """What GStreamer printed (its error for a pipeline that would not start)."""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return " / ".join(lines[-3:]) or f"gst-launch-1.0 exited with {self.process.poll()}"

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # -e: EOS first, then the pipeline stops
        deadline = time.monotonic() + STOP_S
        while time.monotonic() < deadline and self._drain():
            pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        with self._lock:
            os.close(self._fd)
        self._log.close()

    def _drain(self) -> bool:
        """Read and drop what the child still writes (so EOS can reach the sink); False at its end."""
        with self._lock:
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            return not ready or bool(os.read(self._fd, 1 << 20))


class CameraSource(VideoSource):
    live = True

    def __init__(self, uri: Uri, size: tuple[int, int], fps: float, csi_source: str = NVARGUS_SOURCE) -> None:
        self.uri = uri
        self.size = size
        self.fps = fps
        self.csi_source = csi_source
        self._capture = None
        self._pipe: GStreamerPipe | None = None
        self._pending: np.ndarray | None = None
        self._start = 0.0
        self._index = 0

    def open(self) -> None:
        if self.uri.scheme == "csi":
            self._open_csi()
        else:
            self._open_v4l2()
        self._start = time.monotonic()

    def _open_csi(self) -> None:
        try:
            sensor = int(self.uri.location or 0)
        except ValueError:
            raise ConfigError(f"{self.uri.text}: the CSI sensor must be a number", "use csi://0, csi://1, …") from None
        read_fd, write_fd = os.pipe()
        self._pipe = GStreamerPipe(
            csi_pipeline(self.csi_source, sensor, self.size, self.fps, write_fd), read_fd, write_fd
        )
        self._pending = self._read_csi(FIRST_FRAME_S)
        if self._pending is None:
            try:  # a pipeline that would not start has exited (or is about to) and said why
                self._pipe.process.wait(timeout=1.0)
                why = self._pipe.messages()
            except subprocess.TimeoutExpired:
                why = f"no frame within {FIRST_FRAME_S:.0f} s"
            self.close()
            raise CameraMissingError(
                f"cannot open camera {self.uri.text} (GStreamer: {why})",
                "on a Jetson check the ribbon cable and that nvargus-daemon runs (systemctl status nvargus-daemon); "
                "off a Jetson set sources.camera to v4l2:// or file://",
            )

    def _open_v4l2(self) -> None:
        device = Path(self.uri.location or "/dev/video0")
        if not device.exists():
            raise CameraMissingError(
                f"no camera at {device}", "plug in the camera, or set sources.camera to another device"
            )
        sensor = tegra_vi_sensor(device.name)
        if sensor is not None:
            raise CameraMissingError(
                f"{device} is a CSI sensor's raw Bayer node, which cannot be read as v4l2://",
                f"set sources.camera: csi://{sensor} (`ventriloquist doctor --device` says so too)",
            )
        capture = cv2.VideoCapture(str(device), cv2.CAP_V4L2)
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        if not capture.isOpened():
            raise CameraMissingError(
                f"cannot open camera {self.uri.text}", "check the cable and that no other program uses it"
            )
        self._capture = capture

    def _read_csi(self, timeout: float) -> np.ndarray | None:
        pipe = self._pipe  # close() may run on another thread meanwhile
        if pipe is None:
            return None
        width, height = self.size
        image = np.empty((height, width, 3), np.uint8)
        return image if pipe.read_exactly(memoryview(image).cast("B"), timeout) else None

    def read(self) -> VideoFrame | None:
        if self.uri.scheme == "csi":
            image, self._pending = self._pending, None
            if image is None:
                image = self._read_csi(STALL_S)
            if image is None:
                return None
        else:
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
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
