"""The one chain of stages, wired in one place:

    audio source → features → mouth model ─┐
    video source → face tracker ───────────┼→ renderer → sink
    (puppet mode) performer camera → tracker → expression ─┘

`ventriloquist run` and `ventriloquist render` both build it here; only the sources' pacing and
the sink differ. Each video frame is rendered with the mouth shape for the audio time it shows.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from firmware_app.config import IdleSettings, Settings, with_changes
from firmware_app.face.expression import Puppeteer
from firmware_app.audio.features import FeatureStream
from firmware_app.frames import AudioBlock, VideoFrame
from firmware_app.mouth import MouthModel, create_mouth_model, fallback_model
from firmware_app.mouth.track import MouthTrack
from firmware_app.audio.passthrough import VoicePassthrough, passthrough_delay_s
from firmware_app.render import Renderer
from firmware_app.platform.sdnotify import Notifier
from firmware_app.sinks import Sink, open_sink
from firmware_app.sources import AudioSource, VideoSource, open_audio_source, open_video_source
from firmware_app.runners.stats import StageStats
from firmware_app.face.tracker import FaceTracker

log = logging.getLogger(__name__)


class Voice:
    """Audio source → features → mouth model → mouth track; every block also goes to the audio outputs."""

    def __init__(
        self, source: AudioSource, model: MouthModel, outputs: list[Callable[[AudioBlock], None]], stats: StageStats
    ) -> None:
        self.source = source
        self.model = model
        self.outputs = outputs  # the sink's audio track, the passthrough speaker
        self.stats = stats
        self.features = FeatureStream()
        self.track = MouthTrack()

    def advance_to(self, t: float) -> None:
        """Make mouth shapes up to media time t available (live sources: as far as audio has arrived)."""
        wait = not self.source.live
        while self.track.covered_until < t + self.model.lookahead_s:
            if not self.pull(wait):
                break

    def pull(self, wait: bool) -> bool:
        with self.stats.timed("audio"):
            block = self.source.read(wait)
        if block is None:
            return False
        for output in self.outputs:
            output(block)
        with self.stats.timed("features"):
            features = self.features.push(block)
        with self.stats.timed("mouth"):
            self.track.extend(self.model.push(features))
        return True

    def drain(self) -> None:
        """Offline: pass the audio after the last frame to the sink, so none is lost."""
        if not self.source.live:
            while self.pull(wait=True):
                pass
            self.track.extend(self.model.flush())


@dataclass
class Pipeline:
    voice_source: AudioSource
    video_source: VideoSource
    model: MouthModel
    tracker: FaceTracker
    renderer: Renderer
    sink: Sink
    size: tuple[int, int]
    passthrough: VoicePassthrough | None = None
    puppeteer: Puppeteer | None = None  # puppet mode: head, blinks and brows
    fallback: Callable[[], MouthModel] | None = None  # takes over if the mouth model fails live
    realtime: bool = False
    audio_taps: list[Callable[[AudioBlock], None]] = field(default_factory=list)  # see every captured block (bench)
    idle: IdleSettings | None = None  # live: the attract prompt
    loop_audio: bool = False  # live: a speech file standing in for the microphone starts over at its end
    restart_above_mb: int = 0  # live: resident memory that asks for a restart (0: never)

    @property
    def fps(self) -> float:
        return self.video_source.fps

    def run(self, stop: threading.Event | None = None, reload: threading.Event | None = None, metrics=None):
        """Until the sources end or `stop`/`reload` is set. Live (paced) pipelines run on threads
        (`firmware_app.runners.live`) and return their LiveMetrics; offline renders return StageStats."""
        if self.realtime:
            from firmware_app.runners.live import LiveMetrics, run_live

            return run_live(self, stop or threading.Event(), reload or threading.Event(), metrics or LiveMetrics())
        return self._run_offline(stop)

    def _run_offline(self, stop: threading.Event | None) -> StageStats:
        stats = StageStats()
        stop = stop or threading.Event()
        notifier = Notifier()
        started = time.perf_counter()
        # The camera opens first: without one, `run` shows the demo instead of failing on the microphone.
        with self.video_source, self.voice_source, self.tracker, self.sink, ExitStack() as extras:
            self.sink.open(*self.size, self.video_source.fps)
            outputs = [self.sink.write_audio]
            if self.passthrough is not None:
                extras.enter_context(self.passthrough)
                outputs.append(self.passthrough.write)
            if self.puppeteer is not None:
                extras.enter_context(self.puppeteer)
            voice = Voice(self.voice_source, self.model, outputs, stats)
            while not stop.is_set() and not self.sink.closed_by_user:
                with stats.timed("video"):
                    frame = self.video_source.read()
                if frame is None:
                    break
                voice.advance_to(frame.t)
                if self._audio_over(frame.t):
                    break
                self._show(frame, voice, stats)
                notifier.frame_shown()
            voice.drain()
        stats.wall_seconds = time.perf_counter() - started
        stats.media_seconds = stats.frames / self.video_source.fps
        log.info("pipeline finished: %s", stats.summary())
        return stats

    def _audio_over(self, t: float) -> bool:
        duration = self.voice_source.duration
        return self.voice_source.finished and duration is not None and t >= duration

    def _show(self, frame: VideoFrame, voice: Voice, stats: StageStats) -> None:
        shape = voice.track.at(frame.t)
        with stats.timed("tracker"):
            face = self.tracker.track(frame)
        controls = None
        if self.puppeteer is not None:
            with stats.timed("performer"):
                controls = self.puppeteer.controls(frame.t, shape)
        with stats.timed("renderer"):
            image = self.renderer.render(frame, face, shape, controls)
        with stats.timed("sink"):
            self.sink.write_video(VideoFrame(image, frame.t, frame.index))
        stats.frames += 1


def build_pipeline(settings: Settings, realtime: bool) -> Pipeline:
    """Wire the stages the config asks for. `realtime` paces file sources to the wall clock."""
    puppet = settings.mode == "puppet"
    face_uri = settings.sources.portrait if puppet else settings.sources.camera
    model = create_mouth_model(settings.model, settings.inference)
    puppeteer = None
    if puppet:
        performer = open_video_source(settings.sources.camera, settings, realtime) if settings.puppet.performer else None
        puppeteer = Puppeteer(settings.puppet, performer, FaceTracker(settings.tracker) if performer else None)
    passthrough = None
    if settings.audio.passthrough and realtime:  # an offline render has no audience to play to
        delay = passthrough_delay_s(model.lookahead_s, settings.video.fps, settings.audio.passthrough_trim_ms)
        passthrough = VoicePassthrough(
            settings.audio.passthrough_device,
            delay,
            follow=settings.audio.passthrough_delay == "auto",
            trim_s=settings.audio.passthrough_trim_ms / 1000,
        )
    video_source, renderer = _face(settings, settings.sources.portrait, realtime, puppet)
    return Pipeline(
        voice_source=open_audio_source(settings.sources.audio, settings, realtime),
        video_source=video_source or open_video_source(face_uri, settings, realtime),
        model=model,
        tracker=FaceTracker(settings.tracker),
        renderer=renderer,
        sink=open_sink(settings.output.uri, settings.output.window_title),
        size=(settings.video.width, settings.video.height),
        passthrough=passthrough,
        puppeteer=puppeteer,
        fallback=lambda: fallback_model(model, settings.model),
        realtime=realtime,
        idle=settings.idle,
        restart_above_mb=settings.health.restart_above_mb,
    )


def _face(settings: Settings, portrait: str, realtime: bool, puppet: bool) -> tuple[VideoSource | None, Renderer]:
    """A face pack as the portrait (`file://NAME.face`) brings its mouth bank (`render.bank`) and,
    in puppet mode, its reference still as the picture; in mirror mode the camera's face speaks
    with the pack's mouth. Anything else: the picture's own source, the single-photo renderer."""
    from firmware_app.render.bank import BankRenderer, face_pack_path, open_face_pack

    path = face_pack_path(portrait) if portrait else None
    if path is None:
        return None, Renderer(settings.renderer, settings.disclosure)
    from firmware_app.sources.face_pack import FacePackSource

    pack = open_face_pack(path, settings.disclosure)
    source = FacePackSource(pack, (settings.video.width, settings.video.height), settings.video.fps, realtime) if puppet else None
    return source, BankRenderer(settings.renderer, settings.disclosure, pack)


def render_offline(settings: Settings, audio: str, face: str, out: str, performer: str | None = None) -> StageStats:
    """`render`: the same pipeline with unpaced file sources; `out` is a path or any sink URI.
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
    return build_pipeline(settings, realtime=False).run()


def _as_uri(text: str) -> str:
    return text if "://" in text else f"file://{text}"
