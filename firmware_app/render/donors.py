"""Real mouths for a face with no footage of its own: a `MouthSource` painting from the donor library.

The donor library (`face.donors`) holds other people's mouth banks, each built as enrollment
builds a face pack's. For a single photo (or a camera face) the opening is painted from them:

- **choice**: every donor's exemplars are keyed by the same shape descriptor; at the start of a
  word (the lips were closed on the frame before, or the commanded gap is nearly shut) the donor
  whose nearest exemplar is nearest the commanded shape wins, weighted by how far its skin is
  from this face's; until the lips close again it stays (a donor never changes mid-word), and
  within it the exemplars are looked up and smoothed as a face pack's are (`render.bank.BankMouth`,
  which also warps them to this opening: upper teeth with the upper lip, lower with the jaw);
- **colour and light**: each donor's textures are transformed once per target face in Lab
  (`fit_textures`): lightness scaled by the ratio of this face's lip and skin lightness to the
  donor's and never above this face's skin (no teeth brighter than the face); chroma scaled by
  the lips' chroma ratio (a grey photo gets a grey mouth) and moved by what turns the donor's
  skin into this face's (white balance), in proportion to each pixel's light, so the dark back
  keeps its hue; refitted only when the face's light moves by more than `REFIT_DE`;
- **grain and sharpness**: a donor filmed at a lower resolution than the face is drawn is blurred
  by the warp; the picture's own grain (`FaceLight.grain`) is added back, fixed per pixel (no flicker).

The compositor (`render.mouth`) keeps a still's own upper teeth above the painted part and seals
closures on the picture's own lips, as for every source.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import cv2
import numpy as np

from firmware_app.errors import MediaError
from firmware_app.face.donors import Donor, load_library
from firmware_app.face.pack import MOUTH_BLENDSHAPES
from firmware_app.frames import Face
from firmware_app.render.exemplars import BankMouth
from firmware_app.render.interior import Articulation, FaceLight, Opening, grain_tile, with_grain

log = logging.getLogger(__name__)

WORD_START = 0.012  # a commanded gap (face heights) below this counts as closed: a new word may take a new donor
SKIN_DE = 20.0  # a donor whose skin is this far (ΔE, Lab) from the face's counts as twice as far in shape
LIGHTNESS_RATIO = (0.55, 1.8)  # the fit never scales lightness beyond these
CHROMA_RATIO = (0.0, 1.5)
REFIT_DE = 6.0  # the face's lips or skin moved this far (ΔE): fit the donors again
BLENDSHAPE_SPREAD, GAP_SPREAD = 0.1, 0.01  # the least spread a descriptor dimension is given (score, face heights)
GEOMETRY = 2.0  # the gap profile's spread is divided by this: it counts this squared times more than in a pack
GRAIN_SCALE = 1.0  # × the picture's grain added to donor pixels


def to_lab(bgr: np.ndarray) -> np.ndarray:
    """B G R (0-255, any shape …x3) as float Lab (L 0-100)."""
    flat = np.asarray(bgr, np.float32).reshape(1, -1, 3) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_BGR2LAB).reshape(np.shape(bgr))


def from_lab(lab: np.ndarray) -> np.ndarray:
    flat = np.asarray(lab, np.float32).reshape(1, -1, 3)
    return (cv2.cvtColor(flat, cv2.COLOR_LAB2BGR) * 255.0).reshape(np.shape(lab))


def fit_textures(donor: Donor, lips: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """The donor's exemplar textures (K x H x W x 3 uint8) in this face's colour and light (see the module)."""
    d_lips, d_skin, t_lips, t_skin = (to_lab(c) for c in (donor.bank.lips, donor.skin, lips, skin))
    ratio = float(np.clip((t_lips[0] + t_skin[0]) / max(float(d_lips[0] + d_skin[0]), 1.0), *LIGHTNESS_RATIO))
    chroma = float(np.clip(np.linalg.norm(t_lips[1:]) / max(float(np.linalg.norm(d_lips[1:])), 1.0), *CHROMA_RATIO))
    lab = to_lab(donor.bank.textures)
    # white balance: what turns the donor's skin into this face's is the light's colour, and the
    # teeth, tongue and cavity take it as the skin does, in proportion to how much light reaches
    # them (the dark back keeps its own hue). Following the lips instead turned a donor's teeth
    # green on a face whose lips are less red than the donor's.
    lit = np.clip(lab[..., :1] / max(float(d_skin[0]), 1.0), 0.0, 1.0)
    lab[..., 1:] = lab[..., 1:] * chroma + (t_skin[1:] - d_skin[1:] * chroma) * lit
    lab[..., 0] = np.minimum(lab[..., 0] * ratio, t_skin[0])  # never brighter than the face
    return np.clip(from_lab(lab) + 0.5, 0, 255).astype(np.uint8)


class DonorMouth:
    """`MouthSource` painting the opening from the donor library (see the module's docstring)."""

    def __init__(self, donors: list[Donor]) -> None:
        if not donors:
            raise ValueError("a DonorMouth needs at least one donor")
        self.donors = donors
        # one scale for every donor's keys, so that distances compare across donors
        scale = np.median(np.array([d.bank.scale for d in donors]), axis=0).astype(np.float32)
        # a dimension one short clip hardly moves must not outweigh the others for another face
        blend = len(MOUTH_BLENDSHAPES)
        scale[:blend] = np.maximum(scale[:blend], BLENDSHAPE_SPREAD)
        scale[blend:] = np.maximum(scale[blend:], GAP_SPREAD)
        # another person's blendshape habits are not this face's: the opening's own gaps choose more
        scale[blend:] /= GEOMETRY
        self._mouths = [BankMouth(replace(d.bank, scale=scale)) for d in donors]
        self._skins = [to_lab(d.skin) for d in donors]
        # each donor's usual inner width: people's mouths differ in width, and every exemplar is
        # warped to this face's own corners anyway, so the width does not choose between donors
        self._widths = [float(np.median(d.bank.keys[:, -1])) / float(scale[-1]) for d in donors]
        self._fitted_to: np.ndarray | None = None  # Lab of the lips and skin the textures are fitted to
        self._grain = grain_tile(11)
        self._current: int | None = None
        self._frame = 0
        self._last_paint = -2
        self.painted = 0  # frames whose opening the donors painted, for reports
        self.used: dict[str, int] = {}  # frames painted per donor, for reports

    @property
    def current(self) -> str | None:
        """The donor painting the word now."""
        return None if self._current is None else self.donors[self._current].identity

    def command(self, face: Face | None, weights: dict[str, float]) -> None:
        """The shape wanted for the next frame (see `BankMouth.command`)."""
        self._frame += 1
        for mouth in self._mouths:
            mouth.command(face, weights)

    def reset(self) -> None:
        self._current, self._fitted_to = None, None
        for mouth in self._mouths:
            mouth.reset()

    def paint(self, opening: Opening, light: FaceLight, articulation: Articulation) -> np.ndarray:
        self._fit(light)
        new_word = self._frame - self._last_paint > 1 or opening.opening < WORD_START
        if self._current is None or new_word:
            chosen = self._choose(opening, light)
            if chosen != self._current:
                self._mouths[chosen].reset()
            self._current = chosen
        self._last_paint = self._frame
        self.painted += 1
        name = self.donors[self._current].identity
        self.used[name] = self.used.get(name, 0) + 1
        out = self._mouths[self._current].paint(opening, light, articulation)
        return with_grain(out, self._grain, GRAIN_SCALE * light.grain)

    def _fit(self, light: FaceLight) -> None:
        """Colour-match every donor to this face, once (again only if its light has moved)."""
        now = to_lab(np.stack([light.lips, light.skin]))
        if self._fitted_to is not None and np.linalg.norm(now - self._fitted_to, axis=1).max() < REFIT_DE:
            return
        for donor, mouth in zip(self.donors, self._mouths):
            mouth.recolour(fit_textures(donor, light.lips, light.skin), light.lips)
        self._fitted_to = now

    def _choose(self, opening: Opening, light: FaceLight) -> int:
        """The donor nearest the commanded shape (its nearest exemplar), its skin's distance counting."""
        query = self._mouths[0].query(opening)
        skin = to_lab(light.skin)
        scores = []
        for mouth, s, width in zip(self._mouths, self._skins, self._widths):
            query[-1] = width
            shape = float(mouth.distances(query, within_range=False).min())
            scores.append(shape * (1.0 + (np.linalg.norm(s - skin) / SKIN_DE) ** 2))
        log.debug("donor scores %s for query %s", dict(zip(self.current_names(), scores)), query[-4:])
        return int(np.argmin(scores))

    def current_names(self) -> list[str]:
        return [d.identity for d in self.donors]


_library: dict[tuple[str, ...], list[Donor]] = {}


def library_mouth(exclude: tuple[str, ...] = ()) -> DonorMouth | None:
    """A `DonorMouth` over the shipped library (read once per process), leaving out `exclude`;
    None, with a warning once, where the library is missing or unreadable (the drawn interior is used)."""
    key = tuple(sorted(exclude))
    if key not in _library:
        try:
            _library[key] = load_library(exclude=key)
        except MediaError as exc:
            log.warning("%s (%s); the drawn mouth interior is used", exc.cause, exc.fix)
            _library[key] = []
    return DonorMouth(_library[key]) if _library[key] else None
