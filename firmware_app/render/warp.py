"""Move an image's landmarks from where they are to where the rig wants them, with one remap.

The displacement of each landmark is spread over the pixels around it by normalised Gaussian
splatting on a coarse grid (a smooth, local interpolation that costs two blurs), pinned
to zero on a ring around the face so the warp fades into the untouched picture. The map is
backward: each output pixel reads the input at its position minus the displacement found there.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_GRID = 3  # field resolution: one sample per `grid` pixels, at least this many
CELLS_PER_SIGMA = 1.5  # ... and this many samples across the narrow kernel: a face twice as big costs the same
# spread of one landmark's motion, in face heights (narrower leaves ripples between the lips and
# fixed cheek points)
SIGMA = 0.04
RING_POINTS = 48
REFINE_ROUNDS = 2
OVERRELAX = 1.7  # each round corrects 1.7x the remaining error: 2 rounds land as close as 4 plain ones
WIDE = 6.0  # the gap-filling kernel, in narrow sigmas


def warp_landmarks(image: np.ndarray, current: np.ndarray, target: np.ndarray, face_height: float) -> np.ndarray:
    """Move the points `current` (N x 2) of `image` to `target`, in place; returns `image`."""
    moving = np.abs(target - current).max(axis=1) > 0.05
    if not moving.any():
        return image
    # only the part of the face that moves is warped (the mouth, for a viseme): the box holds the
    # moving points and the fixed ring around them; fixed points inside it stay pinned
    box = _box(current[moving], target[moving], image.shape, face_height)
    if box is None:
        return image
    x0, y0, x1, y1 = box
    inside = np.all((current >= (x0, y0)) & (current < (x1, y1)), axis=1) | moving
    ring = _ring(current[moving], face_height)
    points = np.concatenate([target[inside], ring]) - (x0, y0)
    shifts = np.concatenate([(target - current)[inside], np.zeros_like(ring)])
    sigma = max(SIGMA * face_height, 1.5)
    grid = max(MIN_GRID, int(sigma / CELLS_PER_SIGMA))
    field = _splat(points, shifts, (y1 - y0, x1 - x0), sigma, grid)
    image[y0:y1, x0:x1] = remap_fixed(image, _backward_map(field, grid, x0, y0))[: y1 - y0, : x1 - x0]
    return image


def remap_fixed(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray | None = None) -> np.ndarray:
    """`cv2.remap` (bilinear, edges replicated) through fixed-point maps: OpenCV quantises float
    maps to 1/32 pixel anyway, and converting them first is cheaper than its own per-chunk way."""
    fixed, fraction = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return cv2.remap(image, fixed, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _backward_map(field: np.ndarray, grid: int, x0: int, y0: int) -> np.ndarray:
    """The (x, y) read positions of the box from (x0, y0) on, from the coarse field: the map is
    built on the grid and resized once (a pixel's own position is linear, so resizing it is
    exact), instead of resizing the field and subtracting it at every pixel. It covers whole
    cells, so it reaches up to one cell beyond the box."""
    gh, gw = field.shape[:2]
    # cv2.resize puts grid cell j at pixel grid·j + (grid − 1)/2 of the resized image
    centre = (grid - 1) / 2
    positions = -field
    positions[..., 0] += np.arange(gw, dtype=np.float32) * grid + np.float32(x0 + centre)
    positions[..., 1] += (np.arange(gh, dtype=np.float32) * grid + np.float32(y0 + centre))[:, None]
    full = cv2.resize(positions, (gw * grid, gh * grid), interpolation=cv2.INTER_LINEAR)
    # before the first cell's centre the resize holds its value: a pixel's own position goes on
    edge = np.arange(int(np.ceil(centre)), dtype=np.float32)
    full[:, : len(edge), 0] -= centre - edge
    full[: len(edge), :, 1] -= (centre - edge)[:, None]
    return full


def _splat(points: np.ndarray, shifts: np.ndarray, size: tuple[int, int], sigma: float, grid: int) -> np.ndarray:
    """Displacement field on the grid from scattered samples (pixels, box coordinates).

    Each sample goes to its four surrounding cells with bilinear weights and is read back the same
    way, so a coarse grid keeps the points where they are. Two kernels: a narrow one (`sigma`)
    keeps neighbouring features apart where landmarks are dense, a wide one fills the gaps between
    sparse points (halo, hair) smoothly instead of in nearest-point steps. Plain normalised
    splatting also averages a point's motion with its neighbours' (a lip corner moved 16 px lands
    7 px away), so a few over-relaxed rounds re-splat each sample's remaining error until the
    field passes near every one."""
    height, width = size
    gh, gw = -(-height // grid) + 1, -(-width // grid) + 1
    # cell j stands for pixel grid·j + (grid − 1)/2, where `_backward_map`'s resize puts it
    cells, weights = _bilinear((points - (grid - 1) / 2) / grid, gw, gh)
    narrow, wide = sigma / grid, WIDE * sigma / grid
    coarse = (max(gw // 4, 1), max(gh // 4, 1))

    def blur(values: np.ndarray) -> np.ndarray:
        # the wide kernel runs on a 4x coarser grid: same result for a smooth field, 16x less work
        smooth = cv2.GaussianBlur(cv2.resize(values, coarse, interpolation=cv2.INTER_AREA), (0, 0), wide / 4)
        return cv2.GaussianBlur(values, (0, 0), narrow) + cv2.resize(smooth, (gw, gh), interpolation=cv2.INTER_LINEAR)

    # both channels in one bincount: channel k of cell i is bin 2i + k
    bins, pair_weights = np.concatenate([2 * cells, 2 * cells + 1]), np.tile(weights, 2)
    weight = blur(np.bincount(cells, weights, minlength=gh * gw).reshape(gh, gw).astype(np.float32)) + 1e-6

    def spread(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(bins, pair_weights * np.tile(values.T, (1, 4)).ravel(), minlength=2 * gh * gw)
        return blur(sums.reshape(gh, gw, 2).astype(np.float32)) / weight[..., None]

    def at_samples(values: np.ndarray) -> np.ndarray:
        corners = values.reshape(-1, 2)[cells] * weights[:, None]
        return corners.reshape(4, -1, 2).sum(axis=0)

    field = spread(shifts)
    for _ in range(REFINE_ROUNDS):
        field += OVERRELAX * spread(shifts - at_samples(field))
    return field  # gh x gw x 2


def _bilinear(cells: np.ndarray, gw: int, gh: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (4N: the four corners, corner-major) and bilinear weights of points given
    in cell units."""
    cells = np.clip(cells, 0, [gw - 1.001, gh - 1.001])
    base = cells.astype(int)
    fx, fy = (cells - base).T
    x, y = base.T
    flat = np.concatenate([y * gw + x, y * gw + x + 1, (y + 1) * gw + x, (y + 1) * gw + x + 1])
    weights = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    return flat, weights


_ANGLES = np.linspace(0, 2 * np.pi, RING_POINTS, endpoint=False)
_CIRCLE = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)  # the ring's directions, made once


def _ring(points: np.ndarray, face_height: float) -> np.ndarray:
    """Fixed points on an ellipse just outside all the moving points: the warp's outer edge."""
    centre = points.mean(axis=0)
    span = np.abs(points - centre).max(axis=0) + 0.05 * face_height
    return np.concatenate([centre + _CIRCLE * span, centre + _CIRCLE * (span + 0.05 * face_height)])


def _box(
    current: np.ndarray, target: np.ndarray, shape: tuple[int, ...], face_height: float
) -> tuple[int, int, int, int] | None:
    both = np.concatenate([current, target])
    margin = 0.12 * face_height  # the fixed ring sits 0.05-0.1 beyond the points
    height, width = shape[:2]
    x0, y0 = np.maximum(np.floor(both.min(axis=0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(both.max(axis=0) + margin), [width, height]).astype(int)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return int(x0), int(y0), int(x1), int(y1)
