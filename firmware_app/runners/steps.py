"""The two steps every runner repeats, written once: the offline render and the live threads both
hear the voice with `VoiceStep` and draw each frame with `FrameStep`.

    VoiceStep   audio block → features → mouth model → the mouth track (shapes by audio time)
    FrameStep   video frame → face tracker → puppeteer → renderer → sink

Each part can be timed by a `StageClock` the runner passes (the offline runner's `StageStats`
times every part; the live threads time whole steps under their own names).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import numpy as np

from firmware_app.audio.features import FeatureStream
from firmware_app.frames import AudioBlock, Face, MouthShape, VideoFrame
from firmware_app.mouth.base import MouthModel
from firmware_app.mouth.track import MouthTrack

if TYPE_CHECKING:
    from firmware_app.face.expression import Puppeteer
    from firmware_app.face.tracker import FaceTracker
    from firmware_app.render import Renderer
    from firmware_app.sinks import Sink

log = logging.getLogger(__name__)


class StageClock(Protocol):
    def timed(self, stage: str) -> AbstractContextManager[None]: ...


class _Untimed:
    def timed(self, stage: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


UNTIMED: StageClock = _Untimed()


class VoiceStep:
    """Hears the voice block by block into a mouth track. A mouth model that fails hands over to
    its `fallback` (once), which goes on from the next block; without one the failure is raised.
    The track is read under `lock` while the live voice thread extends it."""

    def __init__(self, model: MouthModel, fallback: Callable[[], MouthModel] | None = None) -> None:
        self.model, self.fallback = model, fallback
        self.features = FeatureStream()
        self.track = MouthTrack()
        self.lock = threading.Lock()
        self.handovers = 0

    def restart(self) -> None:
        """A new stream (a reopened microphone): fresh features and model state, the track goes on."""
        self.features = FeatureStream()
        self.model.reset()

    def hear(self, block: AudioBlock, clock: StageClock = UNTIMED) -> bool:
        """Extend the track by what `block` makes known; False when the model failed and handed over."""
        with clock.timed("features"):
            rows = self.features.push(block)
        with clock.timed("mouth"):
            try:
                shapes = self.model.push(rows)
            except Exception as exc:  # noqa: BLE001 - any inference failure: hand over, keep talking
                if self.fallback is None:
                    raise
                self._hand_over(exc)
                return False
        with self.lock:
            self.track.extend(shapes)
        return True

    def finish(self) -> None:
        """The voice has ended: its last shapes (the look-ahead's worth) come from silence."""
        with self.lock:
            self.track.extend(self.model.flush())

    @property
    def covered_until(self) -> float:
        return self.track.covered_until

    def shape_at(self, t: float) -> MouthShape:
        with self.lock:
            return self.track.at(t)

    def _hand_over(self, exc: Exception) -> None:
        log.error("mouth model %s failed (%s); falling back", self.model.name, exc)
        failed, self.model, self.fallback = self.model, self.fallback(), None
        release_model(failed)
        self.handovers += 1
        self.model.reset()


def release_model(model: MouthModel | None) -> None:
    """Free what a replaced model holds (a TensorRT backend's GPU memory, which on a Jetson is system
    memory) now, not at exit; a close that fails only costs a log line. Closing twice is harmless."""
    backend = getattr(model, "backend", None)  # MouthModel has no close(); the learned model's backend does
    if backend is None:
        return
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001 - the handover must go on
        log.warning("closing the mouth model %s: %s", model.name, exc)


class FrameStep:
    """Draws one frame: its face tracked, the puppet's head, blinks and brows (puppet mode), the
    face rendered with the mouth shape of the instant it shows, and the image shown."""

    def __init__(
        self, tracker: FaceTracker, renderer: Renderer, sink: Sink, puppeteer: Puppeteer | None = None
    ) -> None:
        self.tracker, self.renderer, self.sink, self.puppeteer = tracker, renderer, sink, puppeteer

    def track(self, frame: VideoFrame, clock: StageClock = UNTIMED) -> Face | None:
        with clock.timed("tracker"):
            return self.tracker.track(frame)

    def render(
        self, frame: VideoFrame, face: Face | None, shape: MouthShape, clock: StageClock = UNTIMED
    ) -> np.ndarray:
        controls = None
        if self.puppeteer is not None:
            with clock.timed("performer"):
                controls = self.puppeteer.controls(frame.t, shape)
        with clock.timed("renderer"):
            return self.renderer.render(frame, face, shape, controls)

    def show(self, frame: VideoFrame, image: np.ndarray, clock: StageClock = UNTIMED) -> None:
        with clock.timed("sink"):
            self.sink.write_video(VideoFrame(image, frame.t, frame.index))
