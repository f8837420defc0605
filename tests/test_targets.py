"""Training targets: every phoneme the synthesizers and the aligner produce has a viseme, and the
coarticulated curves behave like mouths (closures sealed, rounding anticipated, silence at rest)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_app.shapes import BLENDSHAPES, VISEMES
from models.targets import CLOSE, JAW, VISEME_INDEX, make_targets, viseme_of

PUCKER = BLENDSHAPES.index("mouthPucker")


def test_every_label_the_data_tools_produce_has_a_viseme():
    synth = pytest.importorskip("models.synth", reason="needs the train extra")
    align = pytest.importorskip("models.align", reason="needs the train extra")
    labels = set(synth.PHONEME_LABELS) | set(align.ARPABET_TO_IPA.values())
    assert {viseme_of(label) for label in labels} <= set(VISEMES)


def test_bilabial_closure_is_sealed_between_open_vowels():
    phonemes = [("sil", 0.0, 0.1), ("ɑ", 0.1, 0.25), ("b", 0.25, 0.31), ("ɑ", 0.31, 0.5), ("sil", 0.5, 0.7)]
    targets = make_targets(phonemes, 70)
    aperture = targets.aperture
    assert aperture[26:30].max() == 0.0  # the b, but for its first and last 15 %
    assert aperture[15:22].min() > 0.4 and aperture[36:45].min() > 0.4
    assert targets.visemes[27] == VISEME_INDEX["PP"] and targets.visemes[40] == VISEME_INDEX["aa"]


def test_rounding_is_anticipated_and_silence_rests():
    phonemes = [("sil", 0.0, 0.3), ("s", 0.3, 0.4), ("u", 0.4, 0.6), ("sil", 0.6, 1.0)]
    targets = make_targets(phonemes, 100)
    pucker = targets.blendshapes[:, PUCKER]
    assert pucker[35] > 0.2  # already rounding during the s before the u
    assert pucker[50] > 0.6
    assert np.abs(targets.blendshapes[:15]).max() < 1e-3  # long silence: mouth at rest
    assert np.abs(targets.blendshapes[90:]).max() < 1e-3
    assert (np.diff(targets.blendshapes[:, JAW]) ** 2).max() < 0.05  # no jumps: coarticulated, not steps


def test_targets_stay_in_range():
    rng = np.random.default_rng(0)
    labels = ["p", "ɑ", "s", "i", "m", "u", "f", "oʊ", "t", "sil"]
    edges = np.cumsum(rng.uniform(0.03, 0.2, 40))
    phonemes = [(labels[i % len(labels)], a, b) for i, (a, b) in enumerate(zip(np.r_[0, edges[:-1]], edges))]
    targets = make_targets(phonemes, int(edges[-1] * 100))
    assert targets.blendshapes.min() >= 0 and targets.blendshapes.max() <= 1
    assert (targets.blendshapes[:, CLOSE] <= targets.blendshapes[:, JAW] + 1e-6).all()
