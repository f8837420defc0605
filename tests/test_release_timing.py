"""Stop releases heard to the millisecond, and the mouth parting on them: the detector finds a burst
after a closure, streams exactly as one pass, and the runtime's mouth (the shipped model with
release timing) parts within a few ms of each burst it closed for, with no latency added."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_app.audio.stop_bursts import ReleaseDetector, releases_of
from firmware_app.config import ModelSettings
from firmware_app.frames import HOP_S, FeatureFrames, MouthShape
from firmware_app.mouth import create_mouth_model
from firmware_app.mouth.base import MouthModel
from firmware_app.mouth.release_timing import CLOSED, HOLD_S, PART_MAX_SPEED, PART_S, ReleaseTiming, hold_for
from firmware_app.sources.audio_file import decode_audio
from firmware_app.tools.analyze import analyze_samples, stream_samples
from models.bursts import PART_APERTURE, parting_time

from conftest import SPEECH

RATE = 16000


def vowel(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced, vowel-like sound: a 120 Hz pulse train through two resonances, plus breath."""
    n = int(seconds * RATE)
    pulses = np.zeros(n)
    pulses[:: RATE // 120] = 1.0
    t = np.arange(200) / RATE
    formants = sum(np.exp(-t * 400) * np.sin(2 * np.pi * f * t) for f in (700, 1200, 2600))
    sound = np.convolve(pulses, formants)[:n] + 0.02 * rng.standard_normal(n)
    return (0.1 * sound / np.abs(sound).max()).astype(np.float32)


def closure_and_burst(rng: np.random.Generator, closure_s: float = 0.07) -> np.ndarray:
    """A /b/: a closure where only a quiet 120 Hz voicing bar sounds, then a 6 ms broadband burst."""
    n = int(closure_s * RATE)
    voicing_bar = 0.002 * np.sin(2 * np.pi * 120 * np.arange(n) / RATE)
    burst = 0.08 * rng.standard_normal(96) * np.exp(-np.arange(96) / 40)
    return np.concatenate([voicing_bar, burst]).astype(np.float32)


@pytest.fixture(scope="module")
def syllables() -> tuple[np.ndarray, list[float]]:
    """ "a-ba-ba-ba": three bursts at known times."""
    rng = np.random.default_rng(5)
    parts, bursts, at = [vowel(0.6, rng)], [], 0.6
    for _ in range(3):
        closure = closure_and_burst(rng)
        bursts.append(at + 0.07)
        parts += [closure, vowel(0.3, rng)]
        at += len(closure) / RATE + 0.3
    return np.concatenate(parts), bursts


def test_a_burst_after_a_quiet_closure_is_found_to_the_millisecond(syllables):
    audio, bursts = syllables
    found = releases_of(audio)
    assert len(found) == len(bursts), found
    assert np.abs(np.array(found) - bursts).max() <= 0.002
    assert releases_of(vowel(1.0, np.random.default_rng(1))) == []  # a steady vowel has none
    assert releases_of(np.zeros(RATE, np.float32)) == []  # nor has silence


def test_streaming_finds_exactly_the_releases_of_one_pass():
    speech = decode_audio(SPEECH)
    whole = releases_of(speech)
    assert len(whole) >= 10  # the bundled speech has stops
    rng = np.random.default_rng(2)
    for typical in (1, 160, 1000):
        detector, found, pos = ReleaseDetector(), [], 0
        while pos < len(speech):
            size = int(rng.integers(1, 2 * typical + 1))
            found += detector.push(speech[pos : pos + size])
            pos += size
        assert found == whole


class ScriptedMouth(MouthModel):
    """A mouth model that closes over [closed_from, opens_at) and is open elsewhere: stands in for a
    network whose parting is off by a known amount."""

    lookahead_s = 0.05

    def __init__(self, closed_from: float, opens_at: float) -> None:
        self.closed_from, self.opens_at = closed_from, opens_at

    def push(self, features: FeatureFrames) -> list[MouthShape]:
        times = features.t + HOP_S * np.arange(len(features.values))
        return [
            MouthShape(float(t), {"jawOpen": 0.4, "mouthClose": 0.4 if self.closed_from <= t < self.opens_at else 0.0})
            for t in times
        ]


def parting_of(model: MouthModel, burst: float) -> float | None:
    silence = np.zeros((60, 41), np.float32)
    shapes = model.push(FeatureFrames(silence, 0.0, (burst,)))
    aperture = np.array([s.get("jawOpen") - s.get("mouthClose") for s in shapes])
    return parting_time(aperture, burst)


@pytest.mark.parametrize("model_opens_at", [0.27, 0.28, 0.32, 0.35])  # 32 ms early … 48 ms late
def test_the_lips_part_at_the_burst_whether_the_model_is_early_or_late(model_opens_at):
    burst = 0.293
    alone = parting_of(ScriptedMouth(0.15, model_opens_at), burst)
    timed = parting_of(ReleaseTiming(ScriptedMouth(0.15, model_opens_at)), burst)
    assert alone is not None and abs(alone - burst) > 0.015
    assert timed is not None and abs(timed - burst) <= 0.006


class ScriptedMouth20(ScriptedMouth):
    lookahead_s = 0.02  # the 20 ms model's look-ahead: 9 ms of it left once a release is confirmed


def test_a_20_ms_model_holds_only_what_its_look_ahead_allows_and_still_parts_at_the_burst():
    assert hold_for(0.05) == HOLD_S and hold_for(0.02) == pytest.approx(0.009)
    with pytest.raises(ValueError, match="cannot wait for the release detector"):
        ReleaseTiming(type("Blind", (ScriptedMouth,), {"lookahead_s": 0.01})(0.15, 0.3))
    burst = 0.293
    for late in (0.32, 0.35):  # a late parting is moved onto the burst as with 50 ms
        assert abs(parting_of(ReleaseTiming(ScriptedMouth20(0.15, late)), burst) - burst) <= 0.006
    # the frame at 0.29 is held (the burst is 3 ms ahead, within the 9 ms), the one at 0.28 cannot be
    shapes = ReleaseTiming(ScriptedMouth20(0.15, 0.29)).push(
        FeatureFrames(np.zeros((60, 41), np.float32), 0.0, (burst,))
    )
    aperture = {round(s.t, 2): s.get("jawOpen") - s.get("mouthClose") for s in shapes}
    assert aperture[0.29] == pytest.approx(0.0)
    early = ReleaseTiming(ScriptedMouth20(0.15, 0.28)).push(
        FeatureFrames(np.zeros((60, 41), np.float32), 0.0, (burst,))
    )
    assert {round(s.t, 2): s.get("jawOpen") - s.get("mouthClose") for s in early}[0.28] == pytest.approx(0.4)


def test_an_early_model_does_not_jump_open_on_the_burst_frame():
    """Held shut until a burst just before a frame, the mouth opens at the lips' pace from the burst,
    not to the model's whole aperture within that frame, and is the model's own again after PART_S."""
    burst = 0.2999
    shapes = ReleaseTiming(ScriptedMouth(0.15, 0.28)).push(FeatureFrames(np.zeros((60, 41), np.float32), 0.0, (burst,)))
    aperture = {round(s.t, 2): s.get("jawOpen") - s.get("mouthClose") for s in shapes}
    assert aperture[0.29] == pytest.approx(0.0)  # held
    assert aperture[0.30] <= PART_MAX_SPEED * 0.0001 + 1e-6 and aperture[0.31] == pytest.approx(
        PART_MAX_SPEED * 0.0101, abs=1e-4
    )
    assert aperture[0.34] == pytest.approx(0.4)  # the model's own opening


def test_an_open_mouth_is_left_alone():
    """A release while the model holds the mouth open (it did not hear a bilabial) changes nothing."""
    burst = 0.293
    shapes = ReleaseTiming(ScriptedMouth(9.0, 9.0)).push(FeatureFrames(np.zeros((60, 41), np.float32), 0.0, (burst,)))
    assert all(s.get("jawOpen") - s.get("mouthClose") == pytest.approx(0.4) for s in shapes)


def test_the_runtime_mouth_parts_at_each_burst_and_streams_exactly_as_one_pass():
    speech = decode_audio(SPEECH)
    timed = create_mouth_model(ModelSettings())
    bare = create_mouth_model(ModelSettings(release_timing=False))
    assert isinstance(timed, ReleaseTiming) and timed.lookahead_s == bare.lookahead_s  # no latency added
    whole = analyze_samples(speech, timed)
    timed.reset()
    streamed = stream_samples(speech, timed, block=777)
    np.testing.assert_allclose(streamed.blendshapes, whole.blendshapes, atol=1e-5)
    bare_curves = analyze_samples(speech, bare)
    timed_errors, bare_errors = [], []
    releases = releases_of(speech)
    for previous, burst in zip([-1.0, *releases], releases):
        if burst - previous < PART_S:
            continue  # the lips part at the first of a cluster (a burst and its aspiration)
        k = int(burst / HOP_S)
        # the model had shut the mouth from 80 ms before the burst until the hold's reach
        if bare_curves.aperture[k - 8 : k - 2].max() < PART_APERTURE:
            timed_errors.append(abs(parting_time(whole.aperture, burst) - burst))
            bare_errors.append(abs(parting_time(bare_curves.aperture, burst) - burst))
    assert len(timed_errors) >= 4
    assert max(bare_errors) > 0.010  # the model alone misses some by more than a frame ...
    assert max(timed_errors) <= 0.006  # ... re-timed, every one parts within 6 ms of its burst
    closed_share = np.mean(whole.aperture < CLOSED)
    assert abs(closed_share - np.mean(bare_curves.aperture < CLOSED)) < 0.05  # re-timed, not re-shaped
