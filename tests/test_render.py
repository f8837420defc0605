"""The offline render path end to end, on the bundled assets, through the real CLI."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_app.audio.features import features_of
from firmware_app.config import Settings
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import Face, VideoFrame
from firmware_app.render.opening import inner_gap
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
    # Measured from the pixels by MediaPipe (each frame on its own, no smoothing): the interior is a
    # real mouth from the donor library, so "dark pixels" no longer tell open from closed.
    n = min(len(frames), len(speech_level_per_frame))
    level = speech_level_per_frame[:n]
    with FaceTracker(Settings().tracker) as tracker:
        faces = [tracker.measure(frames[i]) for i in range(0, n, 2)]
    assert all(face is not None for face in faces), "the rendered face was lost"
    gap = np.array([inner_gap(face) for face in faces])
    level = level[::2]
    loud = level > -30
    silent = level < -60
    # at rest: silent now, for the last 300 ms (the jaw's release) and the next 2 frames
    at_rest = np.array([silent[max(0, i - 5) : i + 2].all() for i in range(len(level))])
    assert loud.sum() > 50 and at_rest.sum() > 10
    assert np.median(gap[loud]) > gap[0] + 0.02 and np.percentile(gap[loud], 90) > 0.06, (
        "the mouth does not open with speech",
        np.median(gap[loud]),
        gap[0],
    )
    assert gap[at_rest].max() <= gap[0] + 0.01, (
        f"the mouth is open in silence: gap {gap[at_rest].max():.3f}, {np.median(gap[loud]):.3f} in speech"
    )
    assert gap[0] < 0.02, "the portrait's mouth should start closed"


@pytest.mark.integration
def test_rendered_mouth_is_measurably_open_when_loud(frames, speech_level_per_frame):
    """Closed loop: MediaPipe, looking at the rendered frames, sees the lips part during speech."""

    level = speech_level_per_frame
    loud = [i for i in range(0, min(len(frames), len(level)), 7) if level[i] > -25][:8]
    measured_loud = np.mean([inner_gap(tracked(frames[i])) for i in loud])
    measured_rest = inner_gap(tracked(frames[0]))
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
