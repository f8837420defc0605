"""The realism classifier's fixed parts: features of a fixed length, a split by identity."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skimage")

from calibration import realism


def test_split_is_by_identity() -> None:
    assert not set(realism.DEVELOPMENT) & set(realism.HELD_OUT)


def test_features_have_a_fixed_length_whatever_the_crop() -> None:
    rng = np.random.default_rng(0)
    a = realism.features(rng.integers(0, 255, (30, 50, 3), np.uint8))
    b = realism.features(rng.integers(0, 255, (71, 97, 3), np.uint8))
    assert a.shape == b.shape and a.dtype == np.float32


def test_classifier_tells_two_kinds_of_crop_apart_and_not_one_from_itself() -> None:
    rng = np.random.default_rng(1)
    smooth = [np.full((40, 64, 3), int(v), np.uint8) for v in rng.integers(80, 160, 20)]
    noisy = [rng.integers(0, 255, (40, 64, 3), np.uint8) for _ in range(20)]
    x = np.array([realism.features(c) for c in smooth + noisy])
    y = np.array([0] * 20 + [1] * 20)
    assert realism.accuracy(realism.train(x, y), x, y) == 1.0
