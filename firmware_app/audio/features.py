"""Audio features at 100 frames/s from 16 kHz mono, computed the same way in training and at runtime.

Each frame is [level in dBFS, 40 log-mel bands]. Frame i is computed from the 25 ms window that
ends at sample (i + 1) * HOP, so it needs no future audio and streams in blocks of any size with
results identical to one offline pass. The stream also reports the stop releases it heard, to the
millisecond (`firmware_app.audio.stop_bursts`), for the mouth to part on.
"""

from __future__ import annotations

import numpy as np

from firmware_app.audio.stop_bursts import ReleaseDetector
from firmware_app.frames import HOP_S, SAMPLE_RATE, AudioBlock, FeatureFrames

HOP = round(SAMPLE_RATE * HOP_S)  # 160 samples
WINDOW = 400  # 25 ms
N_FFT = 512
N_MELS = 40
LEVEL_FLOOR_DB = -100.0


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters evenly spaced on the HTK mel scale, n_mels x (n_fft // 2 + 1)."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(np.array(50.0)), to_mel(np.array(sample_rate / 2)), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


_WINDOW = np.hanning(WINDOW + 1)[:-1].astype(np.float32)
_MELS = mel_filterbank()


def frame_features(frames: np.ndarray) -> np.ndarray:
    """Features for windows of WINDOW samples (N x WINDOW) → N x (1 + N_MELS)."""
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    level = np.maximum(20.0 * np.log10(np.maximum(rms, 1e-10)), LEVEL_FLOOR_DB)
    spectrum = np.abs(np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=1)) ** 2
    log_mel = np.log10(np.maximum(spectrum @ _MELS.T, 1e-10))
    return np.column_stack([level, log_mel]).astype(np.float32)


SILENT_FRAME = frame_features(np.zeros((1, WINDOW), np.float32))[0]  # what digital silence looks like


def pad_silence(features: np.ndarray, before: int, after: int) -> np.ndarray:
    """Surround feature frames with frames of digital silence (how models see a stream's edges)."""
    silence = SILENT_FRAME[None].astype(np.float32)
    return np.concatenate([np.repeat(silence, before, 0), features.astype(np.float32), np.repeat(silence, after, 0)])


class FeatureStream:
    """Turns audio blocks of any size into consecutive feature frames."""

    def __init__(self, releases: bool = True) -> None:
        self._pending = np.zeros(WINDOW - HOP, np.float32)  # silence before the first sample
        self._next_index = 0
        self._origin: float | None = None  # the first block's time: frames share the audio's clock
        self._releases: ReleaseDetector | None = None
        self._find_releases = releases

    def push(self, block: AudioBlock) -> FeatureFrames:
        if self._origin is None:
            self._origin = block.t
            self._releases = ReleaseDetector(block.t) if self._find_releases else None
        samples = block.samples.astype(np.float32)
        releases = tuple(self._releases.push(samples)) if self._releases else ()
        self._pending = np.concatenate([self._pending, samples])
        count = (len(self._pending) - (WINDOW - HOP)) // HOP
        t = self._origin + self._next_index * HOP_S
        if count <= 0:
            return FeatureFrames(np.zeros((0, 1 + N_MELS), np.float32), t, releases)
        windows = np.lib.stride_tricks.sliding_window_view(self._pending, WINDOW)[: count * HOP : HOP]
        values = frame_features(windows)
        self._pending = self._pending[count * HOP :]
        self._next_index += count
        return FeatureFrames(values, t, releases)


def frames_of(samples: np.ndarray) -> FeatureFrames:
    """One offline pass over a whole clip: the features and the releases, as streaming gives them."""
    return FeatureStream().push(AudioBlock(samples, 0.0))


def features_of(samples: np.ndarray) -> np.ndarray:
    """The features of a whole clip (what training uses; the mouth model's input)."""
    return FeatureStream(releases=False).push(AudioBlock(samples, 0.0)).values
