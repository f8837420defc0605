"""The lips part at the burst: a mouth model's output re-timed to the stop releases heard in the
sound (`firmware_app.audio.stop_bursts`).

A network that sees 10 ms frames through 25 ms windows places a p/b release to within a frame or
two either way (on real voices its median error was 18 ms), and a parting that early or late is
what viewers notice. Two rules, applied only where the model has already closed the mouth:

- hold: while a release is coming within HOLD_S, the closed mouth stays closed (the closure is
  quiet up to the burst, so the model opening early there is the model's guess, not the sound);
- part: from a release, the aperture is at least PART_SPEED × time since the burst (up to
  PART_TO, for PART_S), so the opening starts at the burst even when the model would be late;
  and at most PART_MAX_SPEED × that time, so a model that was early (held shut until the burst)
  does not jump wide open within the burst's own frame: lips take tens of ms to open.

An open mouth is never touched, so a release the model did not close for changes nothing. The
rules look at most HOLD_S ahead (less for a model that looks less ahead, `hold_for`), inside the
model's own look-ahead, so they add no latency,
and streaming gives exactly what one offline pass gives.
"""

from __future__ import annotations

import bisect

import numpy as np

from firmware_app.audio.stop_bursts import CONFIRM_S
from firmware_app.frames import HOP_S, FeatureFrames, MouthShape
from firmware_app.mouth.base import MouthModel
from firmware_app.shapes import BLENDSHAPES, JAW_OPEN, MOUTH_CLOSE

CLOSED = 0.1  # an aperture below this is a closed mouth (models.metrics.CLOSED)
HOLD_S = 0.03  # the detector confirms a release CONFIRM_S after it: hold + CONFIRM_S <= look-ahead (`hold_for`)
PART_SPEED = 10.0  # aperture per second after the burst: 0.1 at 10 ms ...
PART_TO = 0.2  # ... up to 0.2 at 20 ms (a lip opening takes a few tens of ms to reach a vowel)
PART_S = 0.03
PART_MAX_SPEED = 30.0  # aperture per second at most while parting: 0.3 at 10 ms, 0.6 at 20 ms


def hold_for(lookahead_s: float) -> float:
    """How far ahead a model of this look-ahead can hold the lips shut for a coming release: HOLD_S,
    or what is left of the look-ahead once the detector has confirmed it (9 ms for a 20 ms model)."""
    hold = min(HOLD_S, round(lookahead_s - CONFIRM_S, 6))
    if hold < 0:
        raise ValueError(
            f"a model that looks {lookahead_s * 1000:.0f} ms ahead cannot wait for the release detector, "
            f"which confirms a release {CONFIRM_S * 1000:.0f} ms after it"
        )
    return hold


class ReleaseTimer:
    """The two rules, one frame at a time (in time order)."""

    def __init__(self, hold_s: float = HOLD_S) -> None:
        self.hold_s = hold_s
        self.releases: list[float] = []
        self._closed_before = True  # a stream starts at rest
        self._parting_from: float | None = None
        self._last_t: float | None = None

    def hear(self, releases: list[float] | tuple[float, ...]) -> None:
        self.releases.extend(round(r, 6) for r in releases)

    def step(self, t: float, jaw: float, close: float) -> tuple[float, float]:
        """(jawOpen, mouthClose) for the frame at time t."""
        t = round(t, 6)  # a stream's clock adds up 10 ms steps; offline multiplies: the same to 1 µs
        since = t - HOP_S if self._last_t is None else self._last_t
        self._last_t = t
        just_now = self._between(since, t)
        parting = self._parting_from is not None and t - self._parting_from < PART_S
        if self._closed_before and just_now and not parting:
            self._parting_from, parting = just_now[0], True
        if self._closed_before and not parting and self._between(t, t + self.hold_s):
            close = jaw
        elif parting:
            since_burst = max(0.0, t - self._parting_from)
            floor, ceiling = min(PART_TO, PART_SPEED * since_burst), PART_MAX_SPEED * since_burst
            if jaw - close < floor:
                jaw = max(jaw, floor)
                close = min(close, jaw - floor)
            elif jaw - close > ceiling:
                close = jaw - ceiling
        else:
            self._parting_from = None
        self._closed_before = jaw - close < CLOSED
        self._forget(t)
        return jaw, close

    def _between(self, after: float, until: float) -> list[float]:
        """Releases in (after, until]."""
        return self.releases[bisect.bisect_right(self.releases, after) : bisect.bisect_right(self.releases, until)]

    def _forget(self, t: float) -> None:
        done = bisect.bisect_right(self.releases, t - PART_S)
        if done:
            del self.releases[:done]


class ReleaseTiming(MouthModel):
    """Any mouth model, its partings re-timed to the releases its features carry."""

    def __init__(self, model: MouthModel) -> None:
        self.hold_s = hold_for(model.lookahead_s)
        self.model = model
        self.name = model.name
        self.lookahead_s = model.lookahead_s
        self._timer = ReleaseTimer(self.hold_s)

    def reset(self) -> None:
        self.model.reset()
        self._timer = ReleaseTimer(self.hold_s)

    def push(self, features: FeatureFrames) -> list[MouthShape]:
        self._timer.hear(features.releases)
        return [self._retime(shape) for shape in self.model.push(features)]

    def flush(self) -> list[MouthShape]:
        return [self._retime(shape) for shape in self.model.flush()]

    def _retime(self, shape: MouthShape) -> MouthShape:
        jaw, close = self._timer.step(shape.t, shape.get("jawOpen"), shape.get("mouthClose"))
        return MouthShape(shape.t, {**shape.weights, "jawOpen": jaw, "mouthClose": close})

    def offline(self, features: FeatureFrames) -> tuple[np.ndarray, np.ndarray] | None:
        """The wrapped model's offline pass (when it has one), re-timed the same way."""
        offline = getattr(self.model, "offline", None)
        result = offline(features) if offline else None
        if result is None:
            return None
        visemes, blendshapes = result
        return visemes, retime(blendshapes, features.releases, features.t, self.hold_s)

    def __getattr__(self, name: str):  # the wrapped model's own attributes (backend, path, …)
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def retime(
    blendshapes: np.ndarray, releases: list[float] | tuple[float, ...], t0: float = 0.0, hold_s: float = HOLD_S
) -> np.ndarray:
    """Blendshape rows (T x len(BLENDSHAPES), row i at t0 + i * HOP_S) re-timed to `releases`."""
    assert blendshapes.shape[1] == len(BLENDSHAPES)
    timer = ReleaseTimer(hold_s)
    timer.hear(sorted(releases))
    out = blendshapes.copy()
    for i, row in enumerate(out):
        row[JAW_OPEN], row[MOUTH_CLOSE] = timer.step(t0 + i * HOP_S, float(row[JAW_OPEN]), float(row[MOUTH_CLOSE]))
    return out
