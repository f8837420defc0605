"""The pylipsync peer we compare against, run on the same audio as our model (the other peer, the
loudness baseline, is the runtime's own `firmware_app.mouth.loudness`).

Both take float32 mono 16 kHz audio and return one row per 10 ms frame, frame i depicting
time i * 0.010 s, T = ceil(len(audio) / 160) frames (every frame time inside the clip).

* ``pylipsync_peer`` — pylipsync 0.2.1 (MIT, a Python port of hecomi's uLipSync): 12 MFCCs of a
  64 ms window, cosine similarity (^100) to its bundled templates (one female speaker: uLipSync's
  A I U E O, stored as "aa" "ih" "ou" "ee" "oh", plus "silence"), normalised, then multiplied by
  a volume term clip((log10 rms + 2.5), 0, 1) (rms −50 dBFS → 0, −30 dBFS → 1); when the silence
  template wins ≥ 30 % only "silence" remains. Mapped A→aa, I→ih, U→ou, E("ee")→E, O→oh,
  silence→sil; the share that the volume term removed (1 − volume) also goes to "sil", so rows
  sum to 1. pylipsync has no separate mouth-opening output, so aperture = Σ openness × weight
  with openness A 1.0, E 0.7, O 0.8, I 0.5, U 0.4 (the weights already carry the volume term),
  hence 0 in silence. ~7x real time on one core at 100 frames/s (its per-frame MFCC is plain
  numpy with Python loops; the first call also pays ~1–2 s to import librosa).

Timing offset found and compensated (pylipsync): ``extract_phoneme_segments(fps=100)`` labels
segment k = samples [160k, 160k + 160) and analyses a 1024-sample window centred on the middle
of that segment, 160k + 80 (+5 ms, measured by locating each analysed chunk in the input).
Inside the MFCC, a causal 100-tap FIR low-pass (`_low_pass_filter`, scipy ``lfilter``) delays
the signal by 49.5 samples (3.1 ms) before the Hamming window, so the MFCC effectively depicts
160k + 30.5. We prepend ``PYLIPSYNC_SHIFT`` = 30 zero samples, which puts the MFCC's effective
centre at 160k + 0.5 samples, i.e. frame k depicts time k * 10 ms (±0.03 ms). Residual: its
volume term is the RMS of the 64 ms rectangular window, whose centre is then 3.1 ms late —
negligible against 64 ms of averaging.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms
VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
_V = {name: i for i, name in enumerate(VISEMES)}

# pylipsync
PYLIPSYNC_WINDOW_MS = 64.0  # its default analysis window
PYLIPSYNC_SHIFT = 30  # samples prepended: 80 (half-hop window centre) − 49.5 (FIR delay), rounded
PYLIPSYNC_TO_VISEME = {"aa": "aa", "ih": "ih", "ou": "ou", "ee": "E", "oh": "oh", "silence": "sil"}
OPENNESS = {"aa": 1.0, "E": 0.7, "oh": 0.8, "ih": 0.5, "ou": 0.4}


@dataclass
class PeerOutput:
    viseme_probs: np.ndarray  # T x 15 (rows sum to 1), in VISEMES order, frame i = time i * 0.01 s
    aperture: np.ndarray  # T, lip opening in [0, 1] (0 = lips closed)


def frame_count(n_samples: int) -> int:
    """Frames whose time i * 10 ms lies inside a clip of n_samples: ceil(n / 160)."""
    return -(-n_samples // HOP)


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D array), got shape {audio.shape}")
    return audio


_analyzer = None
_analyzer_lock = threading.Lock()


def _pylipsync_analyzer():
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            try:
                from pylipsync import PhonemeAnalyzer
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("the pylipsync peer needs `pip install pylipsync` (0.2.x)") from exc
            _analyzer = PhonemeAnalyzer()  # bundled templates: phonemes/template.json
        return _analyzer


def pylipsync_peer(audio: np.ndarray) -> PeerOutput:
    """pylipsync (uLipSync port) vowel weights mapped to our visemes (see module docstring)."""
    audio = _mono(audio)
    t = frame_count(len(audio))
    probs = np.zeros((t, len(VISEMES)), np.float32)
    aperture = np.zeros(t, np.float32)
    if t == 0:
        return PeerOutput(probs, aperture)
    shifted = np.concatenate([np.zeros(PYLIPSYNC_SHIFT, np.float32), audio])
    if len(shifted) < HOP:  # pylipsync refuses clips shorter than one hop
        shifted = np.concatenate([shifted, np.zeros(HOP - len(shifted), np.float32)])
    segments = _pylipsync_analyzer().extract_phoneme_segments(
        shifted, SAMPLE_RATE, window_size_ms=PYLIPSYNC_WINDOW_MS, fps=SAMPLE_RATE // HOP
    )
    for i, segment in enumerate(segments[:t]):
        for phoneme in segment.phonemes:
            column = _V[PYLIPSYNC_TO_VISEME[phoneme.name]]
            probs[i, column] += max(0.0, float(phoneme.target))
    total = probs.sum(axis=1)
    # the volume term scales every weight by v ≤ 1; the share it removed is silence
    probs[:, _V["sil"]] += np.maximum(0.0, 1.0 - total)
    probs /= probs.sum(axis=1, keepdims=True)
    for name, openness in OPENNESS.items():
        aperture += openness * probs[:, _V[name]]
    return PeerOutput(probs, np.clip(aperture, 0.0, 1.0).astype(np.float32))
