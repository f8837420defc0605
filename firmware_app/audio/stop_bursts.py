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
from collections import deque

import numpy as np
from scipy.signal import butter, lfilter, lfilter_zi

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

_HIGH_PASS = butter(4, HIGH_BAND_HZ / (SAMPLE_RATE / 2), "highpass")  # (b, a): lfilter costs less per call than sosfilt
_LEVEL_FLOOR_DB = -120.0


class ReleaseDetector:
    """Audio in (16 kHz, any block sizes), release times out (seconds on the audio's clock, the
    first sample at `origin`)."""

    def __init__(self, origin: float = 0.0) -> None:
        self.origin = origin
        self._filter_state = lfilter_zi(*_HIGH_PASS) * 0.0
        self._filtered = np.zeros(0)  # high-passed samples short of a whole millisecond
        self._energies = np.zeros(0)  # the last WINDOW / HOP - 1 milliseconds' energies
        self._levels = np.zeros(0)  # dB per ms; index 0 of this buffer is level number _first_level
        self._first_level = 0
        self._next_candidate = CLOSURE_MS[0]  # the first level index not yet judged
        self._refractory_until = 0
        self._loud = _LoudLevel()

    def push(self, samples: np.ndarray) -> list[float]:
        """The releases confirmed by these samples, oldest first."""
        filtered, self._filter_state = lfilter(*_HIGH_PASS, np.asarray(samples, np.float64), zi=self._filter_state)
        self._filtered = np.concatenate([self._filtered, filtered])
        whole = len(self._filtered) // HOP * HOP
        # energy per millisecond, then per 4 ms window as sums of four: the same arithmetic
        # whatever the block sizes (a running cumulative sum would not be)
        per_ms = np.concatenate([self._energies, np.square(self._filtered[:whole]).reshape(-1, HOP).sum(axis=1)])
        self._filtered = self._filtered[whole:]
        span = WINDOW // HOP
        if len(per_ms) >= span:
            count = len(per_ms) - span + 1
            energy = per_ms[:count] + per_ms[1 : count + 1] + per_ms[2 : count + 2] + per_ms[3 : count + 3]
            levels = np.maximum(10.0 * np.log10(energy / WINDOW + 1e-12), _LEVEL_FLOOR_DB)
            self._levels = np.concatenate([self._levels, levels])
            per_ms = per_ms[count:]
        self._energies = per_ms
        releases = self._judge()
        self._forget()
        return releases

    def _judge(self) -> list[float]:
        """Judge every level index whose rise window is complete. A cheap necessary condition on
        whole arrays first (a pass over a file must stay far faster than real time), the median
        closure level only where it holds."""
        first, last = self._next_candidate, self._first_level + len(self._levels) - RISE_MS
        if last < first:
            return []
        self._loud.advance(self._levels, self._first_level, last)
        n = last - first + 1
        base = first - CLOSURE_MS[0] - self._first_level
        levels = self._levels[base : base + CLOSURE_MS[0] + n - 1 + RISE_MS]  # level i at [i - first + 35]
        previous = levels[CLOSURE_MS[0] - 1 : CLOSURE_MS[0] - 1 + n]
        peak = levels[CLOSURE_MS[0] : CLOSURE_MS[0] + n]
        for k in range(1, RISE_MS):
            peak = np.maximum(peak, levels[CLOSURE_MS[0] + k : CLOSURE_MS[0] + k + n])
        loud = self._loud.at(np.arange(first, last + 1))
        # previous < closure + ONSET and closure < loud - QUIET and peak >= closure + RISE imply:
        possible = (peak - previous > RISE_DB - ONSET_ABOVE_CLOSURE_DB) & (
            previous < loud - QUIET_BELOW_LOUD_DB + ONSET_ABOVE_CLOSURE_DB
        )
        candidates = np.flatnonzero(possible)
        width = CLOSURE_MS[0] - CLOSURE_MS[1]
        closures = _medians(levels[candidates[:, None] + np.arange(width)]) if len(candidates) else []
        releases = []
        for k, closure in zip(candidates, closures):
            i = first + int(k)
            if i < self._refractory_until:
                continue
            rise = levels[k + CLOSURE_MS[0] : k + CLOSURE_MS[0] + RISE_MS]
            if (
                closure < loud[k] - QUIET_BELOW_LOUD_DB
                and peak[k] - closure >= RISE_DB
                and previous[k] < closure + ONSET_ABOVE_CLOSURE_DB
            ):
                onset = i + int(np.argmax(rise >= closure + ONSET_ABOVE_CLOSURE_DB))
                # three quarters into the first 4 ms window that rose: the burst starts within it
                releases.append(self.origin + (onset * HOP + WINDOW * 0.75) / SAMPLE_RATE)
                self._refractory_until = onset + REFRACTORY_MS
        self._next_candidate = last + 1
        return releases

    def _forget(self) -> None:
        drop = max(0, self._next_candidate - CLOSURE_MS[0] - 1 - self._first_level)
        if drop:
            self._levels = self._levels[drop:]
            self._first_level += drop


class _LoudLevel:
    """The loud level each level index is judged against: the 95th percentile (linear
    interpolation) of the levels at every LOUD_STEP_MS mark over the LOUD_SPAN marks before the
    index's own mark. Kept as a sorted window, one mark at a time, so it depends on the audio only,
    never on how it was cut into blocks."""

    def __init__(self) -> None:
        self._window: list[float] = []
        self._recent: deque[float] = deque()  # the same levels in arrival order
        self._values: list[float] = []  # the loud level of marks _first_mark, _first_mark + 1, ...
        self._first_mark = 0

    def advance(self, levels: np.ndarray, first_level: int, last: int) -> None:
        """Compute the loud level of every mark up to last's (its window holds levels before it)."""
        for mark in range(self._first_mark + len(self._values), last // LOUD_STEP_MS + 1):
            if mark > 0:
                value = float(levels[(mark - 1) * LOUD_STEP_MS - first_level])
                bisect.insort(self._window, value)
                self._recent.append(value)
                if len(self._recent) > LOUD_SPAN:
                    self._window.pop(bisect.bisect_left(self._window, self._recent.popleft()))
            self._values.append(_percentile_95(self._window))

    def at(self, indices: np.ndarray) -> np.ndarray:
        values = np.array(self._values)
        loud = values[indices // LOUD_STEP_MS - self._first_mark]
        keep_from = int(indices[-1]) // LOUD_STEP_MS - self._first_mark
        self._values, self._first_mark = self._values[keep_from:], self._first_mark + keep_from
        return loud


def _medians(rows: np.ndarray) -> np.ndarray:
    """np.median(rows, axis=1) for rows of an even length, without its per-call overhead."""
    half = rows.shape[1] // 2
    middle = np.partition(rows, (half - 1, half), axis=1)
    return (middle[:, half - 1] + middle[:, half]) / 2


def _percentile_95(ordered: list[float]) -> float:
    """np.percentile(ordered, 95) of an ascending list; -inf when empty."""
    if not ordered:
        return -np.inf
    h = 0.95 * (len(ordered) - 1)
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def releases_of(samples: np.ndarray) -> list[float]:
    """Every stop release (s) in a whole recording, the same as streaming it would find."""
    return ReleaseDetector().push(samples)
