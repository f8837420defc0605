"""The offline render path end to end, on the bundled assets, through the real CLI."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_app.audio.features import features_of
from firmware_app.config import Settings
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import Face, VideoFrame
from firmware_app.sources.audio_file import decode_audio, write_wav

from conftest import PORTRAIT, SPEECH, cli
from media import audio_samples, stream_durations, video_frames

pytestmark = pytest.mark.wheels  # CI runs these again on the Jetson's pinned versions

FPS = 30.0


@pytest.fixture(scope="module")
def frames(demo_render):
    return video_frames(demo_render)


@pytest.fixture(scope="module")
def speech_level_per_frame():
    """The clip's loudest 10 ms level (dBFS) within each video frame's 1/30 s."""
    levels = features_of(decode_audio(SPEECH))[:, 0]
    per_frame = len(levels) * FPS / 100
    return np.array([levels[int(i * 100 / FPS) : int((i + 1) * 100 / FPS)].max() for i in range(int(per_frame))])


def tracked(image: np.ndarray) -> Face:
    with FaceTracker(Settings().tracker) as tracker:
        face = tracker.track(VideoFrame(image, 0.0, 0))
    assert face is not None, "no face found in the rendered frame"
    return face


@pytest.mark.integration
def test_output_has_video_and_audio_of_the_speech_duration(demo_render):
    speech_seconds = len(decode_audio(SPEECH)) / 16_000
    durations = stream_durations(demo_render)
    assert set(durations) == {"video", "audio"}
    assert abs(durations["video"] - speech_seconds) <= 1.5 / FPS
    assert abs(durations["audio"] - speech_seconds) <= 0.05


@pytest.mark.integration
def test_output_audio_is_the_input_speech(demo_render):
    original = decode_audio(SPEECH)
    muxed = audio_samples(demo_render)
    n = min(len(original), len(muxed))
    # AAC has a short encoder delay: find it, then the waveforms must match closely.
    lag = int(np.argmax(np.correlate(muxed[:20000], original[4000:12000], mode="valid"))) - 4000
    aligned = muxed[max(lag, 0) : max(lag, 0) + n - 4000]
    reference = original[: len(aligned)]
    correlation = np.corrcoef(aligned, reference)[0, 1]
    assert correlation > 0.95


@pytest.mark.integration
def test_mouth_opens_with_speech_and_rests_in_silence(frames, speech_level_per_frame):
    face = tracked(frames[0])  # the clip starts with half a second of silence
    mouth = face.landmarks[[61, 291, 13, 14, 17], :2]
    x0, y0 = mouth.min(axis=0).astype(int) - 6
    x1, y1 = mouth.max(axis=0).astype(int) + 6
    y1 += int(0.1 * face.height)  # the jaw drops: the opening reaches below the closed lips
    # The opening shows the dark mouth interior; the closed lips of the portrait have none.
    dark = np.array([(f[y0:y1, x0:x1].max(axis=2) < 70).sum() for f in frames])
    n = min(len(dark), len(speech_level_per_frame))
    dark, level = dark[:n], speech_level_per_frame[:n]
    loud = level > -30
    silent = level < -60
    # at rest: silent now, for the last 300 ms (the jaw's release) and the next 2 frames
    at_rest = np.array([silent[max(0, i - 9) : i + 3].all() for i in range(n)])
    assert loud.sum() > 100 and at_rest.sum() > 20
    # a face that shows its teeth opens below them, so quiet syllables show teeth and loud ones a cavity
    assert np.median(dark[loud]) > 2 * dark[0] and np.percentile(dark[loud], 90) > 100, (
        "the mouth does not open with speech"
    )
    assert dark[at_rest].max() <= dark[0] + 3, (
        f"the mouth is open in silence: {dark[at_rest].max()} dark pixels, {np.median(dark[loud])} in speech"
    )
    assert dark[0] < 0.1 * np.percentile(dark[loud], 90), "the portrait's mouth should start closed"


@pytest.mark.integration
def test_rendered_mouth_is_measurably_open_when_loud(frames, speech_level_per_frame):
    """Closed loop: MediaPipe, looking at the rendered frames, sees the lips part during speech."""

    def lip_gap(image: np.ndarray) -> float:
        points = tracked(image).landmarks
        return float(np.linalg.norm(points[14, :2] - points[13, :2]) / np.linalg.norm(points[152, :2] - points[10, :2]))

    level = speech_level_per_frame
    loud = [i for i in range(0, min(len(frames), len(level)), 7) if level[i] > -25][:8]
    measured_loud = np.mean([lip_gap(frames[i]) for i in loud])
    measured_rest = lip_gap(frames[0])
    assert measured_rest < 0.03
    assert measured_loud > measured_rest + 0.025, (measured_loud, measured_rest)


@pytest.mark.integration
def test_disclosure_mark_is_visible(frames):
    # The portrait is letterboxed: without the mark the bottom-left corner is pure black.
    corner = frames[len(frames) // 2][-80:, :300]
    assert (corner.max(axis=2) > 200).sum() > 300


@pytest.mark.integration
def test_render_is_deterministic(demo_render, tmp_path):
    again = tmp_path / "again.mp4"
    result = cli("render", "--audio", str(SPEECH), "--face", str(PORTRAIT), "--out", str(again))
    assert result.returncode == 0, result.stderr
    first, second = video_frames(demo_render), video_frames(again)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


@pytest.mark.integration
def test_render_with_a_looping_video_clip_as_face(tmp_path):
    """A clip face is tracked every frame and loops when the speech is longer than the clip."""
    samples = decode_audio(SPEECH)
    short = tmp_path / "short.wav"
    write_wav(short, samples[16000 : 16000 * 3])  # 2 s of speech
    clip = tmp_path / "clip.mp4"
    assert (
        cli(
            "render", "--audio", str(short), "--face", str(PORTRAIT), "--out", str(clip), "--size", "640x360"
        ).returncode
        == 0
    )
    out = tmp_path / "looped.mp4"
    result = cli("render", "--audio", str(SPEECH), "--face", str(clip), "--out", str(out), "--size", "640x360")
    assert result.returncode == 0, result.stderr
    assert abs(stream_durations(out)["video"] - len(samples) / 16_000) <= 1.5 / FPS
    rendered = video_frames(out)
    assert rendered[0].shape == (360, 640, 3)
    # the face is still found and re-rendered after the clip has looped several times
    assert tracked(rendered[-30]) is not None
