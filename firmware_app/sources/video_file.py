"""`file://clip.mp4`: a video file as a camera stand-in or a puppet clip, optionally looped."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from firmware_app.errors import MediaError
from firmware_app.frames import VideoFrame
from firmware_app.sources.base import Pacer, VideoSource, fit_frame, require_file


class VideoFileSource(VideoSource):
    def __init__(self, path: Path, size: tuple[int, int], realtime: bool, loop: bool) -> None:
        self.path = path
        self.size = size
        self.live = realtime
        self.loop = loop
        self._pacer = Pacer(realtime)
        self._container = None
        self._frames = None
        self._index = 0

    def open(self) -> None:
        require_file(self.path, "video file")
        self._rewind()
        stream = self._container.streams.video[0]
        self.fps = float(stream.average_rate or stream.base_rate or 30)

    def _rewind(self) -> None:
        self.close()
        try:
            self._container = av.open(str(self.path))
            if not self._container.streams.video:
                raise MediaError(f"{self.path} has no video stream", "give a video file such as an MP4")
            self._frames = self._container.decode(video=0)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot open {self.path}: {exc}", "check that the file is a complete video") from None

    def read(self) -> VideoFrame | None:
        decoded = self._next_decoded()
        if decoded is None and self.loop and self._index > 0:
            self._rewind()
            decoded = self._next_decoded()
        if decoded is None:
            return None
        t = self._index / self.fps
        self._pacer.wait_until(t)
        frame = VideoFrame(fit_frame(decoded.to_ndarray(format="bgr24"), self.size), t, self._index)
        self._index += 1
        return frame

    def _next_decoded(self):
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as exc:
            raise MediaError(f"{self.path} is damaged at frame {self._index}: {exc}", "re-export the clip") from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def decode_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video file (BGR), for offline checks and reports; a live source reads one at a time."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
