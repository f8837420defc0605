"""Mirror mode banks the visitor: their own mouth, taken from the camera while they are in view.

`LiveBank` is a `MouthSource` in front of another (the donor library, or the drawn interior):

- **banking**: on every camera frame (never a still) whose tracked face shows its own mouth open
  (inner-lip gap ≥ `OWN_OPEN`), frontal enough, not blurred, and some way from every shape already
  banked, the mouth is taken as an exemplar in the enrollment's format (`render.exemplars`:
  pose-normalised patch, inner-lip edges, shape descriptor, teeth). At most every `EVERY`-th
  frame; at most `MAX_EXEMPLARS` and `MAX_BYTES` (memory only, nothing is written anywhere); when
  full, a new shape replaces the banked one nearest it, so coverage widens and stays fresh;
- **forgetting**: the bank is cleared when no face was seen for `LOST_S`, or when the face's
  proportions (`signature`: eyes, nose, mouth and jaw against its height) differ by more than
  `OTHER_PERSON` from those it was banked with (someone else stands there);
- **painting**: on each word's first open frame the visitor's own bank is chosen to paint it
  when it has `MIN_OWN` exemplars and the commanded centre gap is within their range (widened
  by `COVERS`), else the source behind it paints; never switching mid-word. Both paint
  through `render.exemplars.BankMouth`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from firmware_app.face.pack import MOUTH_BLENDSHAPES, Bank
from firmware_app.frames import Face, VideoFrame
from firmware_app.render.exemplars import BankMouth, describe, normalise_mouth, teeth_share
from firmware_app.render.interior import Articulation, FaceLight, MouthSource, Opening
from firmware_app.render.mouth import face_light
from firmware_app.render.opening import inner_gap

log = logging.getLogger(__name__)

OWN_OPEN = 0.02  # face heights: the visitor's own inner-lip gap from which a frame is banked
MAX_EXEMPLARS = 48
MAX_BYTES = 2_000_000  # textures held, at most
RESOLUTION = (48.0, 160.0)  # patch pixels per face height: the camera's own, within these
EVERY = 2  # frames between two bankings, at least
NOVEL = 1.0  # descriptor distance (in spreads) a new shape needs from every banked one, when not full
MAX_TURN = 25.0  # degrees of yaw or pitch beyond which a frame is not banked
BLURRED = 0.4  # × the bank's median sharpness: a frame below is not banked
LOST_S = 3.0  # no face this long: the visitor has gone, the bank is cleared
OTHER_PERSON = 0.06  # mean relative change of the face's proportions that means someone else
MIN_OWN = 4  # exemplars before the visitor's own bank paints
COVERS = 0.015  # face heights beyond the banked centre gaps that the own bank still covers
WORD_START = 0.012  # commanded gap (face heights) below which a new word may change the source
SPREAD = 0.1  # the spread given each blendshape dimension of the keys ...
GAP_SPREAD = 0.005  # ... and each gap / width dimension (face heights)
STEADY = 0.01  # face heights the gap may change from the frame before: moving lips, the smoothed landmarks lag
INSET = (0.15, 0.008)  # the banked lip edges moved this share of the gap into the opening, at most face heights
SIGNATURE = ((33, 263), (2, 10), (61, 291), (172, 397), (13, 152), (1, 152))  # landmark pairs


def signature(face: Face) -> np.ndarray:
    """The face's proportions: landmark distances over its height (who it is, not what it says)."""
    p, height = face.landmarks[:, :2], face.chin_to_forehead
    return np.array([np.linalg.norm(p[a] - p[b]) / height for a, b in SIGNATURE], np.float32)


@dataclass
class OwnExemplar:
    texture: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    half_width: float
    key: np.ndarray
    teeth: float
    sharpness: float


