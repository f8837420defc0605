"""What the kiosk screen shows when it cannot start: the error, in words an operator can act on."""

from __future__ import annotations

import logging
import textwrap

import cv2
import numpy as np

from firmware_app.errors import DeviceError
from firmware_app.frames import VideoFrame
from firmware_app.sinks.display import DisplaySink, display_available

log = logging.getLogger(__name__)

SIZE = (1280, 720)


def card_image(message: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    width, height = size
    image = np.full((height, width, 3), (40, 24, 24), np.uint8)
    lines = ["Ventriloquist cannot start", ""]
    for paragraph in message.splitlines():
        lines += textwrap.wrap(paragraph, 70) or [""]
    lines += ["", "Fix the config, then: systemctl reload ventriloquist"]
    for i, line in enumerate(lines[:22]):
        scale, weight = (1.1, 2) if i == 0 else (0.7, 1)
        cv2.putText(
            image,
            line,
            (40, 70 + 30 * i + (10 if i else 0)),
            cv2.FONT_HERSHEY_DUPLEX,
            scale,
            (235, 235, 235),
            weight,
            cv2.LINE_AA,
        )
    return image


class ErrorCard:
    """A fullscreen card with the message, when a display is there (else the log carries it)."""

    def __init__(self, message: str) -> None:
        self.message = message
        self._sink: DisplaySink | None = None

    def __enter__(self) -> ErrorCard:
        if display_available():
            sink = DisplaySink("0", "Ventriloquist")
            try:
                sink.open(*SIZE, 5.0)
                self._sink = sink
            except DeviceError as exc:
                log.warning("cannot show the error on screen: %s", exc.cause)
        return self

    def show(self) -> None:
        if self._sink is not None:
            self._sink.write_video(VideoFrame(card_image(self.message), 0.0, 0))

    def __exit__(self, *exc: object) -> None:
        if self._sink is not None:
            self._sink.close()
