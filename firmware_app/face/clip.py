"""A talking clip, read frame by frame: what enrollment tracks and its held-out report re-synthesises.

Nothing of the clip is kept: frames are decoded as they are used, and no sound is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from firmware_app.errors import MediaError


def read_clip(clip: Path, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, t, BGR frame) of the clip's frames [start, stop)."""
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise MediaError(f"cannot open the clip {clip}", "give a video file (MP4, MKV, MOV …) that a player opens")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    if start:
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    index = start
    try:
        while stop is None or index < stop:
            ok, image = capture.read()
            if not ok:
                break
            yield index, index / fps, image
            index += 1
    finally:
        capture.release()


def clip_info(clip: Path) -> tuple[int, float, tuple[int, int]]:
    """(frame count, fps, (width, height)) of a clip; refuses what is not a video."""
    if not clip.is_file():
        raise MediaError(
            f"the clip {clip} does not exist", "give the path of a video of the person talking towards the camera"
        )
    capture = cv2.VideoCapture(str(clip))
    try:
        if not capture.isOpened() or capture.get(cv2.CAP_PROP_FRAME_COUNT) < 1:
            raise MediaError(
                f"{clip} is not a video that can be read", "give a video file (MP4, MKV, MOV …) that a player opens"
            )
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS) or 25.0, size
    finally:
        capture.release()


class ProgressBar(Protocol):
    """What `progress_bar` gives: tqdm's bar, or one that draws nothing."""

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, n: int) -> object: ...


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def progress_bar(total: int, what: str, shown: bool) -> ProgressBar:
    """A bar counting `total` frames on the terminal (tqdm), or one that shows nothing (tests, scripts)."""
    if not shown:
        return _NoBar()
    from tqdm import tqdm  # imported only where a bar is drawn

    return tqdm(total=total, desc=what, unit="frame", leave=False)
