"""Every face opens like a real talker: the opening a command asks for, scaled per face.

The same commanded opening (face heights) reads smaller on some faces than on others once drawn:
thin lips, a small or soft picture, a narrow mouth make the lips' inner edges sit inside the
painted gap for anyone looking (MediaPipe included), so on speech such a face stayed below the
0.07 face heights real talkers reach in their most open frames. The face's own response is
measured once, when it appears: the face is drawn at `PROBE` with the drawn interior (stateless,
so the mouth source's per-word state is untouched), the render is re-tracked, and the scale is
what brings the re-measured gap to the commanded one, never below 1 (a face that reads wider is
left as it is) and never above `MAX_SCALE`. A camera face is probed when it is acquired, a still
when it changes; nothing is probed without a measurer (the renderer's owner lends the tracker's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from firmware_app.frames import Face

log = logging.getLogger(__name__)

PROBE = 0.08  # face heights: the opening drawn to see how far it reads (about the top 5 % of speech)
MAX_SCALE = 1.6  # the most a face's opening is widened
MOVED = 0.02  # a still's landmarks moved this far (face heights, mean): another picture, probe again

Measure = Callable[[np.ndarray], Face | None]  # a picture → the face a tracker finds in it


def inner_gap(face: Face) -> float:
    """The inner-lip gap at the middle (landmarks 13, 14), face heights (chin 152 to forehead 10)."""
    p = face.landmarks[:, :2]
    return float(np.linalg.norm(p[14] - p[13]) / face.chin_to_forehead)


def probe_scale(drawn: np.ndarray, measure: Measure) -> float:
    """The scale for a face from its render at `PROBE` (`drawn`), re-tracked by `measure`; 1 where
    the render is not found again (nothing is known, nothing changes)."""
    seen = measure(drawn)
    if seen is None:
        return 1.0
    gap = inner_gap(seen)
    scale = float(np.clip(PROBE / max(gap, 1e-3), 1.0, MAX_SCALE))
    log.info("the face's opening at %.3f reads %.3f: openings scaled by %.2f", PROBE, gap, scale)
    return scale


def same_face(a: Face | None, b: Face) -> bool:
    """Whether `b` is the face `a` was (a still's picture did not change)."""
    if a is None or a.landmarks.shape != b.landmarks.shape:
        return False
    moved = np.linalg.norm(a.landmarks[:, :2] - b.landmarks[:, :2], axis=1).mean()
    return float(moved) / b.chin_to_forehead < MOVED
