"""Plosive releases found in the sound itself: timing anchors that no aligner's bias can move.

A stop's release is a sharp acoustic event: a near-silent closure (above ~1.2 kHz even a voiced
/b/ is quiet), then a broadband burst. For p and b the lips part at that burst. Three uses:

- `release_near`: the burst of one aligned p/b, searched around the aligner's release boundary;
- `aligner_bias_ms`: how late (+) the aligner puts releases, the median over many anchors;
- `parting_time`: when a predicted (or reference) aperture curve starts to open after its
  closure, to compare with the burst;
- `find_releases` + `looks_bilabial`: every release in an utterance without a transcript, and
  whether its burst spectrum is bilabial-like (diffuse, falling: Stevens & Blumstein) — for the
  recordings we cannot align (other languages).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

SAMPLE_RATE = 16_000
HOP = 16  # 1 ms
WINDOW = 64  # 4 ms
HIGH_BAND_HZ = 1200.0
CLOSURE_S = (0.035, 0.005)  # the closure is judged over [t - 35 ms, t - 5 ms]
QUIET_BELOW_PEAK_DB = 28.0  # the closure is this far below the utterance's loud level
RISE_DB = 12.0  # and the burst this far above the closure, within RISE_WITHIN_S
RISE_WITHIN_S = 0.006
ONSET_ABOVE_CLOSURE_DB = 8.0  # the release instant: first millisecond this far above the closure
SEARCH_S = 0.05  # around an aligned release boundary
PART_APERTURE = 0.05  # lips "start to part" when the aperture crosses this after a closure
CLOSED_APERTURE = 0.1  # a closure counts when the aperture fell below this (models.metrics.CLOSED)


def high_band_db(audio: np.ndarray) -> np.ndarray:
    """Level (dB) above HIGH_BAND_HZ in 4 ms windows every 1 ms; index i covers samples
    [i * HOP, i * HOP + WINDOW)."""
    sos = butter(4, HIGH_BAND_HZ / (SAMPLE_RATE / 2), "highpass", output="sos")
    x = sosfiltfilt(sos, np.asarray(audio, np.float64))
    if len(x) < WINDOW:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP]
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def _release_candidates(level: np.ndarray, loud: float | None = None) -> list[tuple[float, float]]:
    """(release time s, rise dB) wherever a quiet closure is followed by a sharp rise; `loud` is
    the utterance's loud level (its 95th percentile unless given, for a slice of an utterance)."""
    before_a, before_b = int(CLOSURE_S[0] * 1000), int(CLOSURE_S[1] * 1000)
    rise_n = int(RISE_WITHIN_S * 1000)
    if len(level) < before_a + rise_n + 1:
        return []
    loud = float(np.percentile(level, 95)) if loud is None else loud
    out: list[tuple[float, float]] = []
    i = before_a
    while i < len(level) - rise_n:
        closure = np.median(level[i - before_a : i - before_b])
        peak = level[i : i + rise_n].max()
        if (
            closure < loud - QUIET_BELOW_PEAK_DB
            and peak - closure >= RISE_DB
            and level[i - 1] < closure + ONSET_ABOVE_CLOSURE_DB
        ):
            onset = i + int(np.argmax(level[i : i + rise_n] >= closure + ONSET_ABOVE_CLOSURE_DB))
            # three quarters into the first 4 ms window that rose: the burst starts within it
            out.append(((onset * HOP + WINDOW * 0.75) / SAMPLE_RATE, float(peak - closure)))
            i = onset + 40  # one release per 40 ms
        else:
            i += 1
    return out


def find_releases(audio: np.ndarray) -> list[float]:
    """Every stop release (s) in an utterance."""
    return [t for t, _ in _release_candidates(high_band_db(audio))]


def release_near(audio: np.ndarray, boundary_s: float, level: np.ndarray | None = None) -> float | None:
    """The burst of the stop whose release the aligner put at `boundary_s`, or None when no
    clear burst lies within ±SEARCH_S (the strongest one wins)."""
    level = high_band_db(audio) if level is None else level
    if len(level) == 0:
        return None
    lo = max(0, int((boundary_s - SEARCH_S - CLOSURE_S[0]) * 1000))
    hi = min(len(level), int((boundary_s + SEARCH_S + RISE_WITHIN_S) * 1000) + 1)
    found = [(t + lo / 1000.0, rise) for t, rise in _release_candidates(level[lo:hi], float(np.percentile(level, 95)))]
    found = [(t, rise) for t, rise in found if abs(t - boundary_s) <= SEARCH_S]
    return max(found, key=lambda c: c[1])[0] if found else None


def burst_tilt_db(audio: np.ndarray, release_s: float) -> float:
    """Energy above 3 kHz minus energy 0.6–3 kHz in the first 10 ms of the burst (dB): low for
    bilabials (diffuse-falling spectrum), high for alveolars, in between for velars."""
    start = int(release_s * SAMPLE_RATE)
    burst = np.asarray(audio[start : start + 160], np.float64)
    if len(burst) < 160:
        return float("nan")
    spectrum = np.abs(np.fft.rfft(burst * np.hanning(160), 512)) ** 2
    freqs = np.fft.rfftfreq(512, 1.0 / SAMPLE_RATE)
    high = spectrum[(freqs >= 3000) & (freqs < 7500)].sum()
    mid = spectrum[(freqs >= 600) & (freqs < 3000)].sum()
    return float(10 * np.log10((high + 1e-12) / (mid + 1e-12)))


def parting_time(aperture: np.ndarray, release_s: float, hop_s: float = 0.01) -> float | None:
    """When the aperture (one value per hop_s, row t at t * hop_s) starts to open after the
    closure around `release_s`: the interpolated upward crossing of PART_APERTURE after the
    lowest point in [release - 80 ms, release + 20 ms]. None when it never closed there."""
    lo, hi = max(0, int((release_s - 0.08) / hop_s)), min(len(aperture), int((release_s + 0.02) / hop_s) + 1)
    if hi <= lo:
        return None
    low = lo + int(np.argmin(aperture[lo:hi]))
    if aperture[low] >= CLOSED_APERTURE:
        return None
    for k in range(low + 1, min(len(aperture), low + 30)):
        if aperture[k] >= PART_APERTURE:
            a0, a1 = aperture[k - 1], aperture[k]
            frac = 0.0 if a0 >= PART_APERTURE else (PART_APERTURE - a0) / max(a1 - a0, 1e-9)
            return (k - 1 + frac) * hop_s
    return None


def aligner_bias_ms(pairs: list[tuple[float, float]]) -> float:
    """Median (aligned release - burst) in ms over (aligned, burst) pairs; + = aligner late."""
    if not pairs:
        return 0.0
    return float(np.median([(a - b) * 1000.0 for a, b in pairs]))
