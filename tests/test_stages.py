"""Each stage on its own: features stream exactly, the baseline follows loudness, sources stamp time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from firmware_app.audio.features import HOP, N_MELS, FeatureStream, features_of
from firmware_app.config import LoudnessSettings, Settings
from firmware_app.errors import ConfigError, DeviceError
from firmware_app.frames import HOP_S, SAMPLE_RATE, AudioBlock, FeatureFrames, MouthShape
from firmware_app.mouth.loudness import LoudnessBaseline
from firmware_app.mouth.track import MouthTrack
from firmware_app.sources import open_audio_source, open_video_source
from firmware_app.sources.audio_file import decode_audio
from firmware_app.sources.base import fit_frame
from firmware_app.uri import parse_uri

from conftest import PORTRAIT, SPEECH


def test_features_stream_in_any_block_size_matches_one_pass():
    samples = decode_audio(SPEECH)[: SAMPLE_RATE * 2]
    offline = features_of(samples)
    rng = np.random.default_rng(0)
    stream, pos, chunks, times = FeatureStream(), 0, [], []
    while pos < len(samples):
        size = int(rng.integers(1, 700))
        out = stream.push(AudioBlock(samples[pos : pos + size], pos / SAMPLE_RATE))
        chunks.append(out.values)
        times.append((out.t, len(out.values)))
        pos += size
    streamed = np.concatenate(chunks)
    assert streamed.shape == offline.shape == (len(samples) // HOP, 1 + N_MELS)
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-4)
    # every chunk's time stamp continues where the previous one ended
    expected = 0.0
    for t, count in times:
        assert t == pytest.approx(expected)
        expected += count * HOP_S


def test_level_feature_is_dbfs():
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    levels = features_of(tone)[5:, 0]
    assert levels == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    assert features_of(np.zeros(SAMPLE_RATE, np.float32))[:, 0].max() <= -99


def shapes_for(levels_db: list[float]) -> list[MouthShape]:
    values = np.zeros((len(levels_db), 1 + N_MELS), np.float32)
    values[:, 0] = levels_db
    return LoudnessBaseline(LoudnessSettings()).push(FeatureFrames(values, 1.0))


def test_baseline_rests_closed_in_silence_and_opens_when_loud():
    shapes = shapes_for([-90] * 20 + [-18] * 30 + [-90] * 40)
    jaw = np.array([s.get("jawOpen") for s in shapes])
    assert jaw[:20].max() == 0.0
    assert jaw[45] > 0.9
    assert jaw[-1] < 0.01  # released
    assert [s.t for s in shapes[:3]] == pytest.approx([1.0, 1.01, 1.02])


def test_baseline_is_monotonic_in_level():
    quiet, loud = shapes_for([-40] * 50)[-1], shapes_for([-25] * 50)[-1]
    assert 0 < quiet.aperture < loud.aperture <= 1


def test_mouth_track_interpolates_and_holds_the_newest():
    track = MouthTrack()
    track.extend([MouthShape(0.00, {"jawOpen": 0.0}), MouthShape(0.01, {"jawOpen": 1.0})])
    assert track.at(0.005).get("jawOpen") == pytest.approx(0.5)
    assert track.at(5.0).get("jawOpen") == 1.0
    assert track.covered_until == pytest.approx(0.02)
    assert MouthTrack().at(1.0).aperture == 0.0


def test_audio_file_source_resamples_and_stamps_contiguous_blocks(tmp_path):
    import av

    stereo = tmp_path / "stereo44k.wav"
    with av.open(str(stereo), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=44_100, layout="stereo")
        tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(44_100) / 44_100) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.stack([tone, tone]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
        )
        frame.sample_rate = 44_100
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    source = open_audio_source(f"file://{stereo}", Settings(), realtime=False)
    with source:
        blocks = []
        while (block := source.read(wait=True)) is not None:
            blocks.append(block)
    assert source.duration == pytest.approx(1.0, abs=0.01)
    assert all(b.t == pytest.approx(a.t_end) for a, b in zip(blocks, blocks[1:]))
    assert len(blocks[0].samples) == SAMPLE_RATE * Settings().audio.block_ms // 1000
    assert np.concatenate([b.samples for b in blocks]).std() == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_paced_audio_file_is_delivered_in_real_time():
    source = open_audio_source(f"file://{SPEECH}", Settings(), realtime=True)
    with source:
        start = time.monotonic()
        assert source.read(wait=False) is None  # its 20 ms have not "happened" yet
        audio_seconds = 0.0
        while audio_seconds < 0.3:
            audio_seconds += source.read(wait=True).duration
        assert time.monotonic() - start >= 0.29


def test_still_image_is_an_endless_source():
    source = open_video_source(f"file://{PORTRAIT}", Settings(), realtime=False)
    with source:
        frames = [source.read() for _ in range(100)]
    assert [f.t for f in frames[:3]] == pytest.approx([0, 1 / 30, 2 / 30])
    assert frames[0].image.shape == (720, 1280, 3)
    assert not frames[0].still and all(f.still for f in frames[1:])


def test_fit_frame_letterboxes_without_distortion():
    tall = np.full((400, 100, 3), 255, np.uint8)
    fitted = fit_frame(tall, (640, 360))
    assert fitted.shape == (360, 640, 3)
    columns = np.where(fitted[180, :, 0] > 0)[0]
    assert len(columns) == pytest.approx(90, abs=1)  # 100 * 360/400, centred
    assert columns[0] == pytest.approx(275, abs=1)


def test_missing_camera_is_a_device_error():
    source = open_video_source("v4l2:///dev/video77", Settings(), realtime=True)
    with pytest.raises(DeviceError, match="/dev/video77"):
        source.open()


def test_uri_parsing():
    assert parse_uri("mic://USB Audio", ("mic", "file")).location == "USB Audio"
    assert parse_uri("/tmp/a.wav", ("mic", "file")).scheme == "file"
    assert parse_uri("bundled://portrait.jpg", ("file",)).path.is_file()
    with pytest.raises(ConfigError, match="display://"):
        parse_uri("display://0", ("mic", "file"))
