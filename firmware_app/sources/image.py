"""`file://portrait.jpg`: a still image served as an endless video at the configured rate."""

from __future__ import annotations

from pathlib import Path

import cv2

from firmware_app.errors import MediaError
from firmware_app.frames import VideoFrame
from firmware_app.sources.base import Pacer, VideoSource, fit_frame, require_file


class ImageSource(VideoSource):
    def __init__(self, path: Path, size: tuple[int, int], fps: float, realtime: bool) -> None:
        self.path = path
        self.size = size
        self.fps = fps
        self.live = realtime
        self._pacer = Pacer(realtime)
        self._image = None
        self._index = 0

    def open(self) -> None:
        require_file(self.path, "image")
        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError(
                f"cannot read the image {self.path}", "give a JPEG or PNG file that opens in an image viewer"
            )
        self._image = fit_frame(image, self.size)
        self._image.flags.writeable = False  # shared by every frame: stages must copy before drawing

    def read(self) -> VideoFrame | None:
        t = self._index / self.fps
        self._pacer.wait_until(t)
        frame = VideoFrame(self._image, t, self._index, still=self._index > 0)
        self._index += 1
        return frame
