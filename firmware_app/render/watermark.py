"""The invisible "synthetic" mark in the pixels: a keyed spread-spectrum pattern added to luma.

Why our own scheme: `blind-watermark` 0.4.4 (DWT-DCT-SVD) took 1,577 ms to embed one 1280x720
frame here, and `invisible-watermark` (dwtDct, same family; its other method needs PyTorch) also
transforms the whole frame per call, while a live frame can spare 2 ms. This one precomputes the
frame's pattern once per size and adds it with two saturating cv2 ops.

Scheme: a `PERIOD`-pixel square tile of low-frequency cells (`CELL` px), keyed by `KEY`, is tiled
over the frame's luma at `AMPLITUDE` grey levels RMS (PSNR about 43 dB). The tile is a sync pattern
that means "synthetic" plus, for each of `BITS` payload bits (a hash of the appliance id), a copy of
the same pattern cyclically shifted by a fixed offset, with the bit as its sign. The sync has a flat
spectrum, so its periodic autocorrelation is one peak: correlating with it gives the sync peak and
the payload peaks at their offsets, with no cross-talk between them.

Detection folds the high-passed luma of a window of frames modulo the tile (so a crop only shifts the
fold circularly), each pixel weighed down by the local texture (edges and hair hold picture, not
mark), at a few scales (a downscaled copy has a smaller tile). The whitened fold is correlated with
the sync by FFT over every circular shift: the peak's z-score against the shifts that carry no peak
is the confidence; the payload bits are the signs at the peak's offsets.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

KEY = 0x5EC7  # the pattern's seed: changing it makes every earlier file unreadable
PERIOD = 128  # tile side in pixels as embedded
CELL = 8  # pattern cell side in pixels: coarse enough to survive 1 Mbit/s H.264
AMPLITUDE = 2.0  # RMS grey levels added to luma
BITS = 12  # payload: the appliance id's hash, shown as 3 hex digits
SYNC_SHARE = 0.7  # the sync's part of the RMS; each payload bit gets an equal part of the rest
DETECT_PERIOD = 32  # the detector folds to this tile side
SCALES = (1.0, 0.75, 0.5625, 0.5, 0.375, 0.25, 1.5)  # frame-size ratios the detector tries
THRESHOLD = 7.0  # z-score of the sync peak that counts as marked


def _flat(seed: int) -> np.ndarray:
    """Unit-RMS cells whose periodic autocorrelation is a single peak (a flat spectrum): a shifted
    copy of the pattern then correlates with it only at its shift, which carries the payload."""
    rng = np.random.default_rng([KEY, seed])
    side = PERIOD // CELL
    spectrum = np.fft.fft2(rng.standard_normal((side, side)))
    spectrum /= np.abs(spectrum) + 1e-12
    spectrum[0, 0] = 0
    cells = np.real(np.fft.ifft2(spectrum))
    return (cells / cells.std()).astype(np.float32)


def _tile(cells: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(cells, (side, side), interpolation=cv2.INTER_NEAREST)


SYNC = _flat(0)
# where each payload bit's shifted copy of SYNC sits, in cells from the sync: apart, so the peaks don't touch
OFFSETS = [(dy, dx) for dy in (0, 4, 8, 12) for dx in (0, 4, 8, 12) if (dy, dx) != (0, 0)][:BITS]


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
        shifted = sum((2 * b - 1) * np.roll(SYNC, o, axis=(0, 1)) for b, o in zip(bits, OFFSETS, strict=True))
        cells = (SYNC_SHARE * SYNC + np.sqrt((1 - SYNC_SHARE**2) / BITS) * shifted) / 1.0
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
        sync = np.conj(np.fft.fft2(_tile(SYNC, DETECT_PERIOD)))
        for scale, fold in self._folds.items():
            spectrum = np.fft.fft2(fold)
            spectrum /= np.abs(spectrum) + 1e-9  # whitened: the picture left in the fold no longer dominates
            surface = np.real(np.fft.ifft2(spectrum * sync))
            z, bits = _score(surface)
            if z > best.confidence:
                best = Detection(z >= THRESHOLD, z, bits_id(bits) if z >= THRESHOLD else "", scale)
        return best


def detect(frames: Iterable[np.ndarray]) -> Detection:
    """The mark in one window of frames (or one picture)."""
    detector = Detector()
    for frame in frames:
        detector.add(frame)
    return detector.result()


def _score(surface: np.ndarray) -> tuple[float, list[int]]:
    """The sync peak's z-score against the shifts that carry neither it nor a payload bit, and the
    payload bits: the signs at the peak's payload offsets."""
    at = np.array(np.unravel_index(int(np.argmax(surface)), surface.shape))
    step = DETECT_PERIOD // (PERIOD // CELL)  # fold pixels per cell
    spots = [(at + step * np.array(o)) % DETECT_PERIOD for o in [(0, 0), *OFFSETS]]
    rest = np.ones(surface.shape, bool)
    for y, x in spots:
        rest[np.ix_((y + np.arange(-1, 2)) % DETECT_PERIOD, (x + np.arange(-1, 2)) % DETECT_PERIOD)] = False
    z = float((surface[tuple(at)] - surface[rest].mean()) / (surface[rest].std() + 1e-12))
    return z, [int(surface[y, x] > 0) for y, x in spots[1:]]


def _scaled(luma: np.ndarray, factor: float) -> np.ndarray:
    size = (max(DETECT_PERIOD, round(luma.shape[1] * factor)), max(DETECT_PERIOD, round(luma.shape[0] * factor)))
    small = cv2.resize(luma, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    detail = small - cv2.GaussianBlur(small, (0, 0), DETECT_PERIOD / 8)  # keep the cells, drop the picture
    # weigh by the local texture: edges and hair carry more picture than mark, flat skin more mark
    texture = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), DETECT_PERIOD / 8))
    return detail / (texture + 1.0)


def _fold(plane: np.ndarray) -> np.ndarray:
    p = DETECT_PERIOD
    h, w = (plane.shape[0] // p) * p, (plane.shape[1] // p) * p
    return plane[:h, :w].reshape(h // p, p, w // p, p).sum(axis=(0, 2))
