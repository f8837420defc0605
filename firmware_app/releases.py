"""Stop releases heard as they happen: the instant the lips (or tongue) let a plosive go.

A p/b release is a sharp acoustic event — a near-silent closure (above ~1.2 kHz even a voiced
/b/ is quiet), then a broadband burst — and the lips part at that burst. The mouth model sees the
sound in 10 ms frames through 25 ms windows, so it can only place a parting to within a frame or
two; this detector finds the burst to the millisecond, and `firmware_app.mouth.release_timing`
makes the mouth part there. Same criteria as the evaluation's anchors (`models.bursts`), made
causal: a causal high-pass filter, and the "loud" reference is the last 3 s' 95th percentile
rather than the whole utterance's. A release is confirmed CONFIRM_S after it happened, and the
stream gives the same releases for any block sizes as for one pass over a whole file.
"""

from __future__ import annotations

import bisect

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from firmware_app.frames import SAMPLE_RATE

HIGH_BAND_HZ = 1200.0
HOP = SAMPLE_RATE // 1000  # one level per millisecond
WINDOW = 4 * HOP  # over 4 ms
CLOSURE_MS = (35, 5)  # the closure is judged over [t - 35 ms, t - 5 ms]
# The causal loud level runs higher than a whole utterance's, and a strong early candidate must
# not hide the burst 10 ms later: 22 dB and 10 ms (models.bursts: 28 dB, 40 ms) find 92 % of the
# real validation speakers' p/b anchors within 2 ms (68 % with the offline values).
QUIET_BELOW_LOUD_DB = 22.0  # the closure is this far below the recent loud level
RISE_DB = 12.0  # and the burst this far above the closure, within RISE_MS
RISE_MS = 6
ONSET_ABOVE_CLOSURE_DB = 8.0  # the release instant: the first millisecond this far above the closure
REFRACTORY_MS = 10  # one release per 10 ms
LOUD_STEP_MS = 10  # the loud level: the 95th percentile of the level every 10 ms ...
LOUD_SPAN = 300  # ... over the last 3 s
# a release at t is known once the levels up to t + RISE_MS (4 ms windows) are in
CONFIRM_S = (RISE_MS + WINDOW / HOP + 1) / 1000.0

_SOS = butter(4, HIGH_BAND_HZ / (SAMPLE_RATE / 2), "highpass", output="sos")
_LEVEL_FLOOR_DB = -120.0


