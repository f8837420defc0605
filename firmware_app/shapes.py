"""The names a mouth model speaks: the 15 Oculus visemes and the ARKit mouth blendshapes.

Lip aperture follows ARKit: jawOpen − mouthClose (mouthClose presses the lips together while
the jaw is open, so p/b/m close the lips and silence rests them closed).
"""

from __future__ import annotations

import numpy as np

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

BLENDSHAPES = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
)


JAW_OPEN, MOUTH_CLOSE = BLENDSHAPES.index("jawOpen"), BLENDSHAPES.index("mouthClose")


def aperture(jaw_open, mouth_close):
    """Lip opening from jawOpen and mouthClose, for single values or whole curves."""
    return np.maximum(jaw_open - mouth_close, 0.0)
