"""Blinks: the upper lid slides down over the eye, carrying its lashes and the skin above it.

In eye-aligned coordinates (u from corner to corner, v down) the lid edge at u drops by
`amount` × the eye's opening there. The lid skin between the crease and the lid edge stretches
down to the new edge (so it covers the eye, lashes leading); the crease and brow stay put, and
below the new edge the eye is untouched. One `cv2.remap` over the eye box per eye.
"""

from __future__ import annotations

import cv2
import numpy as np

from firmware_app.frames import Face
from firmware_app.render.rig import (
    LEFT_LOWER_LID,
    LEFT_UPPER_LID,
    RIGHT_LOWER_LID,
    RIGHT_UPPER_LID,
)

EYES = {  # control → (corner a, corner b, upper lid, lower lid)
    "eyeBlinkRight": (33, 133, RIGHT_UPPER_LID, RIGHT_LOWER_LID),
    "eyeBlinkLeft": (362, 263, LEFT_UPPER_LID, LEFT_LOWER_LID),
}
OVERSHOOT = 1.15  # a closed lid tucks a little past the lower lid's edge
LID_SKIN = 1.0  # the lid skin that stretches over the eye reaches this many openings above the lid edge


def blink(image: np.ndarray, face: Face, controls: dict[str, float]) -> np.ndarray:
    """`image` with each eye closed by its blink control (0 open as tracked … 1 shut); in place."""
    for control, (corner_a, corner_b, upper, lower) in EYES.items():
        amount = float(np.clip(controls.get(control, 0.0), 0.0, 1.0))
        if amount > 0.01:
            _close_lid(image, face.landmarks[:, :2].astype(np.float64), corner_a, corner_b, upper, lower, amount)
    return image


def _close_lid(
    image: np.ndarray, p: np.ndarray, corner_a: int, corner_b: int, upper: list[int], lower: list[int], amount: float
) -> None:
    origin = (p[corner_a] + p[corner_b]) / 2
    ex = p[corner_b] - p[corner_a]
    half_width = np.linalg.norm(ex) / 2
    ex /= 2 * half_width + 1e-9
    ey = np.array([-ex[1], ex[0]])

    def curve(indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        rel = np.concatenate([p[indices], p[[corner_a, corner_b]]]) - origin
        u, v = rel @ ex, rel @ ey
        order = np.argsort(u)
        return u[order], v[order]

    upper_u, upper_v = curve(upper)
    lower_u, lower_v = curve(lower)
    opening = float(np.max(np.interp(upper_u, lower_u, lower_v) - upper_v))
    if opening < 0.5:
        return
    reach = LID_SKIN * opening
    corners = [
        origin + su * half_width * 1.1 * ex + sv * ey
        for su in (-1, 1)
        for sv in (upper_v.min() - reach, lower_v.max() + OVERSHOOT * opening + 2)
    ]
    x0, y0 = np.maximum(np.floor(np.min(corners, axis=0)), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(np.max(corners, axis=0)), [image.shape[1], image.shape[0]]).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    u = (xs - origin[0]) * ex[0] + (ys - origin[1]) * ex[1]
    v = (xs - origin[0]) * ey[0] + (ys - origin[1]) * ey[1]
    lid = np.interp(u, upper_u, upper_v)
    gap = np.maximum(np.interp(u, lower_u, lower_v) - lid, 0.0)
    drop = OVERSHOOT * amount * gap
    top = lid.min() - LID_SKIN * opening  # a level line above the crease: the skin above stays put
    t = np.clip((v - top) / np.maximum(lid - top, 1.0), 0.0, 1.0)
    shift = np.where(v <= lid + drop, drop * t, 0.0)
    map_x = (xs - shift * ey[0]).astype(np.float32)
    map_y = (ys - shift * ey[1]).astype(np.float32)
    image[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
