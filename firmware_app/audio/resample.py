"""Streaming sample-rate conversion for a live input: blocks at the device's own rate in, 16 kHz
mono out, continuous across blocks (FFmpeg's swresample through PyAV, about 1 ms of delay)."""

from __future__ import annotations

import av
import numpy as np


class StreamResampler:
    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_out)
        self._primed = False

    def push(self, samples: np.ndarray) -> np.ndarray:
        """`samples` (float32 mono at rate_in) converted, as many as the exact ratio gives.

        The filter holds back its delay (~1 ms) from the first block; that shortfall is filled with
        silence once, at the start. Left to the stream it would stay, and a reader cutting whole
        10 ms blocks would then wait for the next capture every time: 10 ms more latency."""
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None, :], "flt", "mono")
        frame.sample_rate = self.rate_in
        out = [f.to_ndarray()[0] for f in self._resampler.resample(frame)]
        converted = np.concatenate(out) if out else np.zeros(0, np.float32)
        if not self._primed:
            self._primed = True
            shortfall = round(len(samples) * self.rate_out / self.rate_in) - len(converted)
            converted = np.concatenate([np.zeros(max(shortfall, 0), np.float32), converted])
        return converted
