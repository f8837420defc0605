"""Phoneme timing → what the mouth should do every 10 ms: a viseme label and coarticulated
ARKit blendshape curves.

Coarticulation follows Cohen & Massaro's dominance model: every phoneme pulls the mouth toward its
viseme's shape with a dominance that is full inside the phoneme and decays before it
(anticipation) and after it (carry-over) with a Gaussian fall-off; the shape at any instant is the
dominance-weighted mean.
Lip rounding anticipates far ahead, alveolars barely resist their neighbours, and bilabials
always seal the lips (the closure is enforced, not left to the blend).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_app.shapes import BLENDSHAPES, JAW_OPEN, MOUTH_CLOSE, VISEMES, aperture

HOP_S = 0.010

# IPA (as the synthesizers and the aligner label it, stress and length marks removed) → viseme.
IPA_TO_VISEME: dict[str, str] = {
    "sil": "sil",
    "": "sil",
    "_": "sil",
    "h": "sil",
    "ʔ": "sil",
    "p": "PP",
    "b": "PP",
    "m": "PP",
    "f": "FF",
    "v": "FF",
    "θ": "TH",
    "ð": "TH",
    "t": "DD",
    "d": "DD",
    "ɾ": "DD",
    "ɾ̃": "DD",
    "t̬": "DD",
    "k": "kk",
    "ɡ": "kk",
    "g": "kk",
    "ŋ": "kk",
    "x": "kk",
    "tʃ": "CH",
    "dʒ": "CH",
    "ʃ": "CH",
    "ʒ": "CH",
    "j": "CH",
    "s": "SS",
    "z": "SS",
    "n": "nn",
    "l": "nn",
    "n̩": "nn",
    "l̩": "nn",
    "ɫ": "nn",
    "ɹ": "RR",
    "r": "RR",
    "ɚ": "RR",
    "ɝ": "RR",
    "ɜ": "RR",
    "ɐ": "aa",
    "ɑ": "aa",
    "a": "aa",
    "æ": "aa",
    "ʌ": "aa",
    "aɪ": "aa",
    "aʊ": "aa",
    "ɒ": "oh",
    "ɛ": "E",
    "e": "E",
    "eɪ": "E",
    "ə": "E",
    "ɛə": "E",
    "eə": "E",
    "ɪ": "ih",
    "i": "ih",
    "ᵻ": "ih",
    "ɪə": "ih",
    "iə": "ih",
    "ɔ": "oh",
    "o": "oh",
    "oʊ": "oh",
    "əʊ": "oh",
    "ɔɪ": "oh",
    "ɔː": "oh",
    "u": "ou",
    "ʊ": "ou",
    "w": "ou",
    "ʍ": "ou",
    "ʊə": "ou",
    "ʉ": "ou",
}


@dataclass(frozen=True)
class VisemeStyle:
    shape: dict[str, float]
    dominance: float  # how strongly it resists its neighbours
    anticipation_s: float  # how far ahead it starts to pull
    carryover_s: float  # how long it lingers


def _sym(**weights: float) -> dict[str, float]:
    """Left/right blendshapes move together here."""
    out = {}
    for name, value in weights.items():
        if name in ("mouthPress", "mouthStretch", "mouthSmile", "mouthLowerDown", "mouthUpperUp"):
            out[name + "Left"] = out[name + "Right"] = value
        else:
            out[name] = value
    return out


STYLES: dict[str, VisemeStyle] = {
    "sil": VisemeStyle(_sym(), 0.9, 0.06, 0.06),
    "PP": VisemeStyle(_sym(jawOpen=0.08, mouthClose=0.08, mouthPress=0.45, mouthRollLower=0.15), 1.0, 0.03, 0.02),
    "FF": VisemeStyle(_sym(jawOpen=0.12, mouthClose=0.02, mouthRollLower=0.55, mouthUpperUp=0.25), 0.85, 0.03, 0.02),
    "TH": VisemeStyle(_sym(jawOpen=0.2, mouthStretch=0.1, mouthLowerDown=0.15), 0.45, 0.03, 0.03),
    "DD": VisemeStyle(_sym(jawOpen=0.22, mouthStretch=0.15, mouthLowerDown=0.1), 0.3, 0.03, 0.03),
    "kk": VisemeStyle(_sym(jawOpen=0.28, mouthStretch=0.1), 0.3, 0.03, 0.03),
    "CH": VisemeStyle(
        _sym(jawOpen=0.18, mouthFunnel=0.55, mouthPucker=0.3, mouthUpperUp=0.2, mouthLowerDown=0.2), 0.7, 0.05, 0.03
    ),
    "SS": VisemeStyle(_sym(jawOpen=0.1, mouthStretch=0.4, mouthSmile=0.2, mouthUpperUp=0.1), 0.6, 0.03, 0.03),
    "nn": VisemeStyle(_sym(jawOpen=0.2, mouthStretch=0.1), 0.3, 0.03, 0.03),
    "RR": VisemeStyle(_sym(jawOpen=0.2, mouthFunnel=0.35, mouthPucker=0.4), 0.6, 0.05, 0.04),
    "aa": VisemeStyle(_sym(jawOpen=0.7, mouthLowerDown=0.35, mouthUpperUp=0.15), 0.6, 0.04, 0.04),
    "E": VisemeStyle(_sym(jawOpen=0.42, mouthStretch=0.3, mouthSmile=0.15, mouthLowerDown=0.2), 0.5, 0.04, 0.04),
    "ih": VisemeStyle(_sym(jawOpen=0.28, mouthStretch=0.4, mouthSmile=0.3, mouthLowerDown=0.1), 0.5, 0.04, 0.04),
    "oh": VisemeStyle(_sym(jawOpen=0.5, mouthFunnel=0.6, mouthPucker=0.25), 0.6, 0.07, 0.05),
    "ou": VisemeStyle(_sym(jawOpen=0.22, mouthPucker=0.8, mouthFunnel=0.35), 0.75, 0.09, 0.05),
}

VISEME_INDEX = {name: i for i, name in enumerate(VISEMES)}
SHAPE_MATRIX = np.array([[STYLES[v].shape.get(b, 0.0) for b in BLENDSHAPES] for v in VISEMES], np.float32)
JAW, CLOSE = JAW_OPEN, MOUTH_CLOSE  # column indices, as training code names them
OPEN_VOWELS = {"aa", "oh", "E"}
SEAL_MARGIN = 0.15  # a p/b/m is sealed except its first and last 15 % (the lips close and part there)


def viseme_of(phoneme: str) -> str:
    if phoneme in IPA_TO_VISEME:
        return IPA_TO_VISEME[phoneme]
    stripped = phoneme.replace("ː", "").replace("ˈ", "").replace("ˌ", "")
    if stripped in IPA_TO_VISEME:
        return IPA_TO_VISEME[stripped]
    if stripped and stripped[0] in IPA_TO_VISEME:  # a diphthong or a marked vowel: its first sound
        return IPA_TO_VISEME[stripped[0]]
    raise KeyError(f"no viseme for phoneme {phoneme!r}")


@dataclass(frozen=True)
class Targets:
    visemes: np.ndarray  # T, int viseme index per frame
    blendshapes: np.ndarray  # T x len(BLENDSHAPES)

    @property
    def aperture(self) -> np.ndarray:
        return aperture(self.blendshapes[:, JAW], self.blendshapes[:, CLOSE])


def frame_count(duration_s: float) -> int:
    return int(round(duration_s / HOP_S))


def make_targets(phonemes: list[tuple[str, float, float]], frames: int) -> Targets:
    """Per-frame viseme labels and coarticulated blendshapes for phonemes (label, start_s, end_s)."""
    t = np.arange(frames) * HOP_S
    labels = np.zeros(frames, np.int64)
    weights = np.zeros((len(phonemes), frames), np.float32)
    shapes = np.zeros((len(phonemes), len(BLENDSHAPES)), np.float32)
    for i, (phoneme, start, end) in enumerate(phonemes):
        viseme = viseme_of(phoneme)
        style = STYLES[viseme]
        inside = (t >= start) & (t < end)
        labels[inside] = VISEME_INDEX[viseme]
        before = np.clip(start - t, 0.0, None)
        after = np.clip(t - end, 0.0, None)
        # Gaussian fall-off: a neighbour's pull is strong nearby and gone within a syllable
        weights[i] = style.dominance * np.exp(
            -((before / style.anticipation_s) ** 2) - (after / style.carryover_s) ** 2
        )
        shapes[i] = SHAPE_MATRIX[VISEME_INDEX[viseme]]
    total = weights.sum(axis=0)
    blend = (weights.T @ shapes) / np.maximum(total, 1e-6)[:, None]
    blend[total < 1e-6] = 0.0
    _seal_bilabials(blend, phonemes, t)
    return Targets(labels, np.clip(blend, 0.0, 1.0))


def _seal_bilabials(blend: np.ndarray, phonemes: list[tuple[str, float, float]], t: np.ndarray) -> None:
    """Lips meet during every p, b, m (the middle of the closure, at least one frame)."""
    for phoneme, start, end in phonemes:
        if viseme_of(phoneme) != "PP":
            continue
        margin = SEAL_MARGIN * (end - start)
        inside = (t >= start + margin) & (t < end - margin)
        if not inside.any():
            inside[min(int(round((start + end) / 2 / HOP_S)), len(t) - 1)] = True
        blend[inside, CLOSE] = blend[inside, JAW]
