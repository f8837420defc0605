"""Open or close the tracked face's mouth by warping the lower face, and paint the mouth interior.

Geometry lives in a mouth-aligned frame: u runs along the lips (left corner → right corner), v
points down the face, both in pixels, origin at the lip seam. The lower lip and jaw move down by
most of the change in opening, the upper lip up by the rest; both motions fade out toward the
nose, the jaw line and the neck, so the warped patch meets the untouched face without a seam.
One `cv2.remap` over the lower-face box does the whole warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from firmware_app.frames import Face

INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
CORNER_LEFT, CORNER_RIGHT = 61, 291
FOREHEAD, CHIN, NOSE_BASE = 10, 152, 2
JAW_LEFT, JAW_RIGHT = 172, 397

LOWER_SHARE = 0.75  # the jaw does most of the opening; the upper lip lifts a little
TEETH_COLOR = np.array([200, 210, 215], np.float32)  # B G R, in shadow


@dataclass(frozen=True)
class MouthGeometry:
    centre: np.ndarray  # lip seam centre, pixels
    ex: np.ndarray  # unit vector along the lips
    ey: np.ndarray  # unit vector down the face
    half_width: float  # inner lip corners
    outer_half_width: float
    jaw_half_width: float
    face_height: float
    nose_v: float  # < 0
    chin_v: float  # > 0
    lower_lip_thickness: float
    upper_u: np.ndarray  # inner upper lip, sorted by u
    upper_v: np.ndarray
    lower_u: np.ndarray
    lower_v: np.ndarray

    def current_opening(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """v of the inner upper and lower lip edges at each u."""
        upper = np.interp(u, self.upper_u, self.upper_v)
        lower = np.interp(u, self.lower_u, self.lower_v)
        return upper, np.maximum(lower, upper)


def measure_mouth(face: Face) -> MouthGeometry:
    p = face.landmarks[:, :2].astype(np.float64)
    centre = (p[13] + p[14]) / 2
    ex = p[CORNER_RIGHT] - p[CORNER_LEFT]
    ex /= np.linalg.norm(ex) + 1e-9
    ey = np.array([-ex[1], ex[0]])

    def uv(indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        rel = p[indices] - centre
        u, v = rel @ ex, rel @ ey
        order = np.argsort(u)
        return u[order], v[order]

    upper_u, upper_v = uv(INNER_UPPER)
    lower_u, lower_v = uv(INNER_LOWER)
    return MouthGeometry(
        centre=centre,
        ex=ex,
        ey=ey,
        half_width=float(np.linalg.norm(p[308] - p[78]) / 2),
        outer_half_width=float(np.linalg.norm(p[CORNER_RIGHT] - p[CORNER_LEFT]) / 2),
        jaw_half_width=float(np.linalg.norm(p[JAW_RIGHT] - p[JAW_LEFT]) / 2),
        face_height=float(np.linalg.norm(p[CHIN] - p[FOREHEAD])),
        nose_v=float((p[NOSE_BASE] - centre) @ ey),
        chin_v=float((p[CHIN] - centre) @ ey),
        lower_lip_thickness=float(max((p[17] - p[14]) @ ey, 2.0)),
        upper_u=upper_u,
        upper_v=upper_v,
        lower_u=lower_u,
        lower_v=lower_v,
    )


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def lip_profile(u: np.ndarray, half_width: float) -> np.ndarray:
    """How much of the centre opening each point along the lips gets: 1 in the middle, 0 at the corners."""
    return np.clip(1.0 - (u / half_width) ** 2, 0.0, 1.0) ** 0.8


def intended_gap(opening: np.ndarray | float, shown: np.ndarray) -> np.ndarray:
    """The lip gap drawn for a commanded `opening` where the face already shows a gap `shown` (its
    teeth, say): those stay, hanging from the upper lip, and the opening appears below them; a
    small opening lets the lips close part way over them, and 0 closes the lips."""
    return opening + shown * np.clip(opening / np.maximum(shown, 1.0), 0.0, 1.0)


def render_mouth(image: np.ndarray, face: Face, opening: float, interior_color: tuple[int, int, int]) -> np.ndarray:
    """Return a copy of `image` whose lips part by `opening` × face height at the centre (0 closes them)."""
    return draw_mouth(image.copy(), face, opening, interior_color)


def draw_mouth(image: np.ndarray, face: Face, opening: float, interior_color: tuple[int, int, int]) -> np.ndarray:
    """`render_mouth` in place; returns `image`."""
    g = measure_mouth(face)
    box = _warp_box(g, image.shape)
    if box is None:
        return image
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    rel_x, rel_y = xs - g.centre[0], ys - g.centre[1]
    u = rel_x * g.ex[0] + rel_y * g.ex[1]
    v = rel_x * g.ey[0] + rel_y * g.ey[1]

    upper, lower = g.current_opening(u)
    # a face that already shows its teeth keeps them, hanging from the upper lip, and the commanded
    # opening appears below them; in silence (opening 0) the lips still close over them
    shown = np.maximum(lower - upper, 0.0)
    target = intended_gap(opening * g.face_height * lip_profile(u, g.half_width), shown)
    delta = target - shown  # > 0 opens, < 0 closes
    new_upper = upper - (1 - LOWER_SHARE) * delta
    new_lower = lower + LOWER_SHARE * delta

    centre_upper, centre_lower = g.current_opening(np.zeros(1))
    centre_shown = np.maximum(centre_lower - centre_upper, 0.0)
    centre_delta = float((intended_gap(opening * g.face_height, centre_shown) - centre_shown)[0])
    above_seam = v < (new_upper + new_lower) / 2
    shift_v = np.where(
        above_seam,
        _upper_shift(g, v, new_upper, delta),
        _lower_shift(g, u, v, new_lower, delta, centre_delta),
    )
    # what the mouth already showed moves with the upper lip; only the space below it is painted
    keeps_own = (v >= new_upper) & (v < np.minimum(new_upper + shown, new_lower))
    shift_v = np.where(keeps_own, new_upper - upper, shift_v)
    map_x = (xs - shift_v * g.ey[0]).astype(np.float32)
    map_y = (ys - shift_v * g.ey[1]).astype(np.float32)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    inside = np.clip(np.minimum(v - new_upper - shown, new_lower - v) + 0.5, 0.0, 1.0) * (np.abs(u) < g.half_width)
    rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    if len(rows):
        lips = _lip_color(image, face)
        base = 0.5 * np.array(interior_color, np.float32) + 0.5 * 0.3 * lips  # lit like this face
        r, c = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)  # only the opening's box
        cavity = _cavity(u[r, c], v[r, c], new_upper[r, c], new_lower[r, c], g.half_width, base, lips, shown[r, c])
        alpha = inside[r, c, None].astype(np.float32)
        warped[r, c] = (warped[r, c] * (1 - alpha) + cavity * alpha).astype(np.uint8)
    image[y0:y1, x0:x1] = warped
    return image


def _upper_shift(g: MouthGeometry, v: np.ndarray, new_upper: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Upper lip moves up by its share of the change, fading to nothing at the nose."""
    span = np.maximum(new_upper - g.nose_v, 1.0)
    t = np.clip((v - g.nose_v) / span, 0.0, 1.0)
    fade = t * t * (3.0 - 2.0 * t)
    return -(1 - LOWER_SHARE) * delta * fade


