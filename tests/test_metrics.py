"""The evaluation metrics score a perfect mouth perfectly and catch the failures they are named for."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import Tally, best_lag_ms, better
from models.targets import make_targets

PHONEMES = [
    ("sil", 0.0, 0.3),
    ("b", 0.3, 0.38),
    ("ɑ", 0.38, 0.6),
    ("m", 0.6, 0.68),
    ("ɑ", 0.68, 0.9),
    ("p", 0.9, 0.98),
    ("i", 0.98, 1.1),
    ("sil", 1.1, 1.6),
]
FRAMES = 160


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(15, dtype=np.float32)[labels]


def score(visemes: np.ndarray, aperture: np.ndarray) -> dict:
    tally = Tally()
    tally.add(visemes, aperture, PHONEMES)
    return tally.results()


def test_the_reference_itself_scores_perfectly():
    ref = make_targets(PHONEMES, FRAMES)
    result = score(one_hot(ref.visemes), ref.aperture)
    assert result["viseme_accuracy"] == 1.0
    assert result["closure_recall"] == 1.0 and result["closures"] == 3
    assert result["open_vowel_recall"] == 1.0 and result["open_vowels"] == 2
    assert result["aperture_correlation"] == pytest.approx(1.0)
    assert result["best_lag_ms"] == 0.0
    assert result["silence_rest"] < 0.01


def test_a_mouth_that_never_closes_fails_closure_and_rest():
    ref = make_targets(PHONEMES, FRAMES)
    result = score(one_hot(ref.visemes), np.full(FRAMES, 0.5, np.float32))
    assert result["closure_recall"] == 0.0
    assert result["silence_rest"] == pytest.approx(0.5)


def test_late_prediction_shows_as_positive_lag_and_costs_accuracy():
    ref = make_targets(PHONEMES, FRAMES)
    late = np.concatenate([np.zeros(8, np.float32), ref.aperture[:-8]])
    assert best_lag_ms(late, ref.aperture) == 80.0
    late_visemes = np.concatenate([np.zeros(8, np.int64), ref.visemes[:-8]])
    assert score(one_hot(late_visemes), late)["viseme_accuracy"] < 0.95
    assert score(one_hot(np.roll(ref.visemes, 2)), ref.aperture)["viseme_accuracy"] == 1.0  # within ±30 ms


def test_better_knows_each_metric_direction():
    assert better("viseme_accuracy", 0.8, 0.7) and not better("silence_rest", 0.2, 0.1)
    assert better("best_lag_ms", -10.0, 30.0) and not better("best_lag_ms", 40.0, -20.0)
