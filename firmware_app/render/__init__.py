"""The renderer stage: frame + tracked face + mouth shape (+ head/eye/brow controls) → the frame the
audience sees.

Order matters: lids slide first (on the tracked eyes), then one landmark warp applies the rig
(brows, lip rounding and spreading, head pose), then the jaw opens or closes on the moved lips
and a `MouthSource` fills the opening (`render.interior`; the mouth model's visemes reach it as
`viseme_*` weights of the mouth shape): real mouths from the donor library (`render.donors`) or a
face pack (`render.bank`), the drawn interior where neither is there. A still picture keeps its
own upper teeth; moving video (a camera) never shows its own mouth. When the face is lost the last
face keeps being used while the effect fades out, so the picture returns to the untouched frame
instead of snapping.
"""

from __future__ import annotations

import numpy as np

from firmware_app.config import DisclosureSettings, RendererSettings
from firmware_app.frames import Face, MouthShape, VideoFrame
from firmware_app.render.disclosure import draw_disclosure
from firmware_app.render.donors import library_mouth
from firmware_app.render.eyes import blink
from firmware_app.render.interior import Articulation, MouthSource, PhotoMouth
from firmware_app.render.live_bank import LiveBank
from firmware_app.render.mouth import draw_mouth, photo_facts
from firmware_app.render.opening import PROBE, Measure, probe_scale, same_face
from firmware_app.render.rig import CONTROLS, FaceFrame, rig_targets
from firmware_app.render.warp import warp_landmarks
from firmware_app.render.watermark import Watermarker, appliance_id


def animate_face(
    image: np.ndarray,
    face: Face,
    controls: dict[str, float],
    opening: float,
    interior_color: tuple[int, int, int],
    own_teeth: bool = True,
    source: MouthSource | None = None,
) -> np.ndarray:
    """`image` with `face` doing what `controls` say and its lips parted by `opening` × face height.
    `own_teeth`: the picture is a still whose own upper teeth may show (see `render.mouth`)."""
    facts = photo_facts(image, face, interior_color, own_teeth)  # read before the warp: once per still
    out = blink(image.copy(), face, controls)
    if any(controls.get(name, 0.0) for name in CONTROLS):
        pose = rig_targets(face, controls)
        out = warp_landmarks(out, *pose.pinned(face), FaceFrame.of(face).scale)
        landmarks = face.landmarks.copy()
        landmarks[:, :2] = pose.targets
        face = Face(landmarks, face.blendshapes, face.pose)
    return draw_mouth(out, face, opening, interior_color, Articulation.of(controls), own_teeth, source or _PHOTO, facts)


_PHOTO = PhotoMouth()


class Renderer:
    def __init__(self, settings: RendererSettings, disclosure: DisclosureSettings) -> None:
        self.settings = settings
        self.disclosure = disclosure
        self._watermark = Watermarker(appliance_id(disclosure.appliance_id)) if disclosure.watermark else None
        self._last_face: Face | None = None
        self._last_size: tuple[int, ...] = ()
        self._frames_lost = 0
        self._still = False
        # real mouths from the donor library where it is there; the drawn interior otherwise
        self.source: MouthSource = (library_mouth() if settings.donors else None) or PhotoMouth()
        if settings.live_bank:  # a camera's visitor is banked and painted with their own mouth
            self.source = LiveBank(self.source)
        # with a measurer (the tracker's, lent by the frame step) each face's opening is scaled so
        # that it reads as far open as commanded (`render.opening`); a face pack opens as its person did
        self.measure: Measure | None = None
        self.opening_scale = 1.0
        self._probed: Face | None = None
        self._probed_still = False

    def render(
        self, frame: VideoFrame, face: Face | None, shape: MouthShape, controls: dict[str, float] | None = None
    ) -> np.ndarray:
        controls = {**shape.weights, **(controls or {})}
        observe = getattr(self.source, "observe", None)  # the live bank takes the visitor's own mouth
        if observe is not None:
            observe(frame, face)
        command = getattr(self.source, "command", None)  # a bank's lookup wants the shape and the face
        if command is not None:
            command(face if face is not None else self._last_face, controls)
        opening = shape.aperture * self.settings.mouth_gain * self.settings.max_open
        # a repeated still may show its own upper teeth; moving video (a camera) never shows its
        # own mouth, which moves with someone else's speech (a still's first frame counts as
        # moving: the two differ only when a mouth open in the photo is commanded open)
        self._still = frame.still
        if face is not None and self.measure is not None and self._new_face(frame, face):
            self._probed, self._probed_still = face, frame.still
            controls = {"jawOpen": PROBE / self.settings.max_open}
            drawn = animate_face(frame.image, face, controls, PROBE, (0, 0, 0), frame.still)
            self.opening_scale = probe_scale(drawn, self.measure)
        opening *= self.opening_scale
        if face is not None:
            self._last_face, self._last_size, self._frames_lost = face, frame.image.shape, 0
            out = self._animate(frame.image, face, controls, opening)
        else:
            out = self._fade_out(frame, controls, opening)
        if self.disclosure.enabled:
            draw_disclosure(out, self.disclosure)
        if self._watermark is not None:
            self._watermark.apply(out)  # last, so files and the live output both carry it
        return out

    def _new_face(self, frame: VideoFrame, face: Face) -> bool:
        """A face just acquired, a picture that became still (its own upper teeth may show: the
        opening reads wider) or a still whose picture changed: its opening is probed again."""
        if self._last_face is None or frame.still != self._probed_still:
            return True
        return frame.still and not same_face(self._probed, face)

    def _fade_out(self, frame: VideoFrame, controls: dict[str, float], opening: float) -> np.ndarray:
        """Nobody in view: keep animating the last face, fading to the untouched picture."""
        self._frames_lost += 1
        fade = self.settings.fade_frames
        if self._last_face is None or self._frames_lost > fade or frame.image.shape != self._last_size:
            self._last_face = None
            return frame.image.copy()
        strength = 1.0 - self._frames_lost / (fade + 1)
        animated = self._animate(frame.image, self._last_face, controls, opening)
        blended = frame.image.astype(np.float32) * (1 - strength) + animated.astype(np.float32) * strength
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)

    def _animate(self, image: np.ndarray, face: Face, controls: dict[str, float], opening: float) -> np.ndarray:
        return animate_face(image, face, controls, opening, self.settings.interior_color, self._still, self.source)
