"""`file://portrait.jpg`: a still image served as an endless video at the configured rate.

`read_image` is the one reader of stills: the kiosk's portrait, a face pack's reference still and
the console's upload check all go through it, so what the check passes the kiosk can show."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from firmware_app.errors import MediaError
from firmware_app.frames import VideoFrame
from firmware_app.sources.base import Pacer, VideoSource, fit_frame, require_file

MAX_PIXELS = 120_000_000  # a 108 MP phone photo still reads; larger ones are refused from their header, undecoded
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")  # what OpenCV's own decoders read
STILL_FIX = "give a JPEG or PNG file that opens in an image viewer"


def image_size(data: bytes, name: str) -> tuple[str, int, int]:
    """(format, width, height) as the file's header declares them; nothing is decoded. Pillow's
    `Image.open` reads only the header; past its decompression-bomb limit it refuses without the
    size, so the size is then read by the format's own header reader."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as header:
            return str(header.format), *header.size
    except Image.DecompressionBombError:
        for fmt in FORMATS:
            factory, accept = Image.OPEN[fmt]
            if accept is None or accept(data[:16]):
                with factory(io.BytesIO(data), name) as header:  # the plugin alone: no bomb check, no decode
                    return fmt, *header.size
        raise MediaError(f"{name} is too large to be an image", STILL_FIX) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{name} is not a readable image ({exc})", STILL_FIX) from None


def read_image(data: bytes, name: str) -> np.ndarray:
    """A still as BGR pixels, read whole or refused: its declared size first (over `MAX_PIXELS` it
    is refused undecoded), then every byte checked (a PNG chunk's CRC, a JPEG cut short: libjpeg
    would fill the missing part grey and OpenCV would show it), then decoded by OpenCV."""
    _, width, height = image_size(data, name)
    if width * height > MAX_PIXELS:
        raise MediaError(
            f"{name} is {width}x{height}; a portrait is at most {MAX_PIXELS // 1_000_000} MP",
            "scale it (1280x720 is plenty)",
        )
    try:
        with warnings.catch_warnings():  # Pillow warns past 89 MP; the size was checked above
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                image.verify()  # the chunks' CRCs
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                image.load()  # every pixel present: a truncated file raises
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"{name} is damaged ({exc})", STILL_FIX) from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"cannot read the image {name}", STILL_FIX)
    return image


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
        self._image = fit_frame(read_image(self.path.read_bytes(), str(self.path)), self.size)
        self._image.flags.writeable = False  # shared by every frame: stages must copy before drawing

    def read(self) -> VideoFrame | None:
        t = self._index / self.fps
        self._pacer.wait_until(t)
        frame = VideoFrame(self._image, t, self._index, still=self._index > 0)
        self._index += 1
        return frame
