"""The loudness baseline: the jaw follows the voice level. No learning; a reference point for
the learned model and a fallback that needs nothing but numpy."""

from __future__ import annotations

import math

import numpy as np

from firmware_app.config import LoudnessSettings
from firmware_app.frames import HOP_S, FeatureFrames, MouthShape
from firmware_app.mouth.base import MouthModel


class LoudnessBaseline(MouthModel):
    name = "loudness baseline"

    def __init__(self, settings: LoudnessSettings) -> None:
        self.settings = settings
        self._attack = _smoothing(settings.attack_ms)
        self._release = _smoothing(settings.release_ms)
        self._jaw = 0.0

    def reset(self) -> None:
        self._jaw = 0.0

    def push(self, features: FeatureFrames) -> list[MouthShape]:
        s = self.settings
        levels = features.values[:, 0]
        targets = np.clip((levels - s.floor_db) / (s.ceil_db - s.floor_db), 0.0, 1.0)
        shapes = []
        for i, target in enumerate(targets):
            rate = self._attack if target > self._jaw else self._release
            self._jaw += rate * (float(target) - self._jaw)
            shapes.append(MouthShape(features.t + i * HOP_S, {"jawOpen": self._jaw, "mouthClose": 0.0}))
        return shapes


def _smoothing(time_constant_ms: float) -> float:
    """Per-step weight of a one-pole smoother with this time constant (1.0 means no smoothing)."""
    if time_constant_ms <= 0:
        return 1.0
    return 1.0 - math.exp(-HOP_S * 1000.0 / time_constant_ms)
