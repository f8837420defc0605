"""Per-stage timing: every stage's calls are timed in one place, for logs and `bench`."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class StageStats:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    frames: int = 0
    media_seconds: float = 0.0
    wall_seconds: float = 0.0

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
            self.calls[stage] += 1

    def ms_per_frame(self, stage: str) -> float:
        return 1000.0 * self.seconds.get(stage, 0.0) / max(self.frames, 1)

    @property
    def realtime_factor(self) -> float:
        """Processing time over media time: below 1 means faster than real time."""
        return self.wall_seconds / self.media_seconds if self.media_seconds else float("nan")

    def summary(self) -> str:
        stages = " ".join(f"{name}={self.ms_per_frame(name):.2f}ms" for name in self.seconds)
        fps = self.frames / self.wall_seconds if self.wall_seconds else 0.0
        return (
            f"frames={self.frames} media={self.media_seconds:.2f}s wall={self.wall_seconds:.2f}s "
            f"rtf={self.realtime_factor:.3f} fps={fps:.1f} per-frame: {stages}"
        )