class LiveBank:
    """`MouthSource` painting from the visitor's own banked mouth, `fallback` where it cannot (see the module)."""

    def __init__(self, fallback: MouthSource) -> None:
        self.fallback = fallback
        self.own: list[OwnExemplar] = []
        self.painted = 0  # openings painted, for reports
        self.painted_own = 0  # … of them from the visitor's own exemplars
        self.using_own = False  # the word now is painted from the visitor's own mouth
        self._mouth: BankMouth | None = None
        self._signature: np.ndarray | None = None
        self._resolution = 0.0
        self._last_seen = -1e9
        self._last_banked = -(10**9)
        self._frame = 0
        self._last_paint = -2
        self._chosen = False  # this word's source is chosen
        self._face: Face | None = None
        self._weights: dict[str, float] = {}
        self._lips: np.ndarray | None = None  # the visitor's lip colour, B G R (a running mean)
        self._gap = 0.0  # the visitor's own gap on the frame before

    @property
    def own_exemplars(self) -> int:
        """The visitor's own exemplars banked (and in use once `MIN_OWN`)."""
        return len(self.own)

    @property
    def own_bytes(self) -> int:
        return sum(e.texture.nbytes for e in self.own)

    def clear(self) -> None:
        self.own, self._mouth, self._signature, self._lips, self.using_own = [], None, None, None, False

    def observe(self, frame: VideoFrame, face: Face | None) -> None:
        """A camera frame and its tracked face: forget a visitor gone or replaced, bank an open mouth."""
        self._last_seen = min(self._last_seen, frame.t)  # a clip that loops starts its clock again
        if face is None:
            if frame.t - self._last_seen > LOST_S and self.own:
                log.info("the visitor has gone: their %d mouth exemplars are forgotten", len(self.own))
                self.clear()
            return
        if frame.t - self._last_seen > LOST_S:
            self.clear()
        self._last_seen = frame.t
        shape = signature(face)
        if self._signature is not None and float(np.mean(np.abs(shape / self._signature - 1.0))) > OTHER_PERSON:
            log.info("someone else is in view: the last visitor's mouth exemplars are forgotten")
            self.clear()
        self._signature = shape if self._signature is None else 0.95 * self._signature + 0.05 * shape
        gap, self._gap = self._gap, inner_gap(face)
        steady = abs(self._gap - gap) <= STEADY
        if steady and not frame.still and frame.index - self._last_banked >= EVERY and self._bankable(face):
            self._bank(frame.image, face, frame.index)

    def _bankable(self, face: Face) -> bool:
        yaw, pitch, _ = face.pose
        return inner_gap(face) >= OWN_OPEN and max(abs(yaw), abs(pitch)) <= MAX_TURN

    def _bank(self, image: np.ndarray, face: Face, index: int) -> None:
        if not self.own:
            height = float(np.linalg.norm(face.landmarks[152, :2] - face.landmarks[10, :2]))
            self._resolution = float(np.clip(height, *RESOLUTION))
        patch, upper, lower, half_width = normalise_mouth(image, face, self._resolution)
        # the landmarks may sit a little off the lips (a camera's are smoothed): the edges are taken
        # a little inside the opening, so the visitor's own lips are never painted into the new one
        inset = np.minimum(INSET[0] * (lower - upper), INSET[1])
        upper, lower = upper + inset, lower - inset
        key = describe(face, upper, lower, half_width)
        sharpness = float(cv2.Laplacian(cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var())
        if self.own and sharpness < BLURRED * float(np.median([e.sharpness for e in self.own])):
            return
        lips = face_light(image, face, (0, 0, 0)).lips
        teeth = teeth_share(patch, upper, lower, half_width, self._resolution, lips)
        exemplar = OwnExemplar(patch, upper, lower, half_width, key, teeth, sharpness)
        distances = self._distances(key)
        full = len(self.own) >= MAX_EXEMPLARS or self.own_bytes + patch.nbytes > MAX_BYTES
        if full:
            self.own[int(np.argmin(distances))] = exemplar  # the nearest shape gives way: coverage stays wide
        elif distances.size and float(distances.min()) < NOVEL:
            return  # a shape already banked
        else:
            self.own.append(exemplar)
        self._last_banked = index
        self._lips = lips if self._lips is None else 0.9 * self._lips + 0.1 * lips
        self._rebuild()

    def _scale(self) -> np.ndarray:
        blend = len(MOUTH_BLENDSHAPES)
        scale = np.full(len(self.own[0].key), GAP_SPREAD, np.float32)
        scale[:blend] = SPREAD
        return scale

    def _distances(self, key: np.ndarray) -> np.ndarray:
        if not self.own:
            return np.zeros(0, np.float32)
        keys = np.stack([e.key for e in self.own])
        return np.sqrt((((keys - key) / self._scale()) ** 2).sum(axis=1))

    def _rebuild(self) -> None:
        teeth = np.array([e.teeth for e in self.own], np.float32)
        bank = Bank(
            textures=np.stack([e.texture for e in self.own]),
            upper=np.stack([e.upper for e in self.own]),
            lower=np.stack([e.lower for e in self.own]),
            half_width=np.array([e.half_width for e in self.own], np.float32),
            keys=np.stack([e.key for e in self.own]).astype(np.float32),
            scale=self._scale(),
            lips=np.asarray(self._lips, np.float32),
            resolution=self._resolution,
            teeth=np.clip(teeth / max(float(np.percentile(teeth, 90)), 0.05), 0.0, 1.0),
        )
        self._mouth = BankMouth(bank)
        if self._face is not None:
            self._mouth.command(self._face, self._weights)

    def command(self, face: Face | None, weights: dict[str, float]) -> None:
        self._frame += 1
        self._face, self._weights = face, weights
        if self._mouth is not None:
            self._mouth.command(face, weights)
        command = getattr(self.fallback, "command", None)
        if command is not None:
            command(face, weights)

    def reset(self) -> None:
        for source in (self._mouth, self.fallback):
            reset = getattr(source, "reset", None)
            if reset is not None:
                reset()

    def paint(self, opening: Opening, light: FaceLight, articulation: Articulation) -> np.ndarray:
        if self._frame - self._last_paint > 1 or opening.opening < WORD_START:
            self._chosen = False  # the lips closed: the next word chooses again
        if not self._chosen and opening.opening >= WORD_START:  # chosen on the word's first open frame
            self.using_own, self._chosen = self._covers(opening), True
        self._last_paint = self._frame
        self.painted += 1
        if self.using_own and self._mouth is not None:
            self.painted_own += 1
            return self._mouth.paint(opening, light, articulation)
        return self.fallback.paint(opening, light, articulation)

    def _covers(self, opening: Opening) -> bool:
        """Whether the visitor's own bank covers the commanded opening: its centre gap within the
        banked ones' range, widened by `COVERS` (every exemplar is warped to the opening anyway;
        the blendshapes a mouth model commands are other people's habits, so the opening decides)."""
        if self._mouth is None or len(self.own) < MIN_OWN:
            return False
        centre = len(MOUTH_BLENDSHAPES) + 1  # GAP_S's middle: the gap at the lips' centre
        wanted = float(self._mouth.query(opening)[centre] * self._scale()[centre])
        own = np.array([e.key[centre] for e in self.own])
        return float(own.min()) - COVERS <= wanted <= float(own.max()) + COVERS
