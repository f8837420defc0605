"""Reading rendered media back, for tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from firmware_app.sources.video_file import decode_frames as video_frames  # noqa: F401  (tests read clips with it)


def stream_durations(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams if s.duration}


def audio_samples(path: Path, rate: int = 16_000) -> np.ndarray:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [out.to_ndarray().reshape(-1) for f in container.decode(audio=0) for out in resampler.resample(f)]
    return np.concatenate(chunks)
