"""Move an image's landmarks from where they are to where the rig wants them, with one remap.

The displacement of each landmark is spread over the pixels around it by normalised Gaussian
splatting on a half-resolution grid (a smooth, local interpolation that costs two blurs), pinned
to zero on a ring around the face so the warp fades into the untouched picture. The map is
backward: each output pixel reads the input at its position minus the displacement found there.
"""

from __future__ import annotations

import cv2
import numpy as np

GRID = 3  # field resolution: one sample per GRID pixels
SIGMA = 0.04  # spread of one landmark's motion, in face heights (narrower leaves ripples between the lips and fixed cheek points)
RING_POINTS = 48
REFINE_ROUNDS = 4
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
    field = _splat(points, shifts, (y1 - y0, x1 - x0), max(SIGMA * face_height, 1.5))
    image[y0:y1, x0:x1] = remap_fixed(image, _backward_map(field, x0, y0, x1, y1))
    return image


def remap_fixed(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray | None = None) -> np.ndarray:
    """`cv2.remap` (bilinear, edges replicated) through fixed-point maps: OpenCV quantises float
    maps to 1/32 pixel anyway, and converting them first is cheaper than its own per-chunk way."""
    fixed, fraction = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return cv2.remap(image, fixed, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _backward_map(field: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The box's (x, y) read positions from the coarse field: the map is built on the grid and
    resized once (a pixel's own position is linear, so resizing it is exact), instead of resizing
    the field and subtracting it at every pixel."""
    gh, gw = field.shape[:2]
    # cv2.resize puts grid cell j at pixel GRID·j + (GRID − 1)/2 of the resized image
    xs = np.arange(gw, dtype=np.float32) * GRID + np.float32(x0 + (GRID - 1) / 2)
    ys = np.arange(gh, dtype=np.float32) * GRID + np.float32(y0 + (GRID - 1) / 2)
    grid = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), axis=-1) - field
    full = np.ascontiguousarray(cv2.resize(grid, (gw * GRID, gh * GRID), interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0])
    # before the first cell's centre the resize holds its value: a pixel's own position goes on
    edge = np.arange(int(np.ceil((GRID - 1) / 2)), dtype=np.float32)
    full[:, : len(edge), 0] -= (GRID - 1) / 2 - edge
    full[: len(edge), :, 1] -= ((GRID - 1) / 2 - edge)[:, None]
    return full


def _splat(points: np.ndarray, shifts: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Displacement field on the GRID from scattered samples (pixels, box coordinates).

    Two kernels: a narrow one (`sigma`) keeps neighbouring features apart where landmarks are
    dense, a wide one fills the gaps between sparse points (halo, hair) smoothly instead of in
    nearest-point steps. Plain normalised splatting also averages a point's motion with its
    neighbours' (a lip corner moved 16 px lands 7 px away), so a few rounds re-splat each
    sample's remaining error until the field passes near every one."""
    height, width = size
    gh, gw = -(-height // GRID) + 1, -(-width // GRID) + 1
    cells = np.clip(np.round(points / GRID).astype(int), 0, [gw - 1, gh - 1])
    flat = cells[:, 1] * gw + cells[:, 0]
    narrow, wide = sigma / GRID, WIDE * sigma / GRID

    coarse = (max(gw // 4, 1), max(gh // 4, 1))

    def blur(grid: np.ndarray) -> np.ndarray:
        # the wide kernel runs on a 4x coarser grid: same result for a smooth field, 16x less work
        smooth = cv2.GaussianBlur(cv2.resize(grid, coarse, interpolation=cv2.INTER_AREA), (0, 0), wide / 4)
        return cv2.GaussianBlur(grid, (0, 0), narrow) + cv2.resize(smooth, (gw, gh), interpolation=cv2.INTER_LINEAR)

    weight = blur(np.bincount(flat, minlength=gh * gw).astype(np.float32).reshape(gh, gw)) + 1e-6

    def spread(values: np.ndarray) -> np.ndarray:
        sums = np.stack([np.bincount(flat, values[:, k], minlength=gh * gw).reshape(gh, gw) for k in (0, 1)], axis=-1)
        return blur(sums.astype(np.float32)) / weight[..., None]

    field = spread(shifts)
    for _ in range(REFINE_ROUNDS):
        residual = shifts - field.reshape(-1, 2)[flat]
        field += spread(residual)
    return field  # gh x gw x 2, cell j at pixel GRID·j (see `_backward_map`)


def _ring(points: np.ndarray, face_height: float) -> np.ndarray:
    """Fixed points on an ellipse just outside all the moving points: the warp's outer edge."""
    centre = points.mean(axis=0)
    span = np.abs(points - centre).max(axis=0) + 0.05 * face_height
    angles = np.linspace(0, 2 * np.pi, RING_POINTS, endpoint=False)
    ring = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * span
    inner = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * (span + 0.05 * face_height)
    return np.concatenate([ring, inner])


def _box(current: np.ndarray, target: np.ndarray, shape: tuple[int, ...], face_height: float) -> tuple[int, int, int, int] | None:
    both = np.concatenate([current, target])
    margin = 0.12 * face_height  # the fixed ring sits 0.05-0.1 beyond the points
    height, width = shape[:2]
    x0, y0 = np.maximum(np.floor(both.min(axis=0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(both.max(axis=0) + margin), [width, height]).astype(int)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return int(x0), int(y0), int(x1), int(y1)
