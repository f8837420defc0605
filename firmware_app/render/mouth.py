"""Open or close the tracked face's mouth as a jaw does, then fill the opening.

Geometry lives in a mouth-aligned frame: u runs along the lips (left corner → right corner), v
points down the face, both in pixels, origin at the lip seam. An opening is a jaw rotation: the
lower lip, the chin and the skin down to the jaw line move down together (the lip rigidly, so it
keeps its thickness and colour; the chin a little further, as a hinged jaw swings), the upper lip
stays with the skull (it lifts only a little), and the motion fades smoothly across the cheeks,
toward the jaw line and down the neck, so no ridge or seam shows and nothing moves outside the
lower face. Beside the mouth the field is continuous across the lip line: the cheek above the
corners stays, the skin below stretches with the jaw.

The opening itself is filled by a `MouthSource` (`render.interior`). A still photo that shows its
own upper teeth keeps them, hanging from the upper lip; anything else the picture's mouth showed
(a camera's own moving mouth, a photo's lower teeth or dark) is never shown: the lips are moved
from where they are to where the command wants them, and the space between is painted. Closing
seals the lips on their own texture (a pixel or two of each lip's inner edge is skipped, so a
photo's open mouth leaves no dark line). One `cv2.remap` over the lower-face box does the warp.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from firmware_app.frames import Face
from firmware_app.render.interior import Articulation, FaceLight, MouthSource, Opening, PhotoMouth
from firmware_app.render.rig import smoothstep
from firmware_app.render.warp import remap_fixed

INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
CHEEKS = [50, 280, 205, 425, 36, 266]
CORNER_LEFT, CORNER_RIGHT = 61, 291
FOREHEAD, CHIN, NOSE_BASE = 10, 152, 2
JAW_LEFT, JAW_RIGHT = 172, 397

UPPER_SHARE = 0.12  # the upper lip lifts this share of a change in opening; the jaw does the rest
SEAL = 0.008  # face heights of a photo's open lip edge skipped when lips move, so no dark line is left
SEAL_MOVING = (
    0.2,
    0.014,
)  # moving video skips this share of its own gap more (tracking lags fast lips), up to face heights
LIP_RIGID = 0.8  # share of the lower lip's thickness that moves rigidly with its inner edge
JAW_SWING = 0.15  # the chin moves this much further than the lower lip (the jaw is hinged at the ear)
JAW_REACH = (0.25, 1.2)  # × the jaw's half width: the jaw's motion fades out across the cheeks
NECK = 0.22  # face heights below the chin over which the jaw's motion dies out
CLOSE_BY_JAW = 0.6  # a photo's open mouth closes this much by the jaw, the rest by the lips
TEETH_MAX = 0.24  # the photo's own upper teeth kept: at most this × the mouth width
FIELD_STEP = 2  # the warp's smooth fields are computed on a grid this many pixels apart
DEFAULT_SOURCE = PhotoMouth()


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
    sides: tuple[float, float] = (1.0, 1.0)  # half_width / the inner corner's distance on each side
    jaw_sides: tuple[float, float] = (1.0, 1.0)  # jaw_half_width / the jaw point's distance on each side

    def symmetric(self, u: np.ndarray, sides: tuple[float, float] | None = None) -> np.ndarray:
        """u rescaled on each side so both corners sit at ± half_width: a face turned three
        quarters has a short far side, and the opening must end at its corner too."""
        left, right = sides or self.sides
        return u * np.where(u < 0, np.float32(left), np.float32(right))

    def current_opening(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """v of the inner upper and lower lip edges at each u."""
        upper = np.interp(u, self.upper_u, self.upper_v)
        lower = np.interp(u, self.lower_u, self.lower_v)
        return upper, np.maximum(lower, upper)

    def to_image(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.centre + u[..., None] * self.ex + v[..., None] * self.ey


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
    half_width = float(np.linalg.norm(p[308] - p[78]) / 2)
    jaw_half_width = float(np.linalg.norm(p[JAW_RIGHT] - p[JAW_LEFT]) / 2)

    def sides(a: int, b: int, half: float) -> tuple[float, float]:
        ends = sorted(float((p[i] - centre) @ ex) for i in (a, b))
        return half / max(-ends[0], 0.25 * half), half / max(ends[1], 0.25 * half)

    return MouthGeometry(
        centre=centre,
        ex=ex,
        ey=ey,
        half_width=half_width,
        outer_half_width=float(np.linalg.norm(p[CORNER_RIGHT] - p[CORNER_LEFT]) / 2),
        jaw_half_width=jaw_half_width,
        face_height=float(np.linalg.norm(p[CHIN] - p[FOREHEAD])),
        nose_v=float((p[NOSE_BASE] - centre) @ ey),
        chin_v=float((p[CHIN] - centre) @ ey),
        lower_lip_thickness=float(max((p[17] - p[14]) @ ey, 2.0)),
        upper_u=upper_u,
        upper_v=upper_v,
        lower_u=lower_u,
        lower_v=lower_v,
        sides=sides(78, 308, half_width),
        jaw_sides=sides(JAW_LEFT, JAW_RIGHT, jaw_half_width),
    )


def lip_profile(u: np.ndarray, half_width: float) -> np.ndarray:
    """How much of the centre opening each point along the lips gets: 1 in the middle, 0 at the corners."""
    return np.clip(1.0 - (u / half_width) ** 2, 0.0, 1.0) ** 0.8


def intended_gap(opening: np.ndarray | float, kept: np.ndarray) -> np.ndarray:
    """The lip gap drawn for a commanded `opening` where the photo's own upper teeth (`kept`
    pixels of them) stay: the opening appears below them; a small opening lets the lips close
    part way over them, and 0 closes the lips."""
    return opening + kept * np.clip(opening / np.maximum(kept, 1.0), 0.0, 1.0)


@dataclass(frozen=True)
class LipLines:
    """Per integer u across the warp box: where the lips are, and where they go."""

    u0: int  # u of the first entry
    upper: np.ndarray
    lower: np.ndarray
    new_upper: np.ndarray
    new_lower: np.ndarray
    kept: np.ndarray  # the photo's own teeth shown below the new upper lip, pixels
    upper_shift: np.ndarray  # new − source position of the upper lip's edge (source edge sealed)
    lower_shift: np.ndarray
    jaw: np.ndarray  # how far the jaw carries the skin at this u, far below the lip


def plan_lips(g: MouthGeometry, u: np.ndarray, opening: float, own_teeth: np.ndarray, moving: bool = False) -> LipLines:
    """Where each lip goes for a commanded centre `opening` (face heights). `moving`: the picture
    is video, whose lips may be a little away from where the (smoothed) landmarks say."""
    upper, lower = g.current_opening(u)
    shown = lower - upper
    target = intended_gap(opening * g.face_height * lip_profile(g.symmetric(u), g.half_width), own_teeth)
    delta = target - shown  # > 0 opens, < 0 closes
    new_upper = upper - UPPER_SHARE * delta
    new_lower = lower + (1 - UPPER_SHARE) * delta
    extra = np.minimum(SEAL_MOVING[0] * shown, SEAL_MOVING[1] * g.face_height) if moving else 0.0
    seal = np.minimum(SEAL * g.face_height + extra, 0.5 * shown)
    upper_shift = new_upper - (upper - seal)
    lower_shift = new_lower - (lower + seal)
    centre = int(np.argmin(np.abs(u)))
    # a camera's jaw follows the command wholly (its own chin would talk along otherwise); a
    # still's wide-open mouth closes partly by the lips, so its neck is not stretched as far
    jaw = lower_shift[centre] * (1.0 if lower_shift[centre] >= 0 or moving else CLOSE_BY_JAW)
    lateral = 1.0 - smoothstep(
        JAW_REACH[0] * g.jaw_half_width, JAW_REACH[1] * g.jaw_half_width, np.abs(g.symmetric(u, g.jaw_sides))
    )
    return LipLines(
        int(u[0]),
        upper,
        lower,
        new_upper,
        new_lower,
        np.minimum(own_teeth, target),
        upper_shift,
        lower_shift,
        jaw * lateral,
    )


def planned_gap(image: np.ndarray, face: Face, opening: float, own_teeth: bool = True) -> float:
    """The lip gap at the centre, in face heights, that `draw_mouth` draws for `opening`."""
    g = measure_mouth(face)
    us = np.array([-1.0, 0.0, 1.0])
    teeth = photo_teeth(image, face, face_light(image, face, (0, 0, 0))) if own_teeth else 0.0
    lines = plan_lips(g, us, opening, teeth_along(g, us, teeth))
    return float(lines.new_lower[1] - lines.new_upper[1]) / g.face_height


def render_mouth(
    image: np.ndarray, face: Face, opening: float, interior_color: tuple[int, int, int] = (24, 22, 52), **kwargs
) -> np.ndarray:
    """Return a copy of `image` whose lips part by `opening` × face height at the centre (0 closes them)."""
    return draw_mouth(image.copy(), face, opening, interior_color, **kwargs)


def draw_mouth(
    image: np.ndarray,
    face: Face,
    opening: float,
    interior_color: tuple[int, int, int] = (24, 22, 52),
    articulation: Articulation = Articulation(),
    own_teeth: bool = True,
    source: MouthSource = DEFAULT_SOURCE,
    facts: PhotoFacts | None = None,
) -> np.ndarray:
    """`render_mouth` in place; returns `image`. `own_teeth`: keep the upper teeth the picture shows
    (a still photo); off for moving video, whose own mouth moves with someone else's speech.
    `facts`: the picture's light and teeth when the caller already read them (see `photo_facts`)."""
    g = measure_mouth(face)
    reach = g.jaw_half_width / min(g.jaw_sides) * JAW_REACH[1]  # the jaw's motion ends here on the longer side
    us = np.arange(-np.ceil(reach) - 2, np.ceil(reach) + 3)
    facts = facts or photo_facts(image, face, interior_color, own_teeth)
    light = facts.light
    lines = plan_lips(g, us, opening, teeth_along(g, us, facts.teeth), moving=not own_teeth)
    box = _warp_box(g, reach, max(float(lines.jaw.max()), 0.0) * (1 + JAW_SWING), image.shape)
    if box is None:
        return image
    x0, y0, x1, y1 = box

    # the smooth parts of the motion on a grid FIELD_STEP times coarser, then one resize; the
    # choice between them (the lip seam, a sharp edge) is made per pixel, in the rows the lips cross
    u_c, v_c = _mouth_coords(g, x0, y0, x1, y1, FIELD_STEP)
    fields = cv2.resize(_fields(g, lines, u_c, v_c), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    shift_v = np.empty((y1 - y0, x1 - x0), np.float32)
    b0, b1 = _seam_rows(g, lines, y0, y1)
    shift_v[:b0] = fields[:b0, :, 0]
    shift_v[b1:] = fields[b1:, :, 2]
    u, v = _mouth_coords(g, x0, y0 + b0, x1, y0 + b1, 1)
    position = np.clip(u - np.float32(lines.u0), 0, len(us) - 1.001)
    at, frac = position.astype(np.intp), position % np.float32(1.0)

    def along(values: np.ndarray) -> np.ndarray:  # linear between whole u: a smooth edge on a tilted mouth
        values = values.astype(np.float32)
        return values[at] * (1 - frac) + values[at + 1] * frac

    new_upper, new_lower = along(lines.new_upper), along(lines.new_lower)
    teeth_end = new_upper + along(lines.kept)
    band = fields[b0:b1]
    shift_v[b0:b1] = band[..., 2]
    warped = _remap_v(image, g, x0, y0, shift_v)
    # in the rows the lips cross, the upper and the lower face are drawn apart and joined along
    # the seam with a one-pixel ramp (a hard per-pixel choice would leave a jagged lip line)
    upper_side = np.clip((teeth_end + new_lower) * 0.5 - v + 0.5, 0.0, 1.0)[..., None]
    upper_band = _remap_v(image, g, x0, y0 + b0, np.where(v < new_upper, band[..., 0], band[..., 1]))
    warped[b0:b1] = (upper_band * upper_side + warped[b0:b1] * (1.0 - upper_side) + 0.5).astype(np.uint8)

    hole_box = _opening_box(g, lines, x0, y0 + b0, x1, y0 + b1)
    if hole_box is not None:
        r, c = hole_box
        across = g.symmetric(u[r, c])
        inside = np.clip(np.minimum(v[r, c] - teeth_end[r, c], new_lower[r, c] - v[r, c]) + 0.5, 0.0, 1.0)
        inside *= np.clip(g.half_width - np.abs(across) + 0.5, 0.0, 1.0)
        hole = Opening(across, v[r, c], new_upper[r, c], teeth_end[r, c], new_lower[r, c], g.half_width, opening)
        pixels = source.paint(hole, light, articulation)
        alpha = inside[..., None]
        rows = slice(r.start + b0, r.stop + b0)
        warped[rows, c] = np.clip(warped[rows, c] * (1 - alpha) + pixels * alpha + 0.5, 0, 255).astype(np.uint8)
    image[y0:y1, x0:x1] = warped
    return image


def _remap_v(image: np.ndarray, g: MouthGeometry, x0: int, y0: int, shift_v: np.ndarray) -> np.ndarray:
    """The box at (x0, y0) of `image`, each pixel read `shift_v` pixels up the face (backward map)."""
    h, w = shift_v.shape
    map_x = np.arange(x0, x0 + w, dtype=np.float32)[None, :] - shift_v * np.float32(g.ey[0])
    map_y = np.arange(y0, y0 + h, dtype=np.float32)[:, None] - shift_v * np.float32(g.ey[1])
    return remap_fixed(image, map_x, map_y)


def _seam_rows(g: MouthGeometry, lines: LipLines, y0: int, y1: int) -> tuple[int, int]:
    """Box rows [b0, b1) the lips cross: above them only the upper lip's motion applies, below
    them only the jaw's (beside the mouth both are nil at the lip line, so the choice is free)."""
    us = np.arange(len(lines.upper), dtype=np.float64) + lines.u0
    us = us[np.abs(g.symmetric(us)) <= g.half_width + 2]
    at = (us - lines.u0).astype(int)
    ys = np.concatenate([g.to_image(us, lines.new_upper[at])[:, 1], g.to_image(us, lines.new_lower[at])[:, 1]])
    b0 = int(np.clip(np.floor(ys.min()) - 2 - y0, 0, y1 - y0))
    b1 = int(np.clip(np.ceil(ys.max()) + 3 - y0, b0, y1 - y0))
    return b0, b1


@dataclass(frozen=True)
class PhotoFacts:
    """What the renderer reads from the picture itself, not from the command: the face's light and
    the photo's own upper teeth (face heights below the upper lip in the middle; 0 for none)."""

    light: FaceLight
    teeth: float


_facts_cache: OrderedDict[tuple, PhotoFacts] = OrderedDict()  # the latest few pictures, least recently used first
FACTS_KEPT = 8


def photo_facts(
    image: np.ndarray, face: Face, interior_color: tuple[int, int, int], own_teeth: bool = True
) -> PhotoFacts:
    """`face_light` and `photo_teeth` of the tracked face, read once per picture: a still is the
    same face every frame, and the rig's warp (head motion, lip rounding) moves its pixels with
    its landmarks, so they are read on the tracked face before any warp. Keyed on the landmarks
    and the mouth's pixels, so a new camera frame is read again."""
    g = measure_mouth(face)
    x, y = np.rint(g.centre).astype(int)
    half = max(int(0.5 * g.outer_half_width), 2)
    patch = image[max(y - half, 0) : y + half, max(x - 2 * half, 0) : x + 2 * half]
    key = (hash(face.landmarks.tobytes()), hash(patch.tobytes()), image.shape, tuple(interior_color), own_teeth)
    if key in _facts_cache:
        _facts_cache.move_to_end(key)
        return _facts_cache[key]
    light = face_light(image, face, interior_color)
    facts = _facts_cache[key] = PhotoFacts(light, photo_teeth(image, face, light) if own_teeth else 0.0)
    if len(_facts_cache) > FACTS_KEPT:
        _facts_cache.popitem(last=False)
    return facts


def _mouth_coords(g: MouthGeometry, x0: int, y0: int, x1: int, y1: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the box's pixels, or of a grid `step` times coarser placed where cv2.resize
    samples it (coarse cell j stands at pixel step·j + (step − 1)/2)."""
    offset = (step - 1) / 2
    xs = np.arange(x0 + offset, x1 + step, step, dtype=np.float32)[: -(-(x1 - x0) // step)] - np.float32(g.centre[0])
    ys = np.arange(y0 + offset, y1 + step, step, dtype=np.float32)[: -(-(y1 - y0) // step)] - np.float32(g.centre[1])
    ex, ey = g.ex.astype(np.float32), g.ey.astype(np.float32)
    u = xs[None, :] * ex[0] + ys[:, None] * ex[1]
    v = xs[None, :] * ey[0] + ys[:, None] * ey[1]
    return u, v


def _fields(g: MouthGeometry, lines: LipLines, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H x W x 3: the upper lip's shift (fading up to the nose), the kept teeth's (rigid with the
    upper lip) and the jaw's, each defined everywhere so each resizes smoothly."""
    at = np.clip(np.rint(u - lines.u0).astype(np.intp), 0, len(lines.upper) - 1)

    def per_u(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float32)[at]

    new_upper = per_u(lines.new_upper)
    upper = per_u(lines.upper_shift) * smoothstep(np.float32(g.nose_v), np.minimum(new_upper, -1.0), v)
    own = per_u(lines.new_upper - lines.upper)
    centre_jaw = float(lines.jaw[int(np.argmin(np.abs(np.arange(len(lines.jaw)) + lines.u0)))])
    lower = _jaw_shift(g, u, v, per_u(lines.new_lower), per_u(lines.lower_shift), per_u(lines.jaw), centre_jaw)
    return np.stack([upper, own, lower], axis=-1).astype(np.float32)


def _opening_box(g: MouthGeometry, lines: LipLines, x0: int, y0: int, x1: int, y1: int) -> tuple[slice, slice] | None:
    """Rows and columns of the warp box that the opening between the lips can touch."""
    us = np.arange(len(lines.upper), dtype=np.float64) + lines.u0
    open_ = (lines.new_lower - lines.new_upper - lines.kept > 0.05) & (np.abs(g.symmetric(us)) < g.half_width + 1)
    if not open_.any():
        return None
    u = us[open_]
    edges = np.concatenate([g.to_image(u, lines.new_upper[open_]), g.to_image(u, lines.new_lower[open_])])
    (ex0, ey0), (ex1, ey1) = np.floor(edges.min(axis=0)) - 2, np.ceil(edges.max(axis=0)) + 3
    c0, c1 = int(max(ex0, x0)) - x0, int(min(ex1, x1)) - x0
    r0, r1 = int(max(ey0, y0)) - y0, int(min(ey1, y1)) - y0
    if c1 <= c0 or r1 <= r0:
        return None
    return slice(r0, r1), slice(c0, c1)


def _jaw_shift(
    g: MouthGeometry,
    u: np.ndarray,
    v: np.ndarray,
    new_lower: np.ndarray,
    lip: np.ndarray,
    jaw: np.ndarray,
    jaw_centre: float,
) -> np.ndarray:
    """Below the lip line: the lower lip moves rigidly with its edge, the skin below it goes over to
    the jaw's motion (a little more toward the chin), all fading out down the neck."""
    thickness = np.float32(g.lower_lip_thickness)
    depth = v - new_lower
    # under the lips' middle the skin goes over to the jaw within a lip's thickness; toward the
    # corners (which stay) it stretches over the whole way down to the chin, so the cheek's
    # texture is drawn out gently instead of in a crease
    span = (
        1.5 * thickness
        + np.float32(0.05 * g.face_height)
        + np.float32(0.8 * g.chin_v) * smoothstep(0.2 * g.half_width, 1.2 * g.half_width, np.abs(g.symmetric(u)))
    )
    to_jaw = smoothstep(LIP_RIGID * thickness, LIP_RIGID * thickness + span, depth)
    swing = 1.0 + JAW_SWING * np.clip(depth / np.float32(max(g.chin_v, 1.0)), 0.0, 1.0)
    chin_now = np.float32(g.chin_v + jaw_centre * (1 + JAW_SWING))
    neck = 1.0 - smoothstep(chin_now, chin_now + np.float32(NECK * g.face_height), v)
    return (lip + (jaw * swing - lip) * to_jaw) * neck


def teeth_along(g: MouthGeometry, us: np.ndarray, teeth: float) -> np.ndarray:
    """Pixels of the photo's own upper teeth kept below the upper lip at each u: one smooth row,
    `teeth` face heights in the middle, shorter along the arch, never more than the gap shows."""
    if teeth <= 0.0:
        return np.zeros_like(us)
    upper, lower = g.current_opening(us)
    across = g.symmetric(us)
    arch = np.clip(1.0 - (across / (0.9 * g.half_width)) ** 2, 0.0, 1.0) ** 0.3
    return np.minimum(teeth * g.face_height * arch, lower - upper)


def photo_teeth(image: np.ndarray, face: Face, light: FaceLight, samples: int = 16) -> float:
    """Face heights of the photo's own upper teeth below the upper lip in the middle (0 where none show).

    Down each column of the photo's lip gap, the run of bright, unsaturated pixels that starts
    at the upper lip; only kept where the middle of the mouth shows them."""
    g = measure_mouth(face)
    reach = np.ceil(g.half_width / min(g.sides)) + 1
    us = np.arange(-reach, reach + 1)  # whole u across the inner mouth
    upper, lower = g.current_opening(us)
    shown = lower - upper
    across = g.symmetric(us)
    inside = np.abs(across) < g.half_width * 0.9
    if shown[inside].size == 0 or np.median(shown[inside]) < 2.0:
        return 0.0
    steps = (np.arange(samples) + 0.5) / samples
    points = g.to_image(np.repeat(us[:, None], samples, 1), upper[:, None] + shown[:, None] * steps)
    h, w = image.shape[:2]
    px = np.clip(np.rint(points).astype(int), 0, [w - 1, h - 1])
    colour = image[px[..., 1], px[..., 0]].astype(np.float32)
    brightness, spread = colour.mean(axis=-1), colour.max(axis=-1) - colour.min(axis=-1)
    toothlike = (brightness > 0.8 * light.skin.mean()) & (brightness > 70) & (spread < 0.45 * brightness)
    toothlike[:, : max(samples // 4, 1)] |= True  # the lip's own soft edge may lead the teeth
    run = np.cumprod(toothlike, axis=1).sum(axis=1) / samples
    middle = np.abs(across) < 0.4 * g.half_width
    if not middle.any() or np.mean(run[middle] > 0.3) < 0.6:
        return 0.0
    # one row of teeth (`teeth_along`), not a ragged run per column: as long as the middle shows them
    return min(float(np.median(run[middle] * shown[middle])), TEETH_MAX * 2 * g.half_width) / g.face_height


def face_light(image: np.ndarray, face: Face, interior_color: tuple[int, int, int]) -> FaceLight:
    """This face's lip and skin colours and fine texture, sampled from the picture."""
    p = face.landmarks[:, :2]
    lips = _median_colour(image, p[OUTER_LOWER] * 0.5 + p[INNER_LOWER] * 0.5, np.array([90, 90, 150], np.float32))
    skin = _median_colour(image, p[CHEEKS], lips * 1.3)
    height = float(np.linalg.norm(p[CHIN] - p[FOREHEAD]))
    return FaceLight(
        lips, skin, np.asarray(interior_color, np.float32), _grain(image, p[CHEEKS], max(int(0.03 * height), 3))
    )


def _median_colour(image: np.ndarray, points: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    px = np.rint(points).astype(int)
    px = px[(px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)]
    if len(px) == 0:
        return fallback
    return np.median(image[px[:, 1], px[:, 0]].astype(np.float32), axis=0)


def _grain(image: np.ndarray, points: np.ndarray, half: int) -> float:
    """The picture's fine texture on the cheeks (std of what a small blur removes): painted pixels
    get as much, so they are as sharp and as noisy as the skin beside them."""
    values = []
    h, w = image.shape[:2]
    for x, y in np.rint(points).astype(int):
        if half <= x < w - half and half <= y < h - half:
            patch = cv2.cvtColor(image[y - half : y + half, x - half : x + half], cv2.COLOR_BGR2GRAY).astype(np.float32)
            values.append(float(np.std(patch - cv2.GaussianBlur(patch, (0, 0), 1.0))))
    return float(np.clip(np.median(values), 0.0, 5.0)) if values else 0.0


def _warp_box(g: MouthGeometry, half: float, drop: float, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Axis-aligned pixel box that holds every point the warp may move: `half` along the lips,
    from the nose to the neck below the chin's `drop` (pixels)."""
    bottom = g.chin_v + drop + NECK * g.face_height + 2
    corners = [g.centre + su * half * g.ex + sv * g.ey for su in (-1, 1) for sv in (g.nose_v, bottom)]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    height, width = shape[:2]
    x0, x1 = max(0, int(min(xs))), min(width, int(np.ceil(max(xs))) + 1)
    y0, y1 = max(0, int(min(ys))), min(height, int(np.ceil(max(ys))) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return x0, y0, x1, y1
