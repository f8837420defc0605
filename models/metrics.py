"""How well predicted mouth motion matches the reference made from exact phoneme timing.

Every method (the model and its peers) is reduced to the same two things per 10 ms frame — viseme
probabilities and a lip aperture in [0, 1] — and scored the same way:

- viseme_accuracy: the predicted viseme matches the reference within ±30 ms;
- closure_recall: share of p/b/m in which the lips actually close (aperture < CLOSED) at some frame
  inside the phoneme (±20 ms);
- open_vowel_recall: share of open vowels (viseme aa) in which the mouth opens (aperture > OPEN);
- aperture_correlation: Pearson correlation of the aperture curves;
- best_lag_ms: the shift of the prediction that correlates best with the reference (+ = late);
- silence_rest: mean aperture in silences at least 100 ms away from speech (lower = lips at rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.targets import VISEME_INDEX, make_targets, viseme_of

HOP_S = 0.010
TOLERANCE_FRAMES = 3
CLOSED = 0.1
OPEN = 0.25
MAX_LAG_FRAMES = 20
HIGHER_IS_BETTER = {"viseme_accuracy": True, "closure_recall": True, "open_vowel_recall": True,
                    "aperture_correlation": True, "best_lag_ms": None, "silence_rest": False}


@dataclass
class Tally:
    """Accumulates one method's results over many utterances, pooled by frame or by event."""

    viseme_hits: int = 0
    frames: int = 0
    closures: int = 0
    closures_hit: int = 0
    open_vowels: int = 0
    open_vowels_hit: int = 0
    correlations: list[float] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    reference: list[np.ndarray] = field(default_factory=list)
    rest: list[np.ndarray] = field(default_factory=list)

    def add(self, viseme_probs: np.ndarray, aperture: np.ndarray, phonemes: list[tuple[str, float, float]]) -> None:
        n = min(len(viseme_probs), len(aperture))
        ref = make_targets(phonemes, n)
        viseme_probs, aperture = viseme_probs[:n], np.clip(aperture[:n], 0.0, 1.0)
        predicted = viseme_probs.argmax(axis=1)
        window = np.lib.stride_tricks.sliding_window_view(
            np.pad(ref.visemes, TOLERANCE_FRAMES, mode="edge"), 2 * TOLERANCE_FRAMES + 1
        )
        self.viseme_hits += int((window == predicted[:, None]).any(axis=1).sum())
        self.frames += n
        for phoneme, start, end in phonemes:
            first, last = int(start / HOP_S), int(np.ceil(end / HOP_S))
            viseme = viseme_of(phoneme)
            if viseme == "PP":
                segment = aperture[max(0, first - 2) : min(n, last + 2)]
                self.closures += 1
                self.closures_hit += int(len(segment) > 0 and segment.min() < CLOSED)
            elif viseme == "aa":
                segment = aperture[first : min(n, last)]
                self.open_vowels += 1
                self.open_vowels_hit += int(len(segment) > 0 and segment.max() > OPEN)
        if aperture.std() > 1e-6 and ref.aperture.std() > 1e-6:
            self.correlations.append(float(np.corrcoef(aperture, ref.aperture)[0, 1]))
        self.predicted.append(aperture)
        self.reference.append(ref.aperture)
        speech = ref.visemes != VISEME_INDEX["sil"]
        near_speech = np.convolve(speech, np.ones(21), mode="same") > 0  # ±100 ms
        self.rest.append(aperture[~near_speech])

    def results(self) -> dict[str, float]:
        predicted, reference = np.concatenate(self.predicted), np.concatenate(self.reference)
        rest = np.concatenate(self.rest)
        return {
            "viseme_accuracy": self.viseme_hits / max(self.frames, 1),
            "closure_recall": self.closures_hit / max(self.closures, 1),
            "open_vowel_recall": self.open_vowels_hit / max(self.open_vowels, 1),
            "aperture_correlation": float(np.mean(self.correlations)) if self.correlations else 0.0,
            "best_lag_ms": best_lag_ms(predicted, reference),
            "silence_rest": float(rest.mean()) if len(rest) else 0.0,
            "closures": self.closures,
            "open_vowels": self.open_vowels,
            "frames": self.frames,
        }


def best_lag_ms(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Shift (ms) of `predicted` that best matches `reference`; positive means the prediction is late."""
    p = predicted - predicted.mean()
    r = reference - reference.mean()
    scores = {}
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        if lag >= 0:
            scores[lag] = float(np.dot(p[lag:], r[: len(r) - lag]))
        else:
            scores[lag] = float(np.dot(p[:lag], r[-lag:]))
    return max(scores, key=scores.get) * HOP_S * 1000


def better(metric: str, a: float, b: float) -> bool:
    """Is a better than b on this metric? Lag is better the closer it is to zero."""
    direction = HIGHER_IS_BETTER[metric]
    if direction is None:
        return abs(a) < abs(b)
    return a > b if direction else a < b