def _lower_shift(
    g: MouthGeometry, u: np.ndarray, v: np.ndarray, new_lower: np.ndarray, delta: np.ndarray, centre_delta: float
) -> np.ndarray:
    """Lower lip follows the lip profile; deeper down the whole jaw moves, fading at the jaw line and neck."""
    depth = np.maximum(v - new_lower, 0.0)
    lip_weight = np.exp(-depth / g.lower_lip_thickness)
    jaw_lateral = 1.0 - _smoothstep(g.outer_half_width, g.jaw_half_width, np.abs(u))
    neck_fade = 1.0 - _smoothstep(g.chin_v, g.chin_v + 0.15 * g.face_height, v)
    shift = delta * lip_weight + centre_delta * jaw_lateral * (1.0 - lip_weight)
    return LOWER_SHARE * shift * neck_fade


def _lip_color(image: np.ndarray, face: Face) -> np.ndarray:
    """Median colour of the lips (B G R): the mouth's inside is shaded from it, so it matches the
    face's skin and light instead of being one fixed black."""
    p = face.landmarks[:, :2]
    samples = (p[OUTER_LOWER] * 0.5 + p[INNER_LOWER] * 0.5).round().astype(int)
    h, w = image.shape[:2]
    samples = samples[(samples[:, 0] >= 0) & (samples[:, 0] < w) & (samples[:, 1] >= 0) & (samples[:, 1] < h)]
    if len(samples) == 0:
        return np.array([90, 90, 150], np.float32)
    return np.median(image[samples[:, 1], samples[:, 0]].astype(np.float32), axis=0)


