"""The timestamped units that flow between pipeline stages.

Every audio block and video frame carries `t`, its media time in seconds from the start of
the stream, so each stage can line up sound and picture without looking at the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_app.shapes import aperture

SAMPLE_RATE = 16_000  # every audio source delivers mono float32 at this rate
HOP_S = 0.010  # the mouth model's step: one mouth shape every 10 ms


@dataclass(frozen=True)
class AudioBlock:
    samples: np.ndarray  # float32, mono, in [-1, 1]
    t: float  # media time of the first sample, seconds
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def t_end(self) -> float:
        return self.t + self.duration


@dataclass(frozen=True)
class VideoFrame:
    image: np.ndarray  # BGR uint8, H x W x 3
    t: float  # media time of the frame, seconds
    index: int
    still: bool = False  # True when the picture is the same as the previous frame's


@dataclass(frozen=True)
class FeatureFrames:
    """Consecutive 10 ms feature vectors; row i depicts audio time t + i * HOP_S."""

    values: np.ndarray  # float32, N x D
    t: float
    releases: tuple[float, ...] = ()  # stop releases (s, the audio's clock) heard in the same audio


@dataclass(frozen=True)
class MouthShape:
    """ARKit-named blendshape weights in [0, 1] for one instant."""

    t: float
    weights: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> float:
        return self.weights.get(name, 0.0)

    @property
    def aperture(self) -> float:
        """Lip opening: jawOpen minus mouthClose (ARKit convention)."""
        return float(aperture(self.get("jawOpen"), self.get("mouthClose")))


@dataclass(frozen=True)
class Face:
    """One tracked face: 478 MediaPipe landmarks in pixels (x, y, z scaled like x)."""

    landmarks: np.ndarray  # 478 x 3, float32
    blendshapes: dict[str, float] = field(default_factory=dict)
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # head yaw, pitch, roll in degrees (see render.rig)

    @property
    def height(self) -> float:
        ys = self.landmarks[:, 1]
        return float(ys.max() - ys.min())

    @property
    def chin_to_forehead(self) -> float:
        """Chin (landmark 152) to forehead (10) in pixels, at least 1: the unit the mouth's openings
        are measured in ("face heights"), the same whichever way the head turns in the picture."""
        p = self.landmarks[:, :2]
        return max(float(np.linalg.norm(p[152] - p[10])), 1.0)
