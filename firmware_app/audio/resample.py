"""Streaming sample-rate conversion for a live input: blocks at the device's own rate in, 16 kHz
mono out, continuous across blocks (FFmpeg's swresample through PyAV, about 1 ms of delay)."""

from __future__ import annotations

import av
import numpy as np


class StreamResampler:
    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_out)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """`samples` (float32 mono at rate_in) converted; what comes out may be a few samples fewer
        or more than the exact ratio, the filter's delay, which the next blocks make up."""
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None, :], "flt", "mono")
        frame.sample_rate = self.rate_in
        out = [f.to_ndarray()[0] for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)
