"""The one path from banked real mouth images to the opening: `BankMouth`, a `MouthSource` that
looks up a bank's exemplars by the commanded shape, warps them to the current lips and matches
their colour. A face pack's bank (`render.bank`), the donor library (`render.donors`) and the
live mirror bank all paint through it.

- the exemplars nearest the commanded shape (mouth blendshapes plus the opening's own gap
  profile) get weights, smoothed over time so the texture never jumps from one to the next;
- each is warped to the current lips: a point just below the upper lip reads the exemplar just
  below its upper lip (upper teeth rigid with the skull), one just above the lower lip reads just
  above the exemplar's lower lip (lower teeth with the jaw), the middle stretches between;
- colour-matched to the face's lips as they are lit now, then blended by the compositor
  (`render.mouth`).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from firmware_app.face.pack import (
    EDGE_S,
    GAP_S,
    MOUTH_BLENDSHAPES,
    PATCH_U,
    PATCH_V,
    Bank,
    FacePack,
    descriptor,
    exemplar_coords,
    patch_pixels,
)
from firmware_app.frames import Face
from firmware_app.render.interior import Articulation, FaceLight, Opening
from firmware_app.render.mouth import measure_mouth

NEAREST = 2  # exemplars blended per frame
SMOOTHING = 0.6  # share of the new lookup's weights taken each frame (the rest: the previous frame's)
COLOUR_GAIN = (0.75, 1.35)  # the colour match never scales a channel beyond these
# How much each viseme shows the teeth (0 none, 1 fully): with the mouth model's visemes in the
# command, exemplars showing about that much are preferred (an "E" bares them, an "oh" hides them).
VISEME_TEETH = {
    "sil": 0.0, "PP": 0.0, "FF": 0.8, "TH": 0.8, "DD": 0.7, "kk": 0.6, "CH": 0.9, "SS": 1.0,
    "nn": 0.6, "RR": 0.4, "aa": 0.7, "E": 1.0, "ih": 1.0, "oh": 0.3, "ou": 0.1,
}  # fmt: skip
TEETH_WEIGHT = 4.0  # a full mismatch in teeth makes an exemplar count as (1 + this) times as far
MODEL_BLENDSHAPES = 0.1  # what a mouth model's blendshapes count in the lookup, against the drawn opening's 1


# --- a frame's mouth as an exemplar (enrollment and the live bank take them the same way) ---


def mouth_grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in face heights of every pixel of a stored patch (pixel i stands at coordinate i)."""
    width = int(round(2 * PATCH_U * resolution))
    height = int(round((PATCH_V[1] - PATCH_V[0]) * resolution))
    u = np.arange(width, dtype=np.float32) / resolution - PATCH_U
    v = np.arange(height, dtype=np.float32) / resolution + PATCH_V[0]
    return np.meshgrid(u, v)


