"""The two source interfaces and the helpers every source shares (pacing, frame fitting)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from firmware_app.errors import MissingFileError
from firmware_app.frames import AudioBlock, VideoFrame
from firmware_app.resource import Resource


class AudioSource(Resource, ABC):
    """Delivers consecutive mono 16 kHz blocks; `t` counts samples, so it never drifts."""

    live = False  # reads wait on the real world (microphone or a paced file)
    duration: float | None = None  # seconds, when the length is known

    @abstractmethod
    def read(self, wait: bool) -> AudioBlock | None:
        """The next block; None at the end, or when `wait` is False and none is ready yet."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once every block has been read."""

    def skip_backlog(self) -> None:
        """Drop what a live source captured before anyone listened (files have no backlog)."""

    def loop_forever(self) -> None:
        """A file standing in for a microphone (the soak, the load bench): play it again and again
        on one continuous clock instead of ending. A microphone never ends anyway."""


class VideoSource(Resource, ABC):
    """Delivers frames fitted to the pipeline's size, each stamped with its media time."""

    live = False
    fps: float = 30.0

    @abstractmethod
    def read(self) -> VideoFrame | None:
        """The next frame, or None when the source has ended."""


class Pacer:
    """Holds file playback to the wall clock (live simulation), or lets it run free (offline render)."""

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self._start: float | None = None

    def elapsed(self) -> float:
        if self._start is None:
            self._start = time.monotonic()
        return time.monotonic() - self._start

    def ready(self, t: float) -> bool:
        return not self.realtime or self.elapsed() >= t

    def wait_until(self, t: float) -> None:
        if self.realtime:
            delay = t - self.elapsed()
            if delay > 0:
                time.sleep(delay)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingFileError(f"the {what} {path} does not exist", "check the path in the config or command line")
    return path


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to fit inside `size` (width, height) without distortion; pad the rest black."""
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new_w) // 2, (height - new_h) // 2
    canvas[y : y + new_h, x : x + new_w] = resized
    return canvas
