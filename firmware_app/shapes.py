"""The names a mouth model speaks: the 15 Oculus visemes and the ARKit mouth blendshapes.

Lip aperture follows ARKit: jawOpen − mouthClose (mouthClose presses the lips together while
the jaw is open, so p/b/m close the lips and silence rests them closed).
"""

from __future__ import annotations

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


def aperture(jaw_open: float, mouth_close: float) -> float:
    return max(0.0, jaw_open - mouth_close)
