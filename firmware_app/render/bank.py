"""A person's own mouth: a `MouthSource` that takes the pixels of the opening from a face pack.

A face pack (`NAME.face`, written by `ventriloquist enroll`; its format, and the mouth frame its
exemplars are stored in, in `firmware_app.face.pack`) holds a bank of one person's mouth
exemplars, pre-merged at enrollment. The runtime only looks up:

- the exemplars nearest the commanded shape (mouth blendshapes plus the opening's own gap
  profile) get weights, smoothed over time so the texture never jumps from one to the next;
- each is warped to the current lips: a point just below the upper lip reads the exemplar just
  below its upper lip (upper teeth rigid with the skull), one just above the lower lip reads just
  above the exemplar's lower lip (lower teeth with the jaw), the middle stretches between;
- colour-matched to the face's lips as they are lit now, then blended by the compositor
  (`render.mouth`), which also seals closures and rest on the picture's own lips: a pack's
  reference still is the person's own closed mouth.
"""

from __future__ import annotations

import cv2
import numpy as np

from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.face.pack import (
    GAP_S,
    MOUTH_BLENDSHAPES,
    FacePack,
    descriptor,
    exemplar_coords,
    patch_pixels,
    require_disclosure,
)
from firmware_app.frames import Face, MouthShape, VideoFrame
from firmware_app.render import Renderer
from firmware_app.render.interior import Articulation, FaceLight, Opening

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
OWN_MAX_OPEN = (0.06, 0.3)  # the person's own opening at jawOpen 1 (face heights) is kept within these


class BankMouth:
    """`MouthSource` painting the opening from a face pack's bank (see the module's docstring)."""

    def __init__(self, pack: FacePack) -> None:
        self.pack = pack  # the console's status names whose likeness this is
        self._bank = pack.bank
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
            p = face.landmarks[:, :2]
            self._face_height = max(float(np.linalg.norm(p[152] - p[10])), 1.0)

    def reset(self) -> None:
        self._weights[:] = 0.0

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

    def _lookup(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `NEAREST` exemplars and their shares, the weights smoothed over frames."""
        squared = (self._keys - np.clip(query, self._low, self._high)) ** 2
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


class BankRenderer(Renderer):
    """The renderer with its mouth taken from a face pack: each frame's command reaches the bank."""

    def __init__(self, settings: RendererSettings, disclosure: DisclosureSettings, pack: FacePack) -> None:
        require_disclosure(pack, disclosure)
        per_jaw_open = pack.manifest.get("aperture_range", {}).get("per_jaw_open")
        if per_jaw_open:  # the person's mouth opens as far as theirs did in the clip for the same jawOpen
            settings = settings.model_copy(update={"max_open": float(np.clip(per_jaw_open, *OWN_MAX_OPEN))})
        super().__init__(settings, disclosure)
        self.bank = BankMouth(pack)
        self.source = self.bank

    def render(
        self, frame: VideoFrame, face: Face | None, shape: MouthShape, controls: dict[str, float] | None = None
    ) -> np.ndarray:
        self.bank.command(face if face is not None else self._last_face, {**shape.weights, **(controls or {})})
        return super().render(frame, face, shape, controls)
