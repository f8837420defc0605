"""The invisible "synthetic" mark in the pixels: a keyed spread-spectrum pattern added to luma.

Why our own scheme: `invisible-watermark` (dwtDct) and `blind-watermark` transform the whole
frame per call (not measured here), while a live frame can spare 2 ms. This one precomputes
the frame's pattern once per size and adds it with two saturating cv2 ops.

Scheme: a `PERIOD`-pixel square tile of low-frequency pseudo-random +-1 cells (`CELL` px), keyed
by `KEY`, is tiled over the frame at `AMPLITUDE` grey levels (PSNR about 42 dB). The tile is the
sum of a sync pattern that means "synthetic" and `BITS` payload patterns whose signs carry a short
appliance id. Detection folds the high-passed luma of a window of frames modulo the tile (so a
crop only shifts the fold circularly), tries a few scales (a downscaled copy has a smaller tile),
and correlates with the sync tile by FFT over every circular shift: the peak's z-score against
the other shifts is the confidence. Payload bits are read at the peak's shift.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass

import cv2
import numpy as np

KEY = 0x5EC7  # the pattern's seed: changing it makes every earlier file unreadable
PERIOD = 128  # tile side in pixels as embedded
CELL = 8  # pattern cell side in pixels: coarse enough to survive 1 Mbit/s H.264
AMPLITUDE = 2.0  # RMS grey levels added to luma
BITS = 12  # payload: the appliance id's hash, shown as 3 hex digits
DETECT_PERIOD = 32  # the detector folds to this tile side
SCALES = (1.0, 0.75, 0.5625, 0.5, 0.375, 0.25, 1.5)  # frame-size ratios the detector tries
THRESHOLD = 7.0  # z-score of the sync peak that counts as marked


def _cells(seed: int) -> np.ndarray:
    rng = np.random.default_rng([KEY, seed])
    side = PERIOD // CELL
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(side, side))


def _tile(cells: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(cells, (side, side), interpolation=cv2.INTER_NEAREST)


SYNC = _cells(0)
PAYLOAD = [_cells(1 + i) for i in range(BITS)]


def payload_bits(appliance_id: str) -> list[int]:
    digest = int.from_bytes(hashlib.sha256(appliance_id.encode()).digest()[:2], "big")
    return [(digest >> i) & 1 for i in range(BITS)]


def bits_id(bits: list[int]) -> str:
    return f"{sum(b << i for i, b in enumerate(bits)):03x}"


def appliance_id(configured: str) -> str:
    """The configured appliance id, else the host name."""
    return configured or socket.gethostname()


def short_id(appliance_id: str) -> str:
    """The 3 hex digits of the appliance id that the watermark carries."""
    return bits_id(payload_bits(appliance_id))


class Watermarker:
    """Adds the pattern to frames in place; the full-size pattern is made once per frame shape."""

    def __init__(self, appliance_id: str) -> None:
        bits = payload_bits(appliance_id)
        cells = 0.7 * SYNC + 0.7 * sum((2 * b - 1) * p for b, p in zip(bits, PAYLOAD, strict=True)) / np.sqrt(BITS)
        self._tile = _tile(cells.astype(np.float32), PERIOD) * AMPLITUDE
        self._shape: tuple[int, ...] = ()
        self._plus = self._minus = np.zeros(0, np.uint8)

    def _prepare(self, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        reps = (h // PERIOD + 1, w // PERIOD + 1)
        delta = np.rint(np.tile(self._tile, reps)[:h, :w])
        if len(shape) == 3:
            delta = np.repeat(delta[:, :, None], shape[2], axis=2)  # the same on every channel: a luma change
        self._plus = np.clip(delta, 0, 255).astype(np.uint8)
        self._minus = np.clip(-delta, 0, 255).astype(np.uint8)
        self._shape = shape

    def apply(self, image: np.ndarray) -> None:
        if image.shape != self._shape:
            self._prepare(image.shape)
        cv2.add(image, self._plus, dst=image)
        cv2.subtract(image, self._minus, dst=image)


def _luma(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


@dataclass
class Detection:
    marked: bool
    confidence: float  # z-score of the sync peak; THRESHOLD and above is marked
    payload: str  # the 3-hex-digit appliance id, "" when unmarked
    scale: float


class Detector:
    """Accumulates folded luma over a window of frames, then says whether the mark is there."""

    def __init__(self) -> None:
        self._folds: dict[float, np.ndarray] = {}
        self.frames = 0

    def add(self, image: np.ndarray) -> None:
        luma = _luma(image)
        for scale in SCALES:
            factor = DETECT_PERIOD / (PERIOD * scale)  # a tile of PERIOD * scale px -> DETECT_PERIOD px
            small = _scaled(luma, factor)
            self._folds[scale] = self._folds.get(scale, 0) + _fold(small)
        self.frames += 1

    def result(self) -> Detection:
        best = Detection(False, 0.0, "", 0.0)
        sync = np.fft.fft2(_tile(SYNC, DETECT_PERIOD))
        for scale, fold in self._folds.items():
            spectrum = np.fft.fft2(fold)
            spectrum /= np.abs(spectrum) + 1e-9  # whitened: the picture left in the fold no longer dominates
            surface = np.real(np.fft.ifft2(spectrum * np.conj(sync)))
            z = float((surface.max() - surface.mean()) / (surface.std() + 1e-12))
            if z > best.confidence:
                at = np.unravel_index(int(np.argmax(surface)), surface.shape)
                bits = [int(_correlate(spectrum, p)[at] > 0) for p in PAYLOAD]
                best = Detection(z >= THRESHOLD, z, bits_id(bits) if z >= THRESHOLD else "", scale)
        return best


def _correlate(spectrum: np.ndarray, cells: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(spectrum * np.conj(np.fft.fft2(_tile(cells, DETECT_PERIOD)))))


def _scaled(luma: np.ndarray, factor: float) -> np.ndarray:
    size = (max(DETECT_PERIOD, round(luma.shape[1] * factor)), max(DETECT_PERIOD, round(luma.shape[0] * factor)))
    small = cv2.resize(luma, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    return small - cv2.GaussianBlur(small, (0, 0), DETECT_PERIOD / 8)  # keep the cells, drop the picture


def _fold(plane: np.ndarray) -> np.ndarray:
    p = DETECT_PERIOD
    h, w = (plane.shape[0] // p) * p, (plane.shape[1] // p) * p
    return plane[:h, :w].reshape(h // p, p, w // p, p).sum(axis=(0, 2))
