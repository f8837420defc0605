"""A short history of mouth shapes, read back at any video frame's time."""

from __future__ import annotations

import bisect
from collections import deque

from firmware_app.frames import HOP_S, MouthShape

REST = MouthShape(0.0, {"jawOpen": 0.0, "mouthClose": 0.0})


class MouthTrack:
    def __init__(self, keep_s: float = 2.0) -> None:
        self.keep_s = keep_s
        self._shapes: deque[MouthShape] = deque()

    def extend(self, shapes: list[MouthShape]) -> None:
        self._shapes.extend(shapes)
        if self._shapes:
            horizon = self._shapes[-1].t - self.keep_s
            while self._shapes and self._shapes[0].t < horizon:
                self._shapes.popleft()

    @property
    def covered_until(self) -> float:
        """Audio time up to which shapes exist."""
        return self._shapes[-1].t + HOP_S if self._shapes else 0.0

    def at(self, t: float) -> MouthShape:
        """The shape at time t, interpolated between 10 ms steps; the newest one if t is beyond them."""
        if not self._shapes:
            return MouthShape(t, dict(REST.weights))
        times = [s.t for s in self._shapes]
        i = bisect.bisect_right(times, t)
        if i == 0:
            return MouthShape(t, dict(self._shapes[0].weights))
        if i == len(times):
            return MouthShape(t, dict(self._shapes[-1].weights))
        before, after = self._shapes[i - 1], self._shapes[i]
        w = (t - before.t) / (after.t - before.t)
        names = before.weights.keys() | after.weights.keys()
        return MouthShape(t, {n: (1 - w) * before.get(n) + w * after.get(n) for n in names})
