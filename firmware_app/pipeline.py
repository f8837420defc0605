"""The one chain of stages, wired in one place:

    audio source → features → mouth model ─┐
    video source → face tracker ───────────┼→ renderer → sink
    (puppet mode) performer camera → tracker → expression ─┘

`ventriloquist run` and `ventriloquist render` both build it here; only the sources' pacing and
the sink differ. Each video frame is rendered with the mouth shape for the audio time it shows.
What runs it is in `runners/`: `offline.run_offline` (a render, as fast as it goes) and
`live.run_live` (the kiosk's threads, paced by its devices).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_app.audio.passthrough import VoicePassthrough, passthrough_delay_s
from firmware_app.config import IdleSettings, Settings
from firmware_app.face.expression import Puppeteer
from firmware_app.face.tracker import FaceTracker
from firmware_app.frames import AudioBlock
from firmware_app.mouth import MouthModel, create_mouth_model, fallback_model
from firmware_app.render import Renderer
from firmware_app.sinks import Sink, open_sink
from firmware_app.sinks.provenance import provenance_for
from firmware_app.sources import AudioSource, VideoSource, open_audio_source, open_video_source

log = logging.getLogger(__name__)


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
    audio_taps: list[Callable[[AudioBlock], None]] = field(default_factory=list)  # see every captured block (bench)
    idle: IdleSettings | None = None  # live: the attract prompt
    loop_audio: bool = False  # live: a speech file standing in for the microphone starts over at its end
    restart_above_mb: int = 0  # live: resident memory that asks for a restart (0: never)

    @property
    def fps(self) -> float:
        return self.video_source.fps


def build_pipeline(settings: Settings, realtime: bool) -> Pipeline:
    """Wire the stages the config asks for. `realtime` paces file sources to the wall clock."""
    puppet = settings.mode == "puppet"
    face_uri = settings.sources.portrait if puppet else settings.sources.camera
    model = create_mouth_model(settings.model, settings.inference)
    puppeteer = None
    if puppet:
        performer = (
            open_video_source(settings.sources.camera, settings, realtime) if settings.puppet.performer else None
        )
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
        sink=open_sink(settings.output.uri, settings.output.window_title, provenance_for(settings)),
        size=(settings.video.width, settings.video.height),
        passthrough=passthrough,
        puppeteer=puppeteer,
        fallback=lambda: fallback_model(model, settings.model),
        idle=settings.idle,
        restart_above_mb=settings.health.restart_above_mb,
    )


def _face(settings: Settings, portrait: str, realtime: bool, puppet: bool) -> tuple[VideoSource | None, Renderer]:
    """A face pack as the portrait (`file://NAME.face`) brings its mouth bank (`render.bank`) and,
    in puppet mode, its reference still as the picture; in mirror mode the camera's face speaks
    with the pack's mouth. Anything else: the picture's own source, the single-photo renderer."""
    from firmware_app.face.pack import face_pack_path, open_face_pack
    from firmware_app.render.bank import BankRenderer

    path = face_pack_path(portrait) if portrait else None
    if path is None:
        return None, Renderer(settings.renderer, settings.disclosure)
    from firmware_app.sources.face_pack import FacePackSource

    pack = open_face_pack(path, settings.disclosure)
    source = (
        FacePackSource(pack, (settings.video.width, settings.video.height), settings.video.fps, realtime)
        if puppet
        else None
    )
    return source, BankRenderer(settings.renderer, settings.disclosure, pack)