class ReleaseDetector:
    """Audio in (16 kHz, any block sizes), release times out (seconds on the audio's clock, the
    first sample at `origin`)."""

    def __init__(self, origin: float = 0.0) -> None:
        self.origin = origin
        self._filter_state = sosfilt_zi(_SOS) * 0.0
        self._filtered = np.zeros(0)  # high-passed samples short of a whole millisecond
        self._energies = np.zeros(0)  # the last WINDOW / HOP - 1 milliseconds' energies
        self._levels = np.zeros(0)  # dB per ms; index 0 of this buffer is level number _first_level
        self._first_level = 0
        self._next_candidate = CLOSURE_MS[0]  # the first level index not yet judged
        self._refractory_until = 0

    def push(self, samples: np.ndarray) -> list[float]:
        """The releases confirmed by these samples, oldest first."""
        filtered, self._filter_state = sosfilt(_SOS, np.asarray(samples, np.float64), zi=self._filter_state)
        self._filtered = np.concatenate([self._filtered, filtered])
        whole = len(self._filtered) // HOP * HOP
        # energy per millisecond, then per 4 ms window as sums of four: the same arithmetic
        # whatever the block sizes (a running cumulative sum would not be)
        per_ms = np.concatenate([self._energies, np.square(self._filtered[:whole]).reshape(-1, HOP).sum(axis=1)])
        self._filtered = self._filtered[whole:]
        span = WINDOW // HOP
        if len(per_ms) >= span:
            energy = per_ms[: len(per_ms) - span + 1].copy()
            for k in range(1, span):
                energy += per_ms[k : len(per_ms) - span + 1 + k]
            levels = 10.0 * np.log10(energy / WINDOW + 1e-12)
            self._levels = np.concatenate([self._levels, np.maximum(levels, _LEVEL_FLOOR_DB)])
            per_ms = per_ms[len(per_ms) - span + 1 :]
        self._energies = per_ms
        releases = self._judge()
        self._forget()
        return releases

    def _levels_between(self, start: int, end: int) -> np.ndarray:
        return self._levels[start - self._first_level : end - self._first_level]

    def _judge(self) -> list[float]:
        """Judge every level index whose rise window is complete; vectorised, since a pass over a
        whole file must stay far faster than real time."""
        first, last = self._next_candidate, self._first_level + len(self._levels) - RISE_MS
        if last < first:
            return []
        indices = np.arange(first, last + 1)
        before = np.lib.stride_tricks.sliding_window_view(self._levels_between(first - CLOSURE_MS[0], last - CLOSURE_MS[1]), CLOSURE_MS[0] - CLOSURE_MS[1])
        rises = np.lib.stride_tricks.sliding_window_view(self._levels_between(first, last + RISE_MS), RISE_MS)
        peak, quietest = rises.max(axis=1), before.min(axis=1)
        loud = self._loud_levels(indices)
        # the median closure level is at least its minimum: judge only where the minimum passes
        closure = np.full(len(indices), np.inf)
        possible = (quietest < loud - QUIET_BELOW_LOUD_DB) & (peak - quietest >= RISE_DB)
        closure[possible] = np.median(before[possible], axis=1)
        previous = self._levels_between(first - 1, last)
        hits = (closure < loud - QUIET_BELOW_LOUD_DB) & (peak - closure >= RISE_DB) & (previous < closure + ONSET_ABOVE_CLOSURE_DB)
        releases = []
        for k in np.flatnonzero(hits):
            if indices[k] < self._refractory_until:
                continue
            onset = int(indices[k]) + int(np.argmax(rises[k] >= closure[k] + ONSET_ABOVE_CLOSURE_DB))
            # three quarters into the first 4 ms window that rose: the burst starts within it
            releases.append(self.origin + (onset * HOP + WINDOW * 0.75) / SAMPLE_RATE)
            self._refractory_until = onset + REFRACTORY_MS
        self._next_candidate = last + 1
        return releases

    def _loud_levels(self, indices: np.ndarray) -> np.ndarray:
        """The loud level each index is judged against: the 95th percentile of the levels sampled
        every LOUD_STEP_MS over the LOUD_SPAN steps before its last LOUD_STEP_MS mark, so it
        depends on the audio only, never on how it was cut into blocks."""
        marks = indices // LOUD_STEP_MS
        first, last = int(marks[0]), int(marks[-1])
        oldest = max(0, first - LOUD_SPAN)
        sampled = self._levels_between(oldest * LOUD_STEP_MS, last * LOUD_STEP_MS)[::LOUD_STEP_MS]
        loud = np.full(last - first + 1, -np.inf)
        if first < LOUD_SPAN:  # the stream's first 3 s: the window grows from nothing
            growing = _growing_percentile_95(sampled[: min(last, LOUD_SPAN - 1)])
            loud[: min(last + 1, LOUD_SPAN) - first] = growing[first:]
        full_from = max(first, LOUD_SPAN)
        if full_from <= last:
            windows = np.lib.stride_tricks.sliding_window_view(sampled[full_from - LOUD_SPAN - oldest :], LOUD_SPAN)
            for chunk in range(0, len(windows), 4096):  # bounded memory on hour-long files
                loud[full_from - first + chunk : full_from - first + chunk + 4096] = np.percentile(windows[chunk : chunk + 4096], 95, axis=1)
        return loud[marks - first]

    def _forget(self) -> None:
        keep_from = min(self._next_candidate - CLOSURE_MS[0] - 1, (self._next_candidate // LOUD_STEP_MS - LOUD_SPAN) * LOUD_STEP_MS)
        drop = max(0, keep_from - self._first_level)
        if drop:
            self._levels = self._levels[drop:]
            self._first_level += drop


def _growing_percentile_95(values: np.ndarray) -> np.ndarray:
    """out[m] = np.percentile(values[:m], 95) (linear interpolation), -inf for m = 0; m = 0..len."""
    ordered: list[float] = []
    out = np.full(len(values) + 1, -np.inf)
    for m, value in enumerate(values, start=1):
        bisect.insort(ordered, float(value))
        h = 0.95 * (m - 1)
        low = int(h)
        high = min(low + 1, m - 1)
        out[m] = ordered[low] + (h - low) * (ordered[high] - ordered[low])
    return out


def releases_of(samples: np.ndarray) -> list[float]:
    """Every stop release (s) in a whole recording, the same as streaming it would find."""
    return ReleaseDetector().push(samples)
