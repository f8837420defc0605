"""How well predicted mouth motion matches the reference made from exact phoneme timing.

Every method (the model and its peers) is reduced to the same two things per 10 ms frame — viseme
probabilities and a lip aperture in [0, 1] — and scored the same way:

- viseme_accuracy: the predicted viseme matches the reference within ±30 ms;
- closure_recall: share of p/b/m in which the lips actually close (aperture < CLOSED) at some frame
  inside the phoneme (±20 ms);
- open_vowel_recall: share of open vowels (viseme aa) in which the mouth opens (aperture > OPEN);
- aperture_correlation: Pearson correlation of the aperture curves;
- best_lag_ms: the shift of the prediction that correlates best with the reference (+ = late);
- silence_rest: mean aperture in silences at least 100 ms away from speech (lower = lips at rest);
- false_open_rate: share of frames, in the middle half of every p/b/m and inside every silence
  (pauses of 150 ms or more, 50 ms in from their edges), where the aperture is above half the
  utterance's own 95th percentile (a mouth that opens where it must be shut);
- burst_error_ms: for every acoustic p/b release (`models.bursts`, found in the sound, not by the
  aligner), when the lips start to part minus the burst; reported as the median absolute error,
  the median signed error (+ = late), the share within ±10 ms, and the share of bursts before
  which the mouth was closed at all (`burst_closed`; an unclosed one has no parting time).
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
HIGHER_IS_BETTER = {
    "viseme_accuracy": True,
    "closure_recall": True,
    "open_vowel_recall": True,
    "false_open_rate": False,
    "aperture_correlation": True,
    "best_lag_ms": None,
    "silence_rest": False,
    "burst_error_ms": False,
    "burst_closed": True,
}
PAUSE_S = 0.15  # silences at least this long count for false-open
PAUSE_EDGE_S = 0.05  # ... from this far inside their edges (the lips may still be closing)


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
    shut_frames: int = 0
    shut_open: int = 0
    burst_errors: list[float] = field(default_factory=list)
    bursts: int = 0

    def add_bursts(self, aperture: np.ndarray, bursts: list[float]) -> None:
        """Score when the lips part against acoustic releases (seconds)."""
        from models.bursts import parting_time

        for burst in bursts:
            self.bursts += 1
            parted = parting_time(np.clip(aperture, 0.0, 1.0), burst, HOP_S)
            if parted is not None:
                self.burst_errors.append((parted - burst) * 1000.0)

    def add_shut(self, aperture: np.ndarray, shut: np.ndarray) -> None:
        """Count frames marked `shut` (bool per frame) where the mouth is open."""
        n = min(len(aperture), len(shut))
        threshold = 0.5 * float(np.percentile(aperture[:n], 95)) if n else 0.0
        self.shut_frames += int(shut[:n].sum())
        self.shut_open += int((shut[:n] & (aperture[:n] > threshold)).sum())

    def add(
        self,
        viseme_probs: np.ndarray,
        aperture: np.ndarray,
        phonemes: list[tuple[str, float, float]],
        bursts: list[float] | None = None,
    ) -> None:
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
        self.add_shut(aperture, shut_frames(phonemes, n))
        self.add_bursts(aperture, bursts or [])

    def results(self) -> dict[str, float]:
        predicted = np.concatenate(self.predicted) if self.predicted else np.zeros(0)
        reference = np.concatenate(self.reference) if self.reference else np.zeros(0)
        rest = np.concatenate(self.rest) if self.rest else np.zeros(0)
        errors = np.array(self.burst_errors)
        return {
            "viseme_accuracy": self.viseme_hits / max(self.frames, 1),
            "closure_recall": self.closures_hit / max(self.closures, 1),
            "open_vowel_recall": self.open_vowels_hit / max(self.open_vowels, 1),
            "aperture_correlation": float(np.mean(self.correlations)) if self.correlations else 0.0,
            "best_lag_ms": best_lag_ms(predicted, reference) if len(predicted) else 0.0,
            "silence_rest": float(rest.mean()) if len(rest) else 0.0,
            "false_open_rate": self.shut_open / max(self.shut_frames, 1),
            "burst_error_ms": float(np.median(np.abs(errors))) if len(errors) else float("nan"),
            "burst_signed_ms": float(np.median(errors)) if len(errors) else float("nan"),
            "burst_within_10ms": float(np.mean(np.abs(errors) <= 10.0)) if len(errors) else float("nan"),
            "burst_closed": len(errors) / self.bursts if self.bursts else float("nan"),
            "bursts": self.bursts,
            "closures": self.closures,
            "open_vowels": self.open_vowels,
            "frames": self.frames,
        }


def shut_frames(phonemes: list[tuple[str, float, float]], frames: int) -> np.ndarray:
    """Frames where the lips must be shut: the middle half of every p/b/m, and pauses of
    PAUSE_S or more from PAUSE_EDGE_S inside their edges."""
    t = np.arange(frames) * HOP_S
    shut = np.zeros(frames, bool)
    for phoneme, start, end in phonemes:
        viseme = viseme_of(phoneme)
        if viseme == "PP":
            quarter = 0.25 * (end - start)
            shut |= (t >= start + quarter) & (t < end - quarter)
        elif viseme == "sil" and end - start >= PAUSE_S and phoneme in ("sil", ""):
            shut |= (t >= start + PAUSE_EDGE_S) & (t < end - PAUSE_EDGE_S)
    return shut


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
