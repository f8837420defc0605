"""The offline runner: `ventriloquist render` and the demo. One frame at a time, as fast as the
machine allows: the voice is heard up to the look-ahead past each frame's instant, then the frame
is drawn with the mouth shape of that instant. Every stage's time is summed (`StageStats`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from firmware_app.config import Settings, with_changes
from firmware_app.frames import AudioBlock
from firmware_app.pipeline import Pipeline, build_pipeline
from firmware_app.platform.sdnotify import Notifier
from firmware_app.runners.metrics import StageStats
from firmware_app.runners.steps import FrameStep, VoiceStep
from firmware_app.sources import AudioSource

log = logging.getLogger(__name__)


class OfflineVoice:
    """Reads the voice source into a `VoiceStep` as far as each frame needs; every block also goes
    to the audio outputs (the sink's audio track, a passthrough speaker)."""

    def __init__(
        self, source: AudioSource, step: VoiceStep, outputs: list[Callable[[AudioBlock], None]], stats: StageStats
    ) -> None:
        self.source, self.step, self.outputs, self.stats = source, step, outputs, stats

    def advance_to(self, t: float) -> None:
        """Make mouth shapes up to media time t available (live sources: as far as audio has arrived)."""
        wait = not self.source.live
        while self.step.covered_until < t + self.step.model.lookahead_s:
            if not self.pull(wait):
                break

    def pull(self, wait: bool) -> bool:
        with self.stats.timed("audio"):
            block = self.source.read(wait)
        if block is None:
            return False
        for output in self.outputs:
            output(block)
        self.step.hear(block, self.stats)
        return True

    def drain(self) -> None:
        """Pass the audio after the last frame to the sink, so none is lost."""
        if not self.source.live:
            while self.pull(wait=True):
                pass
            self.step.finish()


def run_offline(pipeline: Pipeline, stop: threading.Event | None = None) -> StageStats:
    """Until the sources end or `stop` is set."""
    stats = StageStats()
    stop = stop or threading.Event()
    notifier = Notifier()
    started = time.perf_counter()
    # The camera opens first: without one, `run` shows the demo instead of failing on the microphone.
    with pipeline.video_source, pipeline.voice_source, pipeline.tracker, pipeline.sink, ExitStack() as extras:
        pipeline.sink.open(*pipeline.size, pipeline.fps)
        outputs = [pipeline.sink.write_audio]
        if pipeline.passthrough is not None:
            extras.enter_context(pipeline.passthrough)
            outputs.append(pipeline.passthrough.write)
        if pipeline.puppeteer is not None:
            extras.enter_context(pipeline.puppeteer)
        voice = OfflineVoice(pipeline.voice_source, VoiceStep(pipeline.model), outputs, stats)
        frames = FrameStep(pipeline.tracker, pipeline.renderer, pipeline.sink, pipeline.puppeteer)
        while not stop.is_set() and not pipeline.sink.closed_by_user:
            with stats.timed("video"):
                frame = pipeline.video_source.read()
            if frame is None:
                break
            voice.advance_to(frame.t)
            if _audio_over(pipeline.voice_source, frame.t):
                break
            shape = voice.step.shape_at(frame.t)
            face = frames.track(frame, stats)
            frames.show(frame, frames.render(frame, face, shape, stats), stats)
            stats.frames += 1
            notifier.frame_shown()
        voice.drain()
    stats.wall_seconds = time.perf_counter() - started
    stats.media_seconds = stats.frames / pipeline.fps
    log.info("pipeline finished: %s", stats.summary())
    return stats


def _audio_over(source: AudioSource, t: float) -> bool:
    return source.finished and source.duration is not None and t >= source.duration


def render_offline(settings: Settings, audio: str, face: str, out: str, performer: str | None = None) -> StageStats:
    """`render`: the pipeline with unpaced file sources; `out` is a path or any sink URI.
    `performer`, a clip of someone's face, drives the puppet's head, blinks and brows."""
    changes = {
        "mode": "puppet",
        "sources.audio": _as_uri(audio),
        "sources.portrait": _as_uri(face),
        "sources.pace": "fast",
        "output.uri": _as_uri(out),
        "puppet.performer": performer is not None,
    }
    if performer is not None:
        changes["sources.camera"] = _as_uri(performer)
    settings = with_changes(settings, changes)
    return run_offline(build_pipeline(settings, realtime=False))


def _as_uri(text: str) -> str:
    return text if "://" in text else f"file://{text}"