def normalise_mouth(
    image: np.ndarray, face: Face, resolution: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(patch, upper, lower, half width): the mouth region resampled in its own frame (rotation and
    scale taken out), its inner lip edges at `EDGE_S` and inner half width, in face heights."""
    g = measure_mouth(face)
    fh = g.face_height
    u, v = mouth_grid(resolution)
    xy = g.centre + (u[..., None] * g.ex + v[..., None] * g.ey) * fh
    patch = cv2.remap(
        image,
        xy[..., 0].astype(np.float32),
        xy[..., 1].astype(np.float32),
        cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    across = EDGE_S * g.half_width
    upper = np.interp(across, g.upper_u, g.upper_v) / fh
    lower = np.maximum(np.interp(across, g.lower_u, g.lower_v) / fh, upper)
    return patch, upper.astype(np.float32), lower.astype(np.float32), g.half_width / fh


def describe(face: Face, upper: np.ndarray, lower: np.ndarray, half_width: float) -> np.ndarray:
    gaps = np.interp(np.array(GAP_S), EDGE_S, lower - upper)
    return descriptor(face.blendshapes, gaps, half_width)


def teeth_share(
    patch: np.ndarray, upper: np.ndarray, lower: np.ndarray, half_width: float, resolution: float, lips: np.ndarray
) -> float:
    """Share of the opening's middle whose pixels look like teeth: brighter than the lips and
    much less red than them (teeth are off-white or yellowish; tongue and cavity are red or dark)."""
    u, v = mouth_grid(resolution)
    s = u / half_width
    inside = (
        (np.abs(s) < 0.6)
        & (v > np.interp(s, EDGE_S, upper) + 0.5 / resolution)
        & (v < np.interp(s, EDGE_S, lower) - 0.5 / resolution)
    )
    if inside.sum() < 4:
        return 0.0
    colour = patch[inside].astype(np.float32)
    brightness = colour.mean(axis=1)
    warmth = (colour[:, 2] - colour[:, 0]) / np.maximum(brightness, 1.0)
    lip_brightness = float(lips.mean())
    lip_warmth = float(lips[2] - lips[0]) / max(lip_brightness, 1.0)
    return float(((brightness > 1.1 * lip_brightness) & (warmth < 0.75 * lip_warmth)).mean())


class BankMouth:
    """`MouthSource` painting the opening from a bank of mouth exemplars (see the module's docstring)."""

    def __init__(self, bank: Bank, pack: FacePack | None = None) -> None:
        self.pack = pack  # the console's status names whose likeness this is (None: not a face pack's)
        self._bank = bank
        self._keys = self._bank.keys / self._bank.scale
        # a command beyond what the clip ever showed is matched as the nearest shape it did show:
        # unclipped, a dimension the clip hardly moves (its spread tiny) outweighs all the others
        self._low, self._high = self._keys.min(axis=0), self._keys.max(axis=0)
        self._weights = np.zeros(len(self._bank.keys), np.float32)
        self._command: dict[str, float] = {}
        self._face_height = 1.0
        self.chosen: np.ndarray = np.zeros(0, np.intp)  # the exemplars of the last paint, for reports
        self.painted = 0  # frames whose opening the bank painted, for reports

    def command(self, face: Face | None, weights: dict[str, float]) -> None:
        """The shape wanted for the next frame and the face it is drawn on (its height sets the scale)."""
        self._command = weights
        if face is not None:
            self._face_height = face.chin_to_forehead

    def reset(self) -> None:
        self._weights[:] = 0.0

    def recolour(self, textures: np.ndarray, lips: np.ndarray) -> None:
        """Paint from these textures (the bank's own, colour-matched to another face whose lips are `lips`)."""
        self._bank = replace(self._bank, textures=textures, lips=np.asarray(lips, np.float32))

    def paint(self, opening: Opening, light: FaceLight, articulation: Articulation) -> np.ndarray:
        o, fh = opening, self._face_height
        s = np.clip(o.u / max(o.half_width, 1.0), -1.05, 1.05)
        chosen, share = self._lookup(self._query(o, s))
        self.painted += 1
        d_top = np.maximum(o.v - o.lip_top, 0.0) / fh
        d_bot = np.maximum(o.bottom - o.v, 0.0) / fh
        out = np.zeros((*o.u.shape, 3), np.float32)
        for k, w in zip(chosen, share):
            u, v = exemplar_coords(
                s, d_top, d_bot, self._bank.upper[k], self._bank.lower[k], float(self._bank.half_width[k])
            )
            px, py = patch_pixels(u, v, self._bank.resolution)
            out += w * cv2.remap(
                self._bank.textures[k], px, py, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
            ).astype(np.float32)
        gain = np.clip(light.lips / np.maximum(self._bank.lips, 1.0), *COLOUR_GAIN).astype(np.float32)
        return out * gain

    def _query(self, o: Opening, s: np.ndarray) -> np.ndarray:
        """This frame's shape: the command's blendshapes and the gap the compositor opened."""
        gap = o.bottom - o.lip_top
        gaps = []
        for target in GAP_S:
            near = np.abs(s - target) < 0.08
            gaps.append(float(gap[near].max()) / self._face_height if near.any() else 0.0)
        return descriptor(self._command, np.array(gaps), o.half_width / self._face_height) / self._bank.scale

    def _wanted_teeth(self) -> float | None:
        """How much the command's visemes show the teeth, or None without visemes."""
        weights = {name: float(self._command.get(f"viseme_{name}", 0.0)) for name in VISEME_TEETH}
        total = sum(weights.values())
        return sum(w * VISEME_TEETH[name] for name, w in weights.items()) / total if total > 0.1 else None

    def query(self, opening: Opening) -> np.ndarray:
        """The descriptor of what is asked for now (the command and the opening), scaled as the keys."""
        return self._query(opening, np.clip(opening.u / max(opening.half_width, 1.0), -1.05, 1.05))

    def distances(self, query: np.ndarray, within_range: bool = True) -> np.ndarray:
        """Every exemplar's squared distance to `query` (see `_lookup`); `within_range`: the query
        first clipped to the shapes the bank shows (off: how far the bank is from it, to compare banks)."""
        squared = (self._keys - (np.clip(query, self._low, self._high) if within_range else query)) ** 2
        wanted = self._wanted_teeth()
        if wanted is None:  # a tracked face's own blendshapes (mirror, self-reenactment): all count
            d2 = squared.sum(axis=1)
        else:
            # a mouth model's command: its blendshapes are learned on other faces (their habits sit
            # tens of spreads from any of this person's), so the opening the compositor draws and the
            # visemes' teeth choose; the teeth as a factor (an added term of a few units drowned)
            blend = len(MOUTH_BLENDSHAPES)
            d2 = MODEL_BLENDSHAPES * squared[:, :blend].sum(axis=1) + squared[:, blend:].sum(axis=1)
            d2 = d2 * (1.0 + TEETH_WEIGHT * (self._bank.teeth - wanted) ** 2)
        return d2

    def _lookup(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `NEAREST` exemplars and their shares, the weights smoothed over frames."""
        d2 = self.distances(query)
        near = np.argsort(d2)[:NEAREST]
        fresh = np.zeros_like(self._weights)
        fresh[near] = np.exp(-(d2[near] - d2[near[0]]) / max(float(d2[near[0]]), 0.25))
        fresh /= fresh.sum()
        self._weights = fresh if not self._weights.any() else SMOOTHING * fresh + (1 - SMOOTHING) * self._weights
        chosen = np.argsort(self._weights)[::-1][:NEAREST]
        chosen = chosen[self._weights[chosen] > 0.02 * self._weights[chosen[0]]]
        share = self._weights[chosen] / self._weights[chosen].sum()
        self.chosen = chosen
        return chosen, share