def _cavity(
    u: np.ndarray, v: np.ndarray, top: np.ndarray, bottom: np.ndarray, half_width: float, base: np.ndarray, lips: np.ndarray, shown: np.ndarray
) -> np.ndarray:
    """The mouth's inside: a cavity darkest at its centre and back, upper teeth under the top lip,
    the edge of the lower teeth and a tongue hint at the bottom when the mouth is open wide."""
    height = np.maximum(bottom - top, 1e-3)
    across = np.clip(np.abs(u) / half_width, 0.0, 1.0)
    down = np.clip((v - top) / height, 0.0, 1.0)
    depth = (1.0 - across**2) * np.sin(np.pi * down)  # 1 in the middle of the opening
    cavity = base * (1.1 - 0.6 * depth)[..., None]
    # tongue: a soft mound rising from the bottom, lit from the front, coloured like darker lips
    tongue_top = 1.0 - 0.35 * (1.0 - across**2)
    tongue = np.clip((down - tongue_top) * 8, 0.0, 1.0) * (height > 10) * (1.0 - across)
    cavity = cavity * (1 - 0.7 * tongue[..., None]) + (0.45 * lips) * (0.7 * tongue[..., None])
    brightness = float(np.clip(lips.mean() / 140.0, 0.6, 1.2))
    teeth_color = np.minimum(TEETH_COLOR * brightness, 245)
    upper_band = np.clip(height * 0.3, 0.0, 0.06 * half_width * 2)
    upper_teeth = ((v - top) < upper_band) & (across < 0.7) & (height > 4) & (shown < 2)  # else the real ones show
    lower_band = np.clip(height * 0.12, 0.0, 0.03 * half_width * 2)
    lower_teeth = ((bottom - v) < lower_band) & (across < 0.55) & (height > 14)
    teeth_alpha = (upper_teeth * (1.0 - across / 0.7) * 0.85 + lower_teeth * (1.0 - across / 0.55) * 0.5)[..., None]
    return cavity * (1 - teeth_alpha) + teeth_color * teeth_alpha


def _warp_box(g: MouthGeometry, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Axis-aligned pixel box that holds every point the warp may move."""
    half = g.jaw_half_width * 1.05
    corners = [
        g.centre + su * half * g.ex + sv * g.ey
        for su in (-1, 1)
        for sv in (g.nose_v, g.chin_v + 0.16 * g.face_height)
    ]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    height, width = shape[:2]
    x0, x1 = max(0, int(min(xs))), min(width, int(np.ceil(max(xs))) + 1)
    y0, y1 = max(0, int(min(ys))), min(height, int(np.ceil(max(ys))) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return x0, y0, x1, y1
