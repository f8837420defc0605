"""Puppet mode's head, blinks and brows: copied from a performer on camera, or, with nobody there,
made up so the portrait stays alive (natural blinks, a slight sway, breathing, a nod on stressed
syllables).

Both give rig controls (`render.rig` names): `headYaw/Pitch/Roll` in degrees relative to the
puppet's own pose, `eyeBlinkLeft/Right`, `browInnerUp`, `browDownLeft/Right` in [0, 1].
"""

from __future__ import annotations

import logging
import math

import numpy as np

from firmware_app.config import PuppetSettings
from firmware_app.errors import DeviceError
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import Face, MouthShape
from firmware_app.resource import Resource
from firmware_app.sources import VideoSource

log = logging.getLogger(__name__)

EYE_AND_BROW = ("eyeBlinkLeft", "eyeBlinkRight", "browInnerUp", "browDownLeft", "browDownRight")
# MediaPipe's blink score rarely passes ~0.7 with the eye shut and idles around 0.05–0.2
BLINK_FLOOR, BLINK_FULL = 0.25, 0.6


class PerformerMapping:
    """A performer's tracked face → controls. Head angles are taken relative to the performer's
    resting pose, learned slowly, so a performer who stands a little turned does not turn the puppet."""

    def __init__(self, settings: PuppetSettings) -> None:
        self.settings = settings
        self._rest: np.ndarray | None = None

    def controls(self, face: Face) -> dict[str, float]:
        pose = np.array(face.pose, np.float64)
        if self._rest is None:
            self._rest = pose.copy()
        self._rest += (pose - self._rest) * self.settings.performer_rest_rate
        limit = self.settings.max_head_degrees
        yaw, pitch, roll = np.clip((pose - self._rest) * self.settings.head_gain, -limit, limit)
        out = {"headYaw": float(yaw), "headPitch": float(pitch), "headRoll": float(roll)}
        b = face.blendshapes
        for side in ("Left", "Right"):
            out[f"eyeBlink{side}"] = _ramp(b.get(f"eyeBlink{side}", 0.0), BLINK_FLOOR, BLINK_FULL)
            out[f"browDown{side}"] = _ramp(b.get(f"browDown{side}", 0.0), 0.1, 0.6)
        out["browInnerUp"] = _ramp(b.get("browInnerUp", 0.0), 0.1, 0.7)
        return out


class IdleAnimator:
    """Life for a portrait nobody is driving. Deterministic for a given seed, so renders repeat."""

    BLINK_S = 0.16  # one blink, close and open
    NOD_DEGREES = 2.5

    def __init__(self, settings: PuppetSettings) -> None:
        self.settings = settings
        self._rng = np.random.default_rng(settings.seed)
        self._next_blink = self._blink_gap()
        self._blink_start = -1.0
        self._nod_start = -1.0
        self._last_aperture = 0.0
        self._phase = self._rng.uniform(0, 2 * math.pi, size=4)

    def controls(self, t: float, shape: MouthShape) -> dict[str, float]:
        if t >= self._next_blink:
            self._blink_start = t
            self._next_blink = t + self._blink_gap()
        blink = pulse(t - self._blink_start, self.BLINK_S)
        # a stressed syllable: the jaw opens fast and wide
        aperture = shape.aperture
        if aperture - self._last_aperture > 0.25 and aperture > 0.5 and t - self._nod_start > 0.6:
            self._nod_start = t
        self._last_aperture = aperture
        nod = self.NOD_DEGREES * pulse(t - self._nod_start, 0.35)
        sway = self.settings.idle_motion
        a, b, c, d = self._phase
        return {
            "eyeBlinkLeft": blink,
            "eyeBlinkRight": blink,
            "headYaw": sway * (1.5 * math.sin(2 * math.pi * 0.07 * t + a) + 0.6 * math.sin(2 * math.pi * 0.19 * t + b)),
            "headRoll": sway * 1.0 * math.sin(2 * math.pi * 0.05 * t + c),
            # breathing lifts the head a touch every ~4 s
            "headPitch": sway * 0.8 * math.sin(2 * math.pi * 0.25 * t + d) + nod,
            "browInnerUp": 0.15 * pulse(t - self._nod_start, 0.5),
        }

    def _blink_gap(self) -> float:
        """Seconds to the next blink: people blink every 2–6 s, now and then twice in a row."""
        if self._rng.random() < 0.1:
            return 0.35
        return float(self._rng.gamma(4.0, self.settings.blink_interval_s / 4.0))


def pulse(elapsed: float, duration: float) -> float:
    """0 → 1 → 0 over `duration` seconds (a raised cosine); 0 outside."""
    if elapsed < 0 or elapsed > duration:
        return 0.0
    return 0.5 - 0.5 * math.cos(2 * math.pi * elapsed / duration)


def _ramp(value: float, low: float, high: float) -> float:
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


class Puppeteer(Resource):
    """Puppet mode's controls for each frame: the performer's when one is on camera, else idle life.
    A missing camera is not an error here: the puppet simply lives on its own."""

    def __init__(self, settings: PuppetSettings, camera: VideoSource | None, tracker: FaceTracker | None) -> None:
        self.settings = settings
        self.camera = camera if settings.performer else None
        self.tracker = tracker
        self.mapping = PerformerMapping(settings)
        self.idle = IdleAnimator(settings)
        self.performer_present = False
        self._performer: Face | None = None  # kept between camera frames (a live camera may be slower)

    def open(self) -> None:
        if self.camera is None:
            return
        try:
            self.camera.open()
            if self.tracker is not None:
                self.tracker.open()
        except DeviceError as exc:
            log.warning("no performer camera (%s): the puppet animates itself", exc.cause)
            self.camera.close()
            self.camera = None

    def close(self) -> None:
        if self.camera is not None:
            self.camera.close()
        if self.tracker is not None:
            self.tracker.close()

    def controls(self, t: float, shape: MouthShape) -> dict[str, float]:
        face = self._performer_face()
        self.performer_present = face is not None
        if face is not None:
            return self.mapping.controls(face)
        return self.idle.controls(t, shape) if self.settings.idle else {}

    def _performer_face(self) -> Face | None:
        if self.camera is None or self.tracker is None:
            return None
        try:
            frame = self.camera.read()
        except DeviceError as exc:
            log.warning("performer camera failed (%s): the puppet animates itself", exc.cause)
            self.camera.close()
            self.camera = None
            return None
        if frame is not None:  # None: no new frame since the last look (live) or the end of a clip
            self._performer = self.tracker.track(frame)
        return self._performer
